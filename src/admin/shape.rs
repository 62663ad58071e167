//! The shapes of admin requests, as patterns the OpenAPI document states and the
//! checks use alike, and whole numbers read as JSON Schema reads them.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Deserializer};

/// A pattern stated in the document and checked by the handlers.
pub struct Shape {
    pub pattern: &'static str,
    regex: LazyLock<Regex>,
}

impl Shape {
    pub fn fits(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

macro_rules! shape {
    ($name:ident, $pattern:literal) => {
        pub static $name: Shape = Shape {
            pattern: $pattern,
            regex: LazyLock::new(|| Regex::new($pattern).expect("a valid pattern")),
        };
    };
}

// A phone number as written: international with `+`, or national. Whether a numbering
// plan has it is the parser's to say (404 or 422), not the pattern's.
shape!(MSISDN, r"^\+?[0-9]{6,15}$");
shape!(AGENT_NUMBER, r"^[0-9]{5,7}$");
shape!(STORE_NUMBER, r"^[0-9]{3,7}$");
shape!(BILLER_CODE, r"^[A-Z][A-Z0-9]{1,11}$");
// As on a receipt (`TX` and hex digits) or the transfer's id.
shape!(REFERENCE, r"^(?:[Tt][Xx][0-9A-Fa-f]{1,16}|[0-9]{1,19})$");
// Printable ASCII after the scheme, starting with a host (a name, an IPv4 address or
// an IPv6 literal); whether it parses as one is the URL parser's to say (422).
shape!(BILLER_URL, r"^https?://[A-Za-z0-9\[][!-~]*$");
// Postgres stores no NUL; every free text field says so.
shape!(NO_NUL, r"^[^\u0000]*$");
shape!(IDEMPOTENCY_KEY, r"^[!-~]{8,100}$");
// A partner's credentials.
shape!(HEADER_NAME, r"^[A-Za-z][A-Za-z0-9-]{0,63}$");
shape!(API_KEY, r"^[!-~][ -~]{6,510}[!-~]$");
shape!(KEY_ID, r"^[A-Za-z0-9._-]{1,64}$");
shape!(SIGNING_SECRET, r"^[!-~]{16,256}$");
shape!(PEM, r"^(?:-----BEGIN [A-Z0-9 ]{1,40}-----[A-Za-z0-9+/=\r\n]+-----END [A-Z0-9 ]{1,40}-----[\r\n]*)+$");

/// A whole number however JSON writes it (`5000`, `5000.0`, `5e3`): JSON Schema's
/// `integer` takes all three, so the API does.
pub fn whole<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<T, D::Error> {
    use serde::de::Error;
    let number = serde_json::Number::deserialize(d)?;
    let whole = number
        .as_i64()
        .or_else(|| number.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64));
    whole
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| D::Error::custom(format!("`{number}` is not a whole number in range")))
}

/// A field that may be left out, but is never `null` (the document gives it a type
/// without `null`); with `#[serde(default)]`.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// [`whole`], for a field that may be left out (never `null`).
pub fn whole_opt<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<Option<T>, D::Error> {
    whole(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_however_json_writes_them() {
        #[derive(Deserialize)]
        struct Amount {
            #[serde(deserialize_with = "whole")]
            amount: i32,
        }
        for text in [r#"{"amount": 5000}"#, r#"{"amount": 5000.0}"#, r#"{"amount": 5e3}"#] {
            assert_eq!(serde_json::from_str::<Amount>(text).unwrap().amount, 5000, "{text}");
        }
        for text in
            [r#"{"amount": 50.5}"#, r#"{"amount": 1e40}"#, r#"{"amount": 3000000000}"#, r#"{"amount": "5"}"#]
        {
            assert!(serde_json::from_str::<Amount>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn shapes_are_whole_matches() {
        assert!(MSISDN.fits("+254712345678") && MSISDN.fits("0712345678"));
        assert!(!MSISDN.fits("0712 345678") && !MSISDN.fits("x0712345678"));
        assert!(REFERENCE.fits("TX2a") && REFERENCE.fits("42") && !REFERENCE.fits("TX"));
        assert!(BILLER_URL.fits("https://biller.example/api") && !BILLER_URL.fits("http://"));
        assert!(!NO_NUL.fits("a\0b"));
    }
}
