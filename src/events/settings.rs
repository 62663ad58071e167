//! The event settings — how long each stream may grow, how many events one claim
//! takes, where NATS is, the anomaly rules — checked here, where they are used.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::anomalies::{self, Rule};
use super::nats::NatsTarget;
use crate::problems::Problems;
use crate::telemetry::redact_url;

/// The event settings, checked.
#[derive(Clone, Debug)]
pub struct EventsSpec {
    /// EVENT_STREAM_MAXLEN: about how many events each stream keeps (`XADD MAXLEN ~`).
    pub stream_max_len: u64,
    /// EVENT_RELAY_BATCH: the most events one claim publishes.
    pub batch: u32,
    /// NATS_URL, NATS_STREAM, NATS_SUBJECTS: JetStream as well, when the URL is set.
    pub nats: Option<NatsTarget>,
    /// ANOMALY_RULES: the detector's rules (the shipped ones unless a file is named).
    pub anomaly_rules: Vec<Rule>,
}

impl Default for EventsSpec {
    fn default() -> Self {
        let anomaly_rules = anomalies::parse(anomalies::SHIPPED).expect("the shipped rules are valid");
        EventsSpec { stream_max_len: 1_000_000, batch: 500, nats: None, anomaly_rules }
    }
}

/// The event settings as declared.
pub struct EventsDeclared<'a> {
    pub stream_max_len: u64,
    pub batch: u32,
    /// ANOMALY_RULES: a file of rules.
    pub rules: Option<&'a Path>,
    pub nats_url: Option<&'a SecretString>,
    pub nats_stream: &'a str,
    pub nats_subjects: &'a str,
}

/// Checks the event settings.
pub fn validate(declared: &EventsDeclared<'_>, problems: &mut Problems) -> EventsSpec {
    let EventsDeclared { stream_max_len, batch, rules, .. } = *declared;
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
    let nats = nats(declared, problems);
    EventsSpec { stream_max_len, batch, nats, anomaly_rules }
}

fn nats(declared: &EventsDeclared<'_>, problems: &mut Problems) -> Option<NatsTarget> {
    let url = declared.nats_url?.expose_secret();
    let (stream, subjects) = (declared.nats_stream, declared.nats_subjects);
    if !["nats://", "tls://"].iter().any(|scheme| url.starts_with(scheme)) {
        problems.push(format!(
            "NATS_URL `{}` must start with nats:// or tls:// (e.g. nats://127.0.0.1:4222), or be unset",
            redact_url(url)
        ));
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if stream.is_empty() || stream.len() > 64 || !stream.chars().all(name_char) {
        problems.push(format!(
            "NATS_STREAM `{stream}` must be 1 to 64 letters, digits, `_` or `-` (e.g. USSD_EVENTS)"
        ));
    }
    if subjects.len() > 64
        || subjects.split('.').any(|token| token.is_empty() || !token.chars().all(name_char))
    {
        problems.push(format!(
            "NATS_SUBJECTS `{subjects}` must be at most 64 characters of dot-separated tokens of letters, digits, `_` or `-` (e.g. ussd.events): each family is published under it"
        ));
    }
    Some(NatsTarget {
        url: url.to_owned().into(),
        stream: stream.to_owned(),
        subjects: subjects.to_owned(),
        max_len: declared.stream_max_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared<'a>(url: Option<&'a SecretString>, rules: Option<&'a Path>) -> EventsDeclared<'a> {
        let d = EventsSpec::default();
        EventsDeclared {
            stream_max_len: d.stream_max_len,
            batch: d.batch,
            rules,
            nats_url: url,
            nats_stream: "USSD_EVENTS",
            nats_subjects: "ussd.events",
        }
    }

    #[test]
    fn the_defaults_pass_and_nonsense_is_named() {
        let mut problems = Problems::new();
        let d = EventsSpec::default();
        let spec = validate(&declared(None, None), &mut problems);
        assert_eq!(
            (spec.stream_max_len, spec.batch, &spec.anomaly_rules),
            (d.stream_max_len, d.batch, &d.anomaly_rules)
        );
        assert!(problems.is_empty() && spec.nats.is_none());
        let url = SecretString::from("nats://127.0.0.1:4222");
        let nats = validate(&declared(Some(&url), None), &mut problems).nats.unwrap();
        assert_eq!((nats.stream.as_str(), nats.subjects.as_str()), ("USSD_EVENTS", "ussd.events"));
        assert!(problems.is_empty());

        let url = SecretString::from("http://user:secret@nats:4222");
        let nonsense = EventsDeclared {
            stream_max_len: 10,
            batch: 0,
            nats_stream: "USSD EVENTS",
            nats_subjects: "ussd..events",
            ..declared(Some(&url), Some(Path::new("/nonexistent/rules.toml")))
        };
        validate(&nonsense, &mut problems);
        let said = problems.into_vec().join("\n");
        for setting in [
            "EVENT_STREAM_MAXLEN",
            "EVENT_RELAY_BATCH",
            "ANOMALY_RULES: cannot read",
            "NATS_URL",
            "NATS_STREAM",
            "NATS_SUBJECTS",
        ] {
            assert!(said.contains(setting), "{said}");
        }
        assert!(!said.contains("secret"), "{said}");
    }
}
