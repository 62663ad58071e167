//! The USSD channels' settings and the gate every callback path shares, as written in
//! the config file, checked here where they are served.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::Callers;
use super::ussd::Provider;
use crate::menu::Budget;
use crate::problems::Problems;

/// How long after a reply a repeat of the same per-hop input, from a provider that
/// sends no hop counter, is taken for the provider's retry rather than the subscriber
/// typing the same answer again on the next screen (which takes longer than this).
/// Channels may set their own (`repeat_window_ms`).
pub const DEFAULT_REPEAT_WINDOW: Duration = Duration::from_secs(2);

/// Who may call a callback path, as written in the config file: the one section USSD
/// channels (`[[channels]]`) and SMS channels (`[[sms_channels]]`) share, flattened into
/// each so the file keeps its keys.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct GateSettings {
    /// Where the provider calls: `/ussd/<name>` or `/sms/<name>` when unset. SMS
    /// delivery reports arrive at `<path>[/<token>]/status`.
    pub path: Option<String>,
    /// A secret path segment: the provider calls `<path>/<token>`.
    pub token: Option<SecretString>,
    /// Addresses or CIDR blocks the provider calls from; any when empty.
    pub allow: Vec<String>,
    /// HTTP Basic credentials the provider sends.
    pub basic_user: Option<String>,
    pub basic_password: Option<SecretString>,
}

/// The gateway's own endpoints, which no channel may take.
const OWN_PATHS: [&str; 7] = ["/healthz", "/readyz", "/metrics", "/admin", "/demo", "/phone", "/sandbox"];

impl GateSettings {
    /// Checks the path (`default_path` when unset; against `taken` and the gateway's
    /// own endpoints), the secret token, the allowlist and the Basic credentials.
    pub fn validate(&self, default_path: String, taken: &[&str], problem: &mut dyn FnMut(String)) -> Callers {
        let path = self.path.clone().unwrap_or(default_path);
        if !path.starts_with('/') || path.ends_with('/') || path.contains(['{', '}', '*', '?', '#', ':']) {
            problem(format!("`path` `{path}` must start with `/`, not end with one, and hold no `{{}}*?#:`"));
        }
        if OWN_PATHS.iter().any(|p| path == *p || path.starts_with(&format!("{p}/"))) {
            problem(format!("`path` `{path}` is taken by the gateway's own endpoints"));
        }
        if taken.contains(&path.as_str()) {
            problem(format!("`path` `{path}` is used by another channel"));
        }
        let token = self.token.as_ref().map(ExposeSecret::expose_secret);
        let password = self.basic_password.as_ref().map(ExposeSecret::expose_secret);
        // The example configuration's secrets are public: refuse them where they were copied.
        if [token, password].iter().any(|s| s.is_some_and(|s| s.starts_with("replace-with"))) {
            problem("`token` or `basic_password` is still the example's placeholder: generate a secret (`openssl rand -hex 24`)".into());
        }
        if token.is_some_and(|t| {
            t.len() < 16 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }) {
            problem(
                "`token` must be at least 16 letters, digits, `-` or `_` (`openssl rand -hex 24`)".into(),
            );
        }
        let mut allow = Vec::new();
        for entry in &self.allow {
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
        let basic = match (&self.basic_user, password) {
            (Some(u), Some(p)) if !u.is_empty() && !u.contains(':') && p.len() >= 12 => {
                Some(SecretString::from(format!("{u}:{p}")))
            }
            (None, None) => None,
            _ => {
                problem("`basic_user` and `basic_password` go together; the user has no `:` and the password at least 12 characters".into());
                None
            }
        };
        Callers { path, token: self.token.clone(), allow, basic }
    }
}

/// One aggregator connection as written in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelSettings {
    /// Names the channel in metrics and logs (`hubtel-gh`).
    pub name: String,
    /// The wire format: africastalking, hubtel, hubtel-programmable, nalo, arkesel,
    /// infobip, cellulant, safaricom, airtel or generic.
    pub provider: String,
    /// Where the aggregator calls (`/ussd/<name>` when unset) and who may.
    #[serde(flatten)]
    pub gate: GateSettings,
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

/// A validated channel.
#[derive(Clone, Debug)]
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

/// What a channel gets for what it does not set.
#[derive(Clone, Copy, Debug)]
pub struct ChannelDefaults {
    pub deadline: Duration,
    pub per_msisdn_per_minute: u32,
}

/// Validates the declared channels and, with `demo`, adds one per provider at
/// `/ussd/<provider>` where no declared channel took the path or the name.
pub fn channels(
    declared: &[ChannelSettings],
    demo: bool,
    defaults: ChannelDefaults,
    problems: &mut Problems,
) -> Vec<ChannelSpec> {
    let mut specs: Vec<ChannelSpec> = Vec::new();
    let mut names = HashSet::new();
    for (i, c) in declared.iter().enumerate() {
        let at = if c.name.is_empty() { format!("channels[{i}]") } else { format!("channel `{}`", c.name) };
        let mut problem = |p: String| problems.push(format!("{at}: {p}"));
        if !names.insert(c.name.as_str()) {
            problem("another channel has this `name`; sessions and metrics are kept per name".into());
        }
        let taken: Vec<&str> = specs.iter().map(|s| s.callers.path.as_str()).collect();
        if let Some(spec) = channel(c, &taken, defaults, &mut problem) {
            specs.push(spec);
        }
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
                repeat_window: DEFAULT_REPEAT_WINDOW,
            });
        }
    } else if specs.is_empty() && problems.is_empty() {
        problems.push("no channels: declare each aggregator connection as a `[[channels]]` table in the config file (see README, Aggregators), or run `serve --demo` to answer every provider at /ussd/<provider>");
    }
    specs
}

/// One declared channel; none when its provider is unknown.
fn channel(
    c: &ChannelSettings,
    taken: &[&str],
    defaults: ChannelDefaults,
    problem: &mut dyn FnMut(String),
) -> Option<ChannelSpec> {
    if c.name.is_empty() || !c.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        problem("`name` must be set, with letters, digits, `-` and `_` only (e.g. hubtel-gh)".into());
    }
    let Some(provider) = Provider::from_name(&c.provider) else {
        let names: Vec<&str> = Provider::ALL.iter().map(|p| p.name()).collect();
        problem(format!("`provider` `{}` is not one of {}", c.provider, names.join(", ")));
        return None;
    };
    let callers = c.gate.validate(format!("/ussd/{}", c.name), taken, problem);
    let mut codes = Vec::new();
    for code in &c.codes {
        let body = code.trim().trim_start_matches('*').trim_end_matches('#');
        if body.is_empty() || !body.split('*').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
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
            DEFAULT_REPEAT_WINDOW
        }
        None => DEFAULT_REPEAT_WINDOW,
    };
    if c.per_msisdn_per_minute == Some(0) || c.per_second == Some(0) {
        problem("`per_msisdn_per_minute` and `per_second` must be at least 1 (leave `per_second` out for no limit)".into());
    }
    Some(ChannelSpec {
        name: c.name.clone(),
        provider,
        callers,
        codes,
        deadline,
        per_msisdn_per_minute: c.per_msisdn_per_minute.unwrap_or(defaults.per_msisdn_per_minute).max(1),
        per_second: c.per_second.filter(|n| *n > 0),
        repeat_window,
    })
}

/// SCREEN_BUDGETS: `provider=GSM7/UCS2,…`, the channels whose screens hold less than
/// the menus allow.
pub fn screen_budgets(text: &str, problems: &mut Problems) -> HashMap<String, Budget> {
    let mut budgets = HashMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.split_once('=').and_then(|(p, b)| Some((p.trim(), Budget::parse(b)?))) {
            Some((provider, _)) if Provider::from_name(provider).is_none() => problems.push(format!(
                "SCREEN_BUDGETS: `{provider}` is not a provider ({})",
                Provider::ALL.map(Provider::name).join(", ")
            )),
            Some((provider, budget)) => {
                budgets.insert(provider.to_owned(), budget);
            }
            None => problems.push(format!(
                "SCREEN_BUDGETS: `{entry}` is not `provider=GSM7/UCS2` with at least 40/20, e.g. africastalking=140/70"
            )),
        }
    }
    budgets
}
