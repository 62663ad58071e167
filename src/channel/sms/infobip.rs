//! Infobip SMS API v3: JSON with an `App` key; every account has its own base URL.

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Client, RequestBuilder, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::{Accepted, Account, BadCallback, Delivery, Incoming, Message, Report, SendError};

pub(super) fn request(http: &Client, a: &Account, m: &Message<'_>) -> RequestBuilder {
    let mut message = json!({
        "destinations": [{ "to": m.to.trim_start_matches('+') }],
        "content": { "text": m.text },
    });
    if let Some(sender) = &a.sender {
        message["sender"] = json!(sender);
    }
    if let Some(url) = &a.status_url {
        message["webhooks"] = json!({ "delivery": { "url": url } });
    }
    http.post(format!("{}/sms/3/messages", a.base_url))
        .header(AUTHORIZATION, format!("App {}", a.secret.expose_secret()))
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json")
        .body(json!({ "messages": [message] }).to_string())
}

#[derive(Deserialize)]
struct Answer {
    messages: Vec<Sent>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sent {
    message_id: Option<String>,
    status: Status,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    group_name: String,
    #[serde(default)]
    description: String,
}

pub(super) fn read(status: StatusCode, body: &[u8]) -> Result<Accepted, SendError> {
    if !status.is_success() {
        return Err(SendError::status(status, body));
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|_| SendError::unreadable(body))?;
    let Some(sent) = answer.messages.into_iter().next() else {
        return Err(SendError::unreadable(body));
    };
    match sent.status.group_name.as_str() {
        "REJECTED" | "UNDELIVERABLE" => {
            Err(SendError::permanent(format!("{}: {}", sent.status.group_name, sent.status.description)))
        }
        _ => Ok(Accepted { message_id: sent.message_id }),
    }
}

#[derive(Deserialize)]
struct Reports {
    results: Vec<Delivered>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delivered {
    message_id: String,
    status: Status,
    error: Option<Status>,
}

/// A delivery report: JSON `results[]: messageId, status.groupName, error`.
pub(super) fn reports(body: &[u8]) -> Result<Vec<Report>, BadCallback> {
    let reports: Reports =
        serde_json::from_slice(body).map_err(|e| BadCallback::json("an Infobip delivery report", &e))?;
    Ok(reports
        .results
        .into_iter()
        .filter_map(|r| {
            let delivery = match r.status.group_name.as_str() {
                "PENDING" => Delivery::Sent,
                "DELIVERED" => Delivery::Delivered,
                "UNDELIVERABLE" => Delivery::Failed,
                "EXPIRED" => Delivery::Expired,
                "REJECTED" => Delivery::Rejected,
                // A group this build does not know: left out, the rest of the batch kept.
                _ => return None,
            };
            let error = r.error.filter(|e| e.group_name != "OK").map(|e| e.description);
            Some(Report { message_id: r.message_id, delivery, error })
        })
        .collect())
}

#[derive(Deserialize)]
struct Inbox {
    results: Vec<Received>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Received {
    message_id: String,
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    text: String,
}

/// Incoming messages: JSON `results[]: messageId, from, to, text, cleanText, keyword,
/// receivedAt, smsCount` (Infobip joins long messages itself).
pub(super) fn messages(body: &[u8]) -> Result<Vec<Incoming>, BadCallback> {
    let inbox: Inbox =
        serde_json::from_slice(body).map_err(|e| BadCallback::json("an Infobip incoming message", &e))?;
    Ok(inbox
        .results
        .into_iter()
        .map(|r| Incoming { message_id: r.message_id, from: r.from, to: r.to, text: r.text, part: None })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pending_and_rejected() {
        let pending = br#"{"bulkId":"b1","messages":[{"messageId":"2250be2d4219-3af1-78856-aabe-1362af1edfd2","status":{"groupId":1,"groupName":"PENDING","id":26,"name":"PENDING_ACCEPTED","description":"Message sent to next instance"},"destination":"254711000111"}]}"#;
        assert_eq!(
            read(StatusCode::OK, pending),
            Ok(Accepted { message_id: Some("2250be2d4219-3af1-78856-aabe-1362af1edfd2".into()) })
        );
        let rejected = br#"{"messages":[{"messageId":"x","status":{"groupId":5,"groupName":"REJECTED","id":51,"name":"MISSING_TO","description":"Missing destination"}}]}"#;
        let e = read(StatusCode::OK, rejected).unwrap_err();
        assert!(e.permanent);
        assert_eq!(e.reason, "REJECTED: Missing destination");
    }

    #[test]
    fn reads_a_delivery_report_with_several_results() {
        let body = br#"{"results":[
            {"bulkId":"b1","messageId":"m1","to":"254711000111","sentAt":"2026-11-22T00:40:00.000+0000","doneAt":"2026-11-22T00:40:02.000+0000","smsCount":1,
             "status":{"groupId":3,"groupName":"DELIVERED","id":5,"name":"DELIVERED_TO_HANDSET","description":"Message delivered to handset"},
             "error":{"groupId":0,"groupName":"OK","id":0,"name":"NO_ERROR","description":"No Error","permanent":false}},
            {"messageId":"m2","status":{"groupName":"UNDELIVERABLE","description":"Not delivered"},
             "error":{"groupName":"HANDSET_ERRORS","description":"Absent subscriber"}}]}"#;
        let reports = reports(body).unwrap();
        assert_eq!(
            reports[0],
            Report { message_id: "m1".into(), delivery: Delivery::Delivered, error: None }
        );
        assert_eq!(reports[1].delivery, Delivery::Failed);
        assert_eq!(reports[1].error.as_deref(), Some("Absent subscriber"));
        assert!(super::reports(b"{}").is_err());
    }
}
