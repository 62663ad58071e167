//! Settings from environment variables and an optional TOML file: the loader, and the
//! one list of problems that each owner's checks add to.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::{Figment, Provider};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

// The settings' own types, where callers of the loader look for them.
pub use crate::channel::ChannelSettings;
pub use crate::money::settings::{DEMO_DATA_KEY, DEMO_PIN_PEPPER};
pub use crate::sms::{SmsChannelSettings, SmsSettings};

use crate::channel::ChannelSpec;
use crate::channel::settings::{ChannelDefaults, channels, screen_budgets};
use crate::domain::{Currency, Region};
use crate::events::EventsSpec;
use crate::events::settings::EventsDeclared;
use crate::http::FourEyes;
use crate::http::settings::{ServerDeclared, ServerSpec};
use crate::menu::Budget;
use crate::money::identity::ProviderSpec;
use crate::money::identity::settings::IdentityDeclared;
use crate::money::{MoneyDeclared, MoneySpec};
use crate::problems::Problems;
use crate::redis_link::RedisTarget;
use crate::sms::settings::{sms, sms_channels};
use crate::sms::{SmsChannelSpec, SmsSpec};
use crate::telemetry::redact_url;
use crate::telemetry::trace::Export;

/// Every setting, with the environment variable that sets it (the TOML file uses the
/// same names in lower case).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// DATABASE_URL
    pub database_url: SecretString,
    /// DATABASE_MAX_CONNECTIONS
    pub database_max_connections: u32,
    /// DATABASE_READ_URL: a streaming replica for reads that may lag, once it has
    /// caught up with the primary.
    pub database_read_url: Option<SecretString>,
    /// REDIS_URL: sessions in Redis when set, in process memory otherwise.
    pub redis_url: Option<SecretString>,
    /// REDIS_KEY_PREFIX
    pub redis_key_prefix: String,
    /// REDIS_WAIT_REPLICAS: how many replicas must have copied a session write before
    /// it counts (`WAIT`), so that a failover cannot lose it.
    pub redis_wait_replicas: u32,
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
    pub pin_pepper: Option<SecretString>,
    /// DATA_KEY: 64 hex digits (32 bytes), the key-encryption key `k1` wrapping the data
    /// keys that seal personal data such as national IDs; DATA_KEY or DATA_KEYS is
    /// required outside `--demo`.
    pub data_key: Option<SecretString>,
    /// DATA_KEYS: key-encryption keys oldest first, `id:hex,id:hex` (ids of lower-case
    /// letters, digits, `-` or `_`); the newest wraps new data keys, `keys rotate`
    /// re-wraps the older ones under it.
    pub data_keys: Option<SecretString>,
    /// BLIND_INDEX_KEY: 64 hex digits keying the index that finds a national ID without
    /// storing it; it never rotates. Default: derived from the first data key.
    pub blind_index_key: Option<SecretString>,
    /// PIN_MAX_ATTEMPTS: wrong PINs in a row that lock money operations.
    pub pin_max_attempts: u32,
    /// PIN_LOCK_SECS: how long the lock lasts.
    pub pin_lock_secs: u64,
    /// APPROVAL_TTL_SECS: how long an agent's cash-out request holds the customer's
    /// money waiting for their approval before the sweeper releases it.
    pub approval_ttl_secs: u64,
    /// REVERSAL_DISPUTE_SECS: how long the recipient of a send its sender asked back has
    /// to dispute it before the reversal runs.
    pub reversal_dispute_secs: u64,
    /// FEE_SHARDS: how many fee revenue accounts fees are spread over, so that movements
    /// crediting fees do not all wait on one row.
    pub fee_shards: u32,
    /// SETTLEMENT_SHARDS: how many accounts each biller's settlement account, and the
    /// funding account, are spread over.
    pub settlement_shards: u32,
    /// GROUP_POSTING: sends from concurrent hops are posted in groups, one transaction
    /// and one commit for each group.
    pub group_posting: bool,
    /// GROUP_POSTING_WINDOW_MS: how long the first send of a group waits for others.
    pub group_posting_window_ms: u64,
    /// GROUP_POSTING_MAX: the most sends in one group.
    pub group_posting_max: u32,
    /// GROUP_POSTING_CONCURRENCY: how many groups post at once; sends wait in the queue
    /// while they all do.
    pub group_posting_concurrency: u32,
    /// PROFILE_CACHE_MAX: how many customers' profiles a replica keeps in memory (0: none).
    pub profile_cache_max: u32,
    /// PROFILE_CACHE_SECS: how long a profile is kept after it was read.
    pub profile_cache_secs: u64,
    /// DEFAULT_REGION: how to read numbers in national form (ISO 3166-1 alpha-2).
    pub default_region: String,
    /// DEMO_SUBSCRIBERS: how many subscribers `--demo` seeds (the first ten as in the README).
    pub demo_subscribers: u32,
    /// CURRENCY: the currency of demo wallets.
    pub currency: String,
    /// LOG_FORMAT: `text` or `json`.
    pub log_format: String,
    /// OTEL_EXPORTER_OTLP_ENDPOINT: an OpenTelemetry collector's OTLP/HTTP base URL;
    /// spans are sent to it (as JSON, to `/v1/traces`) when set, and not made otherwise.
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// OTEL_SERVICE_NAME: the `service.name` of the spans sent.
    pub otel_service_name: String,
    /// OTEL_EXPORTER_OTLP_PROTOCOL: read to refuse what the gateway does not send
    /// (`grpc`, `http/protobuf`): spans go as `http/json`.
    pub otel_exporter_otlp_protocol: Option<String>,
    /// ADMIN_TOKEN: a root token of the admin API with every scope; the API also takes
    /// the scoped tokens of `ussd-gateway admin token create`.
    pub admin_token: Option<SecretString>,
    /// FOUR_EYES: sensitive admin calls (README, "Four eyes": an agent's onboarding, a
    /// reversal, a PIN unlock, a float top-up over FOUR_EYES_FLOAT_OVER, billers and
    /// their credentials, merchants, sensitive flags, an identity verified against the provider) are
    /// proposed by one token and carried out when another approves them with its
    /// one-time password.
    pub four_eyes: bool,
    /// FOUR_EYES_FLOAT_OVER: float top-ups above this many minor units need four eyes.
    pub four_eyes_float_over: i64,
    /// PROPOSAL_TTL_SECS: how long a proposal waits for its approval.
    pub proposal_ttl_secs: u64,
    /// IDENTITY_URL: the identity provider's base URL (the protocol of
    /// `money::identity::client`); registrations and "Upgrade my account" are checked
    /// there when set (`--demo` serves a sandbox provider).
    pub identity_url: Option<String>,
    /// IDENTITY_API_KEY: sent to the provider as `Authorization: Bearer`.
    pub identity_api_key: Option<SecretString>,
    /// IDENTITY_WEBHOOK_SECRET: the `whsec_…` secret the provider signs its callbacks with.
    pub identity_webhook_secret: Option<SecretString>,
    /// IDENTITY_CALLBACK_URL: where the provider calls back (`…/identity/callback` on
    /// LISTEN_ADDR, as the provider reaches it); without it the gateway only polls.
    pub identity_callback_url: Option<String>,
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
    /// EVENT_STREAM_MAXLEN: about how many events each Redis stream keeps.
    pub event_stream_maxlen: u64,
    /// EVENT_RELAY_BATCH: the most events the relay publishes in one claim.
    pub event_relay_batch: u32,
    /// ANOMALY_RULES: a file of anomaly rules (`deploy/anomaly-rules.toml` is the
    /// format, and the rules when unset).
    pub anomaly_rules: Option<PathBuf>,
    /// NATS_URL: events go to NATS JetStream too when set.
    pub nats_url: Option<SecretString>,
    /// NATS_STREAM: the JetStream stream they go to (made unless there).
    pub nats_stream: String,
    /// NATS_SUBJECTS: the subjects' prefix: `<NATS_SUBJECTS>.<family>`.
    pub nats_subjects: String,
    /// `[[channels]]` in the config file: the aggregator connections this gateway serves.
    pub channels: Vec<ChannelSettings>,
    /// `[sms]` in the config file: the provider SMS receipts go out through.
    pub sms: Option<SmsSettings>,
    /// `[[sms_channels]]` in the config file: where SMS providers call us.
    pub sms_channels: Vec<SmsChannelSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "postgres://postgres@127.0.0.1:5432/ussd_gateway".into(),
            database_max_connections: 16,
            database_read_url: None,
            redis_url: None,
            redis_key_prefix: "ussd:".into(),
            redis_wait_replicas: 0,
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
            reversal_dispute_secs: 86_400,
            fee_shards: 8,
            settlement_shards: 8,
            group_posting: true,
            group_posting_window_ms: 1,
            group_posting_max: 64,
            group_posting_concurrency: 2,
            profile_cache_max: 100_000,
            profile_cache_secs: 600,
            default_region: "KE".into(),
            demo_subscribers: 10,
            currency: "KES".into(),
            log_format: "text".into(),
            otel_exporter_otlp_endpoint: None,
            otel_service_name: "ussd-gateway".into(),
            otel_exporter_otlp_protocol: None,
            admin_token: None,
            four_eyes: true,
            four_eyes_float_over: 1_000_000,
            proposal_ttl_secs: 86_400,
            identity_url: None,
            identity_api_key: None,
            identity_webhook_secret: None,
            identity_callback_url: None,
            screen_budgets: String::new(),
            // A person reads each screen, so this is well above any real journey,
            // an aggregator's retries included.
            rate_per_msisdn_per_minute: 60,
            http_max_connections: 10_000,
            http_header_timeout_secs: 15,
            event_stream_maxlen: EventsSpec::default().stream_max_len,
            event_relay_batch: EventsSpec::default().batch,
            anomaly_rules: None,
            nats_url: None,
            nats_stream: "USSD_EVENTS".into(),
            nats_subjects: "ussd.events".into(),
            channels: Vec::new(),
            sms: None,
            sms_channels: Vec::new(),
        }
    }
}

const ENV_KEYS: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "DATABASE_READ_URL",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "REDIS_WAIT_REPLICAS",
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
    "APPROVAL_TTL_SECS",
    "REVERSAL_DISPUTE_SECS",
    "FEE_SHARDS",
    "SETTLEMENT_SHARDS",
    "GROUP_POSTING",
    "GROUP_POSTING_WINDOW_MS",
    "GROUP_POSTING_MAX",
    "GROUP_POSTING_CONCURRENCY",
    "PROFILE_CACHE_MAX",
    "PROFILE_CACHE_SECS",
    "DEFAULT_REGION",
    "DEMO_SUBSCRIBERS",
    "CURRENCY",
    "LOG_FORMAT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "ADMIN_TOKEN",
    "FOUR_EYES",
    "FOUR_EYES_FLOAT_OVER",
    "PROPOSAL_TTL_SECS",
    "IDENTITY_URL",
    "IDENTITY_API_KEY",
    "IDENTITY_WEBHOOK_SECRET",
    "IDENTITY_CALLBACK_URL",
    "SCREEN_BUDGETS",
    "RATE_PER_MSISDN_PER_MINUTE",
    "HTTP_MAX_CONNECTIONS",
    "MEMORY_SESSIONS_MAX",
    "HTTP_HEADER_TIMEOUT_SECS",
    "EVENT_STREAM_MAXLEN",
    "EVENT_RELAY_BATCH",
    "ANOMALY_RULES",
    "NATS_URL",
    "NATS_STREAM",
    "NATS_SUBJECTS",
];

/// What a TOML file may hold besides the environment's settings (in lower case there).
const FILE_ONLY_KEYS: &[&str] = &["channels", "sms", "sms_channels"];

/// The known name `name` is likely a typo of: one or two letters off, in any case. Far
/// from every name, it is someone else's variable (`PATH`, a
/// platform's `REDIS_SERVICE_HOST`) and none of ours.
fn meant<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::levenshtein(&name.to_ascii_uppercase(), &k.to_ascii_uppercase()), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Environment variables that look like a misspelt setting (`REDIS_ULR`): ignored, they
/// would leave the setting at its default without a word (sessions quietly in memory).
fn misspelt_variables(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut problems: Vec<String> = names
        .into_iter()
        // The environment is read without regard to case: `redis_url` is REDIS_URL.
        .filter(|name| !ENV_KEYS.iter().any(|k| k.eq_ignore_ascii_case(name)))
        .filter_map(|name| {
            let key = meant(&name, ENV_KEYS.iter().copied())?;
            Some(format!("{name} is set but is no setting: did you mean {key}? (unset it, or rename it)"))
        })
        .collect();
    problems.sort();
    problems
}

/// Every key of a TOML file's top level that is no setting, with the problem to report:
/// the setting it is likely a typo of. Serde would stop at the first.
fn unknown_file_keys(path: &Path) -> Vec<(String, String)> {
    let Ok(data) = Figment::from(Toml::file(path)).data() else { return Vec::new() };
    let known = || {
        ENV_KEYS.iter().map(|k| k.to_ascii_lowercase()).chain(FILE_ONLY_KEYS.iter().map(|k| (*k).to_owned()))
    };
    let mut problems = Vec::new();
    for key in data.values().flat_map(|dict| dict.keys()) {
        if known().any(|k| k == *key) {
            continue;
        }
        let names: Vec<String> = known().collect();
        let hint = match meant(key, names.iter().map(String::as_str)) {
            Some(k) => format!(": did you mean `{k}`?"),
            None => " (settings are the environment variables' names in lower case; see the README)".into(),
        };
        problems.push((key.clone(), format!("{}: `{key}` is no setting{hint}", path.display())));
    }
    problems
}

/// What `figment` holds without the top-level `keys`; `None` when there is nothing to
/// drop or its data cannot be read (a file that does not parse), so there is no more
/// to learn by reading again.
fn without(figment: &Figment, keys: &[String]) -> Option<Figment> {
    if keys.is_empty() {
        return None;
    }
    let mut data = figment.data().ok()?;
    for dict in data.values_mut() {
        dict.retain(|k, _| !keys.contains(k));
    }
    let rest = data.into_iter().fold(Figment::new(), |rest, (profile, dict)| {
        rest.merge(figment::providers::Serialized::from(dict, profile))
    });
    Some(rest)
}

/// Settings that passed validation, in the types the program uses: each owner's own
/// spec, and what belongs to no one layer.
#[derive(Clone, Debug)]
pub struct Config {
    pub settings: Settings,
    /// Where the two listeners bind, and their limits.
    pub server: ServerSpec,
    pub session_ttl: Duration,
    pub hop_deadline: Duration,
    pub region: Region,
    /// The PIN pepper and policy, the data keys, the approval wait.
    pub money: MoneySpec,
    pub demo: bool,
    /// `serve --simulator`: the web phone on the admin listener, for tokens with the
    /// `simulator` scope.
    pub simulator: bool,
    /// Where spans go (OTEL_EXPORTER_OTLP_ENDPOINT); none are made without it.
    pub trace: Option<Export>,
    /// What needs two tokens (FOUR_EYES); `None` when every token acts alone.
    pub four_eyes: Option<FourEyes>,
    /// The identity provider (IDENTITY_URL), or `--demo`'s sandbox once its port is known.
    pub identity: Option<ProviderSpec>,
    /// Screen budgets per channel (provider name), from SCREEN_BUDGETS.
    pub screen_budgets: HashMap<String, Budget>,
    /// The channels served: those declared, and with `--demo` every provider at
    /// `/ussd/<provider>` on a path no declared channel took.
    pub channels: Vec<ChannelSpec>,
    /// How the relay publishes the event log (to Redis with REDIS_URL, to NATS with NATS_URL).
    pub events: EventsSpec,
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
        let mut problems = misspelt_variables(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()));
        let mut unknown_keys = Vec::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(vec![format!("config file {} does not exist", path.display())]));
            }
            for (key, problem) in unknown_file_keys(path) {
                unknown_keys.push(key);
                problems.push(problem);
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::raw().only(ENV_KEYS));
        // Serde stops at the first value it cannot read: that key is reported and
        // dropped (its default stands in) and the rest read again, so that one typo
        // does not hide the next.
        let original = figment.clone();
        // Unknown keys are reported above, all of them: dropped at once, they hide nothing.
        if let Some(rest) = without(&figment, &unknown_keys) {
            figment = rest;
        }
        for _ in 0..=ENV_KEYS.len() + FILE_ONLY_KEYS.len() {
            let errors = match figment.extract::<Settings>() {
                Ok(settings) if problems.is_empty() => return Ok(settings),
                Ok(_) => break,
                Err(errors) => errors,
            };
            let mut bad = Vec::new();
            for mut e in errors {
                if let Some(key) = e.path.first() {
                    // Read again, a value's source is the rebuilt data: name the file
                    // or the variable it came from instead.
                    e.metadata = original.find_metadata(key).cloned();
                    bad.push(key.clone());
                }
                // Unknown top-level keys are all reported above, not just serde's first.
                let reported = e.path.len() <= 1
                    && matches!(&e.kind, figment::error::Kind::UnknownField(key, _) if unknown_keys.contains(key));
                if !reported {
                    problems.push(format!("{e} (check the variable or the config file)"));
                }
            }
            match without(&figment, &bad) {
                Some(rest) => figment = rest,
                None => break,
            }
        }
        Err(ConfigError(problems))
    }

    /// Checks every setting, each by the module that uses it, and converts them; `demo`
    /// relaxes what a demo can default. Every problem is reported at once.
    pub fn validate(self, listen_override: Option<&str>, demo: bool) -> Result<Config, ConfigError> {
        let mut problems = Problems::new();
        let server = crate::http::settings::validate(
            &ServerDeclared {
                listen_addr: listen_override.unwrap_or(&self.listen_addr),
                admin_listen: &self.admin_listen,
                max_connections: self.http_max_connections,
                header_timeout_secs: self.http_header_timeout_secs,
            },
            &mut problems,
        );
        self.check_stores(&mut problems);
        let screen_budgets = screen_budgets(&self.screen_budgets, &mut problems);
        let region = self.check_service(&mut problems);
        let money = crate::money::settings::validate(&self.money(), demo, &mut problems);
        let events = crate::events::settings::validate(
            &EventsDeclared {
                stream_max_len: self.event_stream_maxlen,
                batch: self.event_relay_batch,
                rules: self.anomaly_rules.as_deref(),
                nats_url: self.nats_url.as_ref(),
                nats_stream: &self.nats_stream,
                nats_subjects: &self.nats_subjects,
            },
            &mut problems,
        );
        let defaults = ChannelDefaults {
            deadline: Duration::from_millis(self.hop_deadline_ms),
            per_msisdn_per_minute: self.rate_per_msisdn_per_minute.max(1),
        };
        let channels = channels(&self.channels, demo, defaults, &mut problems);
        let currency = Currency::new(&self.currency, 2);
        let sms = sms(self.sms.as_ref(), currency, demo, &mut problems);
        let sms_channels =
            sms_channels(&self.sms_channels, &channels, demo, self.session_ttl_secs, &mut problems);
        let trace = self.trace(&mut problems);
        let four_eyes = self.four_eyes(&mut problems);
        let identity = crate::money::identity::settings::validate(
            &IdentityDeclared {
                url: self.identity_url.as_deref(),
                api_key: self.identity_api_key.as_ref(),
                webhook_secret: self.identity_webhook_secret.as_ref(),
                callback_url: self.identity_callback_url.as_deref(),
            },
            &mut problems,
        );
        let Some(money) = money.filter(|_| problems.is_empty()) else {
            return Err(ConfigError(problems.into_vec()));
        };
        Ok(Config {
            server,
            session_ttl: Duration::from_secs(self.session_ttl_secs),
            hop_deadline: Duration::from_millis(self.hop_deadline_ms),
            region,
            money,
            demo,
            simulator: false,
            trace,
            four_eyes,
            identity,
            screen_budgets,
            channels,
            events,
            sms,
            sms_channels,
            settings: self,
        })
    }

    /// What needs two tokens, if four eyes are on.
    fn four_eyes(&self, problems: &mut Problems) -> Option<FourEyes> {
        if self.four_eyes_float_over < 0 {
            problems.push("FOUR_EYES_FLOAT_OVER is below 0: set the float top-up, in minor units, above which a second token must approve");
        }
        if !(60..=30 * 86_400).contains(&self.proposal_ttl_secs) {
            problems.push("PROPOSAL_TTL_SECS must be 60 to 2592000 (30 days): how long a proposal waits for its approval");
        }
        self.four_eyes.then(|| FourEyes {
            float_over: self.four_eyes_float_over,
            ttl: Duration::from_secs(self.proposal_ttl_secs),
        })
    }

    /// Where spans go, if anywhere.
    fn trace(&self, problems: &mut Problems) -> Option<Export> {
        let endpoint =
            self.otel_exporter_otlp_endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty())?;
        let shown = crate::telemetry::redact_url(endpoint);
        let base = "give the collector's OTLP/HTTP base, e.g. http://otel-collector:4318";
        match reqwest::Url::parse(endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                if u.path().trim_end_matches('/').ends_with("/v1/traces") {
                    problems.push(format!(
                        "OTEL_EXPORTER_OTLP_ENDPOINT `{shown}` names the traces path, which the gateway adds: {base}"
                    ));
                }
                if u.port() == Some(4317) {
                    problems.push(format!(
                        "OTEL_EXPORTER_OTLP_ENDPOINT `{shown}` is the collector's gRPC port; spans go over HTTP: {base}"
                    ));
                }
            }
            _ => {
                problems.push(format!("OTEL_EXPORTER_OTLP_ENDPOINT `{shown}` is not an http(s) URL: {base}"))
            }
        }
        if let Some(protocol) = self.otel_exporter_otlp_protocol.as_deref().filter(|p| *p != "http/json") {
            problems.push(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL is `{protocol}`, but the gateway sends spans as http/json: unset it or set http/json, and point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's OTLP/HTTP port (4318)"
            ));
        }
        if self.otel_service_name.trim().is_empty() {
            problems.push("OTEL_SERVICE_NAME is empty: name the service, e.g. ussd-gateway");
        }
        Some(Export {
            endpoint: endpoint.trim().to_owned(),
            service: self.otel_service_name.trim().to_owned(),
            delay: Duration::from_secs(1),
        })
    }

    /// Money's settings, as its own check takes them.
    fn money(&self) -> MoneyDeclared<'_> {
        MoneyDeclared {
            pin_pepper: self.pin_pepper.as_ref(),
            data_key: self.data_key.as_ref(),
            data_keys: self.data_keys.as_ref(),
            blind_index_key: self.blind_index_key.as_ref(),
            pin_max_attempts: self.pin_max_attempts,
            pin_lock_secs: self.pin_lock_secs,
            approval_ttl_secs: self.approval_ttl_secs,
            reversal_dispute_secs: self.reversal_dispute_secs,
            fee_shards: self.fee_shards,
            settlement_shards: self.settlement_shards,
            group_posting: self.group_posting,
            group_posting_window_ms: self.group_posting_window_ms,
            group_posting_max: self.group_posting_max,
            group_posting_concurrency: self.group_posting_concurrency,
            profile_cache_max: self.profile_cache_max,
            profile_cache_secs: self.profile_cache_secs,
            database_max_connections: self.database_max_connections,
        }
    }

    /// Where the ledger and the sessions are kept.
    fn check_stores(&self, problems: &mut Problems) {
        let database_url = self.database_url.expose_secret();
        if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
            problems.push(format!(
                "DATABASE_URL `{}` must start with postgres:// (e.g. postgres://postgres@127.0.0.1:5432/ussd_gateway)",
                redact_url(database_url)
            ));
        }
        if let Some(url) = self.database_read_url.as_ref().map(ExposeSecret::expose_secret)
            && !url.starts_with("postgres://")
            && !url.starts_with("postgresql://")
        {
            problems.push(format!(
                "DATABASE_READ_URL `{}` must start with postgres:// (a streaming replica of DATABASE_URL's server); unset it to read everything from the primary",
                redact_url(url)
            ));
        }
        if self.database_max_connections == 0 {
            problems.push("DATABASE_MAX_CONNECTIONS must be at least 1");
        }
        if let Some(url) = self.redis_url.as_ref().map(ExposeSecret::expose_secret)
            && let Err(why) = RedisTarget::parse(url)
        {
            problems
                .push(format!("REDIS_URL `{}`: {why}; unset it to keep sessions in memory", redact_url(url)));
        }
        if self.redis_wait_replicas > 5 {
            problems.push(format!(
                "REDIS_WAIT_REPLICAS must be between 0 and 5 (got {}): the replicas of one master that must copy a session write",
                self.redis_wait_replicas
            ));
        } else if self.redis_wait_replicas > 0 && self.redis_url.is_none() {
            problems.push("REDIS_WAIT_REPLICAS needs REDIS_URL: sessions in process memory have no replicas");
        }
        if !(10..=3_600).contains(&self.session_ttl_secs) {
            problems.push(format!("SESSION_TTL_SECS must be between 10 and 3600 (got {}); aggregators end sessions after about 180 s", self.session_ttl_secs));
        }
        if !(100..=10_000_000).contains(&self.memory_sessions_max) {
            problems.push(format!(
                "MEMORY_SESSIONS_MAX must be between 100 and 10000000 (got {}); for more, keep sessions in Redis (REDIS_URL)",
                self.memory_sessions_max
            ));
        }
    }

    /// What the service as a whole runs with: hop deadline, region, currency, logs, the
    /// root admin token, the demo's size, the default per-number rate.
    fn check_service(&self, problems: &mut Problems) -> Region {
        if !(500..=30_000).contains(&self.hop_deadline_ms) {
            problems.push(format!("HOP_DEADLINE_MS must be between 500 and 30000 (got {}); keep it below your aggregator's timeout", self.hop_deadline_ms));
        }
        if self.admin_token.as_ref().is_some_and(|t| t.expose_secret().trim().len() < 16) {
            problems
                .push("ADMIN_TOKEN must be at least 16 characters; generate one with `openssl rand -hex 24`");
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
        if !(1..=100_000).contains(&self.demo_subscribers) {
            problems.push(format!(
                "DEMO_SUBSCRIBERS must be between 1 and 100000 (got {})",
                self.demo_subscribers
            ));
        }
        if self.rate_per_msisdn_per_minute == 0 {
            problems.push("RATE_PER_MSISDN_PER_MINUTE must be at least 1");
        }
        region
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(config: &Config) -> Vec<(String, [u8; 32])> {
        config.money.data_keys.iter().map(|(id, key)| (id.clone(), *key.expose_secret())).collect()
    }

    /// Every setting but the tables (`[[channels]]`, `[sms]`, `[[sms_channels]]`) is read
    /// from the environment as well as the file: the list of variables is written by
    /// hand, so it is checked against the fields serde knows.
    #[test]
    fn every_plain_setting_can_be_set_from_the_environment() {
        let refused = Figment::new()
            .merge(Toml::string("no_such_setting = 1"))
            .extract::<Settings>()
            .expect_err("an unknown setting is refused")
            .to_string();
        let fields = refused.split("one of ").nth(1).and_then(|rest| rest.split(" for key").next());
        let fields = fields.unwrap_or_else(|| panic!("serde names no fields: {refused}"));
        let fields: Vec<&str> = fields.split(", ").map(|f| f.trim_matches('`')).collect();
        assert!(fields.len() > 20, "{refused}");
        for field in fields.iter().filter(|f| !["channels", "sms", "sms_channels"].contains(f)) {
            assert!(
                ENV_KEYS.contains(&field.to_uppercase().as_str()),
                "{field} cannot be set from the environment"
            );
        }
    }

    #[test]
    fn defaults_validate_in_demo_mode_only() {
        let config = Settings::default().validate(None, true).unwrap();
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(keys(&config), [("k1".to_owned(), DEMO_DATA_KEY)]);
        assert_eq!(config.session_ttl, Duration::from_secs(180));
        let err = Settings::default().validate(None, false).unwrap_err();
        assert!(err.0[0].contains("PIN_PEPPER is not set"), "{err}");
        assert!(err.0[1].contains("DATA_KEY is not set"), "{err}");
        let production = Settings {
            pin_pepper: Some("p".repeat(32).into()),
            data_key: Some("0f".repeat(32).into()),
            channels: vec![ChannelSettings {
                name: "at".into(),
                provider: "africastalking".into(),
                ..ChannelSettings::default()
            }],
            ..Settings::default()
        };
        assert_eq!(keys(&production.validate(None, false).unwrap()), [("k1".to_owned(), [0x0f; 32])]);
    }

    #[test]
    fn spans_are_sent_only_to_a_collector_that_is_named() {
        let off = Settings::default().validate(None, true).unwrap();
        assert_eq!(off.trace, None);
        let on = Settings {
            otel_exporter_otlp_endpoint: Some("http://otel-collector:4318/".into()),
            ..Settings::default()
        };
        let trace = on.validate(None, true).unwrap().trace.expect("tracing on");
        assert_eq!(
            (trace.endpoint.as_str(), trace.service.as_str()),
            ("http://otel-collector:4318/", "ussd-gateway")
        );
        // What a platform's defaults would set, and the gateway does not send.
        let grpc = Settings {
            otel_exporter_otlp_endpoint: Some("http://u:secret@otel-collector:4317/v1/traces".into()),
            otel_exporter_otlp_protocol: Some("grpc".into()),
            ..Settings::default()
        };
        let err = grpc.validate(None, true).unwrap_err().to_string();
        assert!(err.contains("names the traces path, which the gateway adds"), "{err}");
        assert!(err.contains("is the collector's gRPC port; spans go over HTTP"), "{err}");
        assert!(err.contains("OTEL_EXPORTER_OTLP_PROTOCOL is `grpc`"), "{err}");
        assert!(!err.contains("secret"), "the endpoint's password is not shown: {err}");
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
            fee_shards: 0,
            otel_exporter_otlp_endpoint: Some("otel-collector:4318".into()),
            ..Settings::default()
        };
        let err = settings.validate(None, true).unwrap_err();
        assert_eq!(err.0.len(), 8, "{err}");
        assert!(
            err.to_string()
                .contains("OTEL_EXPORTER_OTLP_ENDPOINT `otel-collector:4318` is not an http(s) URL"),
            "{err}"
        );
        assert!(err.to_string().contains("HOP_DEADLINE_MS must be between 500 and 30000 (got 0)"));
        assert!(err.to_string().contains("FEE_SHARDS must be between 1 and 256 (got 0)"), "{err}");
        assert!(err.to_string().contains("REDIS_URL `localhost:6379`: it has no scheme"), "{err}");
    }

    #[test]
    fn a_misspelt_variable_is_named_with_the_setting_it_meant() {
        let names =
            ["REDIS_ULR", "SESION_TTL_SECS", "PATH", "REDIS_SERVICE_HOST", "REDIS_URL", "redis_url", "HOME"];
        let problems = misspelt_variables(names.map(String::from));
        assert_eq!(
            problems,
            [
                "REDIS_ULR is set but is no setting: did you mean REDIS_URL? (unset it, or rename it)",
                "SESION_TTL_SECS is set but is no setting: did you mean SESSION_TTL_SECS? (unset it, or rename it)",
            ]
        );
    }

    /// `text` loaded as a config file of its own, then removed.
    fn load_file(name: &str, text: &str) -> Result<Settings, ConfigError> {
        let file = std::env::temp_dir().join(format!("config-{name}-{}.toml", std::process::id()));
        std::fs::write(&file, text).unwrap();
        let loaded = Settings::load(Some(&file));
        std::fs::remove_file(&file).unwrap();
        loaded
    }

    #[test]
    fn every_unknown_key_of_a_file_is_reported_at_once() {
        let text =
            "redis_ulr = \"redis://x\"\nsesion_ttl_secs = 60\nfrobnicate = 1\nhop_deadline_ms = 3000\n";
        let err = load_file("keys", text).unwrap_err().to_string();
        assert!(err.contains("`redis_ulr` is no setting: did you mean `redis_url`?"), "{err}");
        assert!(err.contains("`sesion_ttl_secs` is no setting: did you mean `session_ttl_secs`?"), "{err}");
        assert!(err.contains("`frobnicate` is no setting (settings are"), "{err}");
        assert!(!err.contains("unknown field"), "each unknown key once, not serde's first again: {err}");
    }

    #[test]
    fn every_value_of_the_wrong_type_is_reported_at_once() {
        let text =
            "hop_deadline_ms = \"abc\"\nfee_shards = \"many\"\nsesion_ttl_secs = 60\nmenus_dir = \"menus\"\n";
        let err = load_file("types", text).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 3, "{text}");
        assert!(text.contains("hop_deadline_ms") && text.contains("\"abc\""), "{text}");
        assert!(text.contains("fee_shards") && text.contains("\"many\""), "{text}");
        assert!(text.contains("did you mean `session_ttl_secs`"), "{text}");
    }

    #[test]
    fn the_listen_flag_wins_over_the_setting() {
        let config = Settings::default().validate(Some("127.0.0.1:9999"), true).unwrap();
        assert_eq!(config.server.listen.port(), 9999);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact_url("nats://s3cret@nats:4222"), "nats://***@nats:4222");
        assert_eq!(
            redact_url("redis+sentinel://:pw@s1:26379,s2:26379/m?sentinel_password=sp"),
            "redis+sentinel://:***@s1:26379,s2:26379/m?sentinel_password=***"
        );
        assert_eq!(redact_url("postgres://gateway@db/ussd"), "postgres://gateway@db/ussd");
        assert!(
            !format!("{:?}", Settings { pin_pepper: Some("x".repeat(40).into()), ..Settings::default() })
                .contains("xxxx")
        );
    }

    #[test]
    fn an_unknown_key_in_a_channel_is_refused_though_the_gate_is_flattened_into_it() {
        let err = load_file("tokn", "[[channels]]\nname = \"a\"\nprovider = \"generic\"\ntokn = \"x\"\n")
            .unwrap_err();
        let loaded =
            load_file("token", "[[channels]]\nname = \"a\"\nprovider = \"generic\"\ntoken = \"x\"\n");
        assert!(err.to_string().contains("unknown field `tokn`"), "{err}");
        assert!(loaded.unwrap().channels[0].gate.token.is_some());
    }

    #[test]
    fn a_config_shows_no_secret_in_debug() {
        let secret = "s3cret-".repeat(8);
        let settings = Settings {
            database_url: format!("postgres://u:{secret}@h/db").into(),
            pin_pepper: Some(secret.clone().into()),
            data_key: Some("ab".repeat(32).into()),
            blind_index_key: Some("cd".repeat(32).into()),
            admin_token: Some(secret.clone().into()),
            channels: vec![ChannelSettings {
                name: "at".into(),
                provider: "africastalking".into(),
                gate: crate::channel::GateSettings {
                    token: Some(secret[..40].replace('-', "_").into()),
                    basic_user: Some("user".into()),
                    basic_password: Some(secret.clone().into()),
                    ..Default::default()
                },
                ..ChannelSettings::default()
            }],
            ..Settings::default()
        };
        let shown = format!("{:?}", settings.validate(None, false).unwrap());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("171, 171") && !shown.contains("205, 205"), "{shown}");
    }
}
