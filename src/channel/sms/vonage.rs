//! Vonage (Nexmo) SMS API: a form post with the key and secret; a long message comes
//! back as one status per part.

use reqwest::{Client, RequestBuilder, StatusCode};
use serde::Deserialize;

use super::{Accepted, Account, Message, SendError};

pub(super) fn request(http: &Client, a: &Account, m: &Message<'_>) -> RequestBuilder {
    let kind = if m.unicode() { "unicode" } else { "text" };
    let from = a.sender.as_deref().unwrap_or("Wallet");
    http.post(format!("{}/sms/json", a.base_url)).form(&[
        ("api_key", a.account.as_str()),
        ("api_secret", a.secret.as_str()),
        ("from", from),
        ("to", m.to.trim_start_matches('+')),
        ("text", m.text),
        ("type", kind),
    ])
}

#[derive(Deserialize)]
struct Answer {
    messages: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    status: String,
    #[serde(rename = "message-id")]
    message_id: Option<String>,
    #[serde(rename = "error-text", default)]
    error_text: String,
}

pub(super) fn read(status: StatusCode, body: &[u8]) -> Result<Accepted, SendError> {
    if !status.is_success() {
        return Err(SendError::status(status, body));
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|_| SendError::unreadable(body))?;
    if let Some(part) = answer.messages.iter().find(|p| p.status != "0") {
        let reason = format!("status {}: {}", part.status, part.error_text);
        // Throttled, missing or barred account, internal error, quota, bad sender:
        // the account or the moment. The rest (invalid number, barred number,
        // invalid message) is this message.
        return Err(match part.status.as_str() {
            "1" | "4" | "5" | "8" | "9" | "15" => SendError::retry(reason),
            _ => SendError::permanent(reason),
        });
    }
    match answer.messages.into_iter().next() {
        Some(first) => Ok(Accepted { message_id: first.message_id }),
        None => Err(SendError::unreadable(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_must_be_accepted() {
        let ok = br#"{"message-count":"2","messages":[{"to":"254711000111","message-id":"0A0000000123ABCD1","status":"0","remaining-balance":"3.14","message-price":"0.03","network":"63902"},{"to":"254711000111","message-id":"0A0000000123ABCD2","status":"0"}]}"#;
        assert_eq!(read(StatusCode::OK, ok), Ok(Accepted { message_id: Some("0A0000000123ABCD1".into()) }));
        let throttled = br#"{"message-count":"1","messages":[{"status":"1","error-text":"Throttled"}]}"#;
        assert!(!read(StatusCode::OK, throttled).unwrap_err().permanent);
        let barred = br#"{"message-count":"1","messages":[{"status":"7","error-text":"Number barred"}]}"#;
        let e = read(StatusCode::OK, barred).unwrap_err();
        assert!(e.permanent);
        assert_eq!(e.reason, "status 7: Number barred");
    }
}
