//! The shipped Prometheus alert rules (`deploy/prometheus/alerts.yaml`) read as rules
//! files do, and they and the Grafana dashboard (`deploy/grafana/`) name only metrics
//! and labels the gateway exports, so that a renamed metric cannot leave an alert
//! silently watching nothing or a panel empty.

use std::collections::{BTreeMap, BTreeSet};
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

/// Every metric name the code registers (`counter!("…"`, `gauge!`, `histogram!`), with
/// the label keys its calls give it (`"channel" =>`).
fn exported() -> BTreeMap<String, BTreeSet<String>> {
    let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for kind in
                ["counter!(\"", "gauge!(\"", "histogram!(\"", "counter!(\n", "gauge!(\n", "histogram!(\n"]
            {
                // `describe_counter!` only describes: a metric must be recorded to count.
                for (at, _) in text.match_indices(kind).filter(|(at, _)| !text[..*at].ends_with("describe_"))
                {
                    let rest = text[at + kind.len()..].trim_start().trim_start_matches('"');
                    let Some(end) = rest.find('"') else { continue };
                    let name = &rest[..end];
                    if !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                        continue;
                    }
                    // The call's labels: up to where its handle is used or the statement ends.
                    let call = &rest[end..];
                    let call = &call[..[".increment(", ".record(", ".set(", ";"]
                        .iter()
                        .filter_map(|stop| call.find(stop))
                        .min()
                        .unwrap_or(call.len())];
                    let labels = names.entry(name.to_owned()).or_default();
                    for (at, _) in call.match_indices("\" =>") {
                        let key = &call[..at];
                        labels.insert(key[key.rfind('"').unwrap() + 1..].to_owned());
                    }
                }
            }
        }
    }
    names
}

/// The metric a word of a query names: itself, or a histogram's under its series
/// suffix; `None` for a word that is no metric of ours.
fn metric<'a>(word: &'a str, exported: &BTreeMap<String, BTreeSet<String>>) -> Option<&'a str> {
    if !(word.starts_with("ussd_") || word.starts_with("sms_") || word.starts_with("http_")) {
        return None;
    }
    Some(
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| word.strip_suffix(suffix).filter(|n| exported.contains_key(*n)))
            .unwrap_or(word),
    )
}

#[test]
fn the_alert_rules_name_only_metrics_the_gateway_exports() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yaml");
    let file: RulesFile = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let exported = exported();
    assert!(
        exported.contains_key("ussd_anomalies_total") && exported.contains_key("ussd_hop_duration_seconds")
    );
    assert_eq!(exported["ussd_hops_total"], BTreeSet::from(["channel".to_owned(), "outcome".to_owned()]));
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
            for name in words.filter_map(|w| metric(w, &exported)) {
                assert!(
                    exported.contains_key(name),
                    "{}: `{name}` is no metric the gateway exports",
                    rule.alert
                );
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

/// The label keys a query's selectors (`name{key="…"}`) and groupings (`by (a, b)`)
/// use, each with the metrics of the query it may belong to.
fn check_labels(expr: &str, exported: &BTreeMap<String, BTreeSet<String>>) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let metrics: Vec<&str> = expr.split(|c: char| !word(c)).filter_map(|w| metric(w, exported)).collect();
    // Selectors: the metric right before each `{`.
    for (at, _) in expr.match_indices('{') {
        let name = expr[..at].rsplit(|c: char| !word(c)).next().unwrap_or_default();
        let Some(name) = metric(name, exported) else { continue };
        let body = &expr[at + 1..at + expr[at..].find('}').ok_or("a selector is not closed")?];
        for matcher in body.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let key = matcher.split(['=', '!']).next().unwrap_or_default().trim();
            if !exported.get(name).is_some_and(|labels| labels.contains(key)) {
                return Err(format!("`{name}` has no label `{key}`"));
            }
        }
    }
    for (at, _) in expr.match_indices("by (") {
        let list = &expr[at + 4..at + 4 + expr[at + 4..].find(')').ok_or("a grouping is not closed")?];
        for key in list.split(',').map(str::trim) {
            let histogram = key == "le" && expr.contains("_bucket");
            if !histogram
                && !metrics.iter().any(|m| exported.get(*m).is_some_and(|labels| labels.contains(key)))
            {
                return Err(format!("no metric of the query has the label `{key}`"));
            }
        }
    }
    Ok(())
}

/// The dashboard imports as Grafana reads it (unique panel ids, every panel on the
/// chosen Prometheus), and every query, variable and legend names only what the
/// gateway exports.
#[test]
fn the_grafana_dashboard_queries_only_metrics_and_labels_the_gateway_exports() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/ussd-gateway.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let exported = exported();
    let mut ids = BTreeSet::new();
    let mut queried = BTreeSet::new();
    let panels = dashboard["panels"].as_array().unwrap();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "{title}: a panel id twice");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            for name in words.filter_map(|w| metric(w, &exported)) {
                assert!(exported.contains_key(name), "{title}: `{name}` is no metric the gateway exports");
                queried.insert(name.to_owned());
            }
            check_labels(expr, &exported).unwrap_or_else(|e| panic!("{title}: {e} in {expr}"));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(query) = variable["query"].as_str().and_then(|q| q.strip_prefix("label_values(")) else {
            continue;
        };
        let (name, label) = query.trim_end_matches(')').split_once(", ").unwrap();
        assert!(exported.get(name).is_some_and(|labels| labels.contains(label)), "variable {query}");
    }
    // What an operator opens it for: hops, latency, ops, each screen's funnel, SMS and
    // its breakers, the event and webhook backlog.
    for wanted in [
        "ussd_hops_total",
        "ussd_hop_duration_seconds",
        "ussd_ops_total",
        "ussd_screen_views_total",
        "ussd_screen_exits_total",
        "ussd_screen_timeouts_total",
        "ussd_screen_invalid_total",
        "sms_outbox_total",
        "sms_delivery_reports_total",
        "sms_breaker_open",
        "ussd_events_waiting",
        "ussd_webhook_deliveries_total",
    ] {
        assert!(queried.contains(wanted), "the dashboard leaves out {wanted}");
    }
}

#[test]
fn a_query_naming_a_label_a_metric_lacks_is_caught() {
    let exported = exported();
    assert!(check_labels(r#"sum by (channel) (rate(ussd_hops_total{channel="a"}[5m]))"#, &exported).is_ok());
    assert!(check_labels(r#"rate(ussd_hops_total{chanel="a"}[5m])"#, &exported).is_err());
    assert!(check_labels("sum by (provider) (rate(ussd_hops_total[5m]))", &exported).is_err());
    // A call written over several lines is read too.
    assert!(check_labels("sum by (reason) (rate(ussd_screen_closed_total[5m]))", &exported).is_ok());
    assert!(check_labels("sum by (le) (rate(ussd_hop_duration_seconds_bucket[5m]))", &exported).is_ok());
}
