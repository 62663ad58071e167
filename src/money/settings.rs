//! Money's settings — the PIN pepper and lockout, the key-encryption keys of personal
//! data, how long an approval waits, the fee shards, group posting, the profile cache — checked here, where they are used.

use std::time::Duration;

use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};

use super::{GroupOptions, PinPolicy, ProfileOptions};
use crate::problems::Problems;

/// The pepper used by `--demo` when PIN_PEPPER is not set. Public, hence demo only.
pub const DEMO_PIN_PEPPER: &str = "ussd-gateway-demo-pepper-never-use-in-production";

/// The data key used by `--demo` when DATA_KEY is not set. Public, hence demo only.
pub const DEMO_DATA_KEY: [u8; 32] = *b"ussd-gateway demo key, not prod!";

/// A 32-byte key from configuration: `Debug` never shows it, and it is wiped on drop.
#[derive(Debug)]
pub struct DataKey(SecretBox<[u8; 32]>);

impl DataKey {
    pub fn new(key: [u8; 32]) -> Self {
        DataKey(SecretBox::new(Box::new(key)))
    }
}

impl Clone for DataKey {
    fn clone(&self) -> Self {
        DataKey::new(*self.0.expose_secret())
    }
}

impl ExposeSecret<[u8; 32]> for DataKey {
    fn expose_secret(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

/// Money's settings as the operator wrote them; the names are the variables' (the
/// config file's keys in lower case).
#[derive(Clone, Copy, Debug)]
pub struct MoneyDeclared<'a> {
    pub pin_pepper: Option<&'a SecretString>,
    pub data_key: Option<&'a SecretString>,
    pub data_keys: Option<&'a SecretString>,
    pub blind_index_key: Option<&'a SecretString>,
    pub pin_max_attempts: u32,
    pub pin_lock_secs: u64,
    pub approval_ttl_secs: u64,
    pub reversal_dispute_secs: u64,
    pub fee_shards: u32,
    pub settlement_shards: u32,
    pub group_posting: bool,
    pub group_posting_window_ms: u64,
    pub group_posting_max: u32,
    pub group_posting_concurrency: u32,
    pub profile_cache_max: u32,
    pub profile_cache_secs: u64,
    /// DATABASE_MAX_CONNECTIONS: groups post on half of them at most.
    pub database_max_connections: u32,
}

/// Money's settings, checked.
#[derive(Clone, Debug)]
pub struct MoneySpec {
    pub pin_pepper: SecretString,
    /// Key-encryption keys for personal data at rest, oldest first (at least one).
    pub data_keys: Vec<(String, DataKey)>,
    /// The key of the national-ID blind index, when set apart from the data keys.
    pub blind_index_key: Option<DataKey>,
    pub pin_policy: PinPolicy,
    /// How long an agent's cash-out request waits for the customer's approval.
    pub approval_ttl: Duration,
    /// How long the recipient of a send asked back has to dispute it.
    pub reversal_dispute: Duration,
    /// FEE_SHARDS: how many fee revenue accounts movements' fees are spread over.
    pub fee_shards: i16,
    /// SETTLEMENT_SHARDS: how many accounts each biller's settlement, and funding, are
    /// spread over.
    pub settlement_shards: i16,
    /// GROUP_POSTING: how sends are gathered into groups, when they are.
    pub group_posting: Option<GroupOptions>,
    /// PROFILE_CACHE_MAX: how customers' profiles are kept in memory, when they are.
    pub profile_cache: Option<ProfileOptions>,
}

/// Checks money's settings; `demo` lets the public demo pepper and data key stand in
/// for unset ones.
pub fn validate(s: &MoneyDeclared<'_>, demo: bool, problems: &mut Problems) -> Option<MoneySpec> {
    let before = problems.len();
    let pin_pepper = match (s.pin_pepper.map(ExposeSecret::expose_secret), demo) {
        (Some(p), _) if p.len() >= 32 => SecretString::from(p),
        (Some(_), _) => {
            problems.push(
                "PIN_PEPPER is shorter than 32 characters: use a random secret, e.g. `openssl rand -hex 32`",
            );
            SecretString::default()
        }
        (None, true) => SecretString::from(DEMO_PIN_PEPPER),
        (None, false) => {
            problems.push("PIN_PEPPER is not set: set it to a random secret of at least 32 characters (`openssl rand -hex 32`), or run `serve --demo` to use the public demo pepper");
            SecretString::default()
        }
    };
    let data_keys = data_keys(expose(s.data_key), expose(s.data_keys), demo, problems);
    let blind_index_key = expose(s.blind_index_key).and_then(|hex| {
        let key = parse_key(hex);
        if key.is_none() {
            problems.push("BLIND_INDEX_KEY must be 64 hex digits (32 bytes)");
        }
        key
    });
    if !(1..=10).contains(&s.pin_max_attempts) {
        problems.push(format!("PIN_MAX_ATTEMPTS must be between 1 and 10 (got {})", s.pin_max_attempts));
    }
    if !(60..=30 * 86_400).contains(&s.pin_lock_secs) {
        problems.push(format!("PIN_LOCK_SECS must be between 60 and 2592000 (got {})", s.pin_lock_secs));
    }
    if !(60..=86_400).contains(&s.approval_ttl_secs) {
        problems.push(format!(
            "APPROVAL_TTL_SECS must be between 60 and 86400 (got {}); the customer approves at the counter, within minutes",
            s.approval_ttl_secs
        ));
    }
    if !(60..=30 * 86_400).contains(&s.reversal_dispute_secs) {
        problems.push(format!(
            "REVERSAL_DISPUTE_SECS must be between 60 and 2592000 (got {}): the recipient needs time to see the SMS and dispute",
            s.reversal_dispute_secs
        ));
    }
    if !(1..=MAX_FEE_SHARDS).contains(&s.fee_shards) {
        problems.push(format!(
            "FEE_SHARDS must be between 1 and {MAX_FEE_SHARDS} (got {}): more shards let more movements post fees at once",
            s.fee_shards
        ));
    }
    if !(1..=MAX_FEE_SHARDS).contains(&s.settlement_shards) {
        problems.push(format!(
            "SETTLEMENT_SHARDS must be between 1 and {MAX_FEE_SHARDS} (got {}): more shards let more payments to one biller post at once",
            s.settlement_shards
        ));
    }
    if s.group_posting_window_ms > 20 {
        problems.push(format!(
            "GROUP_POSTING_WINDOW_MS must be between 0 and 20 (got {}): every send in a group waits up to this long for the others",
            s.group_posting_window_ms
        ));
    }
    if !(1..=256).contains(&s.group_posting_max) {
        problems.push(format!(
            "GROUP_POSTING_MAX must be between 1 and 256 (got {}): the most sends posted in one transaction, each PIN check in it holding a lock of Postgres's shared lock table until the commit",
            s.group_posting_max
        ));
    }
    if !(1..=64).contains(&s.group_posting_concurrency) {
        problems.push(format!(
            "GROUP_POSTING_CONCURRENCY must be between 1 and 64 (got {}): how many groups post at once",
            s.group_posting_concurrency
        ));
    }
    if s.profile_cache_max > 10_000_000 {
        problems.push(format!(
            "PROFILE_CACHE_MAX must be between 0 (keep none) and 10000000 (got {}): each profile kept takes roughly 250 bytes",
            s.profile_cache_max
        ));
    }
    if !(1..=86_400).contains(&s.profile_cache_secs) {
        problems.push(format!(
            "PROFILE_CACHE_SECS must be between 1 and 86400 (got {}): how long a profile read stays in memory; changes drop it at once",
            s.profile_cache_secs
        ));
    }
    (problems.len() == before).then(|| MoneySpec {
        pin_pepper,
        data_keys,
        blind_index_key,
        pin_policy: PinPolicy {
            max_attempts: s.pin_max_attempts,
            lock: Duration::from_secs(s.pin_lock_secs),
        },
        approval_ttl: Duration::from_secs(s.approval_ttl_secs),
        reversal_dispute: Duration::from_secs(s.reversal_dispute_secs),
        fee_shards: i16::try_from(s.fee_shards).unwrap_or(1),
        settlement_shards: i16::try_from(s.settlement_shards).unwrap_or(1),
        group_posting: s.group_posting.then(|| GroupOptions {
            window: Duration::from_millis(s.group_posting_window_ms),
            max: usize::try_from(s.group_posting_max).unwrap_or(1),
            // The other ops need connections too.
            in_flight: usize::try_from(s.group_posting_concurrency.min(s.database_max_connections / 2))
                .unwrap_or(1)
                .max(1),
        }),
        profile_cache: (s.profile_cache_max > 0).then(|| ProfileOptions {
            most: usize::try_from(s.profile_cache_max).unwrap_or(usize::MAX),
            ttl: Duration::from_secs(s.profile_cache_secs),
        }),
    })
}

/// The most accounts one hot account (fee revenue, a biller's settlement) is spread over.
const MAX_FEE_SHARDS: u32 = 256;

/// The key-encryption keys, oldest first, from DATA_KEY (`k1`) or DATA_KEYS.
fn data_keys(
    single: Option<&str>,
    ring: Option<&str>,
    demo: bool,
    problems: &mut Problems,
) -> Vec<(String, DataKey)> {
    let before = problems.len();
    let mut keys: Vec<(String, DataKey)> = Vec::new();
    match (single, ring) {
        (Some(_), Some(_)) => problems.push("set DATA_KEY or DATA_KEYS, not both: DATA_KEY=hex is DATA_KEYS=k1:hex"),
        (Some(hex), None) => match parse_key(hex) {
            Some(key) => keys.push(("k1".to_owned(), key)),
            None => problems.push("DATA_KEY must be 64 hex digits (32 bytes): generate one with `openssl rand -hex 32`"),
        },
        (None, Some(ring)) => {
            for entry in ring.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let parsed = entry.split_once(':').and_then(|(id, hex)| {
                    let id_ok = (1..=32).contains(&id.len())
                        && id.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
                    id_ok.then_some(id).zip(parse_key(hex))
                });
                match parsed {
                    Some((id, _)) if keys.iter().any(|(k, _)| k == id) => {
                        problems.push(format!("DATA_KEYS names the key `{id}` twice"));
                    }
                    Some((id, key)) => keys.push((id.to_owned(), key)),
                    None => problems.push(format!(
                        "DATA_KEYS entry `{}…` must be id:64-hex-digits (an id of lower-case letters, digits, - or _; a key from `openssl rand -hex 32`)",
                        entry.chars().take(8).collect::<String>()
                    )),
                }
            }
            // Bad entries were each reported; an empty ring is worth a word only alone.
            if keys.is_empty() && problems.len() == before {
                problems.push("DATA_KEYS is empty: give at least one id:hex key");
            }
        }
        (None, None) if demo => keys.push(("k1".to_owned(), DataKey::new(DEMO_DATA_KEY))),
        (None, None) => problems.push("DATA_KEY is not set: set it to 64 hex digits (`openssl rand -hex 32`) to encrypt personal data (or DATA_KEYS to rotate keys), or run `serve --demo`"),
    }
    keys
}

fn expose(secret: Option<&SecretString>) -> Option<&str> {
    secret.map(|s| s.expose_secret())
}

fn parse_key(hex: &str) -> Option<DataKey> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut key = DataKey::new([0; 32]);
    for (i, byte) in key.0.expose_secret_mut().iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}
