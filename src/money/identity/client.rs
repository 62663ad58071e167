//! The identity provider protocol: JSON over HTTP, in the manner of the ID-verification
//! services of the region (Smile ID, IPRS gateways). A provider's own API differs; an
//! adapter (or the provider) speaks this one, and the sandbox of `--demo` does.
//!
//! - `POST {base}/verifications` `{"reference", "id_number", "first_name", "last_name",
//!   "callback_url"?}`, with `Authorization: Bearer <IDENTITY_API_KEY>` when one is set
//!   and `Idempotency-Key: <reference>` (`reference` is our check's id: sent again, it
//!   is the same check) →
//!   - 200 `{"status": "match" | "mismatch" | "duplicate"}`: the answer;
//!   - 202, or 200 `{"status": "pending"}`: the answer comes later;
//!   - 400 or 422 `{"status": "rejected", "reason"}`: the request cannot be checked.
//! - `GET {base}/verifications/{reference}` → as above; 404: never received.
//! - The answer, when it comes later: `POST {callback_url}` `{"reference", "status"}`
//!   signed as Standard Webhooks sign (`webhook-id`, `webhook-timestamp`,
//!   `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under
//!   IDENTITY_WEBHOOK_SECRET). The gateway also polls, so a lost callback costs time only.
//!
//! Anything else — a timeout, a 5xx, a 429, a body we cannot read — is `Unavailable`:
//! the check is asked again later, with backoff.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::domain::DisplayText;

/// What the provider said of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The ID exists and carries these names.
    Match,
    /// The ID exists under other names, or does not exist.
    Mismatch,
    /// The ID is behind another registration the provider knows of.
    Duplicate,
    /// The request cannot be checked (the provider's reason).
    Refused(String),
    /// The answer comes later (callback or poll).
    Pending,
    /// The provider never received the check (status call only): submit it again.
    NotFound,
    /// No usable answer: ask again later.
    Unavailable(String),
}

impl Answer {
    /// An answer's `status` word, as the protocol and callbacks name it.
    pub fn from_status(status: &str) -> Option<Answer> {
        Some(match status {
            "match" => Answer::Match,
            "mismatch" => Answer::Mismatch,
            "duplicate" => Answer::Duplicate,
            "pending" => Answer::Pending,
            _ => return None,
        })
    }
}

/// One check as the provider sees it.
pub struct Submission<'a> {
    pub reference: &'a str,
    pub id_number: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
}

/// Calls the identity provider.
#[derive(Clone)]
pub struct IdentityClient {
    http: Client,
    base: String,
    api_key: Option<SecretString>,
    callback_url: Option<String>,
    timeout: Duration,
}

#[derive(Deserialize)]
struct Status {
    status: String,
    reason: Option<String>,
}

impl IdentityClient {
    pub fn new(base: &str, api_key: Option<SecretString>, callback_url: Option<String>) -> Self {
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("the TLS backend initialises");
        IdentityClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            api_key,
            callback_url,
            timeout: Duration::from_secs(10),
        }
    }

    fn authorised(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let request = crate::telemetry::trace::propagate(request.timeout(self.timeout));
        match &self.api_key {
            Some(key) => request.bearer_auth(key.expose_secret()),
            None => request,
        }
    }

    #[tracing::instrument(name = "identity.submit", level = "debug", skip_all)]
    pub async fn submit(&self, check: &Submission<'_>) -> Answer {
        let body = json!({
            "reference": check.reference, "id_number": check.id_number,
            "first_name": check.first_name, "last_name": check.last_name,
            "callback_url": self.callback_url,
        });
        let request = self
            .authorised(self.http.post(format!("{}/verifications", self.base)))
            .header("idempotency-key", check.reference)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        match request.send().await {
            Ok(response) => read(response, false).await,
            Err(e) => Answer::Unavailable(describe(e)),
        }
    }

    #[tracing::instrument(name = "identity.status", level = "debug", skip_all)]
    pub async fn status(&self, reference: &str) -> Answer {
        let request = self.authorised(self.http.get(format!("{}/verifications/{reference}", self.base)));
        match request.send().await {
            Ok(response) => read(response, true).await,
            Err(e) => Answer::Unavailable(describe(e)),
        }
    }
}

async fn read(response: reqwest::Response, is_status_call: bool) -> Answer {
    let code = response.status();
    if is_status_call && code == StatusCode::NOT_FOUND {
        return Answer::NotFound;
    }
    if code == StatusCode::ACCEPTED {
        return Answer::Pending;
    }
    let refusal = matches!(code, StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY);
    if !(code.is_success() || refusal) {
        return Answer::Unavailable(format!("HTTP {code}"));
    }
    let Some(status) = serde_json::from_slice::<Status>(&response.bytes().await.unwrap_or_default()).ok()
    else {
        return Answer::Unavailable(format!("HTTP {code} with an unreadable body"));
    };
    match (Answer::from_status(&status.status), refusal) {
        (Some(answer), false) => answer,
        (_, true) if status.status == "rejected" => {
            // The provider's words reach an operator's screen: one visible line.
            let reason = status.reason.unwrap_or_else(|| "refused".into());
            Answer::Refused(DisplayText::clean(&reason, 120).into_string())
        }
        _ => Answer::Unavailable(format!(
            "HTTP {code} with status `{}`",
            DisplayText::clean(&status.status, 40)
        )),
    }
}

/// Without the URL: it reaches logs and operators' screens.
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        e.without_url().to_string()
    }
}

impl std::fmt::Debug for IdentityClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityClient")
            .field("base", &self.base)
            .field("api_key", &self.api_key.is_some())
            .finish_non_exhaustive()
    }
}
