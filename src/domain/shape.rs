//! The shapes of admin requests, as patterns the OpenAPI document states and the
//! checks use alike (the document's schemas are made here from the same patterns), and
//! whole numbers read as JSON Schema reads them.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Deserializer};
use utoipa::openapi::schema::{Object, ObjectBuilder, OneOfBuilder, Schema, Type};

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

impl Shape {
    /// The string schema the document states for a field of this shape.
    pub fn schema(&self) -> Object {
        ObjectBuilder::new().schema_type(Type::String).pattern(Some(self.pattern)).build()
    }
}

/// Declares a shape, and its schema as a function (what `#[schema(schema_with = …)]`
/// takes) on [`Schemas`].
macro_rules! shape {
    ($name:ident, $doc:ident, $pattern:literal) => {
        pub static $name: Shape = Shape {
            pattern: $pattern,
            regex: LazyLock::new(|| Regex::new($pattern).expect("a valid pattern")),
        };
        impl Schemas {
            pub fn $doc() -> Object {
                $name.schema()
            }
        }
    };
}

// A phone number as written: international with `+`, or national. Whether a numbering
// plan has it is the parser's to say (404 or 422), not the pattern's.
shape!(MSISDN, msisdn, r"^\+?[0-9]{6,15}$");
shape!(AGENT_NUMBER, agent_number, r"^[0-9]{5,7}$");
shape!(STORE_NUMBER, store_number, r"^[0-9]{3,7}$");
shape!(BILLER_CODE, biller_code, r"^[A-Z][A-Z0-9]{1,11}$");
// A till or business number; a merchant's fee class; a language code.
shape!(MERCHANT_NUMBER, merchant_number, r"^[0-9]{5,7}$");
shape!(FEE_CLASS, fee_class, r"^[a-z][a-z0-9_]{0,29}$");
shape!(LANGUAGE, language, r"^[a-z]{2,3}$");
shape!(MERCHANT_ID, merchant_id, r"^MC[0-9A-F]{8,16}$");
// As on a receipt (`TX` and hex digits) or the transfer's id.
shape!(REFERENCE, reference, r"^(?:[Tt][Xx][0-9A-Fa-f]{1,16}|[0-9]{1,19})$");
// Printable ASCII after the scheme, starting with a host (a name, an IPv4 address or
// an IPv6 literal); whether it parses as one is the URL parser's to say (422).
shape!(BILLER_URL, biller_url, r"^https?://[A-Za-z0-9\[][!-~]*$");
// An event type, exact or with `*` (`transfer.posted`, `transfer.*`, `*.rejected`).
shape!(EVENT_TYPE, event_type, r"^[a-z_*]{1,20}(?:\.[a-z_*]{1,20})?$");
shape!(WEBHOOK_ID, webhook_id, r"^wh_[0-9a-f]{16}$");
// A feature flag's name (as menus declare it); a channel's `name` (`@simulator` for the
// admin's web phone).
shape!(FLAG_NAME, flag_name, r"^[a-z][a-z0-9_]{0,39}$");
shape!(CHANNEL_NAME, channel_name, r"^@?[A-Za-z0-9_-]{1,40}$");
// A four-eyes proposal; an approver's one-time password.
shape!(PROPOSAL_ID, proposal_id, r"^pr_[0-9a-f]{16}$");
// An identity check.
shape!(CHECK_ID, check_id, r"^idc_[0-9a-f]{16}$");
shape!(TOTP, totp, r"^[0-9]{6}$");
shape!(DELIVERY_ID, delivery_id, r"^[1-9][0-9]{0,17}$");
// Postgres stores no NUL; every free text field says so.
shape!(NO_NUL, no_nul, r"^[^\u0000]*$");
shape!(IDEMPOTENCY_KEY, idempotency_key, r"^[!-~]{8,100}$");
// The simulator's hops: the page's session id, the code dialled, what was typed (no
// control character, at most a screen's worth).
shape!(SESSION_ID, session_id, r"^[!-~]{1,128}$");
shape!(SERVICE_CODE, service_code, r"^[*#0-9]{0,64}$");
shape!(TYPED, typed, r"^[^\u0000-\u001f\u007f-\u009f]{0,182}$");
// A partner's credentials.
shape!(HEADER_NAME, header_name, r"^[A-Za-z][A-Za-z0-9-]{0,63}$");
shape!(API_KEY, api_key, r"^[!-~][ -~]{6,510}[!-~]$");
shape!(KEY_ID, key_id, r"^[A-Za-z0-9._-]{1,64}$");
shape!(SIGNING_SECRET, signing_secret, r"^[!-~]{16,256}$");
shape!(
    PEM,
    pem_text,
    r"^(?:-----BEGIN [A-Z0-9 ]{1,40}-----[A-Za-z0-9+/=\r\n]+-----END [A-Z0-9 ]{1,40}-----[\r\n]*)+$"
);

/// The schemas of the document's fields, one function each, as
/// `#[schema(schema_with = Schemas::msisdn)]` takes them.
pub struct Schemas;

impl Schemas {
    /// A name subscribers read on screens and in receipts (checked by
    /// [`DisplayText::parse`](super::DisplayText::parse) with the same limit).
    fn name(max: usize) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(max))
            .pattern(Some(super::DISPLAY_TEXT_PATTERN))
            .description(Some("one line of visible characters; white space at the ends is trimmed"))
            .build()
    }

    pub fn name20() -> Object {
        Self::name(20)
    }

    pub fn name30() -> Object {
        Self::name(30)
    }

    pub fn name40() -> Object {
        Self::name(40)
    }

    /// Why an operator did something: 3 to 200 characters.
    pub fn reason() -> Object {
        ObjectBuilder::from(NO_NUL.schema()).min_length(Some(3)).max_length(Some(200)).build()
    }

    pub fn pem() -> Object {
        ObjectBuilder::from(PEM.schema()).max_length(Some(8_000)).build()
    }

    pub fn base_url() -> Object {
        ObjectBuilder::from(BILLER_URL.schema())
            .max_length(Some(500))
            .description(Some("where the biller answers; a host that cannot be parsed, credentials in the URL, or a link-local, metadata, unspecified or multicast address: 422"))
            .build()
    }

    pub fn fee_payer() -> Object {
        Self::one_of(&["customer", "biller"])
    }

    pub fn name100() -> Object {
        Self::name(100)
    }

    pub fn merchant_kind() -> Object {
        Self::one_of(&["till", "paybill"])
    }

    pub fn validation_default() -> Object {
        Self::one_of(&["accept", "reject"])
    }

    pub fn validation_timeout_ms() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(100))
            .maximum(Some(5_000))
            .default(Some(2_000.into()))
            .build()
    }

    pub fn merchant_fee_payer() -> Object {
        Self::one_of(&["customer", "merchant", "split"])
    }

    pub fn biller_status() -> Object {
        Self::one_of(&["active", "suspended"])
    }

    pub fn webhook_url() -> Object {
        ObjectBuilder::from(BILLER_URL.schema())
            .max_length(Some(500))
            .description(Some("where deliveries are POSTed: https:// (http:// only with `serve --demo`); credentials in the URL, or a link-local, metadata, unspecified or multicast address: 422"))
            .build()
    }

    pub fn event_types() -> utoipa::openapi::schema::Array {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(EVENT_TYPE.schema())
            .min_items(Some(1))
            .max_items(Some(20))
            .description(Some("event types, exact or with `*`; one that names no family of events: 422"))
            .build()
    }

    pub fn biller_category() -> Object {
        ObjectBuilder::from(Self::one_of(&["bill", "airtime"]))
            .default(Some("bill".into()))
            .description(Some(
                "`airtime`: the airtime provider (its protocol, `fee_payer` `biller`, at most one active)",
            ))
            .build()
    }

    pub fn offer_amounts() -> utoipa::openapi::schema::Array {
        let amount =
            ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(MAX_OFFER));
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(amount)
            .max_items(Some(8))
            .description(Some("amounts a menu offers to pick (airtime bundles), in minor units"))
            .build()
    }

    pub fn webhook_status() -> Object {
        Self::one_of(&["active", "disabled"])
    }

    pub fn grace_secs() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(604_800))
            .default(Some(86_400.into()))
            .build()
    }

    /// `true` or `false`, never `null`.
    pub fn boolean() -> Object {
        ObjectBuilder::new().schema_type(Type::Boolean).build()
    }

    pub fn flag_about() -> Object {
        ObjectBuilder::from(NO_NUL.schema())
            .max_length(Some(200))
            .description(Some("what the flag switches, for operators"))
            .build()
    }

    /// A whole percent, or `null` for everyone.
    pub fn rollout() -> Schema {
        let percent = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(100))
            .description(Some("percent of subscribers it is on for, decided by a stable hash of the flag's name and their number"));
        Schema::OneOf(
            OneOfBuilder::new().item(percent).item(ObjectBuilder::new().schema_type(Type::Null)).build(),
        )
    }

    pub fn flag_numbers() -> utoipa::openapi::schema::Array {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(MSISDN.schema())
            .max_items(Some(1_000))
            .description(Some(
                "numbers, international or in the gateway's region; one no numbering plan has: 422",
            ))
            .build()
    }

    pub fn flag_channels() -> utoipa::openapi::schema::Array {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(CHANNEL_NAME.schema())
            .max_items(Some(1_000))
            .description(Some(
                "channels by their `name` in the settings (`@simulator` for the admin's web phone)",
            ))
            .build()
    }

    fn one_of(words: &[&str]) -> Object {
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some(words.iter().copied())).build()
    }

    /// A hop's number in its session, as a `u32` holds it.
    pub fn sequence() -> Object {
        ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(u32::MAX)).build()
    }

    pub fn timeout_ms() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(100))
            .maximum(Some(30_000))
            .default(Some(3_000.into()))
            .build()
    }

    /// A PEM, or `null` to leave it out.
    pub fn pem_or_null() -> Schema {
        Schema::OneOf(
            OneOfBuilder::new().item(Self::pem()).item(ObjectBuilder::new().schema_type(Type::Null)).build(),
        )
    }

    pub fn account_pattern() -> Object {
        // No `format: regex`: that names ECMA-262's dialect, and the pattern is read in
        // Rust's (`\d**` is one, not the other), so a client checking the format would
        // refuse patterns the gateway takes.
        ObjectBuilder::from(NO_NUL.schema())
            .max_length(Some(200))
            .description(Some(
                "a regular expression, in the syntax of Rust's `regex` crate, the whole account number must \
                 match (one that does not compile: 422)",
            ))
            .build()
    }
}

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

/// The largest amount a biller may offer, in minor units.
pub const MAX_OFFER: i64 = 100_000_000;

/// A list of whole numbers, each as [`whole`] takes it.
pub fn wholes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole")] i64);
    Ok(Vec::<Whole>::deserialize(d)?.into_iter().map(|Whole(n)| n).collect())
}

/// [`wholes`], for a field that may be left out.
pub fn wholes_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<i64>>, D::Error> {
    wholes(d).map(Some)
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

    #[test]
    fn an_account_pattern_is_not_said_to_be_ecma_262() {
        let schema = serde_json::to_value(Schemas::account_pattern()).unwrap();
        assert_eq!(schema.get("format"), None, "{schema}");
        assert!(regex::Regex::new(r"\d**").is_ok(), "Rust's syntax takes what ECMA-262 refuses");
    }
}
