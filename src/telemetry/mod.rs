//! Logs (text or JSON, `RUST_LOG` filter), traces (OTLP, when configured) and
//! Prometheus metrics.

pub mod trace;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Installs the global subscriber: logs, `json` for machines and text for people, and
/// spans sent to `export`'s collector when there is one (the returned pipeline sends
/// the last of them when dropped). The log filter does not reach the spans: tracing
/// asks for spans at `debug`, which logs at `info` leave out.
pub fn init(json: bool, export: Option<&trace::Export>) -> Result<Option<trace::Exporting>, String> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn,sqlx=warn"));
    // A second init (tests) is harmless: the first subscriber stays.
    let Some(export) = export else {
        // Logs alone keep their filter global: a callsite it leaves out costs nothing.
        let builder = tracing_subscriber::fmt().with_env_filter(filter);
        let _ = if json { builder.json().try_init() } else { builder.try_init() };
        return Ok(None);
    };
    let logs: Box<dyn Layer<Registry> + Send + Sync> = if json {
        tracing_subscriber::fmt::layer().json().with_filter(filter).boxed()
    } else {
        tracing_subscriber::fmt::layer().with_filter(filter).boxed()
    };
    let (spans, exporting) = trace::layer::<Registry>(export)?;
    let _ = tracing_subscriber::registry().with(vec![logs, spans.boxed()]).try_init();
    Ok(Some(exporting))
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics() -> PrometheusHandle {
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

/// Handles of the metrics every hop updates, kept per thread. Finding a metric in the
/// registry builds its labels as owned strings and hashes them; `perf` put the metrics
/// crates at 1.35% of a browse hop's CPU (0.71% with the handles kept). Names come from
/// the configured channels and the menu bundle, so each map holds at most what the
/// registry itself never forgets.
#[derive(Default)]
struct Handles {
    channels: HashMap<String, ChannelHandles>,
    screens: HashMap<String, HashMap<String, ScreenHandles>>,
    ops: HashMap<(&'static str, &'static str), Counter>,
    /// Indexed by whether the read was from memory: [database, memory].
    profile_reads: [Option<Counter>; 2],
}

struct ChannelHandles {
    duration: Histogram,
    outcomes: Vec<(&'static str, Counter)>,
}

/// Each registered on first use: a series appears on `/metrics` only once it has
/// counted something, as it did before handles were kept.
#[derive(Default)]
struct ScreenHandles {
    views: Option<Counter>,
    exits: Option<Counter>,
    invalid: Option<Counter>,
}

thread_local! {
    static HANDLES: RefCell<Handles> = RefCell::default();
}

/// Runs `count` over this thread's handles once the recorder is installed. Before that
/// a handle would be a no-op kept for good, so the count goes to whatever recorder
/// the `metrics` facade has (none: dropped), as an uncached macro's would.
fn with_handles(count: impl FnOnce(&mut Handles)) {
    if HANDLE.get().is_some() {
        HANDLES.with_borrow_mut(count);
    } else {
        count(&mut Handles::default());
    }
}

/// One answered hop: its channel, its outcome (`HopKind::as_str`) and how long it took.
pub fn record_hop(channel: &str, outcome: &'static str, elapsed: Duration) {
    with_handles(|h| {
        let handles = entry(&mut h.channels, channel, || ChannelHandles {
            duration: metrics::histogram!("ussd_hop_duration_seconds", "channel" => channel.to_owned()),
            outcomes: Vec::new(),
        });
        handles.duration.record(elapsed.as_secs_f64());
        match handles.outcomes.iter().find(|(o, _)| *o == outcome) {
            Some((_, counter)) => counter.increment(1),
            None => {
                let counter = metrics::counter!("ussd_hops_total", "channel" => channel.to_owned(), "outcome" => outcome);
                counter.increment(1);
                handles.outcomes.push((outcome, counter));
            }
        }
    });
}

/// One op run: its name and outcome (`Outcome::as_str`, or `error` / `overran`).
pub fn record_op(op: &'static str, outcome: &'static str) {
    with_handles(|h| {
        h.ops
            .entry((op, outcome))
            .or_insert_with(|| metrics::counter!("ussd_ops_total", "op" => op, "outcome" => outcome))
            .increment(1);
    });
}

/// One read of who is dialling (`customer.profile`), from memory or from the database.
pub fn record_profile_read(from_memory: bool) {
    with_handles(|h| {
        let from = if from_memory { "memory" } else { "database" };
        count(
            &mut h.profile_reads[usize::from(from_memory)],
            || metrics::counter!("ussd_profile_reads_total", "from" => from),
        );
    });
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
    with_handles(|h| {
        let screens = entry(&mut h.screens, menu, HashMap::new);
        // The names stay literal in the macros: tests find the exported metrics there.
        let handles = screen(screens, shown);
        count(
            &mut handles.views,
            || metrics::counter!("ussd_screen_views_total", "menu" => menu.to_owned(), "screen" => shown.to_owned()),
        );
        if ended {
            count(
                &mut handles.exits,
                || metrics::counter!("ussd_screen_exits_total", "menu" => menu.to_owned(), "screen" => shown.to_owned()),
            );
        }
        for refused in refused_on {
            count(
                &mut screen(screens, refused).invalid,
                || metrics::counter!("ussd_screen_invalid_total", "menu" => menu.to_owned(), "screen" => refused.clone()),
            );
        }
    });
}

fn screen<'a>(screens: &'a mut HashMap<String, ScreenHandles>, name: &str) -> &'a mut ScreenHandles {
    entry(screens, name, ScreenHandles::default)
}

/// The value under `key`, made first if missing; the key is copied only then, where
/// `HashMap::entry` would copy it on every hop.
fn entry<'a, V>(map: &'a mut HashMap<String, V>, key: &str, make: impl FnOnce() -> V) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), make());
    }
    map.get_mut(key).expect("inserted above")
}

fn count(slot: &mut Option<Counter>, register: impl FnOnce() -> Counter) {
    slot.get_or_insert_with(register).increment(1);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `/metrics` that mention `marker`, a label value no other test uses.
    fn lines(marker: &str) -> Vec<String> {
        metrics()
            .render()
            .lines()
            .filter(|l| l.contains(marker) && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn kept_handles_count_every_hop_and_register_a_series_only_once_it_counts() {
        metrics();
        record_hop("kept-handles", "con", Duration::from_millis(2));
        record_hop("kept-handles", "con", Duration::from_millis(3));
        record_hop("kept-handles", "end", Duration::from_millis(4));
        record_screens("kept-menu", "main", false, &[]);
        record_screens("kept-menu", "main", true, &["amount".to_owned()]);
        record_screens("kept-menu", "amount", false, &["amount".to_owned()]);
        let hops = lines("kept-handles");
        assert!(
            hops.contains(&r#"ussd_hops_total{channel="kept-handles",outcome="con"} 2"#.to_owned()),
            "{hops:?}"
        );
        assert!(
            hops.contains(&r#"ussd_hops_total{channel="kept-handles",outcome="end"} 1"#.to_owned()),
            "{hops:?}"
        );
        assert!(
            hops.contains(&r#"ussd_hop_duration_seconds_count{channel="kept-handles"} 3"#.to_owned()),
            "{hops:?}"
        );
        let mut screens = lines("kept-menu");
        screens.sort();
        assert_eq!(
            screens,
            [
                r#"ussd_screen_exits_total{menu="kept-menu",screen="main"} 1"#,
                r#"ussd_screen_invalid_total{menu="kept-menu",screen="amount"} 2"#,
                r#"ussd_screen_views_total{menu="kept-menu",screen="amount"} 1"#,
                r#"ussd_screen_views_total{menu="kept-menu",screen="main"} 2"#,
            ],
            "the exits of a screen never ended on, and the refusals of one never refused, stay off the page"
        );
    }
}
