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
//! An airtime provider speaks the same protocol under other names, with the number to
//! top up (E.164) for the account and no validation:
//!
//! - `POST {base}/topups` `{"reference", "msisdn", "amount", "currency"}` → as `pay`
//!   (`"rejected"` with a reason for a number that does not exist or cannot be topped
//!   up); `GET {base}/topups/{reference}` → as the payment's status.
//!
//! Anything else — a timeout, a 5xx, a body we cannot read — is `Unknown`: the payment
//! may or may not have happened, so the money stays held until the biller says.
//!
//! A biller with credentials gets them on every call: its API key header; a signature
//! — `X-Gateway-Key-Id`, `X-Gateway-Timestamp` (Unix seconds) and `X-Gateway-Signature:
//! v1=` the hex HMAC-SHA256 under the shared secret of `timestamp \n METHOD \n path
//! \n hex SHA-256 of the body` (the path with its query, as sent), so the biller can
//! refuse a forged, altered or replayed call; and its client certificate, when its
//! server asks for one (mutual TLS), trusting its own authority if it has one.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Client, Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::credentials::Credentials;
use crate::bytes::to_hex;
use crate::domain::DisplayText;

/// Which of the two protocols a partner speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Bill,
    Airtime,
}

impl Protocol {
    /// The protocol of a biller of `category` (`bill` or `airtime`).
    pub fn of(category: &str) -> Self {
        if category == "airtime" { Protocol::Airtime } else { Protocol::Bill }
    }

    fn pay_path(self) -> &'static str {
        match self {
            Protocol::Bill => "/pay",
            Protocol::Airtime => "/topups",
        }
    }

    fn status_path(self) -> &'static str {
        match self {
            Protocol::Bill => "/payments",
            Protocol::Airtime => "/topups",
        }
    }

    fn account_field(self) -> &'static str {
        match self {
            Protocol::Bill => "account",
            Protocol::Airtime => "msisdn",
        }
    }
}

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

/// Calls one biller (or every biller without credentials) over HTTP.
#[derive(Clone)]
pub struct BillerClient {
    http: Client,
    api_key: Option<(HeaderName, HeaderValue)>,
    signing: Option<(HeaderValue, Hmac<Sha256>)>,
}

impl Default for BillerClient {
    fn default() -> Self {
        Self::new()
    }
}

fn builder() -> reqwest::ClientBuilder {
    Client::builder().connect_timeout(Duration::from_secs(2)).pool_idle_timeout(Duration::from_secs(30))
}

impl BillerClient {
    pub fn new() -> Self {
        let http = builder().build().expect("the TLS backend initialises");
        BillerClient { http, api_key: None, signing: None }
    }

    /// A client presenting `credentials`, or why they cannot be used.
    pub fn with(credentials: &Credentials) -> Result<Self, String> {
        let mut http = builder();
        if let Some(mtls) = &credentials.mtls {
            let pem = format!("{}\n{}", mtls.private_key.trim(), mtls.certificate.trim());
            let identity = reqwest::Identity::from_pem(pem.as_bytes())
                .map_err(|e| format!("the client certificate and key cannot be used: {e}"))?;
            http = http.identity(identity);
        }
        if let Some(ca) = &credentials.ca_certificate {
            let ca = reqwest::Certificate::from_pem(ca.as_bytes())
                .map_err(|e| format!("the certificate authority cannot be read: {e}"))?;
            http = http.add_root_certificate(ca);
        }
        let http = http.build().map_err(|e| {
            format!(
                "these credentials cannot be used for TLS (a certificate and key that do not match?): {e}"
            )
        })?;
        let api_key = match &credentials.api_key {
            Some(key) => Some((
                HeaderName::from_bytes(key.header.as_bytes())
                    .map_err(|_| "the API key header is not a header name")?,
                HeaderValue::from_str(&key.value).map_err(|_| "the API key is not a header value")?,
            )),
            None => None,
        };
        let signing = match &credentials.hmac {
            Some(s) => Some((
                HeaderValue::from_str(&s.key_id).map_err(|_| "the signing key id is not a header value")?,
                <Hmac<Sha256> as Mac>::new_from_slice(s.secret.as_bytes())
                    .expect("HMAC takes keys of any length"),
            )),
            None => None,
        };
        Ok(BillerClient { http, api_key, signing })
    }

    /// The request with this biller's API key and signature, in the current trace.
    fn send(
        &self,
        method: Method,
        url: String,
        timeout: Duration,
        body: Option<String>,
    ) -> reqwest::RequestBuilder {
        let mut request =
            crate::telemetry::trace::propagate(self.http.request(method.clone(), &url).timeout(timeout));
        if let Some((name, value)) = &self.api_key {
            request = request.header(name, value);
        }
        if let Some((key_id, mac)) = &self.signing {
            let path = reqwest::Url::parse(&url)
                .map(|u| match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_owned(),
                })
                .unwrap_or_default();
            let timestamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .to_string();
            let digest = to_hex(&Sha256::digest(body.as_deref().unwrap_or_default().as_bytes()));
            let mut mac = mac.clone();
            mac.update(format!("{timestamp}\n{method}\n{path}\n{digest}").as_bytes());
            let signature = format!("v1={}", to_hex(&mac.finalize().into_bytes()));
            request = request
                .header("x-gateway-key-id", key_id)
                .header("x-gateway-timestamp", timestamp)
                .header("x-gateway-signature", signature);
        }
        match body {
            Some(body) => request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body),
            None => request,
        }
    }

    fn post(&self, url: String, timeout: Duration, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.send(Method::POST, url, timeout, Some(body.to_string()))
    }

    #[tracing::instrument(name = "biller.validate", level = "debug", skip_all)]
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

    #[tracing::instrument(name = "biller.pay", level = "debug", skip_all)]
    pub async fn pay(
        &self,
        base: &str,
        timeout: Duration,
        protocol: Protocol,
        payment: &Payment<'_>,
    ) -> Answer {
        let body = json!({
            "reference": payment.reference, protocol.account_field(): payment.account,
            "amount": payment.amount, "currency": payment.currency,
        });
        let sent = self.post(format!("{base}{}", protocol.pay_path()), timeout, &body).send().await;
        match sent {
            Ok(r) => read(r, false).await,
            Err(e) => Answer::Unknown(describe(&e)),
        }
    }

    #[tracing::instrument(name = "biller.status", level = "debug", skip_all)]
    pub async fn status(&self, base: &str, timeout: Duration, protocol: Protocol, reference: &str) -> Answer {
        let url = format!("{base}{}/{reference}", protocol.status_path());
        let sent = self.send(Method::GET, url, timeout, None).send().await;
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

impl std::fmt::Debug for BillerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillerClient")
            .field("api_key", &self.api_key.as_ref().map(|(name, _)| name))
            .field("signed", &self.signing.is_some())
            .finish_non_exhaustive()
    }
}
