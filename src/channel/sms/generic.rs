//! The generic JSON format, for any provider without an adapter of its own. The
//! provider POSTs `Content-Type: application/json` to the channel:
//!
//! ```text
//! <path>[/<token>]/inbound   {"message_id": "m-123", "from": "+254700000001", "to": "22384", "text": "BAL"}
//! <path>[/<token>]/status    {"message_id": "our-id", "status": "delivered", "error": null}
//! ```
//!
//! `message_id` is the provider's and must be the same on its retries; `status` is one
//! of `sent`, `delivered`, `failed`, `expired`, `rejected`. The answer is `{"ok":true}`.

use serde::Deserialize;

use super::{BadCallback, Delivery, Incoming, Report};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    message_id: String,
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Status {
    message_id: String,
    status: String,
    #[serde(default)]
    error: Option<String>,
}

fn unreadable(e: serde_json::Error) -> BadCallback {
    BadCallback::json("the generic JSON format (see src/channel/sms/generic.rs)", &e)
}

pub(super) fn message(body: &[u8]) -> Result<Incoming, BadCallback> {
    let m: Message = serde_json::from_slice(body).map_err(unreadable)?;
    if m.message_id.is_empty() {
        return Err(BadCallback::Missing("message_id"));
    }
    Ok(Incoming { message_id: m.message_id, from: m.from, to: m.to, text: m.text, part: None })
}

pub(super) fn report(body: &[u8]) -> Result<Report, BadCallback> {
    let s: Status = serde_json::from_slice(body).map_err(unreadable)?;
    let delivery = match s.status.as_str() {
        "sent" => Delivery::Sent,
        "delivered" => Delivery::Delivered,
        "failed" => Delivery::Failed,
        "expired" => Delivery::Expired,
        "rejected" => Delivery::Rejected,
        other => {
            return Err(BadCallback::Unreadable(format!(
                "`status` `{other}` is not one of sent, delivered, failed, expired, rejected"
            )));
        }
    };
    Ok(Report { message_id: s.message_id, delivery, error: s.error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_messages_and_reports_and_names_what_is_wrong() {
        let m = message(br#"{"message_id":"m1","from":"+254700000001","to":"22384","text":"BAL"}"#).unwrap();
        assert_eq!((m.message_id.as_str(), m.text.as_str()), ("m1", "BAL"));
        let r = report(br#"{"message_id":"x","status":"expired"}"#).unwrap();
        assert_eq!(r.delivery, Delivery::Expired);
        assert!(matches!(report(br#"{"message_id":"x","status":"gone"}"#), Err(BadCallback::Unreadable(_))));
        assert!(matches!(message(br#"{"id":"m1"}"#), Err(BadCallback::Unreadable(_))));
        assert_eq!(message(br#"{"message_id":"","from":"+2547"}"#), Err(BadCallback::Missing("message_id")));
    }
}
