//! The load generator against a real gateway on loopback: its journeys pass every
//! screen check, including a dropped journey's resume offer, which it declines.

use std::time::Duration;

use crate::common;
use crate::common::*;
use sqlx::PgPool;
use ussd_gateway::config::Settings;
use ussd_gateway::loadtest::{Options, run};

/// Serves the app on a loopback port: its URL, and the server (abort it when done).
async fn listen(app: &TestApp) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (url, tokio::spawn(axum::serve(listener, app.router.clone()).into_future()))
}

/// One closed-loop client walking `mix` as Amina or Brian for `duration`, every screen checked.
fn one_client(url: String, mix: &str, duration: Duration) -> Options {
    Options {
        url,
        code: "*384#".into(),
        mix: mix.parse().unwrap(),
        concurrency: 1,
        rate: None,
        duration,
        warmup: Duration::ZERO,
        subscribers: 2,
        pin: "1234".into(),
        amount: 10,
        check: true,
        progress: false,
    }
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn send_journeys_decline_a_resume_offer_and_complete(pool: PgPool) {
    // Two subscribers making a few dozen journeys in a second and a half: far past the
    // rate a person could, so the per-number limit is lifted for this run.
    let settings = Settings { rate_per_msisdn_per_minute: 1_000_000, ..common::settings() };
    let app = spawn_with(pool.clone(), Store::Redis, settings).await;
    let (url, server) = listen(&app).await;

    // Amina dropped a transfer at the amount: her next dial is offered it back (the
    // generator draws her or Brian for each of its few dozen journeys).
    let s = unique_session();
    for text in ["", "1", "1*0700000002"] {
        app.at_hop(&s, "+254700000001", text).await;
    }
    let report = run(one_client(url, "send", Duration::from_millis(1500))).await.unwrap();
    server.abort();
    assert_eq!(report.all_hops.errors, 0, "{:?}", report.all_hops.first_error);
    assert_eq!(report.steps["resume.offered"].count, 1);
    assert_eq!(report.steps["resume.declined"].count, 1);
    assert!(report.transfers_per_second > 0.0);
    // Every hop is in the timeline, in the second it was sent.
    assert!(report.timeline.len() >= 2, "{:?}", report.timeline);
    assert_eq!(report.timeline.iter().map(|s| s.hops).sum::<u64>(), report.all_hops.count);
    assert!(report.timeline.iter().all(|s| s.max_ms >= s.p99_ms && s.p99_ms >= s.p50_ms));
    let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers WHERE kind = 'p2p'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(sent >= 1, "the journeys moved money");
}

/// Against the default per-number limit, a load of two subscribers measures the limiter:
/// the refusals are counted and named, and none of them counts as throughput.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn rate_limit_refusals_are_reported_and_never_count_as_throughput(pool: PgPool) {
    let settings = Settings { rate_per_msisdn_per_minute: 3, ..common::settings() };
    let app = spawn_with(pool.clone(), Store::Redis, settings).await;
    let (url, server) = listen(&app).await;
    let report = run(one_client(url, "browse", Duration::from_millis(500))).await.unwrap();
    server.abort();
    // Three hops a minute for each of the two numbers pass; every other is refused.
    let hops = report.all_hops.count;
    assert!(report.refused > 0 && report.refused + 6 >= hops, "{} refused of {hops}", report.refused);
    assert_eq!(report.all_hops.errors, report.refused, "a refusal is an error, and nothing else failed");
    let answered = (report.hops_per_second * report.seconds).round() as u64;
    assert_eq!(answered, hops - report.all_hops.errors, "only hops answered as expected count");
    let first = report.steps["browse.dial"].first_error.as_deref().unwrap_or_default();
    assert!(first.starts_with("refused by the rate limit"), "{first}");
}
