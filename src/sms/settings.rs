//! The SMS settings as written in the config file — the provider account receipts go
//! out through (`[sms]`) and where providers call us (`[[sms_channels]]`) — checked
//! here, where they are used.

use std::num::NonZeroU32;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::SmsChannelSpec;
use super::codes::SmsRules;
use super::outbox::Policy;
use crate::channel::sms::{Account, Provider};
use crate::channel::{Callers, ChannelSpec, GateSettings};
use crate::domain::Currency;
use crate::problems::Problems;

/// Where one SMS provider calls us, as written in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsChannelSettings {
    /// Names the channel in metrics and logs.
    pub name: String,
    /// africastalking, twilio, infobip or vonage.
    pub provider: String,
    /// Where the provider calls (`/sms/<name>` when unset) and who may.
    #[serde(flatten)]
    pub gate: GateSettings,
    /// Twilio: the auth token that signs its callbacks (required). Vonage: the
    /// signature secret; when set, `sig` and `timestamp` are checked.
    pub signing_secret: Option<SecretString>,
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

/// The SMS provider account as written in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
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
    pub secret: Option<SecretString>,
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

/// A validated SMS provider and how the outbox worker uses it.
#[derive(Clone, Debug)]
pub struct SmsSpec {
    pub account: Account,
    pub timeout: Duration,
    pub policy: Policy,
}

/// What an SMS channel allows unless it says otherwise: KES 10,000 a movement, codes
/// good for two minutes, five wrong codes a day per number (one in 200,000 to guess one).
const SMS_RULES: SmsRules =
    SmsRules { max_amount: 10_000_00, code_ttl: Duration::from_secs(120), wrong_codes_per_day: 5 };

/// Messages a number may send a minute: a person texting, with room for a provider's
/// retries, far below what guessing one-time codes would need.
const SMS_PER_MSISDN_PER_MINUTE: u32 = 10;

/// Validates `[sms]`; with `demo` and no `[sms]`, the sink.
pub fn sms(
    declared: Option<&SmsSettings>,
    currency: Currency,
    demo: bool,
    problems: &mut Problems,
) -> Option<SmsSpec> {
    let sink = SmsSettings { provider: "sink".into(), ..SmsSettings::default() };
    let s = match declared {
        Some(declared) => declared,
        None if demo => &sink,
        None => return None,
    };
    let before = problems.len();
    let mut problem = |p: String| problems.push(format!("[sms]: {p}"));
    if s.provider == "sink" && !demo {
        problem(
            "`provider` `sink` keeps messages in memory and logs their text: it is for `--demo` only".into(),
        );
    }
    let Some(provider) = Provider::from_name(&s.provider).filter(|p| p.sends()) else {
        let names: Vec<&str> = Provider::ALL.iter().filter(|p| p.sends()).map(|p| p.name()).collect();
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
    if provider != Provider::Sink && !base_url.starts_with("https://") && !base_url.starts_with("http://") {
        problem(format!(
            "`base_url` `{base_url}` must start with https:// (or http:// for a local test server)"
        ));
    }
    let (needs_account, needs_secret) = provider.credentials();
    let mut credential = |name: &str, value: Option<&str>, what: Option<&str>| match (value, what) {
        (Some(v), Some(what)) if v.starts_with("replace-with") => {
            problem(format!("`{name}` is still the example's placeholder: set {what}"));
            String::new()
        }
        (Some(v), Some(_)) if !v.trim().is_empty() => v.trim().to_owned(),
        (_, Some(what)) => {
            problem(format!("`{name}` is required for {provider}: {what}"));
            String::new()
        }
        (v, None) => v.unwrap_or_default().to_owned(),
    };
    let account = credential("account", s.account.as_deref(), needs_account);
    let secret = SecretString::from(credential(
        "secret",
        s.secret.as_ref().map(ExposeSecret::expose_secret),
        needs_secret,
    ));
    let (policy, timeout) = outbox_policy(s, provider, currency, &mut problem);
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

/// How the outbox worker sends through the provider, and how long one call may take.
fn outbox_policy(
    s: &SmsSettings,
    provider: Provider,
    currency: Currency,
    problem: &mut dyn FnMut(String),
) -> (Policy, Duration) {
    let mut policy = Policy::new(NonZeroU32::MIN, currency);
    match s.segments_per_second.and_then(NonZeroU32::new) {
        Some(n) if n.get() <= 10_000 => policy.segments_per_second = n,
        None if s.segments_per_second.is_none() => {
            // A provider account's usual allowance; the sink holds no one back.
            let default = if provider == Provider::Sink { 10_000 } else { 10 };
            policy.segments_per_second = NonZeroU32::new(default).expect("not zero")
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
    (policy, timeout)
}

/// Validates the declared SMS channels (their paths apart from the USSD channels') and,
/// with `demo`, adds one per provider that calls back, at `/sms/<provider>`, unsigned.
pub fn sms_channels(
    declared: &[SmsChannelSettings],
    ussd: &[ChannelSpec],
    demo: bool,
    session_ttl_secs: u64,
    problems: &mut Problems,
) -> Vec<SmsChannelSpec> {
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
        let taken: Vec<&str> = ussd
            .iter()
            .map(|s| s.callers.path.as_str())
            .chain(specs.iter().map(|s| s.callers.path.as_str()))
            .collect();
        if let Some(spec) = sms_channel(c, &taken, demo, session_ttl_secs, &mut problem) {
            specs.push(spec);
        }
    }
    if demo {
        for provider in Provider::ALL.into_iter().filter(|p| p.calls_back()) {
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
                rules: SmsRules {
                    code_ttl: SMS_RULES.code_ttl.min(Duration::from_secs(session_ttl_secs)),
                    ..SMS_RULES
                },
                per_msisdn_per_minute: SMS_PER_MSISDN_PER_MINUTE,
            });
        }
    }
    specs
}

/// One declared SMS channel; none when its provider does not call back.
fn sms_channel(
    c: &SmsChannelSettings,
    taken: &[&str],
    demo: bool,
    session_ttl_secs: u64,
    problem: &mut dyn FnMut(String),
) -> Option<SmsChannelSpec> {
    let Some(provider) = Provider::from_name(&c.provider).filter(|p| p.calls_back()) else {
        let names: Vec<&str> = Provider::ALL.iter().filter(|p| p.calls_back()).map(|p| p.name()).collect();
        problem(format!("`provider` `{}` is not one of {}", c.provider, names.join(", ")));
        return None;
    };
    let callers = c.gate.validate(format!("/sms/{}", c.name), taken, problem);
    let signing_secret = c.signing_secret.clone().filter(|s| !s.expose_secret().trim().is_empty());
    if signing_secret.is_some() && !provider.signs_callbacks() {
        problem(format!(
            "`signing_secret` is for providers that sign their callbacks (twilio, vonage), not {provider}"
        ));
    }
    let public_url = c.public_url.as_ref().map(|u| u.trim_end_matches('/').to_owned());
    if provider == Provider::Twilio && (signing_secret.is_none() || public_url.is_none()) {
        problem("Twilio signs every callback: set `signing_secret` to the account's auth token and `public_url` to this gateway's address as Twilio calls it (https://…)".into());
    }
    if public_url.as_ref().is_some_and(|u| !u.starts_with("https://") && !u.starts_with("http://")) {
        problem("`public_url` must start with https://".into());
    }
    let rules = sms_rules(c, session_ttl_secs, problem);
    // Anyone who can reach an open callback can write as any subscriber.
    if !demo
        && callers.token.is_none()
        && callers.allow.is_empty()
        && callers.basic.is_none()
        && signing_secret.is_none()
    {
        problem("nothing proves a callback comes from the provider: set `token`, `allow`, Basic credentials or `signing_secret`".into());
    }
    Some(SmsChannelSpec {
        name: c.name.clone(),
        provider,
        callers,
        signing_secret,
        public_url,
        rules,
        per_msisdn_per_minute: c.per_msisdn_per_minute.unwrap_or(SMS_PER_MSISDN_PER_MINUTE).max(1),
    })
}

/// How the channel's conversations stand in for PIN screens (its limits on SMS movements
/// and one-time codes), and the check of its per-number message limit.
fn sms_rules(c: &SmsChannelSettings, session_ttl_secs: u64, problem: &mut dyn FnMut(String)) -> SmsRules {
    let mut rules = SMS_RULES;
    match c.max_amount_minor {
        Some(n) if n > 0 => rules.max_amount = n,
        Some(n) => problem(format!("`max_amount_minor` must be above 0 (got {n})")),
        None => {}
    }
    match c.code_ttl_secs {
        Some(secs) if (30..=session_ttl_secs).contains(&secs) => rules.code_ttl = Duration::from_secs(secs),
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
    rules
}
