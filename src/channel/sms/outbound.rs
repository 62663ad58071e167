//! The client that sends through one provider account, and what it says of a
//! transport failure.

use std::time::Duration;

use super::{Accepted, Account, Message, Provider, SendError, Sink};
use super::{africastalking, hubtel, infobip, twilio, vonage};

/// Sends through one provider account.
#[derive(Clone)]
pub struct Outbound {
    account: Account,
    http: reqwest::Client,
    sink: Option<Sink>,
}

impl Outbound {
    pub fn new(account: Account, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("ussd-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a client with a timeout and a user agent builds");
        let sink = (account.provider == Provider::Sink).then(Sink::new);
        Outbound { account, http, sink }
    }

    pub fn provider(&self) -> Provider {
        self.account.provider
    }

    /// The demo sink's messages, when this is the sink.
    pub fn sink(&self) -> Option<&Sink> {
        self.sink.as_ref()
    }

    #[tracing::instrument(name = "sms.send", level = "debug", skip_all, fields(provider = ?self.account.provider))]
    pub async fn send(&self, message: &Message<'_>) -> Result<Accepted, SendError> {
        let a = &self.account;
        let request = match a.provider {
            Provider::AfricasTalking => africastalking::request(&self.http, a, message),
            Provider::Twilio => twilio::request(&self.http, a, message),
            Provider::Infobip => infobip::request(&self.http, a, message),
            Provider::Vonage => vonage::request(&self.http, a, message),
            Provider::Hubtel => hubtel::request(&self.http, a, message),
            Provider::Sink => {
                let sink = self.sink.as_ref().expect("a sink account has a sink");
                return Ok(sink.push(message));
            }
            Provider::Generic => return Err(SendError::permanent("the generic format only receives")),
        };
        let response = request.send().await.map_err(|e| SendError::retry(describe(&e)))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| SendError::retry(describe(&e)))?;
        match a.provider {
            Provider::AfricasTalking => africastalking::read(status, &body),
            Provider::Twilio => twilio::read(status, &body),
            Provider::Infobip => infobip::read(status, &body),
            Provider::Vonage => vonage::read(status, &body),
            Provider::Hubtel => hubtel::read(status, &body),
            Provider::Sink | Provider::Generic => {
                unreachable!("the sink answered above; generic never sends")
            }
        }
    }
}

/// A transport error without the URL, which may carry credentials in its query.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_owned(),
    }
}
