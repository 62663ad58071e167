//! What a subscriber is told is true through lost connections, failed stores and dead
//! replicas: "unavailable" only when nothing moved, "processing" only with a written
//! promise that exactly one SMS follows, and that SMS says what happened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::proxy::{Proxy, spawn_behind, spawn_replica};
use crate::common::{TestApp, assert_ledger_invariants, lock_waiters, settings, unique_session, until};
use axum::http::StatusCode;
use sqlx::PgPool;
use ussd_gateway::config::Settings;
use ussd_gateway::money::Kept;

const AMINA: &str = "+254700000001";
const PROCESSING: &str = "END We are processing your request; you will receive an SMS.";
const UNAVAILABLE: &str = "END Service unavailable, please try again";
const SEND: &str = "1*0700000002*100*1*1234";

fn with_deadline(ms: u64) -> Settings {
    Settings { hop_deadline_ms: ms, ..settings() }
}

/// Amina's send-money journey (KES 100 to Brian) up to its PIN screen.
async fn to_the_pin_screen(app: &TestApp) -> String {
    let s = unique_session();
    for text in ["", "1", "1*0700000002", "1*0700000002*100", "1*0700000002*100*1"] {
        app.at_hop(&s, AMINA, text).await;
    }
    s
}

/// Polls `check` until it holds (at most 10 s): for what the server does on its own
/// once a lock is released, not a sleep standing in for it.
async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn posted(pool: &PgPool) -> i64 {
    count(pool, "SELECT count(*) FROM transfers WHERE kind = 'p2p' AND status = 'posted'").await
}

/// The one promise written, by its op key.
async fn promised(pool: &PgPool) -> String {
    sqlx::query_scalar("SELECT op_key FROM op_promises").fetch_one(pool).await.unwrap()
}

/// What went to Amina about the promised op: receipts of its transfer and notices.
async fn told_amina(pool: &PgPool, op_key: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT o.template || coalesce(':' || (o.data->>'outcome'), '') FROM outbox o
           LEFT JOIN transfers t ON t.id = o.transfer_id
          WHERE o.msisdn = $1 AND (t.idempotency_key = $2 OR o.op_key = $2) ORDER BY o.id",
    )
    .bind(AMINA)
    .bind(op_key)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Holds Amina's wallet row: a transfer inserts its row under its key, then queues.
async fn hold_wallet(pool: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query(
        "SELECT a.id FROM accounts a JOIN customers c ON c.id = a.customer_id
          WHERE c.msisdn = $1 FOR UPDATE OF a",
    )
    .bind(AMINA)
    .execute(&mut *blocker)
    .await
    .unwrap();
    blocker
}

/// Holds the customers table: a PIN check, and so a transfer, queues before it writes
/// anything.
async fn hold_customers(pool: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE").execute(&mut *blocker).await.unwrap();
    blocker
}

/// Sends the money on session `s` and, once its statement waits for a lock at the
/// server, breaks the connection carrying it (new ones may open); what the hop said.
async fn send_cut_off(app: &Arc<TestApp>, pool: &PgPool, pg: &Proxy, s: String) -> String {
    let hop = tokio::spawn({
        let app = Arc::clone(app);
        async move { app.at_hop(&s, AMINA, SEND).await }
    });
    until("the statement queueing at the server", || async { lock_waiters(pool).await == 1 }).await;
    pg.cut();
    pg.restore();
    hop.await.unwrap()
}

/// The send's answer is lost with its connection, posted alone or in a group, and the
/// promise is kept by the sweeper: one SMS comes, and it is the receipt.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn an_answer_lost_after_the_commit_is_processing_and_the_receipt_is_the_sms(pool: PgPool) {
    answer_lost_after_the_commit(pool, false).await
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_group_answer_lost_after_the_commit_is_processing_and_the_receipt_is_the_sms(pool: PgPool) {
    answer_lost_after_the_commit(pool, true).await
}

async fn answer_lost_after_the_commit(pool: PgPool, group_posting: bool) {
    let pg = Proxy::postgres(&pool).await;
    let settings = Settings { group_posting, ..with_deadline(3_000) };
    let app = Arc::new(spawn_behind(&pool, Some(&pg), None, settings).await);
    let s = to_the_pin_screen(&app).await;
    let blocker = hold_wallet(&pool).await;
    let told = send_cut_off(&app, &pool, &pg, s).await;
    assert_eq!(told, PROCESSING, "the statement was sent: its outcome is unknown");
    let grouped = count(
        &pool,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
            AND query LIKE '%transfer_p2p_group(%' AND query NOT LIKE '%pg_stat_activity%'",
    )
    .await;
    assert_eq!(
        grouped,
        i64::from(group_posting),
        "the statement waiting is a group's when sends go in groups"
    );
    // The server finishes the statement nobody hears any more.
    blocker.commit().await.unwrap();
    until("the transfer committing on its own", || async { posted(&pool).await == 1 }).await;

    let op_key = promised(&pool).await;
    assert_eq!(app.state.gateway.money().keep_promise(&op_key, None).await.unwrap(), Kept::Receipt);
    assert_eq!(told_amina(&pool, &op_key).await, ["p2p_sent"], "her receipt is the one SMS");
    assert_eq!(app.state.gateway.money().keep_promise(&op_key, None).await.unwrap(), Kept::Already);
    assert_eq!(posted(&pool).await, 1);
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_movement_that_never_arrived_is_told_so_and_arriving_late_moves_nothing(pool: PgPool) {
    let pg = Proxy::postgres(&pool).await;
    let app = Arc::new(spawn_behind(&pool, Some(&pg), None, with_deadline(3_000)).await);
    // Her PIN's salt is known from a balance check, so PIN and transfer are one statement.
    let balance = app.journey(AMINA, "2*1234").await;
    assert_eq!(balance, "END Your balance is KES 1,000.00.");
    let s = to_the_pin_screen(&app).await;
    let blocker = hold_customers(&pool).await;
    assert_eq!(send_cut_off(&app, &pool, &pg, s).await, PROCESSING);

    // The keeper comes by while the statement still waits at the server: it closes the
    // op's key and says that nothing moved.
    let op_key = promised(&pool).await;
    assert_eq!(app.state.gateway.money().keep_promise(&op_key, None).await.unwrap(), Kept::Notice);
    blocker.rollback().await.unwrap();
    // The statement goes on, finds its key taken, and moves nothing.
    until("the late statement ending", || async {
        count(
            &pool,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                AND state = 'active' AND (query LIKE '%transfer_p2p_pinned%' OR query LIKE '%transfer_p2p_group%')
                AND query NOT LIKE '%pg_stat_activity%'",
        )
        .await
            == 0
    })
    .await;
    assert_eq!(posted(&pool).await, 0);
    assert_eq!(told_amina(&pool, &op_key).await, ["not_completed:not_arrived"]);
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_session_store_failing_after_the_commit_leaves_the_reply_true(pool: PgPool) {
    let redis = Proxy::redis().await;
    let app = Arc::new(spawn_behind(&pool, None, Some(&redis), with_deadline(4_000)).await);
    let s = to_the_pin_screen(&app).await;
    let blocker = hold_wallet(&pool).await;
    let hop = tokio::spawn({
        let app = Arc::clone(&app);
        async move { app.at_hop(&s, AMINA, SEND).await }
    });
    until("the transfer queueing for the wallet", || async { lock_waiters(&pool).await == 1 }).await;
    // Redis goes away while the transfer waits, and stays away when it commits.
    redis.cut();
    blocker.commit().await.unwrap();
    let told = hop.await.unwrap();
    assert!(told.starts_with("END Sent KES 100.00 to Brian Kamau."), "{told}");
    assert_eq!(posted(&pool).await, 1);
    redis.restore();
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_copy_behind_a_dead_claim_on_a_movement_is_promised_an_sms_kept_elsewhere(pool: PgPool) {
    let prefix = format!("test:{:016x}:", rand::random::<u64>());
    let a = Arc::new(spawn_replica(&pool, None, None, with_deadline(10_000), &prefix).await);
    let b = spawn_replica(&pool, None, None, with_deadline(10_000), &prefix).await;
    let s = to_the_pin_screen(&a).await;
    let blocker = hold_wallet(&pool).await;
    let first = tokio::spawn({
        let (a, s) = (Arc::clone(&a), s.clone());
        async move { a.at_hop(&s, AMINA, SEND).await }
    });
    until("the transfer queueing for the wallet", || async { lock_waiters(&pool).await == 1 }).await;
    // Replica A dies mid-hop: its claim is no longer renewed (its statement lives on at
    // the server, as a killed process's would until the server next writes to it).
    first.abort();
    let started = Instant::now();
    assert_eq!(b.at_hop(&s, AMINA, SEND).await, PROCESSING, "the aggregator's retry, on replica B");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the dead claim is recognised by its lease, not after the deadline: {:?}",
        started.elapsed()
    );
    // Later copies get the same answer at once.
    assert_eq!(b.at_hop(&s, AMINA, SEND).await, PROCESSING);

    // B's keeper: the statement still holds its key, so the keeper waits, gives up
    // after a second and tries again later rather than guess.
    let money = b.state.gateway.money();
    assert_eq!(money.keep_due_promises().await.unwrap(), 0);
    let (attempts, kept): (i32, Option<String>) =
        sqlx::query_as("SELECT attempts, kept_by FROM op_promises").fetch_one(&pool).await.unwrap();
    assert_eq!((attempts, kept), (1, None));
    blocker.commit().await.unwrap();
    until("the transfer committing", || async { posted(&pool).await == 1 }).await;
    sqlx::query("UPDATE op_promises SET due_at = now()").execute(&pool).await.unwrap();
    assert_eq!(money.keep_due_promises().await.unwrap(), 1);
    let op_key = promised(&pool).await;
    assert_eq!(told_amina(&pool, &op_key).await, ["p2p_sent"]);
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_copy_behind_a_dead_claim_on_a_read_is_unavailable_and_promised_nothing(pool: PgPool) {
    let prefix = format!("test:{:016x}:", rand::random::<u64>());
    let a = Arc::new(spawn_replica(&pool, None, None, with_deadline(10_000), &prefix).await);
    let b = spawn_replica(&pool, None, None, with_deadline(10_000), &prefix).await;
    let s = unique_session();
    a.at_hop(&s, AMINA, "").await;
    a.at_hop(&s, AMINA, "2").await;
    let blocker = hold_customers(&pool).await;
    let first = tokio::spawn({
        let (a, s) = (Arc::clone(&a), s.clone());
        async move { a.at_hop(&s, AMINA, "2*1234").await }
    });
    until("the balance's PIN check queueing", || async { lock_waiters(&pool).await == 1 }).await;
    first.abort();
    let started = Instant::now();
    assert_eq!(b.at_hop(&s, AMINA, "2*1234").await, UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    blocker.rollback().await.unwrap();
    assert_eq!(count(&pool, "SELECT count(*) FROM op_promises").await, 0, "a read promises nothing");
    assert_eq!(b.at_hop(&s, AMINA, "2*1234").await, UNAVAILABLE, "the copy after it replays it");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_read_that_overruns_promises_nothing(pool: PgPool) {
    let app = spawn_behind(&pool, None, None, with_deadline(500)).await;
    let s = unique_session();
    app.at_hop(&s, AMINA, "").await;
    app.at_hop(&s, AMINA, "2").await;
    let blocker = hold_customers(&pool).await;
    assert_eq!(app.at_hop(&s, AMINA, "2*1234").await, UNAVAILABLE);
    blocker.rollback().await.unwrap();
    app.state.gateway.drain().await;
    assert_eq!(count(&pool, "SELECT count(*) FROM op_promises").await, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM outbox").await, 0, "no SMS was promised, none goes");
}

/// Posts one SMS to the Africa's Talking callback; the acknowledgement's status.
async fn post_sms(app: &TestApp, id: &str, text: &str) -> StatusCode {
    let body =
        serde_urlencoded::to_string([("from", AMINA), ("to", "22384"), ("text", text), ("id", id)]).unwrap();
    let request = axum::http::Request::post("/sms/africastalking/inbound")
        .header(axum::http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(body))
        .unwrap();
    app.send(request).await.status
}

async fn reply_to(pool: &PgPool, id: &str) -> Option<String> {
    sqlx::query_scalar(
        "SELECT o.data->>'text' FROM outbox o JOIN sms_inbound i ON i.id = o.inbound_id WHERE i.message_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn an_sms_movement_that_takes_long_is_answered_by_its_receipt_alone(pool: PgPool) {
    let app = spawn_behind(&pool, None, None, settings()).await;
    assert_eq!(post_sms(&app, "m1", "SEND 0700000002 100").await, StatusCode::OK);
    app.answer_sms().await;
    let prompt = reply_to(&pool, "m1").await.unwrap();
    let code: String =
        prompt.split("YES ").nth(1).unwrap().chars().take_while(char::is_ascii_digit).collect();

    let blocker = hold_wallet(&pool).await;
    assert_eq!(post_sms(&app, "m2", &format!("YES {code}")).await, StatusCode::OK);
    assert_eq!(reply_to(&pool, "m2").await, None, "acknowledged before anything is answered");
    // An answerer whose bound on a hop is short: the transfer outlasts it.
    let policy =
        ussd_gateway::sms::answer::Policy { hop_bound: Duration::from_millis(800), ..Default::default() };
    let answerer = ussd_gateway::sms::answer::Answerer::new(
        app.state.gateway.clone(),
        app.config.sms_channels.clone().into(),
        app.config.region,
        policy,
    );
    assert_eq!(answerer.tick().await.unwrap(), 1);
    let handled: Option<String> =
        sqlx::query_scalar("SELECT handled FROM sms_inbound WHERE message_id = 'm2'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(handled.as_deref(), Some("promised"));
    blocker.commit().await.unwrap();
    app.state.gateway.drain().await;

    assert_eq!(reply_to(&pool, "m2").await, None, "no \"processing\" text by SMS");
    assert_eq!(posted(&pool).await, 1);
    let op_key = promised(&pool).await;
    assert_eq!(told_amina(&pool, &op_key).await, ["p2p_sent"], "the receipt answers the message");
    let kept: Option<String> =
        sqlx::query_scalar("SELECT kept_by FROM op_promises").fetch_one(&pool).await.unwrap();
    assert_eq!(kept.as_deref(), Some("receipt"), "kept by the process that ran it, as soon as it ended");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn an_sms_that_cannot_be_answered_is_tried_again_then_dead_lettered(pool: PgPool) {
    let redis = Proxy::redis().await;
    let root = "root-token-for-the-dead-letters-test";
    let settings = Settings { admin_token: Some(root.into()), ..settings() };
    let app = spawn_behind(&pool, None, Some(&redis), settings).await;
    redis.cut();
    // The callback needs only the database: it is acknowledged at once.
    assert_eq!(post_sms(&app, "d1", "BAL").await, StatusCode::OK);
    let answerer = app.answerer();
    assert_eq!(answerer.tick().await.unwrap(), 1);
    let (attempts, answered): (i32, bool) =
        sqlx::query_as("SELECT attempts, answered_at IS NOT NULL FROM sms_inbound")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((attempts, answered), (1, false), "tried once, waiting to be tried again");
    app.answer_sms().await;
    let (dead, sealed): (bool, bool) =
        sqlx::query_as("SELECT dead_at IS NOT NULL, text_sealed IS NOT NULL FROM sms_inbound")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((dead, sealed), (true, false), "dead-lettered, its text erased");
    assert_eq!(
        reply_to(&pool, "d1").await.as_deref(),
        Some("We cannot confirm your request right now. Please check your balance before you try again.")
    );
    let (status, listed) = app.admin("GET", "/admin/sms/dead", Some(root), None, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let dead = &listed["dead"][0];
    assert_eq!((dead["message_id"].as_str(), dead["attempts"].as_i64()), (Some("d1"), Some(8)), "{listed}");
    assert!(dead["reason"].as_str().is_some_and(|r| !r.is_empty()), "{listed}");
    assert!(!listed.to_string().contains("BAL"), "never the message's text: {listed}");
    redis.restore();
}
