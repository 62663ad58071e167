//! IDENTITY_URL and its companions, checked into the provider the worker calls.

use secrecy::{ExposeSecret, SecretString};

use super::ProviderSpec;
use crate::problems::Problems;

/// The secret `--demo`'s sandbox provider signs its callbacks with: public, like the
/// demo's pepper, so never one to use outside it.
pub const DEMO_WEBHOOK_SECRET: &str = "whsec_dXNzZC1nYXRld2F5LWRlbW8taWRlbnRpdHktc2FuZGJveA==";

/// The identity provider's settings as declared.
pub struct IdentityDeclared<'a> {
    pub url: Option<&'a str>,
    pub api_key: Option<&'a SecretString>,
    pub webhook_secret: Option<&'a SecretString>,
    pub callback_url: Option<&'a str>,
}

/// The provider, when IDENTITY_URL is set; `None` leaves customers at the tier they
/// registered in (and `--demo` serves its sandbox instead).
pub fn validate(s: &IdentityDeclared<'_>, problems: &mut Problems) -> Option<ProviderSpec> {
    let url = s.url.map(str::trim).filter(|u| !u.is_empty());
    let Some(url) = url else {
        for (set, name) in [
            (s.api_key.is_some(), "IDENTITY_API_KEY"),
            (s.webhook_secret.is_some(), "IDENTITY_WEBHOOK_SECRET"),
            (s.callback_url.is_some(), "IDENTITY_CALLBACK_URL"),
        ] {
            if set {
                problems.push(format!("{name} is set but IDENTITY_URL is not: set IDENTITY_URL to the identity provider's base URL, or unset {name}"));
            }
        }
        return None;
    };
    let before = problems.len();
    let http_url = |name: &str, value: &str, problems: &mut Problems| match reqwest::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => problems.push(format!(
            "{name} `{value}` must be an http:// or https:// URL, e.g. https://idv.example.com/v1"
        )),
    };
    http_url("IDENTITY_URL", url, problems);
    let callback_url = s.callback_url.map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned);
    if let Some(callback) = &callback_url {
        http_url("IDENTITY_CALLBACK_URL", callback, problems);
    }
    let webhook_secret = match s.webhook_secret {
        Some(secret) if crate::signature::signature(&[secret], "id", 0, b"").is_some() => secret.clone(),
        Some(_) => {
            problems.push("IDENTITY_WEBHOOK_SECRET must be `whsec_` and base64 of the secret the provider signs callbacks with");
            SecretString::default()
        }
        None => {
            problems.push("IDENTITY_WEBHOOK_SECRET is not set: set the `whsec_…` secret the identity provider signs its callbacks with");
            SecretString::default()
        }
    };
    (problems.len() == before).then(|| ProviderSpec {
        base_url: url.to_owned(),
        api_key: s.api_key.filter(|k| !k.expose_secret().is_empty()).cloned(),
        webhook_secret,
        callback_url,
    })
}

/// `--demo`'s sandbox provider, answering on `port` and calling back there.
pub fn demo(port: u16) -> ProviderSpec {
    ProviderSpec {
        base_url: format!("http://127.0.0.1:{port}/sandbox/identity"),
        api_key: None,
        webhook_secret: SecretString::from(DEMO_WEBHOOK_SECRET),
        callback_url: Some(format!("http://127.0.0.1:{port}/identity/callback")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared<'a>(url: Option<&'a str>, secret: Option<&'a SecretString>) -> IdentityDeclared<'a> {
        IdentityDeclared { url, api_key: None, webhook_secret: secret, callback_url: None }
    }

    #[test]
    fn a_provider_needs_a_url_and_a_signing_secret() {
        let mut problems = Problems::new();
        let secret = SecretString::from(DEMO_WEBHOOK_SECRET);
        let spec = validate(&declared(Some("https://idv.example.com/v1"), Some(&secret)), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(spec.map(|s| s.base_url).as_deref(), Some("https://idv.example.com/v1"));

        assert!(validate(&declared(Some("https://idv.example.com"), None), &mut problems).is_none());
        let bad = SecretString::from("plain");
        assert!(validate(&declared(Some("ftp://idv"), Some(&bad)), &mut problems).is_none());
        assert_eq!(problems.len(), 3, "{problems:?}");

        let mut problems = Problems::new();
        assert!(validate(&declared(None, Some(&secret)), &mut problems).is_none());
        assert_eq!(problems.len(), 1, "a secret without a provider is a mistake: {problems:?}");
    }
}
