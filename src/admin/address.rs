//! Addresses operators give the gateway to call (billers, webhooks): a URL with a host,
//! no credentials in it, and never one of the addresses a server must not be made to
//! call (link-local, where clouds answer with their instance's secrets; unspecified;
//! multicast).

use crate::domain::shape;

/// Which schemes an address may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schemes {
    HttpOrHttps,
    /// Partners' endpoints outside a demo: what is sent holds account data.
    HttpsOnly,
}

/// Why an address is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// It breaks the admin API's document (a 400).
    Invalid(String),
    /// It keeps to the document but cannot be called (a 422).
    Unacceptable(String),
}

/// Where AWS answers with an instance's credentials over IPv6.
const METADATA_V6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// What is wrong with `url`, given as the field `field`, if anything.
pub fn problem(field: &str, url: &str, schemes: Schemes) -> Option<Problem> {
    if url.chars().count() > 500 || !shape::BILLER_URL.fits(url) {
        return Some(Problem::Invalid(format!(
            "`{field}` `{url}` must be an http:// or https:// URL of at most 500 characters"
        )));
    }
    let unacceptable = |why: &str| Some(Problem::Unacceptable(format!("`{field}` `{url}` {why}")));
    let parsed = match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => parsed,
        _ => return unacceptable("is not a URL with a host"),
    };
    if schemes == Schemes::HttpsOnly && parsed.scheme() != "https" {
        return unacceptable("must be https:// (plain http only with `serve --demo`)");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return unacceptable("must not carry credentials");
    }
    let forbidden = match parsed.host() {
        None => true,
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "metadata" || name == "metadata.google.internal"
        }
        Some(url::Host::Ipv4(ip)) => {
            ip.is_link_local() || ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast()
        }
        Some(url::Host::Ipv6(ip)) => match ip.to_ipv4_mapped() {
            Some(v4) => v4.is_link_local() || v4.is_unspecified(),
            None => {
                ip.is_unicast_link_local() || ip.is_unspecified() || ip.is_multicast() || ip == METADATA_V6
            }
        },
    };
    if forbidden { unacceptable("names an address the gateway must not call") } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partners_endpoints_are_https_and_never_the_clouds_metadata() {
        let https = Schemes::HttpsOnly;
        assert_eq!(problem("url", "https://partner.example/hooks", https), None);
        assert!(matches!(
            problem("url", "http://partner.example/hooks", https),
            Some(Problem::Unacceptable(_))
        ));
        assert_eq!(problem("url", "http://127.0.0.1:8080/x", Schemes::HttpOrHttps), None);
        for bad in [
            "https://169.254.169.254/latest",
            "https://metadata.google.internal/",
            "https://[fd00:ec2::254]/",
        ] {
            assert!(matches!(problem("url", bad, https), Some(Problem::Unacceptable(_))), "{bad}");
        }
        assert!(matches!(problem("url", "ftp://x", https), Some(Problem::Invalid(_))));
    }
}
