//! The biller protocol: JSON over HTTP, three calls. Billers' own APIs differ; an adapter
//! (or the biller) speaks this one, and the sandbox biller in `--demo` does.
//!
//! - `POST {base}/validate` `{"account"}` → 200 `{"name"}`; 404 or 422: no such account.
//! - `POST {base}/pay` `{"reference", "account", "amount", "currency"}` (amount in minor
//!   units; `reference` is our transfer reference and the biller's idempotency key) →
//!   200 `{"status": "paid", "receipt", "token"?}`, 202 or `{"status": "pending"}`, or
//!   4xx `{"status": "rejected", "reason"}`.
//! - `GET {base}/payments/{reference}` → 200 with a status as above; 404: never received.
//!
//! Anything else — a timeout, a 5xx, a body we cannot read — is `Unknown`: the payment
//! may or may not have happened, so the money stays held until the biller says.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::domain::DisplayText;

/// What a biller said about an account number.
#[derive(Debug, PartialEq, Eq)]
pub enum Validation {
    Valid {
        holder: String,
    },
    NoSuchAccount,
    /// No usable answer: try again later.
    Unavailable(String),
}

/// What a biller said about a payment.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Paid {
        receipt: String,
        token: Option<String>,
    },
    Rejected {
        reason: String,
    },
    Pending,
    /// The biller never received it (status call only): safe to send it again.
    NotFound,
    /// No usable answer: the payment may or may not have happened.
    Unknown(String),
}

#[derive(Deserialize)]
struct Status {
    status: String,
    receipt: Option<String>,
    token: Option<String>,
    reason: Option<String>,
}

/// Calls billers over HTTP.
#[derive(Clone, Debug)]
pub struct BillerClient {
    http: Client,
}

impl Default for BillerClient {
    fn default() -> Self {
        Self::new()
    }
}

impl BillerClient {
    pub fn new() -> Self {
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("the TLS backend initialises");
        BillerClient { http }
    }

    fn post(&self, url: String, timeout: Duration, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .post(url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
    }

    pub async fn validate(&self, base: &str, timeout: Duration, account: &str) -> Validation {
        let sent = self.post(format!("{base}/validate"), timeout, &json!({ "account": account }));
        let response = match sent.send().await {
            Ok(r) => r,
            Err(e) => return Validation::Unavailable(describe(&e)),
        };
        match response.status() {
            StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY => Validation::NoSuchAccount,
            s if s.is_success() => {
                #[derive(Deserialize)]
                struct Holder {
                    name: String,
                }
                match body::<Holder>(response).await {
                    Some(Holder { name }) => match DisplayText::clean(&name, 40).into_string() {
                        holder if holder.is_empty() => {
                            Validation::Unavailable("the answer has no account holder's name".into())
                        }
                        holder => Validation::Valid { holder },
                    },
                    None => Validation::Unavailable("the answer has no account holder's name".into()),
                }
            }
            s => Validation::Unavailable(format!("HTTP {s}")),
        }
    }

    pub async fn pay(&self, base: &str, timeout: Duration, payment: &Payment<'_>) -> Answer {
        let body = json!({
            "reference": payment.reference, "account": payment.account,
            "amount": payment.amount, "currency": payment.currency,
        });
        let sent = self.post(format!("{base}/pay"), timeout, &body).send().await;
        match sent {
            Ok(r) => read(r, false).await,
            Err(e) => Answer::Unknown(describe(&e)),
        }
    }

    pub async fn status(&self, base: &str, timeout: Duration, reference: &str) -> Answer {
        let sent = self.http.get(format!("{base}/payments/{reference}")).timeout(timeout).send().await;
        match sent {
            Ok(r) => read(r, true).await,
            Err(e) => Answer::Unknown(describe(&e)),
        }
    }
}

/// One payment as the biller sees it.
#[derive(Debug)]
pub struct Payment<'a> {
    pub reference: &'a str,
    pub account: &'a str,
    pub amount: i64,
    pub currency: &'a str,
}

async fn read(response: reqwest::Response, is_status_call: bool) -> Answer {
    let code = response.status();
    if is_status_call && code == StatusCode::NOT_FOUND {
        return Answer::NotFound;
    }
    if code == StatusCode::ACCEPTED {
        return Answer::Pending;
    }
    if code.is_server_error() || !(code.is_success() || code.is_client_error()) {
        return Answer::Unknown(format!("HTTP {code}"));
    }
    let Some(status) = body::<Status>(response).await else {
        return Answer::Unknown(format!("HTTP {code} with an unreadable body"));
    };
    // What a biller says reaches screens and SMS: one visible line, cut to what they
    // can carry.
    let cut = |text: String, most: usize| DisplayText::clean(&text, most).into_string();
    match (status.status.as_str(), code.is_success()) {
        ("paid", true) => Answer::Paid {
            receipt: cut(status.receipt.unwrap_or_default(), 24),
            token: status.token.map(|t| cut(t, 40)).filter(|t| !t.is_empty()),
        },
        ("pending", true) => Answer::Pending,
        ("rejected", _) => {
            Answer::Rejected { reason: cut(status.reason.unwrap_or_else(|| "refused".into()), 60) }
        }
        (other, _) => Answer::Unknown(format!("HTTP {code} with status `{other}`")),
    }
}

/// The JSON answer, or `None` when it is not the JSON we expect.
async fn body<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Option<T> {
    serde_json::from_slice(&response.bytes().await.ok()?).ok()
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        e.to_string()
    }
}
