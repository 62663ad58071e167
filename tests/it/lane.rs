//! The money lane against a real PostgreSQL: connections go back as they are after a
//! statement that ran to its end, and never after one cut short or lost with its
//! backend; it opens no more than its maximum.

use std::time::Duration;

use futures_util::future::join_all;
use sqlx::PgPool;
use ussd_gateway::money::{Lane, LaneOptions, MoneyError};

fn lane(pool: &PgPool, options: LaneOptions) -> Lane {
    Lane::new((*pool.connect_options()).clone(), options)
}

/// The backend serving the lane's next statement.
async fn backend(lane: &Lane) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(lane).await
}

/// Waits (at most 10 s) until Postgres no longer lists backend `pid`.
async fn gone(pool: &PgPool, pid: i32) {
    for _ in 0..1000 {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
            .bind(pid)
            .fetch_one(pool)
            .await
            .unwrap();
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("backend {pid} is still there 10 s after it was told to go");
}

#[sqlx::test]
async fn a_connection_that_answered_serves_the_next_statement(pool: PgPool) {
    let lane = lane(&pool, LaneOptions::default());
    let first = backend(&lane).await.unwrap();
    for _ in 0..20 {
        assert_eq!(backend(&lane).await.unwrap(), first, "one statement at a time needs one connection");
    }
    assert_eq!(lane.idle(), 1);
}

#[sqlx::test]
async fn an_error_of_the_statement_keeps_the_connection(pool: PgPool) {
    let lane = lane(&pool, LaneOptions::default());
    let first = backend(&lane).await.unwrap();
    let refused = sqlx::query_scalar::<_, i32>("SELECT 1 / 0").fetch_one(&lane).await;
    assert!(matches!(refused, Err(sqlx::Error::Database(_))), "{refused:?}");
    assert_eq!(backend(&lane).await.unwrap(), first, "Postgres answered, so the connection is sound");
}

#[sqlx::test]
async fn a_statement_cut_short_closes_its_connection(pool: PgPool) {
    let lane = lane(&pool, LaneOptions::default());
    let first = backend(&lane).await.unwrap();
    let sleep = sqlx::query("SELECT pg_sleep(30)").execute(&lane);
    assert!(tokio::time::timeout(Duration::from_millis(100), sleep).await.is_err());
    assert_eq!(lane.idle(), 0, "a connection with a statement still running is not put back");
    let next = backend(&lane).await.unwrap();
    assert_ne!(next, first, "the next statement must not wait behind the abandoned one");
    // Postgres notices a closed client only when it next writes: end the sleep here.
    sqlx::query("SELECT pg_terminate_backend($1)").bind(first).execute(&pool).await.unwrap();
    gone(&pool, first).await;
}

#[sqlx::test]
async fn a_connection_whose_backend_died_is_not_used_again(pool: PgPool) {
    // No ping before use: the statement itself finds the backend gone.
    let options = LaneOptions { ping_after_idle: Duration::from_secs(3600), ..LaneOptions::default() };
    let lane = lane(&pool, options);
    let first = backend(&lane).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)").bind(first).execute(&pool).await.unwrap();
    gone(&pool, first).await;
    let failed = backend(&lane).await;
    let error = failed.expect_err("the statement went to a dead backend");
    assert!(
        MoneyError::Database(error).may_have_moved(),
        "a statement sent on a connection that broke may have run: its outcome is unknown"
    );
    let next = backend(&lane).await.expect("a new connection serves the statement after");
    assert_ne!(next, first);
}

#[sqlx::test]
async fn an_idle_connection_is_pinged_and_replaced_before_use(pool: PgPool) {
    let options = LaneOptions { ping_after_idle: Duration::ZERO, ..LaneOptions::default() };
    let lane = lane(&pool, options);
    let first = backend(&lane).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)").bind(first).execute(&pool).await.unwrap();
    gone(&pool, first).await;
    let next = backend(&lane).await.expect("the ping found the backend gone before the statement ran");
    assert_ne!(next, first);
}

#[sqlx::test]
async fn never_more_connections_than_its_maximum(pool: PgPool) {
    let options = LaneOptions { max_connections: 3, ..LaneOptions::default() };
    let lane = lane(&pool, options);
    let statements = (0..12).map(|_| {
        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid() FROM pg_sleep(0.05)").fetch_one(&lane)
    });
    let mut pids: Vec<i32> = join_all(statements).await.into_iter().map(Result::unwrap).collect();
    pids.sort_unstable();
    pids.dedup();
    assert!(pids.len() <= 3, "{} backends served a lane of 3", pids.len());
    assert_eq!(lane.idle(), pids.len(), "every connection went back");
}

#[sqlx::test]
async fn a_statement_that_cannot_get_a_connection_in_time_fails(pool: PgPool) {
    let options = LaneOptions {
        max_connections: 1,
        acquire_timeout: Duration::from_millis(200),
        ..LaneOptions::default()
    };
    let lane = lane(&pool, options);
    backend(&lane).await.unwrap();
    let busy = lane.clone();
    let long = tokio::spawn(async move { sqlx::query("SELECT pg_sleep(2)").execute(&busy).await });
    while lane.idle() > 0 {
        tokio::task::yield_now().await;
    }
    let waited = backend(&lane).await;
    assert!(matches!(waited, Err(sqlx::Error::PoolTimedOut)), "{waited:?}");
    assert!(!MoneyError::Database(waited.unwrap_err()).may_have_moved(), "it was never sent");
    long.await.unwrap().unwrap();
    backend(&lane).await.expect("the connection serves again once the long statement is done");
}

#[sqlx::test]
async fn a_statement_with_no_server_to_reach_was_never_sent(pool: PgPool) {
    // A port nobody listens on: the connection is refused before any statement leaves.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let options = (*pool.connect_options()).clone().port(closed);
    let lane = Lane::new(options, LaneOptions::default());
    let refused = backend(&lane).await.expect_err("nothing listens there");
    assert!(!MoneyError::Database(refused).may_have_moved(), "it was never sent");
    // What Postgres refuses itself rolled back: nothing moved either.
    let lane = self::lane(&pool, LaneOptions::default());
    let division = sqlx::query_scalar::<_, i32>("SELECT 1 / 0").fetch_one(&lane).await.unwrap_err();
    assert!(!MoneyError::Database(division).may_have_moved());
}
