//! Twilio Programmable Messaging: a form post under the account, Basic auth with the
//! Account SID and auth token.

use reqwest::{Client, RequestBuilder, StatusCode};
use serde::Deserialize;

use super::{Accepted, Account, Message, SendError};

pub(super) fn request(http: &Client, a: &Account, m: &Message<'_>) -> RequestBuilder {
    let mut form = vec![("To", m.to), ("Body", m.text)];
    match a.sender.as_deref() {
        // A Messaging Service picks the number itself.
        Some(sid) if sid.starts_with("MG") => form.push(("MessagingServiceSid", sid)),
        Some(from) => form.push(("From", from)),
        None => {}
    }
    http.post(format!("{}/2010-04-01/Accounts/{}/Messages.json", a.base_url, a.account))
        .basic_auth(&a.account, Some(&a.secret))
        .form(&form)
}

#[derive(Deserialize)]
struct Created {
    sid: String,
}

pub(super) fn read(status: StatusCode, body: &[u8]) -> Result<Accepted, SendError> {
    if !status.is_success() {
        // 400 with Twilio's code: 21211 invalid number, 21610 the subscriber replied
        // STOP, 21614 not a mobile number — all about this message.
        return Err(SendError::status(status, body));
    }
    let created: Created = serde_json::from_slice(body).map_err(|_| SendError::unreadable(body))?;
    Ok(Accepted { message_id: Some(created.sid) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_created_message_and_an_error() {
        let body = br#"{"sid":"SM1f0e8ae6ade43cb3c0ce4525424e404f","status":"queued","num_segments":"1"}"#;
        assert_eq!(
            read(StatusCode::CREATED, body),
            Ok(Accepted { message_id: Some("SM1f0e8ae6ade43cb3c0ce4525424e404f".into()) })
        );
        let error =
            br#"{"code":21211,"message":"The 'To' number +2547 is not a valid phone number.","status":400}"#;
        let e = read(StatusCode::BAD_REQUEST, error).unwrap_err();
        assert!(e.permanent);
        assert!(e.reason.contains("21211"), "{}", e.reason);
        assert!(!read(StatusCode::TOO_MANY_REQUESTS, b"{}").unwrap_err().permanent);
    }
}
