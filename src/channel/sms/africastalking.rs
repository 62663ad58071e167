//! Africa's Talking: a form post with the API key in a header; the answer lists one
//! status per recipient.

use reqwest::header::ACCEPT;
use reqwest::{Client, RequestBuilder, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{Accepted, Account, BadCallback, Delivery, Incoming, Message, Report, SendError, field};

pub(super) fn request(http: &Client, a: &Account, m: &Message<'_>) -> RequestBuilder {
    let mut form = vec![("username", a.account.as_str()), ("to", m.to), ("message", m.text)];
    if let Some(from) = &a.sender {
        form.push(("from", from));
    }
    http.post(format!("{}/version1/messaging", a.base_url))
        .header("apiKey", a.secret.expose_secret())
        .header(ACCEPT, "application/json")
        .form(&form)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    #[serde(rename = "SMSMessageData")]
    data: Data,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Data {
    message: String,
    recipients: Vec<Recipient>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    status_code: u16,
    status: String,
    message_id: Option<String>,
}

pub(super) fn read(status: StatusCode, body: &[u8]) -> Result<Accepted, SendError> {
    if !status.is_success() {
        return Err(SendError::status(status, body));
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|_| SendError::unreadable(body))?;
    let Some(r) = answer.data.recipients.into_iter().next() else {
        // "Sent to 0/1": the number was refused before it got a status of its own.
        return Err(SendError::permanent(format!("no recipient accepted: {}", answer.data.message)));
    };
    let reason = || format!("{} ({})", r.status, r.status_code);
    match r.status_code {
        // Processed, Sent, Queued.
        100..=102 => Ok(Accepted { message_id: r.message_id.filter(|id| !id.is_empty() && id != "None") }),
        // InvalidPhoneNumber, UnsupportedNumberType, UserInBlacklist, DoNotDisturbRejection.
        403 | 404 | 406 | 409 => Err(SendError::permanent(reason())),
        // RiskHold, InvalidSenderId, InsufficientBalance, CouldNotRoute, server errors:
        // the account or the route, which an operator can fix.
        _ => Err(SendError::retry(reason())),
    }
}

/// A delivery report: form `id, status, phoneNumber, networkCode, failureReason, retryCount`.
pub(super) fn report(params: &[(String, String)]) -> Result<Option<Report>, BadCallback> {
    let message_id = field(params, "id")?.to_owned();
    let delivery = match field(params, "status")? {
        "Sent" | "Submitted" | "Buffered" => Delivery::Sent,
        "Success" => Delivery::Delivered,
        "Failed" | "AbsentSubscriber" => Delivery::Failed,
        "Rejected" => Delivery::Rejected,
        "Expired" => Delivery::Expired,
        // A status this build does not know: acknowledged and left out, or the
        // provider would retry it for hours.
        _ => return Ok(None),
    };
    let error = field(params, "failureReason").ok().map(str::to_owned);
    Ok(Some(Report { message_id, delivery, error }))
}

/// An incoming message: form `from, to, text, date, id, linkId, networkCode`.
pub(super) fn message(params: &[(String, String)]) -> Result<Incoming, BadCallback> {
    Ok(Incoming {
        message_id: field(params, "id")?.to_owned(),
        from: field(params, "from")?.to_owned(),
        to: field(params, "to").unwrap_or_default().to_owned(),
        text: params.iter().find(|(k, _)| k == "text").map(|(_, v)| v.clone()).unwrap_or_default(),
        part: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_answer() {
        let body = br#"{"SMSMessageData":{"Message":"Sent to 1/1 Total Cost: KES 0.8000","Recipients":[{"statusCode":101,"number":"+254711000111","status":"Success","cost":"KES 0.8000","messageId":"ATXid_dda0"}]}}"#;
        assert_eq!(read(StatusCode::CREATED, body), Ok(Accepted { message_id: Some("ATXid_dda0".into()) }));
    }

    #[test]
    fn a_bad_number_is_permanent_and_a_broke_account_is_not() {
        let answer = |code: u16, status: &str| {
            format!(
                r#"{{"SMSMessageData":{{"Message":"Sent to 0/1","Recipients":[{{"statusCode":{code},"number":"+254","status":"{status}","cost":"0","messageId":"None"}}]}}}}"#
            )
        };
        let bad = read(StatusCode::CREATED, answer(403, "InvalidPhoneNumber").as_bytes()).unwrap_err();
        assert!(bad.permanent);
        assert_eq!(bad.reason, "InvalidPhoneNumber (403)");
        assert!(
            !read(StatusCode::CREATED, answer(405, "InsufficientBalance").as_bytes()).unwrap_err().permanent
        );
        let none =
            read(StatusCode::CREATED, br#"{"SMSMessageData":{"Message":"InvalidSenderId","Recipients":[]}}"#);
        assert!(none.unwrap_err().permanent);
        assert!(!read(StatusCode::CREATED, b"<html>").unwrap_err().permanent);
    }

    #[test]
    fn reads_the_documented_delivery_report() {
        let form: Vec<(String, String)> = serde_urlencoded::from_str(
            "id=ATXid_dda0&status=Success&phoneNumber=%2B254711000111&networkCode=63902&retryCount=0",
        )
        .unwrap();
        assert_eq!(
            report(&form),
            Ok(Some(Report { message_id: "ATXid_dda0".into(), delivery: Delivery::Delivered, error: None }))
        );
        let failed: Vec<(String, String)> =
            serde_urlencoded::from_str("id=ATXid_1&status=Failed&failureReason=UserInBlacklist").unwrap();
        assert_eq!(report(&failed).unwrap().unwrap().error.as_deref(), Some("UserInBlacklist"));
        let odd: Vec<(String, String)> = serde_urlencoded::from_str("id=ATXid_1&status=Lost").unwrap();
        assert_eq!(report(&odd), Ok(None));
        let absent: Vec<(String, String)> =
            serde_urlencoded::from_str("id=ATXid_1&status=AbsentSubscriber").unwrap();
        assert_eq!(report(&absent).unwrap().unwrap().delivery, Delivery::Failed);
    }
}
