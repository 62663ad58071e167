//! Hubtel (Ghana) SMS: JSON with Basic auth by client id and secret.

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Client, RequestBuilder, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::{Accepted, Account, Message, SendError};

pub(super) fn request(http: &Client, a: &Account, m: &Message<'_>) -> RequestBuilder {
    let body = json!({
        "From": a.sender.as_deref().unwrap_or("Wallet"),
        "To": m.to.trim_start_matches('+'),
        "Content": m.text,
    });
    http.post(format!("{}/v1/messages/send", a.base_url))
        .basic_auth(&a.account, Some(a.secret.expose_secret()))
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json")
        .body(body.to_string())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    message_id: Option<String>,
    status: i64,
}

pub(super) fn read(status: StatusCode, body: &[u8]) -> Result<Accepted, SendError> {
    if !status.is_success() {
        return Err(SendError::status(status, body));
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|_| SendError::unreadable(body))?;
    if answer.status != 0 {
        return Err(SendError::permanent(format!("status {}", answer.status)));
    }
    Ok(Accepted { message_id: answer.message_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_success_and_refusal() {
        let ok = br#"{"rate":0.03,"messageId":"d0a3a1f4-6c0e-4d0c-9a8d-3f4e3b1c2a10","status":0,"networkId":"62001"}"#;
        assert_eq!(
            read(StatusCode::CREATED, ok),
            Ok(Accepted { message_id: Some("d0a3a1f4-6c0e-4d0c-9a8d-3f4e3b1c2a10".into()) })
        );
        assert!(read(StatusCode::OK, br#"{"status":3,"messageId":null}"#).unwrap_err().permanent);
    }
}
