//! Twilio Programmable Messaging: a form post under the account, Basic auth with the
//! Account SID and auth token.

use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::{Client, RequestBuilder, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{
    Accepted, Account, BadCallback, Callback, Delivery, Incoming, Message, Report, SendError, Signed, field,
};

pub(super) fn request(http: &Client, a: &Account, m: &Message<'_>) -> RequestBuilder {
    let mut form = vec![("To", m.to), ("Body", m.text)];
    match a.sender.as_deref() {
        // A Messaging Service picks the number itself.
        Some(sid) if sid.starts_with("MG") => form.push(("MessagingServiceSid", sid)),
        Some(from) => form.push(("From", from)),
        None => {}
    }
    if let Some(url) = &a.status_url {
        form.push(("StatusCallback", url));
    }
    http.post(format!("{}/2010-04-01/Accounts/{}/Messages.json", a.base_url, a.account))
        .basic_auth(&a.account, Some(a.secret.expose_secret()))
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

/// A status callback: form `MessageSid, MessageStatus, ErrorCode`. Statuses before
/// `sent` (queued, accepted, sending) are not tracked.
pub(super) fn report(params: &[(String, String)]) -> Result<Option<Report>, BadCallback> {
    let message_id = field(params, "MessageSid")?.to_owned();
    let delivery = match field(params, "MessageStatus")? {
        "queued" | "accepted" | "scheduled" | "sending" => return Ok(None),
        "sent" => Delivery::Sent,
        "delivered" | "read" => Delivery::Delivered,
        "undelivered" | "failed" | "canceled" => Delivery::Failed,
        // A status this build does not know: acknowledged and left out.
        _ => return Ok(None),
    };
    let error = field(params, "ErrorCode").ok().map(|code| format!("Twilio error {code}"));
    Ok(Some(Report { message_id, delivery, error }))
}

/// `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, URL + each form field's name
/// and value, sorted by name)). A JSON body is covered by `bodySHA256` in the URL instead.
pub(super) fn verify(callback: &Callback<'_>, signed: &Signed<'_>) -> Result<(), BadCallback> {
    let given = signed.header.ok_or(BadCallback::Signature)?;
    let mut data = signed.url.to_owned();
    if callback.json {
        let query: Vec<(String, String)> = serde_urlencoded::from_str(callback.query).unwrap_or_default();
        let digest = crate::bytes::to_hex(&Sha256::digest(callback.body));
        if field(&query, "bodySHA256").ok() != Some(digest.as_str()) {
            return Err(BadCallback::Signature);
        }
    } else {
        let mut form: Vec<(String, String)> = serde_urlencoded::from_bytes(callback.body)
            .map_err(|_| BadCallback::Unreadable("the body is not a URL-encoded form".into()))?;
        form.sort();
        for (name, value) in form {
            data.push_str(&name);
            data.push_str(&value);
        }
    }
    let mut mac =
        Hmac::<Sha1>::new_from_slice(signed.secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(data.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if crate::bytes::same_secret(given.trim().as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(BadCallback::Signature)
    }
}

/// An incoming message: form `MessageSid, AccountSid, From, To, Body, NumSegments…`
/// (Twilio joins long messages itself).
pub(super) fn message(params: &[(String, String)]) -> Result<Incoming, BadCallback> {
    Ok(Incoming {
        message_id: field(params, "MessageSid")?.to_owned(),
        from: field(params, "From")?.to_owned(),
        to: field(params, "To").unwrap_or_default().to_owned(),
        text: params.iter().find(|(k, _)| k == "Body").map(|(_, v)| v.clone()).unwrap_or_default(),
        part: None,
    })
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

    fn form(pairs: &[(&str, &str)]) -> String {
        serde_urlencoded::to_string(pairs).unwrap()
    }

    #[test]
    fn the_public_signature_vector_verifies_and_a_changed_field_does_not() {
        let params = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ];
        let body = form(&params);
        let callback = Callback { query: "", body: body.as_bytes(), json: false };
        let signed = |header| Signed {
            secret: "12345",
            url: "https://mycompany.com/myapp.php?foo=1&bar=2",
            header,
            now: 0,
        };
        assert_eq!(verify(&callback, &signed(Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ="))), Ok(()));
        assert_eq!(
            verify(&callback, &signed(Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ"))),
            Err(BadCallback::Signature)
        );
        assert_eq!(verify(&callback, &signed(None)), Err(BadCallback::Signature));
        let tampered = body.replace("1234", "9999");
        let callback = Callback { query: "", body: tampered.as_bytes(), json: false };
        assert_eq!(
            verify(&callback, &signed(Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ="))),
            Err(BadCallback::Signature)
        );
    }

    #[test]
    fn status_callbacks_map_to_forward_only_statuses() {
        let params = |status: &str| {
            vec![("MessageSid".to_owned(), "SM1".to_owned()), ("MessageStatus".to_owned(), status.to_owned())]
        };
        assert_eq!(report(&params("sending")), Ok(None));
        assert_eq!(report(&params("delivered")).unwrap().unwrap().delivery, Delivery::Delivered);
        let mut failed = params("undelivered");
        failed.push(("ErrorCode".into(), "30003".into()));
        let r = report(&failed).unwrap().unwrap();
        assert_eq!((r.delivery, r.error.as_deref()), (Delivery::Failed, Some("Twilio error 30003")));
        assert_eq!(report(&params("lost")), Ok(None));
        assert_eq!(report(&[]), Err(BadCallback::Missing("MessageSid")));
    }
}
