//! Every hop is answered within the deadline, even when Postgres does not answer.

mod common;

use std::time::{Duration, Instant};

use common::{Store, main_menu, settings, spawn_with, unique_session};
use sqlx::PgPool;
use ussd_gateway::config::Settings;

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
    // The aggregator's retry gets the same answer, and the op is not started again.
    assert_eq!(app.at_hop(&s, "+254700000001", "").await, body);
    assert_eq!(app.state.gateway.money().runs(ussd_gateway::ops::Op::CustomerProfile), 1);

    blocker.rollback().await.unwrap();
    assert_eq!(app.at_hop(&unique_session(), "+254700000001", "").await, main_menu("Amina"));
}
