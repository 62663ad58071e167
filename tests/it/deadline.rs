//! Every hop is answered within the deadline, even when Postgres does not answer.

use std::time::{Duration, Instant};

use crate::common::{Store, TestApp, lock_waiters, main_menu, settings, spawn_with, unique_session, until};
use sqlx::PgPool;
use ussd_gateway::config::Settings;
use ussd_gateway::ops::{self, Op};

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_stuck_op_gets_a_clear_end_within_the_deadline(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, Settings { hop_deadline_ms: 500, ..settings() }).await;

    // Another transaction holds the customers table: the profile lookup blocks.
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE").execute(&mut *blocker).await.unwrap();

    let started = Instant::now();
    let s = unique_session();
    let body = app.at_hop(&s, "+254700000001", "").await;
    let elapsed = started.elapsed();
    assert_eq!(body, "END Service unavailable, please try again");
    // Answered, not hung: the bound is the deadline plus generous slack, not a benchmark.
    assert!(elapsed < Duration::from_secs(3), "answered after {elapsed:?}");
    // The aggregator's retry gets the same answer, within the deadline too. A read takes
    // no claim, so the retry of a dial reads again rather than finding one.
    let started = Instant::now();
    assert_eq!(app.at_hop(&s, "+254700000001", "").await, body);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "answered after {elapsed:?}");
    assert_eq!(app.state.gateway.ops().runs(Op::of::<ops::CustomerProfile>()), 2);

    blocker.rollback().await.unwrap();
    assert_eq!(app.at_hop(&unique_session(), "+254700000001", "").await, main_menu("Amina"));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_stuck_transfer_tells_the_subscriber_to_expect_an_sms_and_still_completes(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, Settings { hop_deadline_ms: 500, ..settings() }).await;
    let s = to_the_pin_screen(&app).await;
    // Another transaction holds Amina's wallet row: the PIN check passes, the transfer
    // queues for the row.
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query(
        "SELECT a.id FROM accounts a JOIN customers c ON c.id = a.customer_id
          WHERE c.msisdn = '+254700000001' FOR UPDATE OF a",
    )
    .execute(&mut *blocker)
    .await
    .unwrap();
    let body = app.at_hop(&s, "+254700000001", "1*0700000002*100*1*1234").await;
    assert_eq!(body, "END We are processing your request; you will receive an SMS.");
    // Told before the transfer reached the row on a busy machine, it queues soon after.
    until("the transfer queueing behind the blocker", || async { lock_waiters(&pool).await == 1 }).await;
    blocker.commit().await.unwrap();

    // The op goes on without the subscriber; draining waits for it as a shutdown would.
    app.state.gateway.drain().await;
    let posted: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transfers WHERE kind = 'p2p' AND status = 'posted'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(posted, 1, "the transfer did not complete after the hop ended");
    let receipts: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&pool).await.unwrap();
    assert_eq!(receipts, 2, "the SMS receipts carry the result");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_stuck_transfer_refused_after_the_hop_ended_says_why_by_sms(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, Settings { hop_deadline_ms: 500, ..settings() }).await;
    let s = to_the_pin_screen(&app).await;
    // Another transaction holds Amina's customer row: counting her wrong PIN waits.
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM customers WHERE msisdn = '+254700000001' FOR UPDATE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let body = app.at_hop(&s, "+254700000001", "1*0700000002*100*1*9999").await;
    assert_eq!(body, "END We are processing your request; you will receive an SMS.");
    until("the PIN check queueing behind the blocker", || async { lock_waiters(&pool).await == 1 }).await;
    blocker.commit().await.unwrap();
    app.state.gateway.drain().await;

    // The refusal wrote no receipt: the promised SMS is the notice, and only it.
    let sent: Vec<(String, String, String, serde_json::Value, bool)> =
        sqlx::query_as("SELECT msisdn, role, template, data, transactional FROM outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let notice = (
        "+254700000001".to_owned(),
        "outcome".to_owned(),
        "not_completed".to_owned(),
        serde_json::json!({ "outcome": "pin_invalid" }),
        true,
    );
    assert_eq!(sent, vec![notice]);
    let moved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transfers WHERE kind = 'p2p' AND status = 'posted'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(moved, 0);
    // The promise was kept by the notice, and the op's key is closed with its reason.
    let kept: (String, String) = sqlx::query_as(
        "SELECT p.kept_by, t.reject_code FROM op_promises p JOIN transfers t ON t.idempotency_key = p.op_key",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(kept, ("notice".to_owned(), "pin_invalid".to_owned()));
    let failures: i32 =
        sqlx::query_scalar("SELECT pin_failures FROM customers WHERE msisdn = '+254700000001'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(failures, 1, "the wrong PIN counts once");
}

/// Amina's send-money journey up to its PIN screen (KES 100 to 0700000002).
async fn to_the_pin_screen(app: &TestApp) -> String {
    let s = unique_session();
    for text in ["", "1", "1*0700000002", "1*0700000002*100", "1*0700000002*100*1"] {
        app.at_hop(&s, "+254700000001", text).await;
    }
    s
}
