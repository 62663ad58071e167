//! Settings from environment variables and an optional TOML file, validated at start.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::domain::Region;

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
    /// LISTEN_ADDR (or `--listen`)
    pub listen_addr: String,
    /// MENUS_DIR
    pub menus_dir: PathBuf,
    /// SESSION_TTL_SECS
    pub session_ttl_secs: u64,
    /// HOP_DEADLINE_MS: every hop is answered within this time.
    pub hop_deadline_ms: u64,
    /// PIN_PEPPER: server-side secret keying PIN hashes; required outside `--demo`.
    pub pin_pepper: Option<String>,
    /// DATA_KEY: 64 hex digits (32 bytes) encrypting personal data such as national IDs;
    /// required outside `--demo`.
    pub data_key: Option<String>,
    /// PIN_MAX_ATTEMPTS: wrong PINs in a row that lock money operations.
    pub pin_max_attempts: u32,
    /// PIN_LOCK_SECS: how long the lock lasts.
    pub pin_lock_secs: u64,
    /// DEFAULT_REGION: how to read numbers in national form (ISO 3166-1 alpha-2).
    pub default_region: String,
    /// DEMO_SUBSCRIBERS: how many subscribers `--demo` seeds (the first ten as in the README).
    pub demo_subscribers: u32,
    /// CURRENCY: the currency of demo wallets.
    pub currency: String,
    /// LOG_FORMAT: `text` or `json`.
    pub log_format: String,
    /// ADMIN_TOKEN: bearer token of the admin endpoints; unset, they are off.
    pub admin_token: Option<String>,
    /// SCREEN_BUDGETS: channels whose screens hold less than the menus allow, as
    /// `provider=GSM7/UCS2,…` (e.g. `africastalking=140/70`).
    pub screen_budgets: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "postgres://postgres@127.0.0.1:5432/ussd_gateway".into(),
            database_max_connections: 16,
            redis_url: None,
            redis_key_prefix: "ussd:".into(),
            listen_addr: "0.0.0.0:8080".into(),
            menus_dir: PathBuf::from("menus"),
            session_ttl_secs: 180,
            hop_deadline_ms: 5_000,
            pin_pepper: None,
            data_key: None,
            pin_max_attempts: 3,
            pin_lock_secs: 3_600,
            default_region: "KE".into(),
            demo_subscribers: 10,
            currency: "KES".into(),
            log_format: "text".into(),
            admin_token: None,
            screen_budgets: String::new(),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("listen_addr", &self.listen_addr)
            .field("menus_dir", &self.menus_dir)
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("hop_deadline_ms", &self.hop_deadline_ms)
            .field("pin_pepper", &self.pin_pepper.as_ref().map(|_| "<set>"))
            .field("data_key", &self.data_key.as_ref().map(|_| "<set>"))
            .field("pin_max_attempts", &self.pin_max_attempts)
            .field("pin_lock_secs", &self.pin_lock_secs)
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
    "MENUS_DIR",
    "SESSION_TTL_SECS",
    "HOP_DEADLINE_MS",
    "PIN_PEPPER",
    "DATA_KEY",
    "PIN_MAX_ATTEMPTS",
    "PIN_LOCK_SECS",
    "DEFAULT_REGION",
    "DEMO_SUBSCRIBERS",
    "CURRENCY",
    "LOG_FORMAT",
    "ADMIN_TOKEN",
    "SCREEN_BUDGETS",
];

/// Settings that passed validation, in the types the program uses.
#[derive(Clone, Debug)]
pub struct Config {
    pub settings: Settings,
    pub listen: SocketAddr,
    pub session_ttl: Duration,
    pub hop_deadline: Duration,
    pub region: Region,
    pub pin_pepper: String,
    /// The 32-byte key for personal data at rest.
    pub data_key: [u8; 32],
    pub pin_policy: PinPolicy,
    pub demo: bool,
    /// Screen budgets per channel (provider name), from SCREEN_BUDGETS.
    pub screen_budgets: std::collections::HashMap<String, crate::menu::Budget>,
}

/// When wrong PINs lock a subscriber's money operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinPolicy {
    pub max_attempts: u32,
    pub lock: Duration,
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
        let data_key = match (&self.data_key, demo) {
            (Some(hex), _) => parse_key(hex).unwrap_or_else(|| {
                problems.push(
                    "DATA_KEY must be 64 hex digits (32 bytes): generate one with `openssl rand -hex 32`"
                        .into(),
                );
                [0; 32]
            }),
            (None, true) => DEMO_DATA_KEY,
            (None, false) => {
                problems.push("DATA_KEY is not set: set it to 64 hex digits (`openssl rand -hex 32`) to encrypt personal data, or run `serve --demo`".into());
                [0; 32]
            }
        };
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
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Config {
            data_key,
            pin_policy: PinPolicy {
                max_attempts: self.pin_max_attempts,
                lock: Duration::from_secs(self.pin_lock_secs),
            },
            listen,
            session_ttl: Duration::from_secs(self.session_ttl_secs),
            hop_deadline: Duration::from_millis(self.hop_deadline_ms),
            region,
            pin_pepper,
            demo,
            screen_budgets,
            settings: self,
        })
    }
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
        assert_eq!(config.data_key, DEMO_DATA_KEY);
        assert_ne!(config.data_key, [0; 32]);
        assert_eq!(config.session_ttl, Duration::from_secs(180));
        let err = Settings::default().validate(None, false).unwrap_err();
        assert!(err.0[0].contains("PIN_PEPPER is not set"), "{err}");
        assert!(err.0[1].contains("DATA_KEY is not set"), "{err}");
        let production = Settings {
            pin_pepper: Some("p".repeat(32)),
            data_key: Some("0f".repeat(32)),
            ..Settings::default()
        };
        assert_eq!(production.validate(None, false).unwrap().data_key, [0x0f; 32]);
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
