//! The shipped Prometheus alert rules (`deploy/prometheus/alerts.yaml`) read as rules
//! files do, and name only metrics the gateway exports, so that a renamed metric
//! cannot leave an alert silently watching nothing.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    groups: Vec<Group>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    name: String,
    rules: Vec<Alert>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Alert {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    pending: Option<String>,
    labels: std::collections::BTreeMap<String, String>,
    annotations: std::collections::BTreeMap<String, String>,
}

/// Every metric name the code registers (`counter!("…"`, `gauge!`, `histogram!`).
fn exported() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for kind in ["counter!(\"", "gauge!(\"", "histogram!(\""] {
                for (at, _) in text.match_indices(kind) {
                    let rest = &text[at + kind.len()..];
                    names.insert(rest[..rest.find('"').unwrap()].to_owned());
                }
            }
        }
    }
    names
}

#[test]
fn the_alert_rules_name_only_metrics_the_gateway_exports() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yaml");
    let file: RulesFile = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let exported = exported();
    assert!(exported.contains("ussd_anomalies_total") && exported.contains("ussd_hop_duration_seconds"));
    let mut alerts = BTreeSet::new();
    for group in &file.groups {
        assert!(!group.rules.is_empty(), "{}", group.name);
        for rule in &group.rules {
            assert!(alerts.insert(rule.alert.clone()), "{} twice", rule.alert);
            assert!(["warning", "critical"].contains(&rule.labels["severity"].as_str()), "{}", rule.alert);
            assert!(rule.annotations.contains_key("summary"), "{}", rule.alert);
            if let Some(pending) = &rule.pending {
                let (number, unit) = pending.split_at(pending.len() - 1);
                assert!(
                    number.parse::<u32>().is_ok() && "smh".contains(unit),
                    "{}: for {pending}",
                    rule.alert
                );
            }
            let words = rule.expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            for word in
                words.filter(|w| w.starts_with("ussd_") || w.starts_with("sms_") || w.starts_with("http_"))
            {
                let name = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| word.strip_suffix(suffix).filter(|n| exported.contains(*n)))
                    .unwrap_or(word);
                assert!(exported.contains(name), "{}: `{word}` is no metric the gateway exports", rule.alert);
            }
        }
    }
    for wanted in [
        "UssdAnomalyDetected",
        "UssdHopErrorRate",
        "UssdHopLatencyP99",
        "UssdSmsOutboxBacklog",
        "UssdEventBacklog",
        "UssdSmsBreakerOpen",
    ] {
        assert!(alerts.contains(wanted), "{wanted}");
    }
}

/// The PrometheusRule of `deploy/kubernetes` carries the same groups as the rules file,
/// so that a rule changed in one is not left behind in the other.
#[test]
fn the_kubernetes_prometheus_rule_holds_the_same_alerts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    let file: serde_json::Value = serde_saphyr::from_str(&read("deploy/prometheus/alerts.yaml")).unwrap();
    let rule: serde_json::Value =
        serde_saphyr::from_str(&read("deploy/kubernetes/base/prometheusrule.yaml")).unwrap();
    assert_eq!(rule["kind"], "PrometheusRule");
    assert!(file["groups"].as_array().is_some_and(|g| !g.is_empty()));
    assert_eq!(rule["spec"]["groups"], file["groups"]);
}
