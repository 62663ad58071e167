//! The session record: journey, the last input seen, and the cached reply.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::menu::{Journey, Reply};

/// What is kept between two hops of one USSD session. Serialised with one-letter
/// field names so that it stays a few hundred bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The menu's service name and the version the session started on.
    #[serde(rename = "m")]
    pub service: String,
    #[serde(rename = "mv")]
    pub menu_version: String,
    #[serde(rename = "j")]
    pub journey: Journey,
    /// The last cumulative text seen, as a length and keyed hash: enough to strip it
    /// from the next hop and to spot a repeat, without storing a PIN typed into it.
    #[serde(rename = "x")]
    pub seen: TextMark,
    /// The reply to the last hop, replayed verbatim to a duplicate.
    #[serde(rename = "y", default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Reply>,
    /// Set while an op runs for the last hop (Unix ms): duplicates wait for its reply.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub pending_since_ms: Option<u64>,
    /// While an op runs for the last hop: which, and how long the claim stands unless
    /// its owner renews it. Absent in claims written before it was kept.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
    #[serde(rename = "h")]
    pub hops: u32,
    /// When the last hop was answered (Unix ms): a repeated per-hop input without a
    /// provider counter counts as a retry only shortly after.
    #[serde(rename = "t", default, skip_serializing_if = "is_zero")]
    pub answered_ms: u64,
    /// The provider's counter of the last hop answered (Hubtel's `Sequence`): a copy of
    /// an earlier hop arriving late is not taken for new input.
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u32>,
    /// Over SMS, the one-time code a movement waits for.
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub code: Option<PendingCode>,
}

/// What a claimed session waits for: the op (the riskiest of the hop's, a movement
/// before a read), its place in the journey (so its idempotency key) and the lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The op's catalogue name.
    #[serde(rename = "o")]
    pub op: String,
    /// The journey's op counter for it: the op's idempotency key ends with it.
    #[serde(rename = "s")]
    pub seq: u32,
    /// For a decision on a hold: the transfer it decides.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub request: Option<i64>,
    /// Unix ms until which the claim stands; its owner renews it while the op runs, so
    /// a claim past it belongs to a process that died.
    #[serde(rename = "l")]
    pub lease_ms: u64,
}

/// A one-time code sent over SMS in place of a PIN: kept as a keyed hash, single use,
/// bound to the journey (so to its payee and amount) on the screen that asked for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCode {
    #[serde(rename = "h")]
    pub mark: TextMark,
    /// Unix ms after which the code is refused.
    #[serde(rename = "e")]
    pub expires_ms: u64,
    /// Wrong codes replied so far.
    #[serde(rename = "w")]
    pub wrong: u8,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The length and keyed hash of a cumulative `text`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextMark {
    #[serde(rename = "n")]
    pub len: u32,
    #[serde(rename = "h")]
    pub hash: u64,
}

/// The key for [`TextMark`] hashes. Keyed, because a PIN has only 10⁴ values: an
/// unkeyed hash of `1*1234` would give the PIN back to anyone who can read Redis.
#[derive(Clone)]
pub struct TextKey(Hmac<Sha256>);

impl TextKey {
    pub fn new(secret: &[u8]) -> Self {
        let mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        TextKey(mac)
    }

    pub fn mark(&self, text: &str) -> TextMark {
        let mut mac = self.0.clone();
        mac.update(text.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        TextMark { len: text.len() as u32, hash: u64::from_le_bytes(first) }
    }
}

impl std::fmt::Debug for TextKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TextKey(..)")
    }
}
