//! The event settings — how long each stream may grow, how many events one claim
//! takes, the anomaly rules — checked here, where they are used.

use std::path::Path;

use super::anomalies::{self, Rule};
use crate::problems::Problems;

/// The event settings, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventsSpec {
    /// EVENT_STREAM_MAXLEN: about how many events each stream keeps (`XADD MAXLEN ~`).
    pub stream_max_len: u64,
    /// EVENT_RELAY_BATCH: the most events one claim publishes.
    pub batch: u32,
    /// ANOMALY_RULES: the detector's rules (the shipped ones unless a file is named).
    pub anomaly_rules: Vec<Rule>,
}

impl Default for EventsSpec {
    fn default() -> Self {
        let anomaly_rules = anomalies::parse(anomalies::SHIPPED).expect("the shipped rules are valid");
        EventsSpec { stream_max_len: 1_000_000, batch: 500, anomaly_rules }
    }
}

/// Checks the event settings; `rules` is ANOMALY_RULES, a file of rules.
pub fn validate(
    stream_max_len: u64,
    batch: u32,
    rules: Option<&Path>,
    problems: &mut Problems,
) -> EventsSpec {
    let anomaly_rules = match rules {
        None => EventsSpec::default().anomaly_rules,
        Some(path) => match std::fs::read_to_string(path) {
            Err(e) => {
                problems.push(format!("ANOMALY_RULES: cannot read {}: {e}", path.display()));
                Vec::new()
            }
            Ok(text) => anomalies::parse(&text).unwrap_or_else(|found| {
                for p in found {
                    problems.push(format!("ANOMALY_RULES ({}): {p}", path.display()));
                }
                Vec::new()
            }),
        },
    };
    if stream_max_len < 1_000 {
        problems.push(format!(
            "EVENT_STREAM_MAXLEN must be at least 1000 (got {stream_max_len}): a stream is the buffer consumers catch up from"
        ));
    }
    if !(1..=2_000).contains(&batch) {
        problems.push(format!("EVENT_RELAY_BATCH must be between 1 and 2000 (got {batch})"));
    }
    EventsSpec { stream_max_len, batch, anomaly_rules }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_and_nonsense_is_named() {
        let mut problems = Problems::new();
        let d = EventsSpec::default();
        assert_eq!(validate(d.stream_max_len, d.batch, None, &mut problems), d);
        assert!(problems.is_empty());
        validate(10, 0, Some(Path::new("/nonexistent/rules.toml")), &mut problems);
        let said = problems.into_vec().join("\n");
        for setting in ["EVENT_STREAM_MAXLEN", "EVENT_RELAY_BATCH", "ANOMALY_RULES: cannot read"] {
            assert!(said.contains(setting), "{said}");
        }
    }
}
