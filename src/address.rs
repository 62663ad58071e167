//! Addresses operators give the gateway to call (billers, webhooks): a URL with a host,
//! no credentials in it, and never one of the addresses a server must not be made to
//! call (link-local, where clouds answer with their instance's secrets; unspecified;
//! multicast) — nor, for partners' endpoints outside a demo, the gateway's own networks
//! (loopback, private ranges). [`Guard`] holds what a name resolves to to the same
//! rule when the call is made, so that a name cannot lead where an address may not.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

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
    let private_allowed = schemes == Schemes::HttpOrHttps;
    let forbidden = match parsed.host() {
        None => true,
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "metadata" || name == "metadata.google.internal"
        }
        Some(url::Host::Ipv4(ip)) => forbidden(IpAddr::V4(ip), private_allowed),
        Some(url::Host::Ipv6(ip)) => forbidden(IpAddr::V6(ip), private_allowed),
    };
    if forbidden { unacceptable("names an address the gateway must not call") } else { None }
}

/// Whether the gateway must not call `ip`: link-local (clouds' metadata), unspecified,
/// multicast, broadcast, AWS's metadata over IPv6 — and, unless `private_allowed`,
/// loopback and private ranges (IPv4-mapped and NAT64 addresses read as the IPv4
/// address they carry).
pub fn forbidden(ip: IpAddr, private_allowed: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let always = v4.is_link_local() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast();
            let shared = v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64;
            always || (!private_allowed && (v4.is_loopback() || v4.is_private() || shared))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped().or_else(|| nat64(v6)) {
                return forbidden(IpAddr::V4(v4), private_allowed);
            }
            let always =
                v6.is_unicast_link_local() || v6.is_unspecified() || v6.is_multicast() || v6 == METADATA_V6;
            let unique_local = (v6.segments()[0] & 0xfe00) == 0xfc00;
            always || (!private_allowed && (v6.is_loopback() || unique_local))
        }
    }
}

/// The IPv4 address a NAT64 address (`64:ff9b::/96`) stands for.
fn nat64(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32))
}

/// A resolver for the HTTP client that calls partners: a name that resolves only to
/// addresses the gateway must not call fails to resolve, and those addresses are never
/// tried.
#[derive(Clone, Copy, Debug)]
pub struct Guard {
    pub private_allowed: bool,
}

impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let private_allowed = self.private_allowed;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                found.into_iter().filter(|a| !forbidden(a.ip(), private_allowed)).collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves only to addresses the gateway must not call").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
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
        // Partners' endpoints are outside the gateway's own networks.
        for inside in
            ["https://127.0.0.1/x", "https://10.1.2.3/x", "https://[::1]/x", "https://[64:ff9b::a9fe:a9fe]/x"]
        {
            assert!(matches!(problem("url", inside, https), Some(Problem::Unacceptable(_))), "{inside}");
        }
        assert_eq!(
            problem("url", "https://10.1.2.3/x", Schemes::HttpOrHttps),
            None,
            "billers may be on a VPN"
        );
    }

    #[tokio::test]
    async fn a_name_is_held_to_what_it_resolves_to() {
        let guard = Guard { private_allowed: false };
        let refused = guard.resolve("localhost".parse().unwrap()).await.err().expect("loopback is refused");
        assert!(refused.to_string().contains("must not call"), "{refused}");
        let open = Guard { private_allowed: true };
        assert!(open.resolve("localhost".parse().unwrap()).await.is_ok());
    }
}
