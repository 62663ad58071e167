//! Logs (text or JSON, `RUST_LOG` filter) and Prometheus metrics.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs the global log subscriber; `json` for machines, text for people.
pub fn init_logs(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("ussd_hop_duration_seconds".into()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                )
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (embedding, tests): then ours
            // still renders what it was given, the global one gets the rest.
            let _ = metrics::set_global_recorder(recorder);
            metrics::describe_counter!("ussd_hops_total", "USSD hops answered, by channel and outcome");
            metrics::describe_histogram!("ussd_hop_duration_seconds", "Time to answer a USSD hop");
            metrics::describe_counter!("ussd_ops_total", "Ops run, by op and outcome");
            metrics::describe_counter!(
                "ussd_ops_unconfirmed_total",
                "Money ops that overran their hop and then failed, crashed or lost their notice: the subscriber awaits an SMS that will not come"
            );
            metrics::describe_counter!("ussd_screen_views_total", "Screens shown, by menu and screen");
            metrics::describe_counter!(
                "ussd_screen_invalid_total",
                "Inputs a screen refused, by menu and screen"
            );
            metrics::describe_counter!(
                "ussd_screen_exits_total",
                "Sessions that ended on a screen, by menu and screen"
            );
            metrics::describe_counter!(
                "ussd_screen_timeouts_total",
                "Sessions left waiting on a screen past the session lifetime, by menu and screen"
            );
            metrics::describe_gauge!(
                "ussd_sessions_waiting",
                "Sessions this process last answered with a screen that waits, as of the last sweep"
            );
            metrics::describe_counter!(
                "ussd_screen_untracked_total",
                "Screens left waiting that the timeout count did not follow: the process already followed 100,000"
            );
            metrics::describe_counter!(
                "ussd_screen_closed_total",
                "Sessions an aggregator reported closed while they waited on a screen, by reason"
            );
            metrics::describe_counter!(
                "ussd_send_groups_total",
                "Groups of sends posted in one transaction (GROUP_POSTING), by result: posted, failed (refused, then posted send by send) or lost (the answer lost; each send may have moved)"
            );
            metrics::describe_counter!(
                "ussd_send_group_sends_total",
                "Sends gathered into groups; divided by ussd_send_groups_total, the mean group size"
            );
            metrics::describe_counter!(
                "ussd_profile_reads_total",
                "Profiles of who is dialling read, by where from: memory (PROFILE_CACHE_MAX) or database (not kept, or the listener for changes is down)"
            );
            metrics::describe_counter!(
                "ussd_rejected_total",
                "Aggregator calls refused or answered with a polite END, by channel and reason"
            );
            handle
        })
        .clone()
}

/// One answered hop: its channel, its outcome (`HopKind::as_str`) and how long it took.
pub fn record_hop(channel: &str, outcome: &'static str, elapsed: Duration) {
    metrics::counter!("ussd_hops_total", "channel" => channel.to_owned(), "outcome" => outcome).increment(1);
    metrics::histogram!("ussd_hop_duration_seconds", "channel" => channel.to_owned())
        .record(elapsed.as_secs_f64());
}

/// A session an aggregator reported closed while it waited on `screen`, for `reason`
/// (`CloseReason::as_str`).
pub fn record_close(menu: &str, screen: &str, reason: &'static str) {
    metrics::counter!(
        "ussd_screen_closed_total",
        "menu" => menu.to_owned(),
        "screen" => screen.to_owned(),
        "reason" => reason
    )
    .increment(1);
}

/// Funnel metrics of one answered hop: the screen shown, where it ended, what was refused.
pub fn record_screens(menu: &str, shown: &str, ended: bool, refused_on: &[String]) {
    let menu = menu.to_owned();
    metrics::counter!("ussd_screen_views_total", "menu" => menu.clone(), "screen" => shown.to_owned())
        .increment(1);
    if ended {
        metrics::counter!("ussd_screen_exits_total", "menu" => menu.clone(), "screen" => shown.to_owned())
            .increment(1);
    }
    for screen in refused_on {
        metrics::counter!("ussd_screen_invalid_total", "menu" => menu.clone(), "screen" => screen.clone())
            .increment(1);
    }
}

/// Hides the password in a URL so it can be printed; for NATS, a lone token too
/// (`nats://s3cret@host` authenticates with the token alone); for Sentinels, the
/// `sentinel_password` in the query.
pub fn redact_url(url: &str) -> String {
    let hidden;
    let url = match url.find("sentinel_password=") {
        Some(at) => {
            let from = at + "sentinel_password=".len();
            let to = url[from..].find('&').map_or(url.len(), |n| from + n);
            hidden = format!("{}***{}", &url[..from], &url[to..]);
            hidden.as_str()
        }
        None => url,
    };
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None if matches!(&url[..scheme], "nats" | "tls") => {
                    format!("{}***{}", &url[..scheme + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
