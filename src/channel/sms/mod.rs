//! SMS providers: one module per provider with how to send it a message and how to read
//! its answer, and a client that picks the provider from configuration.
//!
//! Every answer is sorted into accepted (with the provider's message id, for delivery
//! reports), worth retrying, or permanent (retrying cannot help: a bad number, a
//! message the provider refuses). Whether a message was sent when the provider did not
//! answer is unknown; it is retried, so a timeout may deliver a receipt twice, never zero times.

mod africastalking;
mod generic;
mod hubtel;
mod infobip;
mod outbound;
pub mod sink;
mod twilio;
mod vonage;

use std::fmt;

use reqwest::StatusCode;
use secrecy::SecretString;

pub use self::outbound::Outbound;
pub use self::sink::{Sink, SinkMessage};
use crate::gsm::Encoding;
use crate::segments::Segments;

/// The providers we send through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    AfricasTalking,
    Twilio,
    Infobip,
    Vonage,
    Hubtel,
    /// `--demo`: messages are kept in memory and logged, nothing leaves the machine.
    Sink,
    /// A documented JSON format for callbacks from any other provider (`generic.rs`);
    /// nothing is sent through it.
    Generic,
}

impl Provider {
    pub const ALL: [Provider; 7] = [
        Provider::AfricasTalking,
        Provider::Twilio,
        Provider::Infobip,
        Provider::Vonage,
        Provider::Hubtel,
        Provider::Sink,
        Provider::Generic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Provider::AfricasTalking => "africastalking",
            Provider::Twilio => "twilio",
            Provider::Infobip => "infobip",
            Provider::Vonage => "vonage",
            Provider::Hubtel => "hubtel",
            Provider::Sink => "sink",
            Provider::Generic => "generic",
        }
    }

    pub fn from_name(name: &str) -> Option<Provider> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Where the provider's API lives; `None` when every account has its own host.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Provider::AfricasTalking => Some("https://api.africastalking.com"),
            Provider::Twilio => Some("https://api.twilio.com"),
            Provider::Infobip => None,
            Provider::Vonage => Some("https://rest.nexmo.com"),
            Provider::Hubtel => Some("https://smsc.hubtel.com"),
            Provider::Sink => Some(""),
            Provider::Generic => None,
        }
    }

    /// Which credentials the provider needs, as the config file names them: `account`
    /// and `secret` mean different things to each provider.
    pub fn credentials(self) -> (Option<&'static str>, Option<&'static str>) {
        match self {
            Provider::AfricasTalking => (Some("your Africa's Talking username"), Some("its API key")),
            Provider::Twilio => (Some("the Account SID"), Some("its auth token")),
            Provider::Infobip => (None, Some("an API key")),
            Provider::Vonage => (Some("the API key"), Some("the API secret")),
            Provider::Hubtel => (Some("the client id"), Some("the client secret")),
            Provider::Sink | Provider::Generic => (None, None),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How to reach one provider account. `Debug` shows the secret as redacted.
#[derive(Clone, Debug)]
pub struct Account {
    pub provider: Provider,
    /// Without a trailing slash.
    pub base_url: String,
    /// Sender id or number; the account's default when unset.
    pub sender: Option<String>,
    pub account: String,
    pub secret: SecretString,
    /// Where the provider sends each message's delivery reports, for providers that
    /// take it per message (Twilio, Infobip, Vonage).
    pub status_url: Option<String>,
}

/// One text to one number.
#[derive(Debug)]
pub struct Message<'a> {
    /// E.164 with the plus.
    pub to: &'a str,
    pub text: &'a str,
    pub segments: &'a Segments,
    /// The text carries a one-time code: it must not be logged.
    pub secret: bool,
}

impl Message<'_> {
    fn unicode(&self) -> bool {
        self.segments.encoding == Encoding::Ucs2
    }
}

/// The provider took the message.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    /// What its delivery reports will call the message.
    pub message_id: Option<String>,
}

/// The provider did not take the message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct SendError {
    /// Retrying cannot help.
    pub permanent: bool,
    /// What went wrong, for the dead-letter record and the operator. Never logged: a
    /// provider may echo the number.
    pub reason: String,
}

impl SendError {
    fn retry(reason: impl Into<String>) -> Self {
        SendError { permanent: false, reason: reason.into() }
    }

    fn permanent(reason: impl Into<String>) -> Self {
        SendError { permanent: true, reason: reason.into() }
    }

    /// An HTTP status outside 2xx: overload and server trouble pass, and so may refused
    /// credentials once an operator fixes them; any other 4xx is about this message.
    fn status(status: StatusCode, body: &[u8]) -> Self {
        let reason = format!("HTTP {}: {}", status.as_u16(), snippet(body));
        match status.as_u16() {
            401 | 403 => SendError::retry(format!("{reason} (check the [sms] credentials)")),
            408 | 425 | 429 => SendError::retry(reason),
            s if s >= 500 => SendError::retry(reason),
            _ => SendError::permanent(reason),
        }
    }

    fn unreadable(body: &[u8]) -> Self {
        SendError::retry(format!("unreadable answer: {}", snippet(body)))
    }
}

/// The start of a provider's answer, for error records.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// What a delivery report says became of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Handed to the network, not yet on the phone.
    Sent,
    Delivered,
    Failed,
    Expired,
    Rejected,
}

impl Delivery {
    /// The outbox status it moves a message to.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Sent => "sent",
            Delivery::Delivered => "delivered",
            Delivery::Failed => "failed",
            Delivery::Expired => "expired",
            Delivery::Rejected => "rejected",
        }
    }
}

/// One delivery report, normalised.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub message_id: String,
    pub delivery: Delivery,
    /// The provider's reason for a failure.
    pub error: Option<String>,
}

/// A provider's callback as it arrived.
#[derive(Debug)]
pub struct Callback<'a> {
    pub query: &'a str,
    pub body: &'a [u8],
    /// The body is JSON (else a form, or empty).
    pub json: bool,
}

impl Callback<'_> {
    /// The query's and the form body's fields, in order.
    fn params(&self) -> Result<Vec<(String, String)>, BadCallback> {
        let mut params: Vec<(String, String)> = serde_urlencoded::from_str(self.query)
            .map_err(|_| BadCallback::Unreadable("the query string is not URL-encoded".into()))?;
        if !self.json && !self.body.is_empty() {
            let form: Vec<(String, String)> = serde_urlencoded::from_bytes(self.body)
                .map_err(|_| BadCallback::Unreadable("the body is not a URL-encoded form".into()))?;
            params.extend(form);
        }
        Ok(params)
    }
}

/// The field `name` of `params`.
fn field<'p>(params: &'p [(String, String)], name: &'static str) -> Result<&'p str, BadCallback> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .ok_or(BadCallback::Missing(name))
}

/// One message a subscriber sent, normalised.
#[derive(PartialEq, Eq)]
pub struct Incoming {
    /// The provider's id: its retries carry the same one.
    pub message_id: String,
    /// The subscriber's number as the provider wrote it (`+254…`, `254…`).
    pub from: String,
    /// Our short code or number.
    pub to: String,
    pub text: String,
    /// A part of a longer message that arrives in pieces.
    pub part: Option<Part>,
}

/// Where a piece belongs in a long message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// Shared by every piece of one message.
    pub reference: String,
    /// From 1.
    pub number: u16,
    pub total: u16,
}

/// The text may hold a PIN a subscriber sent by mistake: `Debug` shows its length.
impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("message_id", &self.message_id)
            .field("from", &crate::domain::msisdn_mask(&self.from))
            .field("to", &self.to)
            .field("text", &format_args!("<{} characters>", self.text.chars().count()))
            .field("part", &self.part)
            .finish()
    }
}

/// Why a provider's callback was refused: each answered 400 (401 for signatures) with
/// the reason, so the provider's console shows it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadCallback {
    #[error("`{0}` is missing")]
    Missing(&'static str),
    #[error("{0}")]
    Unreadable(String),
    #[error("the signature does not match")]
    Signature,
    #[error("the signed timestamp is more than five minutes away")]
    Stale,
}

/// Refuses a field holding control characters (a NUL cannot even be stored): the
/// provider is told at once, rather than retrying for hours against a 503.
fn printable(field: &str, value: &str) -> Result<(), BadCallback> {
    if value.chars().any(char::is_control) {
        return Err(BadCallback::Unreadable(format!("`{field}` holds a control character")));
    }
    Ok(())
}

impl BadCallback {
    /// A JSON body that is not `what`. serde's own message may quote a value from the
    /// body (a subscriber's text): only missing and unknown field names are repeated.
    fn json(what: &str, e: &serde_json::Error) -> Self {
        let message = e.to_string();
        let detail = if message.starts_with("missing field") || message.starts_with("unknown field") {
            message.split(" at line").next().unwrap_or_default().to_owned()
        } else if e.is_syntax() || e.is_eof() {
            "not JSON".to_owned()
        } else {
            format!("a field has the wrong type at line {} column {}", e.line(), e.column())
        };
        BadCallback::Unreadable(format!("not {what}: {detail}"))
    }
}

/// How a channel checks that a callback came from its provider.
#[derive(Debug)]
pub struct Signed<'a> {
    /// Twilio's auth token, Vonage's signature secret.
    pub secret: &'a str,
    /// The URL the provider called, as it saw it (Twilio signs it).
    pub url: &'a str,
    /// `X-Twilio-Signature`.
    pub header: Option<&'a str>,
    /// Seconds since the Unix epoch (Vonage's timestamp window).
    pub now: u64,
}

impl Provider {
    /// Whether we send through the provider (`[sms]`).
    pub fn sends(self) -> bool {
        self != Provider::Generic
    }

    /// Whether the provider calls us, with messages and delivery reports (`[[sms_channels]]`).
    pub fn calls_back(self) -> bool {
        !matches!(self, Provider::Hubtel | Provider::Sink)
    }

    /// Whether the provider signs its callbacks (so a channel may verify them).
    pub fn signs_callbacks(self) -> bool {
        matches!(self, Provider::Twilio | Provider::Vonage)
    }

    /// Checks a signed callback.
    pub fn verify(self, callback: &Callback<'_>, signed: &Signed<'_>) -> Result<(), BadCallback> {
        match self {
            Provider::Twilio => twilio::verify(callback, signed),
            Provider::Vonage => vonage::verify(callback, signed),
            _ => Ok(()),
        }
    }

    /// The delivery reports in a callback; statuses we do not track (Twilio's
    /// `sending`) are left out.
    pub fn reports(self, callback: &Callback<'_>) -> Result<Vec<Report>, BadCallback> {
        let reports = match self {
            Provider::AfricasTalking => {
                africastalking::report(&callback.params()?).map(|r| r.into_iter().collect())
            }
            Provider::Twilio => twilio::report(&callback.params()?).map(|r| r.into_iter().collect()),
            Provider::Infobip => infobip::reports(callback.body),
            Provider::Vonage => vonage::report(&vonage::params(callback)?).map(|r| r.into_iter().collect()),
            Provider::Generic => generic::report(callback.body).map(|r| vec![r]),
            Provider::Hubtel | Provider::Sink => Ok(Vec::new()),
        }?;
        for r in &reports {
            printable("message id", &r.message_id)?;
            printable("error", r.error.as_deref().unwrap_or_default())?;
        }
        Ok(reports)
    }

    /// The messages in a callback. A part of a longer message (Vonage) comes back as
    /// a part, to be joined with the others.
    pub fn messages(self, callback: &Callback<'_>) -> Result<Vec<Incoming>, BadCallback> {
        let messages = match self {
            Provider::AfricasTalking => africastalking::message(&callback.params()?).map(|m| vec![m]),
            Provider::Twilio => twilio::message(&callback.params()?).map(|m| vec![m]),
            Provider::Infobip => infobip::messages(callback.body),
            Provider::Vonage => vonage::message(&vonage::params(callback)?).map(|m| vec![m]),
            Provider::Generic => generic::message(callback.body).map(|m| vec![m]),
            Provider::Hubtel | Provider::Sink => Ok(Vec::new()),
        }?;
        for m in &messages {
            printable("message id", &m.message_id)?;
            printable("from", &m.from)?;
            if let Some(part) = &m.part {
                printable("concatenation reference", &part.reference)?;
            }
            // A subscriber's text may break lines, never hold a NUL.
            if m.text.contains('\0') {
                return Err(BadCallback::Unreadable("the text holds a NUL character".into()));
            }
        }
        Ok(messages)
    }

    /// What the provider expects in answer to a callback it made.
    pub fn acknowledgement(self) -> (&'static str, &'static str) {
        match self {
            // An empty TwiML document: no reply from Twilio itself (ours go through the outbox).
            Provider::Twilio => {
                ("text/xml", "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>")
            }
            Provider::Generic => ("application/json", "{\"ok\":true}"),
            _ => ("text/plain; charset=utf-8", "OK"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_sort_into_retry_and_permanent() {
        let retry = [401, 403, 408, 429, 500, 502, 503];
        for s in retry {
            assert!(!SendError::status(StatusCode::from_u16(s).unwrap(), b"x").permanent, "{s}");
        }
        for s in [400, 404, 409, 422] {
            assert!(SendError::status(StatusCode::from_u16(s).unwrap(), b"x").permanent, "{s}");
        }
        let e = SendError::status(StatusCode::UNAUTHORIZED, b"{\"error\":\"bad key\"}");
        assert_eq!(e.reason, "HTTP 401: {\"error\":\"bad key\"} (check the [sms] credentials)");
    }

    #[test]
    fn snippets_stop_at_200_characters_on_a_character_boundary() {
        let long = "é".repeat(300);
        let s = snippet(long.as_bytes());
        assert_eq!(s.chars().count(), 201);
        assert!(s.ends_with('…'));
        assert_eq!(snippet(b"  short \n"), "short");
    }

    #[test]
    fn provider_names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(Provider::from_name(p.name()), Some(p));
        }
        assert_eq!(Provider::from_name("nexmo"), None);
    }
}
