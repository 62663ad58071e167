//! The SMS channel: what subscribers send and what we send them — receipts written to
//! the outbox with each movement, delivered by a worker through a provider.

pub mod answer;
pub mod codes;
pub mod delivery;
pub mod inbound;
pub mod letters;
pub mod outbox;
mod own;
pub mod receipts;

use std::fmt;

/// A validated SMS channel (configuration builds it; the callback and the answerer
/// use it).
#[derive(Clone)]
pub struct SmsChannelSpec {
    pub name: String,
    pub provider: crate::channel::sms::Provider,
    pub callers: crate::channel::Callers,
    pub signing_secret: Option<String>,
    /// Without a trailing slash.
    pub public_url: Option<String>,
    /// How conversations on this channel stand in for PIN screens.
    pub rules: codes::SmsRules,
    pub per_msisdn_per_minute: u32,
}

impl fmt::Debug for SmsChannelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsChannelSpec")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("callers", &self.callers)
            .field("signing_secret", &self.signing_secret.as_ref().map(|_| "<set>"))
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}
