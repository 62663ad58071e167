//! Reads that may lag, on a real streaming replica (`DATABASE_READ_URL`): a primary of
//! the test's own and a replica made by `pg_basebackup -R`. Statements and the admin
//! API's views go to the replica once it has replayed what the primary had committed;
//! a replica behind or away sends them to the primary, and `/readyz` says so. A send
//! always shows in the statement that follows it.

use axum::http::StatusCode;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use ussd_gateway::admin;
use ussd_gateway::app;
use ussd_gateway::money::{PinHasher, seed_demo};
use ussd_gateway::session::{MemoryStore, SessionStore};

use crate::common::replica::Pair;
use crate::common::{TestApp, settings, until};

const AMINA: &str = "+254700000001";

/// Whether the replica has replayed everything the primary has written by now.
async fn replayed(primary: &PgPool, replica: &PgPool) -> bool {
    let written: String =
        sqlx::query_scalar("SELECT pg_current_wal_lsn()::text").fetch_one(primary).await.unwrap();
    sqlx::query_scalar::<_, Option<bool>>("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn")
        .bind(written)
        .fetch_one(replica)
        .await
        .is_ok_and(|done| done == Some(true))
}

fn counts(app: &TestApp) -> (u64, u64) {
    app.state.gateway.money().replica().expect("the gateway has a replica").counts()
}

#[tokio::test]
async fn lagging_reads_use_a_replica_only_once_it_has_caught_up() {
    let mut pair = tokio::task::spawn_blocking(Pair::start).await.unwrap();
    let pool = app::connect_database(&pair.primary.url("ussd_gateway"), 4).await.unwrap();
    let config = settings().validate(None, true).unwrap();
    seed_demo(&pool, &PinHasher::new(config.money.pin_pepper.expose_secret().as_bytes()), "KES", 10)
        .await
        .unwrap();
    let replica_url = pair.replica.url("ussd_gateway");
    // The database was made on the primary after the copy: the replica replays it.
    until("the replica has the database", || async { PgPool::connect(&replica_url).await.is_ok() }).await;
    let watch = PgPool::connect(&replica_url).await.unwrap();
    let state = app::build_state_with(
        pool.clone(),
        Some(app::connect_replica(&replica_url, 4).unwrap()),
        SessionStore::Memory(MemoryStore::new()),
        app::load_menus(&config).unwrap(),
        &config,
    );
    let app = TestApp::new(state, config, pool.clone());
    let token = admin::create(&pool, "desk", &["customers:read".into()]).await.unwrap();

    let customer = format!("/admin/customers/{AMINA}");
    // Caught up: the statement is read on the replica, and shows the send. (The
    // gateway's own workers write to the primary meanwhile, so "caught up" is waited
    // for rather than assumed.)
    assert!(app.journey(AMINA, "1*0700000002*100*1*1234").await.starts_with("END Sent KES 100.00"));
    until("the replica replays the send", || replayed(&pool, &watch)).await;
    until("a statement is read on the replica", || async {
        let before = counts(&app).0;
        let statement = app.journey(AMINA, "3*1234").await;
        assert!(statement.contains("-100.00"), "{statement}");
        counts(&app).0 > before
    })
    .await;
    until("the admin view is read on the replica", || async {
        let before = counts(&app).0;
        let (status, body) = app.admin("GET", &customer, Some(&token), None, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        counts(&app).0 > before
    })
    .await;

    // Behind (replay paused): the next send still shows at once, read on the primary.
    sqlx::query("SELECT pg_wal_replay_pause()").execute(&watch).await.unwrap();
    let (on_replica, on_primary) = counts(&app);
    assert!(app.journey(AMINA, "1*0700000002*50*1*1234").await.starts_with("END Sent KES 50.00"));
    let statement = app.journey(AMINA, "3*1234").await;
    assert!(statement.contains("-50.00") && statement.contains("-100.00"), "{statement}");
    let (status, body) = app.admin("GET", &customer, Some(&token), None, None).await;
    assert_eq!(status, StatusCode::OK);
    let paid = body["wallet"]["balance"].as_i64().unwrap();
    let (replica_now, primary_now) = counts(&app);
    assert_eq!(replica_now, on_replica, "a replica behind serves nothing");
    assert_eq!(primary_now, on_primary + 2, "the statement and the view, on the primary");
    sqlx::query("SELECT pg_wal_replay_resume()").execute(&watch).await.unwrap();
    until("the replica catches up and serves the view again", || async {
        let before = counts(&app).0;
        let (_, body) = app.admin("GET", &customer, Some(&token), None, None).await;
        assert_eq!(body["wallet"]["balance"].as_i64(), Some(paid), "the replica's view is the primary's");
        counts(&app).0 > before
    })
    .await;
    drop(watch);

    // Away: reads go on on the primary, and /readyz says why while staying ready.
    let mut pair = tokio::task::spawn_blocking(move || {
        pair.replica.stop();
        pair
    })
    .await
    .unwrap();
    let statement = app.journey(AMINA, "3*1234").await;
    assert!(statement.contains("-50.00"), "{statement}");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    let said: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert!(
        said["replica"].as_str().unwrap().contains("reads that may lag are served by the primary"),
        "{said}"
    );

    // Back: once it answers again, reads return to it.
    let pair = tokio::task::spawn_blocking(move || {
        pair.replica.restart();
        pair
    })
    .await
    .unwrap();
    until("the replica is ready again", || async {
        let ready = app.get("/readyz").await;
        serde_json::from_str::<serde_json::Value>(&ready.body).is_ok_and(|said| said["replica"] == "ok")
    })
    .await;
    let before = counts(&app).0;
    until("a statement is read on the replica again", || async {
        app.journey(AMINA, "3*1234").await.contains("-50.00") && counts(&app).0 > before
    })
    .await;
    pool.close().await;
    tokio::task::spawn_blocking(move || drop(pair)).await.unwrap();
}
