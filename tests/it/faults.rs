//! Dependencies going away mid-run and coming back: Redis and Postgres are reached
//! through a TCP proxy that the test cuts (dropping every connection and refusing new
//! ones) and restores. While cut, hops end politely within the deadline and `/readyz`
//! fails; once restored, the same process serves again without a restart.

use crate::common::proxy::{Proxy, spawn_behind};
use crate::common::{TestApp, main_menu, settings, unique_session};
use axum::http::StatusCode;
use sqlx::PgPool;
use ussd_gateway::config::Settings;

const AMINA: &str = "+254700000001";
const UNAVAILABLE: &str = "END Service unavailable, please try again";

fn quick() -> Settings {
    Settings { hop_deadline_ms: 1_000, ..settings() }
}

/// Dials until the gateway serves the main menu again, a bounded number of times:
/// each pooled connection that died with the cut fails one hop and is dropped with it,
/// and a Redis request after a failure waits for the reconnection.
async fn serves_again(app: &TestApp) {
    for _ in 0..40 {
        if app.at_hop(&unique_session(), AMINA, "").await == main_menu("Amina") {
            return;
        }
    }
    panic!("the gateway did not recover after its dependency came back");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn redis_going_away_and_coming_back(pool: PgPool) {
    let proxy = Proxy::redis().await;
    let app = spawn_behind(&pool, None, Some(&proxy), quick()).await;
    let s = unique_session();
    assert_eq!(app.at_hop(&s, AMINA, "").await, main_menu("Amina"));

    proxy.cut();
    assert_eq!(app.at_hop(&unique_session(), AMINA, "").await, UNAVAILABLE);
    assert_eq!(app.at_hop(&s, AMINA, "2").await, UNAVAILABLE);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.body);

    proxy.restore();
    serves_again(&app).await;
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn postgres_going_away_and_coming_back(pool: PgPool) {
    let proxy = Proxy::postgres(&pool).await;
    let app = spawn_behind(&pool, Some(&proxy), None, quick()).await;
    let s = unique_session();
    assert_eq!(app.at_hop(&s, AMINA, "").await, main_menu("Amina"));

    proxy.cut();
    // A menu hop needs only the session store: it goes on; the PIN check cannot.
    assert_eq!(app.at_hop(&s, AMINA, "2").await, "CON Enter your PIN to see your balance");
    assert_eq!(app.at_hop(&s, AMINA, "2*1234").await, UNAVAILABLE);
    assert_eq!(app.at_hop(&unique_session(), AMINA, "").await, UNAVAILABLE);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.body);

    proxy.restore();
    serves_again(&app).await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(app.journey(AMINA, "2*1234").await, "END Your balance is KES 1,000.00.");
}
