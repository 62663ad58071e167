//! Anomaly rules as data (`deploy/anomaly-rules.toml` is the shipped set): velocity
//! limits over a window on what an account pays out and to how many payees, and on
//! how many events (PIN lockouts, wrong one-time codes) an account or a channel has.
//! The detector (`detect.rs`) applies them to the event stream.

pub mod detect;

use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;

use super::tail::glob;
use crate::domain::shape;

/// The shipped rules, used when ANOMALY_RULES names no file.
pub const SHIPPED: &str = include_str!("../../../deploy/anomaly-rules.toml");

/// What a rule measures over its window.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// What the account paid out, amount and fee, in minor units.
    Outflow,
    /// How many different accounts it paid.
    DistinctPayees,
    /// How many of the events there were.
    Events,
    /// How many different accounts they were about.
    DistinctAccounts,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Outflow => "outflow",
            Kind::DistinctPayees => "distinct_payees",
            Kind::Events => "events",
            Kind::DistinctAccounts => "distinct_accounts",
        }
    }

    /// Whether it measures payments, and so counts only the paying side of an event.
    fn pays(self) -> bool {
        matches!(self, Kind::Outflow | Kind::DistinctPayees)
    }
}

/// The event types that name the channel they came through.
pub const CHANNEL_TYPES: &[&str] = &["pin.locked", "otp.failed"];

/// Whose window an event falls in.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// The account's it is numbered for.
    #[default]
    Account,
    /// The channel's it came through (events of PINs and codes name one).
    Channel,
}

impl By {
    pub fn name(self) -> &'static str {
        match self {
            By::Account => "account",
            By::Channel => "channel",
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub kind: Kind,
    #[serde(default)]
    pub by: By,
    pub window_secs: u32,
    pub threshold: i64,
    /// The event types it counts (for payments, the payer's side of each).
    pub types: Vec<String>,
}

impl Rule {
    /// Whether the rule counts an event of type `kind` with `data`: one of its types,
    /// on the paying side for a payment rule, naming a channel for a channel's rule.
    pub fn counts(&self, kind: &str, data: &Value) -> bool {
        (!self.kind.pays() || data["direction"] == "debit")
            && (self.by == By::Account || data["channel"].is_string())
            && self.types.iter().any(|t| glob(t, kind))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<Rule>,
}

/// Reads and checks rules written as `deploy/anomaly-rules.toml`; every problem, named
/// with the rule it is in.
pub fn parse(text: &str) -> Result<Vec<Rule>, Vec<String>> {
    let file: RuleFile = Figment::from(Toml::string(text)).extract().map_err(|e| {
        e.into_iter()
            .map(|e| format!("{e} (see deploy/anomaly-rules.toml for the format)"))
            .collect::<Vec<_>>()
    })?;
    let mut problems = Vec::new();
    let mut names = std::collections::HashSet::new();
    for rule in &file.rule {
        let name = &rule.name;
        if name.is_empty() || name.len() > 40 || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            problems.push(format!("rule `{name}`: a name is 1 to 40 lower-case letters or `_`"));
        }
        if !names.insert(name) {
            problems.push(format!("rule `{name}` is written twice"));
        }
        if !(60..=31 * 86_400).contains(&rule.window_secs) {
            problems
                .push(format!("rule `{name}`: window_secs must be 60 to 2678400 (got {})", rule.window_secs));
        }
        if rule.threshold < 1 {
            problems.push(format!("rule `{name}`: threshold must be at least 1 (got {})", rule.threshold));
        }
        if rule.kind == Kind::DistinctAccounts && rule.by == By::Account {
            problems.push(format!(
                "rule `{name}`: distinct_accounts counts the accounts of a channel: add by = \"channel\""
            ));
        }
        if rule.by == By::Channel && rule.kind.pays() {
            problems.push(format!(
                "rule `{name}`: a payment names no channel: by = \"channel\" takes kind = \"events\" or \"distinct_accounts\""
            ));
        }
        if rule.by == By::Channel && !rule.types.iter().all(|t| CHANNEL_TYPES.iter().any(|c| glob(t, c))) {
            problems.push(format!(
                "rule `{name}`: by = \"channel\" counts only events that name one: {CHANNEL_TYPES:?} (got {:?})",
                rule.types
            ));
        }
        if rule.types.is_empty() || rule.types.iter().any(|t| !shape::EVENT_TYPE.fits(t)) {
            problems.push(format!(
                "rule `{name}`: types must list event types such as `transfer.posted` (got {:?})",
                rule.types
            ));
        }
    }
    if problems.is_empty() { Ok(file.rule) } else { Err(problems) }
}

/// The latest anomalies, newest first, with the number of the customer whose account
/// it is (fraud teams call them).
pub async fn list(pool: &PgPool, limit: i64) -> Result<Value, sqlx::Error> {
    let rows = sqlx::query_scalar!(
        r#"SELECT jsonb_build_object(
                  'anomaly', anomaly_ref(a.id), 'rule', a.rule, 'account', account_ref(a.account_id),
                  'kind', ac.kind, 'msisdn', c.msisdn, 'observed', a.observed, 'threshold', a.threshold,
                  'window_secs', a.window_secs, 'trigger', a.trigger, 'channel', a.channel,
                  'detected_at', a.detected_at) AS "anomaly!"
             FROM anomalies a JOIN accounts ac ON ac.id = a.account_id
             LEFT JOIN customers c ON c.id = ac.customer_id
            ORDER BY a.id DESC LIMIT $1"#,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(json!({ "anomalies": rows }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_are_the_kenyan_guideline() {
        let rules = parse(SHIPPED).unwrap();
        let daily = rules.iter().find(|r| r.name == "daily_outflow").unwrap();
        assert_eq!((daily.kind, daily.window_secs, daily.threshold), (Kind::Outflow, 86_400, 100_000_00));
        let weekly = rules.iter().find(|r| r.name == "weekly_outflow").unwrap();
        assert_eq!((weekly.window_secs, weekly.threshold), (604_800, 300_000_00));
        let (debit, credit) = (json!({ "direction": "debit" }), json!({ "direction": "credit" }));
        assert!(daily.counts("transfer.posted", &debit));
        assert!(!daily.counts("transfer.posted", &credit) && !daily.counts("cash_in.posted", &debit));
        let lockouts = rules.iter().find(|r| r.name == "pin_lockouts_on_a_channel").unwrap();
        assert_eq!((lockouts.kind, lockouts.by), (Kind::DistinctAccounts, By::Channel));
        assert!(lockouts.counts("pin.locked", &json!({ "channel": "hubtel-gh" })));
        assert!(!lockouts.counts("pin.locked", &json!({ "channel": null })), "no channel, no window");
        let codes = rules.iter().find(|r| r.name == "failed_codes_on_a_channel").unwrap();
        assert!(codes.counts("otp.failed", &json!({ "channel": "sms:at-ke" })));
    }

    #[test]
    fn bad_rules_are_named() {
        let text = r#"
            [[rule]]
            name = "Big"
            kind = "outflow"
            window_secs = 5
            threshold = 0
            types = []
            [[rule]]
            name = "x"
            kind = "sideways"
            window_secs = 60
            threshold = 1
            types = ["transfer.posted"]
        "#;
        let problems = parse(text).unwrap_err().join("\n");
        assert!(problems.contains("sideways"), "{problems}");
        let text = r#"
            [[rule]]
            name = "Big"
            kind = "outflow"
            window_secs = 5
            threshold = 0
            types = []
        "#;
        let problems = parse(text).unwrap_err().join("\n");
        for part in ["rule `Big`: a name", "window_secs", "threshold", "types"] {
            assert!(problems.contains(part), "{part}: {problems}");
        }
        let text = r#"
            [[rule]]
            name = "spread"
            kind = "distinct_accounts"
            window_secs = 60
            threshold = 2
            types = ["pin.locked"]
        "#;
        let problems = parse(text).unwrap_err().join("\n");
        for part in ["rule `spread`", "by = \"channel\""] {
            assert!(problems.contains(part), "{part}: {problems}");
        }
        let text = r#"
            [[rule]]
            name = "farm"
            kind = "outflow"
            by = "channel"
            window_secs = 60
            threshold = 2
            types = ["transfer.posted"]
        "#;
        let problems = parse(text).unwrap_err().join("\n");
        for part in ["a payment names no channel", "counts only events that name one"] {
            assert!(problems.contains(part), "{part}: {problems}");
        }
    }
}
