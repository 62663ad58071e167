//! A paybill's validation call: before the customer confirms, the business's server is
//! asked whether it takes this payment.
//!
//! `POST {validation_url}` with `{"business_number", "account", "amount", "currency",
//! "customer": {"name", "msisdn"}}` (amount in minor units, the number masked), signed
//! as webhook deliveries are: `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the
//! merchant's `whsec_` secret. It answers 200 `{"result": "accept"}` or
//! `{"result": "reject", "reason": "…"}`. Anything else — no answer within its
//! timeout, another status, a body we cannot read — leaves the choice to the
//! merchant's `validation_default`.

use std::time::Duration;

use reqwest::Client;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use crate::address::Guard;
use crate::domain::DisplayText;
use crate::signature;

/// What the business said.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject {
        reason: String,
    },
    /// No usable answer: why, for the log.
    Silent(String),
}

/// What the business is asked about.
#[derive(Debug)]
pub struct Asked<'a> {
    pub url: &'a str,
    pub timeout: Duration,
    pub business_number: &'a str,
    pub account: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub customer_name: &'a str,
    pub masked_msisdn: &'a str,
    /// The same for the same question (a retried hop asks it again): the `webhook-id` a
    /// receiver de-duplicates by.
    pub id: &'a str,
}

/// The longest answer read.
const MAX_ANSWER: usize = 4_096;

#[derive(Deserialize)]
struct Answer {
    result: String,
    reason: Option<String>,
}

/// Calls businesses' validation URLs.
#[derive(Clone, Debug)]
pub struct Validator {
    http: Client,
}

impl Validator {
    /// `private_networks`: whether a name may resolve to loopback or a private network
    /// (`serve --demo`); link-local and metadata addresses never are called.
    pub fn new(private_networks: bool) -> Self {
        // No redirects, and every name resolved through the guard: the kind of address
        // checked when the URL was set is the kind called.
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(std::sync::Arc::new(Guard { private_allowed: private_networks }))
            .user_agent(concat!("ussd-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a plain HTTP client builds");
        Validator { http }
    }

    /// Asks the business; its reason is cleaned to one line of at most 60 characters,
    /// as it reaches a screen.
    pub async fn ask(&self, asked: &Asked<'_>, secret: &SecretString) -> Verdict {
        let body = json!({
            "business_number": asked.business_number,
            "account": asked.account,
            "amount": asked.amount,
            "currency": asked.currency,
            "customer": { "name": asked.customer_name, "msisdn": asked.masked_msisdn },
        })
        .to_string();
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let Some(signed) = signature::signature(&[secret], asked.id, timestamp, body.as_bytes()) else {
            return Verdict::Silent("the stored secret is not a whsec_ secret".into());
        };
        let sent = self
            .http
            .post(asked.url)
            .timeout(asked.timeout)
            .header("content-type", "application/json")
            .header("webhook-id", asked.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signed)
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(r) if r.status() == reqwest::StatusCode::OK => r,
            Ok(r) => return Verdict::Silent(format!("answered {}", r.status())),
            Err(e) if e.is_timeout() => {
                return Verdict::Silent(format!("no answer within {:?}", asked.timeout));
            }
            // Not the error itself: it names the URL, which may carry a token.
            Err(e) if e.is_connect() => return Verdict::Silent("cannot be reached".into()),
            Err(_) => return Verdict::Silent("the call failed".into()),
        };
        // An answer is a few words: one that runs past 4 KiB is not read further.
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_ANSWER => body.extend_from_slice(&chunk),
                Ok(Some(_)) => return Verdict::Silent(format!("answered more than {MAX_ANSWER} bytes")),
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return Verdict::Silent(format!("no answer within {:?}", asked.timeout));
                }
                Err(_) => return Verdict::Silent("the answer broke off".into()),
            }
        }
        match serde_json::from_slice::<Answer>(&body).map_err(drop) {
            Ok(a) if a.result == "accept" => Verdict::Accept,
            Ok(a) if a.result == "reject" => {
                let reason = a.reason.unwrap_or_default();
                // The screen ends the reason with its own full stop.
                let reason = DisplayText::clean(reason.trim_end().trim_end_matches('.'), 60).into_string();
                Verdict::Reject { reason: if reason.is_empty() { "not accepted".into() } else { reason } }
            }
            Ok(a) => Verdict::Silent(format!(
                "answered a result of `{}`",
                DisplayText::clean(&a.result, 20).as_str()
            )),
            Err(_) => Verdict::Silent("answered a body that is not {\"result\": …}".into()),
        }
    }
}
