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

/// A session write that hangs after the money moved (a Redis that stops taking writes:
/// a master failing over, a partition) cannot turn the hop's "Sent" into "Service
/// unavailable": the write gives up in time for the reply to stand.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_session_write_that_hangs_after_the_money_moved_leaves_the_reply_true(pool: PgPool) {
    use crate::common::topology::Lone;
    use crate::common::{lock_waiters, spawn_on, until};
    let redis = tokio::task::spawn_blocking(Lone::start).await.unwrap();
    let app = spawn_on(pool.clone(), &redis.url(), Settings { hop_deadline_ms: 1_500, ..settings() }).await;
    let s = unique_session();
    for text in ["", "1", "1*0700000002", "1*0700000002*100"] {
        app.at_hop(&s, AMINA, text).await;
    }
    assert_eq!(app.at_hop(&s, AMINA, "1*0700000002*100*1").await, "CON Enter PIN to send KES 100.00");

    // The send waits on Amina's wallet, held by another transaction; meanwhile Redis
    // stops taking writes; then the send goes through.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query(
        "SELECT 1 FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = $1 FOR UPDATE",
    )
    .bind(AMINA)
    .execute(&mut *holder)
    .await
    .unwrap();
    let pin_hop = {
        let app = app.router.clone();
        let form = crate::common::at_form(&s, "*384#", AMINA, "1*0700000002*100*1*1234");
        tokio::spawn(async move {
            use tower::ServiceExt;
            let request = axum::http::Request::post("/ussd/africastalking")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(form))
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
            String::from_utf8(bytes.to_vec()).unwrap()
        })
    };
    until("the send to wait on the wallet", || async { lock_waiters(&pool).await > 0 }).await;
    assert!(redis.cli(&["CLIENT", "PAUSE", "10000", "WRITE"]).contains("OK"));
    holder.rollback().await.unwrap();

    let told = pin_hop.await.unwrap();
    redis.cli(&["CLIENT", "UNPAUSE"]);
    assert!(told.starts_with("END Sent KES 100.00"), "the money moved, and the subscriber was told: {told}");
    let posted: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transfers WHERE kind = 'p2p' AND status = 'posted'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(posted, 1);
}
