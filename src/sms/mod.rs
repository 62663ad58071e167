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
pub mod settings;

pub use settings::{SmsChannelSettings, SmsSettings, SmsSpec};

use secrecy::SecretString;

/// A validated SMS channel (configuration builds it; the callback and the answerer
/// use it). `Debug` shows the secrets as redacted.
#[derive(Clone, Debug)]
pub struct SmsChannelSpec {
    pub name: String,
    pub provider: crate::channel::sms::Provider,
    pub callers: crate::channel::Callers,
    pub signing_secret: Option<SecretString>,
    /// Without a trailing slash.
    pub public_url: Option<String>,
    /// How conversations on this channel stand in for PIN screens.
    pub rules: codes::SmsRules,
    pub per_msisdn_per_minute: u32,
}
