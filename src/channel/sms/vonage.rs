//! Vonage (Nexmo) SMS API: a form post with the key and secret; a long message comes
//! back as one status per part.

use hmac::{Hmac, Mac};
use reqwest::{Client, RequestBuilder, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::Sha256;

use super::{
    Accepted, Account, BadCallback, Callback, Delivery, Incoming, Message, Part, Report, SendError, Signed,
    field,
};

pub(super) fn request(http: &Client, a: &Account, m: &Message<'_>) -> RequestBuilder {
    let kind = if m.unicode() { "unicode" } else { "text" };
    let from = a.sender.as_deref().unwrap_or("Wallet");
    let mut form = vec![
        ("api_key", a.account.as_str()),
        ("api_secret", a.secret.expose_secret()),
        ("from", from),
        ("to", m.to.trim_start_matches('+')),
        ("text", m.text),
        ("type", kind),
    ];
    if let Some(url) = &a.status_url {
        form.push(("callback", url));
    }
    http.post(format!("{}/sms/json", a.base_url)).form(&form)
}

#[derive(Deserialize)]
struct Answer {
    messages: Vec<Answered>,
}

#[derive(Deserialize)]
struct Answered {
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

/// Vonage calls with a query string, a form or a JSON object, as its dashboard is set.
pub(super) fn params(callback: &Callback<'_>) -> Result<Vec<(String, String)>, BadCallback> {
    if !callback.json {
        return callback.params();
    }
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(callback.body)
        .map_err(|_| BadCallback::Unreadable("the body is not a JSON object".into()))?;
    Ok(object
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

/// A delivery receipt: `messageId, msisdn, status, err-code`.
pub(super) fn report(params: &[(String, String)]) -> Result<Option<Report>, BadCallback> {
    let message_id = field(params, "messageId")?.to_owned();
    let delivery = match field(params, "status")? {
        "accepted" | "buffered" => Delivery::Sent,
        "delivered" => Delivery::Delivered,
        "failed" => Delivery::Failed,
        "expired" => Delivery::Expired,
        "rejected" => Delivery::Rejected,
        // `unknown`, or a status this build does not know: acknowledged and left out.
        _ => return Ok(None),
    };
    let error = field(params, "err-code").ok().filter(|c| *c != "0").map(|c| format!("Vonage error {c}"));
    Ok(Some(Report { message_id, delivery, error }))
}

/// The signature Vonage adds when signed webhooks are on: HMAC-SHA256 under the
/// signature secret over `&name=value` for every other field, sorted by name, with `&`
/// and `=` in values replaced by `_`; its `timestamp` must be within five minutes.
pub(super) fn verify(callback: &Callback<'_>, signed: &Signed<'_>) -> Result<(), BadCallback> {
    let mut params = params(callback)?;
    let given = field(&params, "sig").map_err(|_| BadCallback::Signature)?.to_ascii_lowercase();
    let at: u64 = field(&params, "timestamp")
        .map_err(|_| BadCallback::Signature)?
        .parse()
        .map_err(|_| BadCallback::Signature)?;
    params.retain(|(k, _)| k != "sig");
    params.sort();
    let mut mac =
        Hmac::<Sha256>::new_from_slice(signed.secret.as_bytes()).expect("HMAC takes keys of any length");
    for (name, value) in &params {
        mac.update(format!("&{name}={}", value.replace(['&', '='], "_")).as_bytes());
    }
    let expected = crate::bytes::to_hex(&mac.finalize().into_bytes());
    if !crate::bytes::same_secret(given.as_bytes(), expected.as_bytes()) {
        return Err(BadCallback::Signature);
    }
    if signed.now.abs_diff(at) > 300 {
        return Err(BadCallback::Stale);
    }
    Ok(())
}

/// An incoming message: `msisdn, to, messageId, text, type, keyword, message-timestamp`;
/// a long one arrives in pieces carrying `concat-ref, concat-total, concat-part`.
pub(super) fn message(params: &[(String, String)]) -> Result<Incoming, BadCallback> {
    let part = match field(params, "concat") {
        Ok("true") => {
            let number = |name| -> Result<u16, BadCallback> {
                field(params, name)?
                    .parse()
                    .ok()
                    .filter(|n| (1..=255).contains(n))
                    .ok_or_else(|| BadCallback::Unreadable(format!("`{name}` is not a part number")))
            };
            let (number, total) = (number("concat-part")?, number("concat-total")?);
            if number > total {
                return Err(BadCallback::Unreadable("`concat-part` is beyond `concat-total`".into()));
            }
            Some(Part { reference: field(params, "concat-ref")?.to_owned(), number, total })
        }
        _ => None,
    };
    Ok(Incoming {
        message_id: field(params, "messageId")?.to_owned(),
        from: field(params, "msisdn")?.to_owned(),
        to: field(params, "to").unwrap_or_default().to_owned(),
        text: params.iter().find(|(k, _)| k == "text").map(|(_, v)| v.clone()).unwrap_or_default(),
        part,
    })
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

    const SECRET: &str = "vonage-signing-secret";

    fn receipt(sig: &str, timestamp: &str) -> String {
        serde_urlencoded::to_string([
            ("messageId", "0A0000000123ABCD1"),
            ("msisdn", "254711000111"),
            ("status", "delivered"),
            ("err-code", "0"),
            ("timestamp", timestamp),
            ("message-timestamp", "2026-11-22 00:40:00"),
            ("to", "WALLET"),
            ("sig", sig),
        ])
        .unwrap()
    }

    // Computed independently (Python's hmac over the sorted `&name=value` string).
    const SIG: &str = "CC2AD51F15CE54CBB04DB79A352FB629ACF221CEDDC6776DF1B2B853C353171F";

    #[test]
    fn signed_receipts_verify_within_five_minutes_only() {
        let query = receipt(SIG, "1795300000");
        let callback = Callback { query: &query, body: b"", json: false };
        let signed = |now| Signed { secret: SECRET, url: "", header: None, now };
        assert_eq!(verify(&callback, &signed(1_795_300_299)), Ok(()));
        assert_eq!(verify(&callback, &signed(1_795_299_800)), Ok(()));
        assert_eq!(verify(&callback, &signed(1_795_300_301)), Err(BadCallback::Stale), "a replay later on");
        let lower = receipt(&SIG.to_ascii_lowercase(), "1795300000");
        assert_eq!(
            verify(&Callback { query: &lower, body: b"", json: false }, &signed(1_795_300_000)),
            Ok(())
        );
        let moved = receipt(SIG, "1795300001");
        assert_eq!(
            verify(&Callback { query: &moved, body: b"", json: false }, &signed(1_795_300_000)),
            Err(BadCallback::Signature)
        );
        let wrong_key = Signed { secret: "other", ..signed(1_795_300_000) };
        assert_eq!(verify(&callback, &wrong_key), Err(BadCallback::Signature));
        let r = report(&params(&callback).unwrap()).unwrap().unwrap();
        assert_eq!(
            (r.message_id.as_str(), r.delivery, r.error),
            ("0A0000000123ABCD1", Delivery::Delivered, None)
        );
    }
}
