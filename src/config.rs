//! Settings from environment variables and an optional TOML file, validated at start.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::channel::Callers;
use crate::channel::ussd::Provider;
use crate::domain::Region;
use crate::money::PinPolicy;
use crate::sms::SmsChannelSpec;

/// The pepper used by `--demo` when PIN_PEPPER is not set. Public, hence demo only.
pub const DEMO_PIN_PEPPER: &str = "ussd-gateway-demo-pepper-never-use-in-production";

/// The data key used by `--demo` when DATA_KEY is not set. Public, hence demo only.
pub const DEMO_DATA_KEY: [u8; 32] = *b"ussd-gateway demo key, not prod!";

/// Every setting, with the environment variable that sets it (the TOML file uses the
/// same names in lower case).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// DATABASE_URL
    pub database_url: String,
    /// DATABASE_MAX_CONNECTIONS
    pub database_max_connections: u32,
    /// REDIS_URL: sessions in Redis when set, in process memory otherwise.
    pub redis_url: Option<String>,
    /// REDIS_KEY_PREFIX
    pub redis_key_prefix: String,
    /// MEMORY_SESSIONS_MAX: without Redis, the most sessions (and resume pointers)
    /// kept in process memory; past it new dials are told the service is unavailable.
    pub memory_sessions_max: u32,
    /// LISTEN_ADDR (or `--listen`): where aggregators and SMS providers call.
    pub listen_addr: String,
    /// ADMIN_LISTEN: where the admin API and `/metrics` answer, apart from the port
    /// aggregators reach.
    pub admin_listen: String,
    /// MENUS_DIR
    pub menus_dir: PathBuf,
    /// SESSION_TTL_SECS
    pub session_ttl_secs: u64,
    /// HOP_DEADLINE_MS: every hop is answered within this time.
    pub hop_deadline_ms: u64,
    /// PIN_PEPPER: server-side secret keying PIN hashes; required outside `--demo`.
    pub pin_pepper: Option<String>,
    /// DATA_KEY: 64 hex digits (32 bytes), the key-encryption key `k1` wrapping the data
    /// keys that seal personal data such as national IDs; DATA_KEY or DATA_KEYS is
    /// required outside `--demo`.
    pub data_key: Option<String>,
    /// DATA_KEYS: key-encryption keys oldest first, `id:hex,id:hex` (ids of lower-case
    /// letters, digits, `-` or `_`); the newest wraps new data keys, `keys rotate`
    /// re-wraps the older ones under it.
    pub data_keys: Option<String>,
    /// BLIND_INDEX_KEY: 64 hex digits keying the index that finds a national ID without
    /// storing it; it never rotates. Default: derived from the first data key.
    pub blind_index_key: Option<String>,
    /// PIN_MAX_ATTEMPTS: wrong PINs in a row that lock money operations.
    pub pin_max_attempts: u32,
    /// PIN_LOCK_SECS: how long the lock lasts.
    pub pin_lock_secs: u64,
    /// APPROVAL_TTL_SECS: how long an agent's cash-out request holds the customer's
    /// money waiting for their approval before the sweeper releases it.
    pub approval_ttl_secs: u64,
    /// DEFAULT_REGION: how to read numbers in national form (ISO 3166-1 alpha-2).
    pub default_region: String,
    /// DEMO_SUBSCRIBERS: how many subscribers `--demo` seeds (the first ten as in the README).
    pub demo_subscribers: u32,
    /// CURRENCY: the currency of demo wallets.
    pub currency: String,
    /// LOG_FORMAT: `text` or `json`.
    pub log_format: String,
    /// ADMIN_TOKEN: a root token of the admin API with every scope; the API also takes
    /// the scoped tokens of `ussd-gateway admin token create`.
    pub admin_token: Option<String>,
    /// SCREEN_BUDGETS: channels whose screens hold less than the menus allow, as
    /// `provider=GSM7/UCS2,…` (e.g. `africastalking=140/70`).
    pub screen_budgets: String,
    /// RATE_PER_MSISDN_PER_MINUTE: hops one subscriber may make per minute on a channel
    /// that does not set its own limit.
    pub rate_per_msisdn_per_minute: u32,
    /// HTTP_MAX_CONNECTIONS: connections served at once; more wait in the backlog.
    pub http_max_connections: u32,
    /// HTTP_HEADER_TIMEOUT_SECS: how long a request's headers, or a kept-alive
    /// connection's next request, may take to arrive before the connection is closed.
    pub http_header_timeout_secs: u64,
    /// `[[channels]]` in the config file: the aggregator connections this gateway serves.
    pub channels: Vec<ChannelSettings>,
    /// `[sms]` in the config file: the provider SMS receipts go out through.
    pub sms: Option<SmsSettings>,
    /// `[[sms_channels]]` in the config file: where SMS providers call us.
    pub sms_channels: Vec<SmsChannelSettings>,
}

/// Where one SMS provider calls us, as written in the config file.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsChannelSettings {
    /// Names the channel in metrics and logs.
    pub name: String,
    /// africastalking, twilio, infobip or vonage.
    pub provider: String,
    /// `/sms/<name>` when unset. Delivery reports arrive at `<path>[/<token>]/status`.
    pub path: Option<String>,
    /// A secret path segment.
    pub token: Option<String>,
    /// Addresses or CIDR blocks the provider calls from; any when empty.
    pub allow: Vec<String>,
    pub basic_user: Option<String>,
    pub basic_password: Option<String>,
    /// Twilio: the auth token that signs its callbacks (required). Vonage: the
    /// signature secret; when set, `sig` and `timestamp` are checked.
    pub signing_secret: Option<String>,
    /// Twilio: the gateway's address as Twilio calls it (`https://gw.example.com`);
    /// the signature covers it, so behind a proxy it cannot be read from the request.
    pub public_url: Option<String>,
    /// The most one movement started by SMS may move, in minor units (default
    /// 1000000: KES 10,000); above it, subscribers are told to use USSD.
    pub max_amount_minor: Option<i64>,
    /// How long the one-time code of a movement started by SMS stays good (default
    /// 120, at most SESSION_TTL_SECS).
    pub code_ttl_secs: Option<u64>,
    /// Messages one number may send per minute (default 10); more are acknowledged and
    /// not answered.
    pub per_msisdn_per_minute: Option<u32>,
    /// Wrong one-time codes one number may send in a day, over all its conversations
    /// (default 5); past it, the number confirms movements on USSD only until the day is out.
    pub wrong_codes_per_day: Option<u32>,
}

impl fmt::Debug for SmsChannelSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsChannelSettings")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("path", &self.path)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("signing_secret", &self.signing_secret.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

/// The SMS provider account as written in the config file.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsSettings {
    /// africastalking, twilio, infobip, vonage, hubtel, or sink (kept in memory and
    /// logged: what `--demo` uses).
    pub provider: String,
    /// The provider's API; its public address when unset (Infobip: your account's).
    pub base_url: Option<String>,
    /// Sender id or number (Twilio: a number or a Messaging Service SID `MG…`).
    pub sender: Option<String>,
    /// Africa's Talking username, Twilio Account SID, Vonage API key, Hubtel client id.
    pub account: Option<String>,
    /// Africa's Talking API key, Twilio auth token, Infobip API key, Vonage API
    /// secret, Hubtel client secret.
    pub secret: Option<String>,
    /// What the account may send, in segments per second (default 10).
    pub segments_per_second: Option<u32>,
    /// Tries before a message is dead-lettered (default 10).
    pub max_attempts: Option<u32>,
    /// The first retry's delay; each further one doubles, up to ten minutes (default 2000).
    pub retry_base_ms: Option<u64>,
    /// How long one call to the provider may take (default 10000).
    pub timeout_ms: Option<u64>,
    /// How long the provider is left alone after five failures in a row (default 30000).
    pub breaker_cooldown_ms: Option<u64>,
    /// Where Twilio, Infobip and Vonage send each message's delivery reports: an SMS
    /// channel's `…/status` URL as the provider reaches it. (Africa's Talking and
    /// Hubtel take it in their dashboards.)
    pub status_url: Option<String>,
}

impl fmt::Debug for SmsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsSettings")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("sender", &self.sender)
            .field("account", &self.account)
            .field("secret", &self.secret.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

/// A validated SMS provider and how the outbox worker uses it.
#[derive(Clone, Debug)]
pub struct SmsSpec {
    pub account: crate::channel::sms::Account,
    pub timeout: Duration,
    pub policy: crate::sms::outbox::Policy,
}

/// One aggregator connection as written in the config file.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelSettings {
    /// Names the channel in metrics and logs (`hubtel-gh`).
    pub name: String,
    /// The wire format: africastalking, hubtel, hubtel-programmable, nalo, arkesel,
    /// infobip, cellulant, safaricom, airtel or generic.
    pub provider: String,
    /// Where the aggregator calls; `/ussd/<name>` when unset.
    pub path: Option<String>,
    /// A secret path segment: the aggregator calls `<path>/<token>`.
    pub token: Option<String>,
    /// Addresses or CIDR blocks the aggregator calls from; any when empty.
    pub allow: Vec<String>,
    /// HTTP Basic credentials the aggregator sends.
    pub basic_user: Option<String>,
    pub basic_password: Option<String>,
    /// Service codes this channel may reach (`*384#`); every served code when empty.
    pub codes: Vec<String>,
    /// This channel's hop deadline; HOP_DEADLINE_MS when unset.
    pub deadline_ms: Option<u64>,
    /// Hops one subscriber may make per minute on this channel (RATE_PER_MSISDN_PER_MINUTE
    /// when unset).
    pub per_msisdn_per_minute: Option<u32>,
    /// Hops per second this channel accepts in all; unlimited when unset.
    pub per_second: Option<u32>,
    /// For providers that send no hop counter: how long after a reply the same input
    /// again is the aggregator's retry (default 2000); set it to the aggregator's retry
    /// timeout if it retries later.
    pub repeat_window_ms: Option<u64>,
}

impl fmt::Debug for ChannelSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelSettings")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("path", &self.path)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("allow", &self.allow)
            .field("basic_user", &self.basic_user)
            .field("basic_password", &self.basic_password.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

/// A validated channel.
#[derive(Clone)]
pub struct ChannelSpec {
    pub name: String,
    pub provider: Provider,
    pub callers: Callers,
    pub codes: Vec<String>,
    pub deadline: Duration,
    pub per_msisdn_per_minute: u32,
    pub per_second: Option<u32>,
    pub repeat_window: Duration,
}

impl fmt::Debug for ChannelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelSpec")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("callers", &self.callers)
            .field("codes", &self.codes)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "postgres://postgres@127.0.0.1:5432/ussd_gateway".into(),
            database_max_connections: 16,
            redis_url: None,
            redis_key_prefix: "ussd:".into(),
            memory_sessions_max: 100_000,
            listen_addr: "0.0.0.0:8080".into(),
            admin_listen: "127.0.0.1:9090".into(),
            menus_dir: PathBuf::from("menus"),
            session_ttl_secs: 180,
            hop_deadline_ms: 5_000,
            pin_pepper: None,
            data_key: None,
            data_keys: None,
            blind_index_key: None,
            pin_max_attempts: 3,
            pin_lock_secs: 3_600,
            approval_ttl_secs: 300,
            default_region: "KE".into(),
            demo_subscribers: 10,
            currency: "KES".into(),
            log_format: "text".into(),
            admin_token: None,
            screen_budgets: String::new(),
            // A person reads each screen, so this is well above any real journey,
            // an aggregator's retries included.
            rate_per_msisdn_per_minute: 60,
            http_max_connections: 10_000,
            http_header_timeout_secs: 15,
            channels: Vec::new(),
            sms: None,
            sms_channels: Vec::new(),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("listen_addr", &self.listen_addr)
            .field("admin_listen", &self.admin_listen)
            .field("menus_dir", &self.menus_dir)
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("hop_deadline_ms", &self.hop_deadline_ms)
            .field("pin_pepper", &self.pin_pepper.as_ref().map(|_| "<set>"))
            .field("data_key", &self.data_key.as_ref().map(|_| "<set>"))
            .field("data_keys", &self.data_keys.as_ref().map(|_| "<set>"))
            .field("blind_index_key", &self.blind_index_key.as_ref().map(|_| "<set>"))
            .field("pin_max_attempts", &self.pin_max_attempts)
            .field("pin_lock_secs", &self.pin_lock_secs)
            .field("approval_ttl_secs", &self.approval_ttl_secs)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

const ENV_KEYS: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "LISTEN_ADDR",
    "ADMIN_LISTEN",
    "MENUS_DIR",
    "SESSION_TTL_SECS",
    "HOP_DEADLINE_MS",
    "PIN_PEPPER",
    "DATA_KEY",
    "DATA_KEYS",
    "BLIND_INDEX_KEY",
    "PIN_MAX_ATTEMPTS",
    "PIN_LOCK_SECS",
    "DEFAULT_REGION",
    "DEMO_SUBSCRIBERS",
    "CURRENCY",
    "LOG_FORMAT",
    "ADMIN_TOKEN",
    "SCREEN_BUDGETS",
    "RATE_PER_MSISDN_PER_MINUTE",
    "HTTP_MAX_CONNECTIONS",
    "MEMORY_SESSIONS_MAX",
    "HTTP_HEADER_TIMEOUT_SECS",
];

/// Settings that passed validation, in the types the program uses.
#[derive(Clone, Debug)]
pub struct Config {
    pub settings: Settings,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub session_ttl: Duration,
    pub hop_deadline: Duration,
    pub region: Region,
    pub pin_pepper: String,
    /// Key-encryption keys for personal data at rest, oldest first (at least one).
    pub data_keys: Vec<(String, [u8; 32])>,
    /// The key of the national-ID blind index, when set apart from the data keys.
    pub blind_index_key: Option<[u8; 32]>,
    pub pin_policy: PinPolicy,
    /// How long an agent's cash-out request waits for the customer's approval.
    pub approval_ttl: Duration,
    pub demo: bool,
    /// Screen budgets per channel (provider name), from SCREEN_BUDGETS.
    pub screen_budgets: std::collections::HashMap<String, crate::menu::Budget>,
    /// The channels served: those declared, and with `--demo` every provider at
    /// `/ussd/<provider>` on a path no declared channel took.
    pub channels: Vec<ChannelSpec>,
    /// Where SMS receipts go: `[sms]`, or the demo sink with `--demo`; none otherwise.
    pub sms: Option<SmsSpec>,
    /// Where SMS providers call: those declared, and with `--demo` every provider that
    /// reports delivery at `/sms/<provider>`, unsigned.
    pub sms_channels: Vec<SmsChannelSpec>,
}

/// Everything wrong with the configuration, each with what to do about it.
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the configuration has {} problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Settings {
    /// Defaults, then the TOML file if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(vec![format!("config file {} does not exist", path.display())]));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::raw().only(ENV_KEYS));
        figment.extract().map_err(|e| {
            ConfigError(
                e.into_iter().map(|e| format!("{e} (check the variable or the config file)")).collect(),
            )
        })
    }

    /// Checks every setting and converts them; `demo` relaxes what a demo can default.
    pub fn validate(self, listen_override: Option<&str>, demo: bool) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let listen_text = listen_override.unwrap_or(&self.listen_addr);
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.push(format!(
                "LISTEN_ADDR `{listen_text}` is not an address like 0.0.0.0:8080 or 127.0.0.1:9000"
            ));
            SocketAddr::from(([0, 0, 0, 0], 8080))
        });
        let admin_listen = self.admin_listen.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems
                .push(format!("ADMIN_LISTEN `{}` is not an address like 127.0.0.1:9090", self.admin_listen));
            SocketAddr::from(([127, 0, 0, 1], 9090))
        });
        if admin_listen.port() != 0 && admin_listen.port() == listen.port() {
            problems.push(format!(
                "ADMIN_LISTEN `{admin_listen}` must be another port than LISTEN_ADDR `{listen}`: the admin API and /metrics are never served where aggregators call"
            ));
        }
        if !self.database_url.starts_with("postgres://") && !self.database_url.starts_with("postgresql://") {
            problems.push(format!(
                "DATABASE_URL `{}` must start with postgres:// (e.g. postgres://postgres@127.0.0.1:5432/ussd_gateway)",
                redact_url(&self.database_url)
            ));
        }
        if self.database_max_connections == 0 {
            problems.push("DATABASE_MAX_CONNECTIONS must be at least 1".into());
        }
        if let Some(url) = &self.redis_url
            && !url.starts_with("redis://")
            && !url.starts_with("rediss://")
        {
            problems.push(format!(
                "REDIS_URL `{}` must start with redis:// or rediss://; unset it to keep sessions in memory",
                redact_url(url)
            ));
        }
        if !(10..=3_600).contains(&self.session_ttl_secs) {
            problems.push(format!("SESSION_TTL_SECS must be between 10 and 3600 (got {}); aggregators end sessions after about 180 s", self.session_ttl_secs));
        }
        if !(500..=30_000).contains(&self.hop_deadline_ms) {
            problems.push(format!("HOP_DEADLINE_MS must be between 500 and 30000 (got {}); keep it below your aggregator's timeout", self.hop_deadline_ms));
        }
        let mut screen_budgets = std::collections::HashMap::new();
        for entry in self.screen_budgets.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry.split_once('=').and_then(|(p, b)| Some((p.trim(), crate::menu::Budget::parse(b)?))) {
                Some((provider, _)) if Provider::from_name(provider).is_none() => problems.push(format!(
                    "SCREEN_BUDGETS: `{provider}` is not a provider ({})",
                    Provider::ALL.map(Provider::name).join(", ")
                )),
                Some((provider, budget)) => {
                    screen_budgets.insert(provider.to_owned(), budget);
                }
                None => problems.push(format!(
                    "SCREEN_BUDGETS: `{entry}` is not `provider=GSM7/UCS2` with at least 40/20, e.g. africastalking=140/70"
                )),
            }
        }
        if self.admin_token.as_ref().is_some_and(|t| t.trim().len() < 16) {
            problems.push(
                "ADMIN_TOKEN must be at least 16 characters; generate one with `openssl rand -hex 24`".into(),
            );
        }
        let region = Region::parse(&self.default_region).unwrap_or_else(|e| {
            problems.push(format!("DEFAULT_REGION: {e}"));
            Region::parse("KE").expect("KE is a region")
        });
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            problems.push(format!(
                "CURRENCY `{}` must be a three-letter ISO 4217 code such as KES",
                self.currency
            ));
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            problems.push(format!("LOG_FORMAT `{}` must be `text` or `json`", self.log_format));
        }
        let pin_pepper = match (&self.pin_pepper, demo) {
            (Some(p), _) if p.len() >= 32 => p.clone(),
            (Some(_), _) => {
                problems.push("PIN_PEPPER is shorter than 32 characters: use a random secret, e.g. `openssl rand -hex 32`".into());
                String::new()
            }
            (None, true) => DEMO_PIN_PEPPER.to_owned(),
            (None, false) => {
                problems.push("PIN_PEPPER is not set: set it to a random secret of at least 32 characters (`openssl rand -hex 32`), or run `serve --demo` to use the public demo pepper".into());
                String::new()
            }
        };
        let data_keys = data_keys(self.data_key.as_deref(), self.data_keys.as_deref(), demo, &mut problems);
        let blind_index_key = self.blind_index_key.as_deref().and_then(|hex| {
            let key = parse_key(hex);
            if key.is_none() {
                problems.push("BLIND_INDEX_KEY must be 64 hex digits (32 bytes)".into());
            }
            key
        });
        if !(1..=100_000).contains(&self.demo_subscribers) {
            problems.push(format!(
                "DEMO_SUBSCRIBERS must be between 1 and 100000 (got {})",
                self.demo_subscribers
            ));
        }
        if !(1..=10).contains(&self.pin_max_attempts) {
            problems
                .push(format!("PIN_MAX_ATTEMPTS must be between 1 and 10 (got {})", self.pin_max_attempts));
        }
        if !(60..=30 * 86_400).contains(&self.pin_lock_secs) {
            problems
                .push(format!("PIN_LOCK_SECS must be between 60 and 2592000 (got {})", self.pin_lock_secs));
        }
        if !(60..=86_400).contains(&self.approval_ttl_secs) {
            problems.push(format!(
                "APPROVAL_TTL_SECS must be between 60 and 86400 (got {}); the customer approves at the counter, within minutes",
                self.approval_ttl_secs
            ));
        }
        let hop_deadline = Duration::from_millis(self.hop_deadline_ms);
        if self.rate_per_msisdn_per_minute == 0 {
            problems.push("RATE_PER_MSISDN_PER_MINUTE must be at least 1".into());
        }
        if !(100..=10_000_000).contains(&self.memory_sessions_max) {
            problems.push(format!(
                "MEMORY_SESSIONS_MAX must be between 100 and 10000000 (got {}); for more, keep sessions in Redis (REDIS_URL)",
                self.memory_sessions_max
            ));
        }
        if !(16..=1_000_000).contains(&self.http_max_connections) {
            problems.push(format!(
                "HTTP_MAX_CONNECTIONS must be between 16 and 1000000 (got {}); each connection costs a file descriptor",
                self.http_max_connections
            ));
        }
        if !(1..=300).contains(&self.http_header_timeout_secs) {
            problems.push(format!(
                "HTTP_HEADER_TIMEOUT_SECS must be between 1 and 300 (got {}); aggregators send a request's headers at once",
                self.http_header_timeout_secs
            ));
        }
        let defaults = ChannelDefaults {
            deadline: hop_deadline,
            per_msisdn_per_minute: self.rate_per_msisdn_per_minute.max(1),
        };
        let channels = channels(&self.channels, demo, defaults, &mut problems);
        let currency = crate::domain::Currency::new(&self.currency, 2);
        let sms = match &self.sms {
            Some(declared) => sms(declared, currency, demo, &mut problems),
            None if demo => sms(
                &SmsSettings { provider: "sink".into(), ..SmsSettings::default() },
                currency,
                demo,
                &mut problems,
            ),
            None => None,
        };
        let sms_channels =
            sms_channels(&self.sms_channels, &channels, demo, self.session_ttl_secs, &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Config {
            channels,
            sms,
            sms_channels,
            data_keys,
            blind_index_key,
            pin_policy: PinPolicy {
                max_attempts: self.pin_max_attempts,
                lock: Duration::from_secs(self.pin_lock_secs),
            },
            approval_ttl: Duration::from_secs(self.approval_ttl_secs),
            listen,
            admin_listen,
            session_ttl: Duration::from_secs(self.session_ttl_secs),
            hop_deadline,
            region,
            pin_pepper,
            demo,
            screen_budgets,
            settings: self,
        })
    }
}

/// Who may call a callback path, as written in the config file.
struct GateSettings<'a> {
    path: String,
    token: &'a Option<String>,
    allow: &'a [String],
    basic_user: &'a Option<String>,
    basic_password: &'a Option<String>,
}

/// Checks a channel's path (against `taken` and the gateway's own endpoints), secret
/// token, allowlist and Basic credentials.
fn gate(g: GateSettings<'_>, taken: &[&str], problem: &mut dyn FnMut(String)) -> Callers {
    let path = g.path;
    if !path.starts_with('/') || path.ends_with('/') || path.contains(['{', '}', '*', '?', '#', ':']) {
        problem(format!("`path` `{path}` must start with `/`, not end with one, and hold no `{{}}*?#:`"));
    }
    if ["/healthz", "/readyz", "/metrics", "/admin", "/demo"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
    {
        problem(format!("`path` `{path}` is taken by the gateway's own endpoints"));
    }
    if taken.contains(&path.as_str()) {
        problem(format!("`path` `{path}` is used by another channel"));
    }
    // The example configuration's secrets are public: refuse them where they were copied.
    if [g.token, g.basic_password].iter().any(|s| s.as_ref().is_some_and(|s| s.starts_with("replace-with"))) {
        problem("`token` or `basic_password` is still the example's placeholder: generate a secret (`openssl rand -hex 24`)".into());
    }
    if g.token.as_ref().is_some_and(|t| {
        t.len() < 16 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        problem("`token` must be at least 16 letters, digits, `-` or `_` (`openssl rand -hex 24`)".into());
    }
    let mut allow = Vec::new();
    for entry in g.allow {
        match entry
            .parse::<ipnet::IpNet>()
            .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        {
            Ok(net) => allow.push(net),
            Err(_) => problem(format!(
                "`allow` entry `{entry}` is not an address or CIDR block such as 196.201.214.0/24"
            )),
        }
    }
    let basic = match (g.basic_user, g.basic_password) {
        (Some(u), Some(p)) if !u.is_empty() && !u.contains(':') && p.len() >= 12 => Some(format!("{u}:{p}")),
        (None, None) => None,
        _ => {
            problem("`basic_user` and `basic_password` go together; the user has no `:` and the password at least 12 characters".into());
            None
        }
    };
    Callers { path, token: g.token.clone(), allow, basic }
}

/// What an SMS channel allows unless it says otherwise: KES 10,000 a movement, codes
/// good for two minutes, five wrong codes a day per number (one in 200,000 to guess one).
const SMS_RULES: crate::sms::codes::SmsRules = crate::sms::codes::SmsRules {
    max_amount: 10_000_00,
    code_ttl: Duration::from_secs(120),
    wrong_codes_per_day: 5,
};

/// Messages a number may send a minute: a person texting, with room for a provider's
/// retries, far below what guessing one-time codes would need.
const SMS_PER_MSISDN_PER_MINUTE: u32 = 10;

/// Validates the declared SMS channels and adds the demo ones.
fn sms_channels(
    declared: &[SmsChannelSettings],
    ussd: &[ChannelSpec],
    demo: bool,
    session_ttl_secs: u64,
    problems: &mut Vec<String>,
) -> Vec<SmsChannelSpec> {
    use crate::channel::sms::Provider as Sms;
    let mut specs: Vec<SmsChannelSpec> = Vec::new();
    for (i, c) in declared.iter().enumerate() {
        let at = if c.name.is_empty() {
            format!("sms_channels[{i}]")
        } else {
            format!("SMS channel `{}`", c.name)
        };
        let mut problem = |p: String| problems.push(format!("{at}: {p}"));
        if c.name.is_empty() || !c.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            problem("`name` must be set, with letters, digits, `-` and `_` only (e.g. at-ke)".into());
        }
        if specs.iter().any(|s| s.name == c.name) {
            problem("another SMS channel has this `name`".into());
        }
        let Some(provider) = Sms::from_name(&c.provider).filter(|p| p.calls_back()) else {
            let names: Vec<&str> = Sms::ALL.iter().filter(|p| p.calls_back()).map(|p| p.name()).collect();
            problem(format!("`provider` `{}` is not one of {}", c.provider, names.join(", ")));
            continue;
        };
        let taken: Vec<&str> = ussd
            .iter()
            .map(|s| s.callers.path.as_str())
            .chain(specs.iter().map(|s| s.callers.path.as_str()))
            .collect();
        let gate = gate(
            GateSettings {
                path: c.path.clone().unwrap_or_else(|| format!("/sms/{}", c.name)),
                token: &c.token,
                allow: &c.allow,
                basic_user: &c.basic_user,
                basic_password: &c.basic_password,
            },
            &taken,
            &mut problem,
        );
        let signing_secret = c.signing_secret.clone().filter(|s| !s.trim().is_empty());
        if signing_secret.is_some() && !provider.signs_callbacks() {
            problem(format!(
                "`signing_secret` is for providers that sign their callbacks (twilio, vonage), not {provider}"
            ));
        }
        let public_url = c.public_url.as_ref().map(|u| u.trim_end_matches('/').to_owned());
        if provider == Sms::Twilio && (signing_secret.is_none() || public_url.is_none()) {
            problem("Twilio signs every callback: set `signing_secret` to the account's auth token and `public_url` to this gateway's address as Twilio calls it (https://…)".into());
        }
        if public_url.as_ref().is_some_and(|u| !u.starts_with("https://") && !u.starts_with("http://")) {
            problem("`public_url` must start with https://".into());
        }
        let mut rules = SMS_RULES;
        match c.max_amount_minor {
            Some(n) if n > 0 => rules.max_amount = n,
            Some(n) => problem(format!("`max_amount_minor` must be above 0 (got {n})")),
            None => {}
        }
        match c.code_ttl_secs {
            Some(secs) if (30..=session_ttl_secs).contains(&secs) => {
                rules.code_ttl = Duration::from_secs(secs)
            }
            Some(secs) => problem(format!(
                "`code_ttl_secs` must be between 30 and SESSION_TTL_SECS ({session_ttl_secs}), since the conversation holds the code (got {secs})"
            )),
            None => rules.code_ttl = rules.code_ttl.min(Duration::from_secs(session_ttl_secs)),
        }
        if c.per_msisdn_per_minute == Some(0) {
            problem("`per_msisdn_per_minute` must be at least 1".into());
        }
        match c.wrong_codes_per_day {
            Some(n) if n > 0 => rules.wrong_codes_per_day = n,
            Some(_) => problem("`wrong_codes_per_day` must be at least 1 (a typo in a code should not end SMS payments for the day)".into()),
            None => {}
        }
        // Anyone who can reach an open callback can write as any subscriber.
        if !demo
            && gate.token.is_none()
            && gate.allow.is_empty()
            && gate.basic.is_none()
            && signing_secret.is_none()
        {
            problem("nothing proves a callback comes from the provider: set `token`, `allow`, Basic credentials or `signing_secret`".into());
        }
        specs.push(SmsChannelSpec {
            name: c.name.clone(),
            provider,
            callers: gate,
            signing_secret,
            public_url,
            rules,
            per_msisdn_per_minute: c.per_msisdn_per_minute.unwrap_or(SMS_PER_MSISDN_PER_MINUTE).max(1),
        });
    }
    if demo {
        for provider in Sms::ALL.into_iter().filter(|p| p.calls_back()) {
            let path = format!("/sms/{}", provider.name());
            if specs.iter().any(|s| s.callers.path == path || s.name == provider.name())
                || ussd.iter().any(|s| s.callers.path == path)
            {
                continue;
            }
            specs.push(SmsChannelSpec {
                name: provider.name().to_owned(),
                provider,
                callers: Callers::anyone(path),
                signing_secret: None,
                public_url: None,
                rules: crate::sms::codes::SmsRules {
                    code_ttl: SMS_RULES.code_ttl.min(Duration::from_secs(session_ttl_secs)),
                    ..SMS_RULES
                },
                per_msisdn_per_minute: SMS_PER_MSISDN_PER_MINUTE,
            });
        }
    }
    specs
}

/// Validates `[sms]`.
fn sms(
    s: &SmsSettings,
    currency: crate::domain::Currency,
    demo: bool,
    problems: &mut Vec<String>,
) -> Option<SmsSpec> {
    use crate::channel::sms::{Account, Provider as Sms};
    let before = problems.len();
    let mut problem = |p: String| problems.push(format!("[sms]: {p}"));
    if s.provider == "sink" && !demo {
        problem(
            "`provider` `sink` keeps messages in memory and logs their text: it is for `--demo` only".into(),
        );
    }
    let Some(provider) = Sms::from_name(&s.provider).filter(|p| p.sends()) else {
        let names: Vec<&str> = Sms::ALL.iter().filter(|p| p.sends()).map(|p| p.name()).collect();
        problem(format!("`provider` `{}` is not one of {}", s.provider, names.join(", ")));
        return None;
    };
    let base_url = match (&s.base_url, provider.default_base_url()) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(url)) => url.to_owned(),
        (None, None) => {
            problem(format!("`base_url` is required for {provider}: your account's API address"));
            String::new()
        }
    };
    if provider != Sms::Sink && !base_url.starts_with("https://") && !base_url.starts_with("http://") {
        problem(format!(
            "`base_url` `{base_url}` must start with https:// (or http:// for a local test server)"
        ));
    }
    let (needs_account, needs_secret) = provider.credentials();
    let mut credential = |name: &str, value: &Option<String>, what: Option<&str>| match (value, what) {
        (Some(v), Some(_)) if v.starts_with("replace-with") => {
            problem(format!("`{name}` is still the example's placeholder: set {}", what.unwrap_or("it")));
            String::new()
        }
        (Some(v), Some(_)) if !v.trim().is_empty() => v.trim().to_owned(),
        (_, Some(what)) => {
            problem(format!("`{name}` is required for {provider}: {what}"));
            String::new()
        }
        (v, None) => v.clone().unwrap_or_default(),
    };
    let account = credential("account", &s.account, needs_account);
    let secret = credential("secret", &s.secret, needs_secret);
    let mut policy = crate::sms::outbox::Policy::new(std::num::NonZeroU32::MIN, currency);
    match s.segments_per_second.and_then(std::num::NonZeroU32::new) {
        Some(n) if n.get() <= 10_000 => policy.segments_per_second = n,
        None if s.segments_per_second.is_none() => {
            // A provider account's usual allowance; the sink holds no one back.
            let default = if provider == Sms::Sink { 10_000 } else { 10 };
            policy.segments_per_second = std::num::NonZeroU32::new(default).expect("not zero")
        }
        _ => problem("`segments_per_second` must be between 1 and 10000".into()),
    }
    if let Some(n) = s.max_attempts {
        if (1..=100).contains(&n) {
            policy.max_attempts = n
        } else {
            problem(format!("`max_attempts` must be between 1 and 100 (got {n})"))
        }
    }
    if let Some(ms) = s.retry_base_ms {
        if (10..=600_000).contains(&ms) {
            policy.retry_base = Duration::from_millis(ms)
        } else {
            problem(format!("`retry_base_ms` must be between 10 and 600000 (got {ms})"))
        }
    }
    if let Some(ms) = s.breaker_cooldown_ms {
        if (10..=3_600_000).contains(&ms) {
            policy.breaker_cooldown = Duration::from_millis(ms)
        } else {
            problem(format!("`breaker_cooldown_ms` must be between 10 and 3600000 (got {ms})"))
        }
    }
    let timeout = match s.timeout_ms {
        Some(ms) if (100..=60_000).contains(&ms) => Duration::from_millis(ms),
        Some(ms) => {
            problem(format!("`timeout_ms` must be between 100 and 60000 (got {ms})"));
            Duration::from_secs(10)
        }
        None => Duration::from_secs(10),
    };
    if s.status_url.as_ref().is_some_and(|u| !u.starts_with("https://") && !u.starts_with("http://")) {
        problem(
            "`status_url` must be a full URL (https://gw.example.com/sms/<channel>/<token>/status)".into(),
        );
    }
    // A claim outlives a send: the call itself and the wait for a full batch's segments.
    let bucket_wait =
        Duration::from_secs_f64(f64::from(policy.batch) * 4.0 / f64::from(policy.segments_per_second.get()));
    policy.lease = (timeout * 2 + bucket_wait).max(Duration::from_secs(60));
    if problems.len() > before {
        return None;
    }
    let sender = s.sender.clone().filter(|v| !v.trim().is_empty());
    let status_url = s.status_url.clone().filter(|v| !v.trim().is_empty());
    Some(SmsSpec {
        account: Account { provider, base_url, sender, account, secret, status_url },
        timeout,
        policy,
    })
}

/// What a channel gets for what it does not set.
#[derive(Clone, Copy)]
struct ChannelDefaults {
    deadline: Duration,
    per_msisdn_per_minute: u32,
}

/// Validates the declared channels and adds the demo ones.
fn channels(
    declared: &[ChannelSettings],
    demo: bool,
    defaults: ChannelDefaults,
    problems: &mut Vec<String>,
) -> Vec<ChannelSpec> {
    let mut specs: Vec<ChannelSpec> = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, c) in declared.iter().enumerate() {
        let at = if c.name.is_empty() { format!("channels[{i}]") } else { format!("channel `{}`", c.name) };
        let mut problem = |p: String| problems.push(format!("{at}: {p}"));
        if !names.insert(c.name.as_str()) {
            problem("another channel has this `name`; sessions and metrics are kept per name".into());
        }
        if c.name.is_empty() || !c.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            problem("`name` must be set, with letters, digits, `-` and `_` only (e.g. hubtel-gh)".into());
        }
        let Some(provider) = Provider::from_name(&c.provider) else {
            let names: Vec<&str> = Provider::ALL.iter().map(|p| p.name()).collect();
            problem(format!("`provider` `{}` is not one of {}", c.provider, names.join(", ")));
            continue;
        };
        let taken: Vec<&str> = specs.iter().map(|s| s.callers.path.as_str()).collect();
        let gate = gate(
            GateSettings {
                path: c.path.clone().unwrap_or_else(|| format!("/ussd/{}", c.name)),
                token: &c.token,
                allow: &c.allow,
                basic_user: &c.basic_user,
                basic_password: &c.basic_password,
            },
            &taken,
            &mut problem,
        );
        let mut codes = Vec::new();
        for code in &c.codes {
            let body = code.trim().trim_start_matches('*').trim_end_matches('#');
            if body.is_empty()
                || !body.split('*').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                problem(format!("`codes` entry `{code}` is not a service code such as *384#"));
            }
            codes.push(format!("*{body}#"));
        }
        let deadline = match c.deadline_ms {
            Some(ms) if (500..=30_000).contains(&ms) => Duration::from_millis(ms),
            Some(ms) => {
                problem(format!("`deadline_ms` must be between 500 and 30000 (got {ms})"));
                defaults.deadline
            }
            None => defaults.deadline,
        };
        let repeat_window = match c.repeat_window_ms {
            Some(ms) if ms <= 60_000 => Duration::from_millis(ms),
            Some(ms) => {
                problem(format!("`repeat_window_ms` must be at most 60000 (got {ms})"));
                crate::gateway::DEFAULT_REPEAT_WINDOW
            }
            None => crate::gateway::DEFAULT_REPEAT_WINDOW,
        };
        if c.per_msisdn_per_minute == Some(0) || c.per_second == Some(0) {
            problem("`per_msisdn_per_minute` and `per_second` must be at least 1 (leave `per_second` out for no limit)".into());
        }
        specs.push(ChannelSpec {
            name: c.name.clone(),
            provider,
            callers: gate,
            codes,
            deadline,
            per_msisdn_per_minute: c.per_msisdn_per_minute.unwrap_or(defaults.per_msisdn_per_minute).max(1),
            per_second: c.per_second.filter(|n| *n > 0),
            repeat_window,
        });
    }
    if demo {
        for provider in Provider::ALL {
            let path = format!("/ussd/{}", provider.name());
            if specs.iter().any(|s| s.callers.path == path || s.name == provider.name()) {
                continue;
            }
            specs.push(ChannelSpec {
                name: provider.name().to_owned(),
                provider,
                callers: Callers::anyone(path),
                codes: Vec::new(),
                deadline: defaults.deadline,
                per_msisdn_per_minute: defaults.per_msisdn_per_minute,
                per_second: None,
                repeat_window: crate::gateway::DEFAULT_REPEAT_WINDOW,
            });
        }
    } else if specs.is_empty() && problems.is_empty() {
        problems.push("no channels: declare each aggregator connection as a `[[channels]]` table in the config file (see README, Aggregators), or run `serve --demo` to answer every provider at /ussd/<provider>".into());
    }
    specs
}

/// The key-encryption keys, oldest first, from DATA_KEY (`k1`) or DATA_KEYS.
fn data_keys(
    single: Option<&str>,
    ring: Option<&str>,
    demo: bool,
    problems: &mut Vec<String>,
) -> Vec<(String, [u8; 32])> {
    let mut keys = Vec::new();
    match (single, ring) {
        (Some(_), Some(_)) => problems.push(
            "set DATA_KEY or DATA_KEYS, not both: DATA_KEY=hex is DATA_KEYS=k1:hex".into(),
        ),
        (Some(hex), None) => match parse_key(hex) {
            Some(key) => keys.push(("k1".to_owned(), key)),
            None => problems.push(
                "DATA_KEY must be 64 hex digits (32 bytes): generate one with `openssl rand -hex 32`".into(),
            ),
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
            if keys.is_empty() && problems.is_empty() {
                problems.push("DATA_KEYS is empty: give at least one id:hex key".into());
            }
        }
        (None, None) if demo => keys.push(("k1".to_owned(), DEMO_DATA_KEY)),
        (None, None) => problems.push("DATA_KEY is not set: set it to 64 hex digits (`openssl rand -hex 32`) to encrypt personal data (or DATA_KEYS to rotate keys), or run `serve --demo`".into()),
    }
    keys
}

fn parse_key(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

/// Hides the password in a URL so it can be printed.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_in_demo_mode_only() {
        let config = Settings::default().validate(None, true).unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(config.data_keys, [("k1".to_owned(), DEMO_DATA_KEY)]);
        assert_eq!(config.session_ttl, Duration::from_secs(180));
        let err = Settings::default().validate(None, false).unwrap_err();
        assert!(err.0[0].contains("PIN_PEPPER is not set"), "{err}");
        assert!(err.0[1].contains("DATA_KEY is not set"), "{err}");
        let production = Settings {
            pin_pepper: Some("p".repeat(32)),
            data_key: Some("0f".repeat(32)),
            channels: vec![ChannelSettings {
                name: "at".into(),
                provider: "africastalking".into(),
                ..ChannelSettings::default()
            }],
            ..Settings::default()
        };
        assert_eq!(production.validate(None, false).unwrap().data_keys, [("k1".to_owned(), [0x0f; 32])]);
    }

    #[test]
    fn every_problem_is_reported_with_what_to_do() {
        let settings = Settings {
            listen_addr: "nowhere".into(),
            hop_deadline_ms: 0,
            redis_url: Some("localhost:6379".into()),
            log_format: "xml".into(),
            data_key: Some("not hex".into()),
            pin_max_attempts: 0,
            ..Settings::default()
        };
        let err = settings.validate(None, true).unwrap_err();
        assert_eq!(err.0.len(), 6, "{err}");
        assert!(err.to_string().contains("HOP_DEADLINE_MS must be between 500 and 30000 (got 0)"));
    }

    #[test]
    fn the_listen_flag_wins_over_the_setting() {
        let config = Settings::default().validate(Some("127.0.0.1:9999"), true).unwrap();
        assert_eq!(config.listen.port(), 9999);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert!(
            !format!("{:?}", Settings { pin_pepper: Some("x".repeat(40)), ..Settings::default() })
                .contains("xxxx")
        );
    }
}
