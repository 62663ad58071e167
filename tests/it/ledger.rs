//! The ledger under concurrency: conservation, idempotency, limits, fees, append-only
//! entries. Many concurrent clients against the real Postgres, each movement test on
//! both paths: every send posted alone, and sends posted in groups.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::{assert_ledger_invariants, balance_of, customer, lock_waiters, until};
use futures_util::future::join_all;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use ussd_gateway::domain::{Amount, Msisdn, Region};
use ussd_gateway::money::group::Grouper;
use ussd_gateway::money::{GroupOptions, Lane, LaneOptions, PinPolicy, Transfer, transfer_p2p};
use ussd_gateway::outcome::Outcome;

fn msisdn(n: usize) -> String {
    format!("+2547{:08}", 10_000_000 + n)
}

fn m(s: &str) -> Msisdn {
    Msisdn::parse(s, Region::parse("KE").unwrap()).unwrap()
}

fn kes(major: i64) -> Amount {
    Amount::from_minor(major * 100).unwrap()
}

/// A pool of its own on the test's database, larger than the one `#[sqlx::test]` hands out.
async fn big_pool(_: PgPoolOptions, conn: PgConnectOptions, size: u32) -> PgPool {
    PgPoolOptions::new().max_connections(size).connect_with(conn).await.expect("pool")
}

/// How a test's sends are posted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Alone,
    InGroups,
}

/// Posts sends one way or the other. In groups, two gatherers on lanes of their own
/// take turns, as two replicas of the gateway would.
#[derive(Clone)]
enum Poster {
    Alone(PgPool),
    InGroups(Arc<[Grouper; 2]>, Arc<AtomicU64>),
}

impl Poster {
    fn new(path: Path, pool: &PgPool) -> Self {
        match path {
            Path::Alone => Poster::Alone(pool.clone()),
            Path::InGroups => {
                let grouper = || {
                    let lane = LaneOptions { max_connections: 8, ..LaneOptions::default() };
                    let lane = Lane::new((*pool.connect_options()).clone(), lane);
                    let options = GroupOptions { window: Duration::from_millis(2), max: 16, in_flight: 4 };
                    Grouper::start(
                        lane,
                        options,
                        PinPolicy { max_attempts: 3, lock: Duration::from_secs(3_600) },
                    )
                };
                Poster::InGroups(Arc::new([grouper(), grouper()]), Arc::default())
            }
        }
    }

    /// In groups: the sends went in groups, and no group failed to be posted alone.
    fn check(&self) {
        if let Poster::InGroups(groupers, _) = self {
            let (posted, failed) =
                groupers.iter().map(Grouper::groups).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            assert!(posted > 0 && failed == 0, "{posted} groups posted, {failed} failed");
        }
    }

    async fn send(&self, key: &str, from: &Msisdn, to: &Msisdn, amount: Amount) -> Transfer {
        match self {
            Poster::Alone(pool) => transfer_p2p(pool, key, from, to, amount).await.unwrap(),
            Poster::InGroups(groupers, turn) => {
                let grouper = &groupers[(turn.fetch_add(1, Ordering::Relaxed) % 2) as usize];
                grouper.transfer_p2p(key, from, to, amount).await.unwrap()
            }
        }
    }
}

/// Runs each named test (an `async fn(Path, PgPoolOptions, PgConnectOptions)`) as two,
/// `name::alone` and `name::in_groups`, each on a database of its own.
macro_rules! on_both_paths {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
            async fn alone(opts: PgPoolOptions, conn: PgConnectOptions) {
                super::$name(Path::Alone, opts, conn).await
            }

            #[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
            async fn in_groups(opts: PgPoolOptions, conn: PgConnectOptions) {
                super::$name(Path::InGroups, opts, conn).await
            }
        }
    )*};
}

on_both_paths!(
    bank_test_conserves_money_under_32_concurrent_clients,
    sixteen_concurrent_duplicates_make_one_transfer,
    a_key_reused_for_another_request_is_a_conflict,
    a_rejection_stays_rejected_after_the_account_is_funded,
    a_rejection_before_the_lock_and_a_movement_never_deadlock,
    the_daily_limit_holds_under_concurrent_debits,
    per_transfer_and_maximum_balance_limits_follow_the_tier,
    fee_band_boundaries_are_exact,
    fees_spread_over_as_many_shards_as_set,
);

async fn bank_test_conserves_money_under_32_concurrent_clients(
    path: Path,
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    const ACCOUNTS: usize = 120;
    const CLIENTS: usize = 32;
    let pool = big_pool(opts, conn, CLIENTS as u32 + 4).await;
    let post = Poster::new(path, &pool);
    for n in 0..ACCOUNTS {
        customer(&pool, &msisdn(n), 2, 10_000_00).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, rejected) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));

    // The auditor: every snapshot must add up to zero while transfers run.
    let auditor = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            let mut snapshots = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                let total: i64 = sqlx::query_scalar("SELECT sum(balance)::bigint FROM accounts")
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                assert_eq!(total, 0, "snapshot {snapshots} does not add up");
                tx.commit().await.unwrap();
                snapshots += 1;
            }
            snapshots
        })
    };

    let deadline = Instant::now() + Duration::from_secs(3);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (post, ok, rejected) = (post.clone(), ok.clone(), rejected.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                // Bounded by time and by count.
                while Instant::now() < deadline && i < 10_000 {
                    let from = rand::random_range(0..ACCOUNTS);
                    let to = rand::random_range(0..ACCOUNTS);
                    let amount = Amount::from_minor(rand::random_range(100..=300_000)).unwrap();
                    let key = format!("bank:{c}:{i}");
                    let t = post.send(&key, &m(&msisdn(from)), &m(&msisdn(to)), amount).await;
                    if t.outcome == Outcome::Ok { &ok } else { &rejected }.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    for c in join_all(clients).await {
        c.expect("client task");
    }
    stop.store(true, Ordering::Relaxed);
    let snapshots = auditor.await.expect("auditor");

    let (ok, rejected) = (ok.load(Ordering::Relaxed), rejected.load(Ordering::Relaxed));
    assert!(ok > 100, "only {ok} transfers went through");
    assert!(rejected > 0, "self-transfers and overdrafts should have been refused");
    assert!(snapshots > 10, "the auditor saw only {snapshots} snapshots");
    post.check();
    assert_ledger_invariants(&pool).await;
    let posted: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transfers WHERE kind = 'p2p' AND status = 'posted'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(posted as u64, ok);
}

async fn sixteen_concurrent_duplicates_make_one_transfer(
    path: Path,
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let pool = big_pool(opts, conn, 20).await;
    let post = Poster::new(path, &pool);
    let payer = customer(&pool, "+254711000001", 2, 1_000_00).await;
    let payee = customer(&pool, "+254711000002", 2, 0).await;
    let calls = (0..16).map(|_| {
        let post = post.clone();
        tokio::spawn(
            async move { post.send("dup-key", &m("+254711000001"), &m("+254711000002"), kes(500)).await },
        )
    });
    let results: Vec<_> = join_all(calls).await.into_iter().map(|r| r.unwrap()).collect();
    assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
    assert_eq!(results[0].outcome, Outcome::Ok);
    assert_eq!(results[0].fee, 7_00);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers WHERE idempotency_key = 'dup-key'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(balance_of(&pool, payer).await, 1_000_00 - 500_00 - 7_00);
    assert_eq!(balance_of(&pool, payee).await, 500_00);
    post.check();
    assert_ledger_invariants(&pool).await;
}

async fn a_key_reused_for_another_request_is_a_conflict(
    path: Path,
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let pool = big_pool(opts, conn, 8).await;
    let post = Poster::new(path, &pool);
    customer(&pool, "+254711000001", 2, 1_000_00).await;
    customer(&pool, "+254711000002", 2, 0).await;
    let (a, b) = (m("+254711000001"), m("+254711000002"));
    assert_eq!(post.send("k", &a, &b, kes(100)).await.outcome, Outcome::Ok);
    let other = post.send("k", &a, &b, kes(200)).await;
    assert_eq!(other.outcome, Outcome::Conflict);
    assert_eq!(post.send("k", &b, &a, kes(100)).await.outcome, Outcome::Conflict);
    post.check();
    assert_ledger_invariants(&pool).await;
}

async fn a_rejection_stays_rejected_after_the_account_is_funded(
    path: Path,
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let pool = big_pool(opts, conn, 8).await;
    let post = Poster::new(path, &pool);
    let payer = customer(&pool, "+254711000001", 2, 100_00).await;
    customer(&pool, "+254711000002", 2, 0).await;
    let (a, b) = (m("+254711000001"), m("+254711000002"));
    let first = post.send("poor", &a, &b, kes(500)).await;
    assert_eq!(first.outcome, Outcome::InsufficientFunds);
    sqlx::query("SELECT ledger_fund('top-up', $1, 100000)").bind(payer).execute(&pool).await.unwrap();
    let again = post.send("poor", &a, &b, kes(500)).await;
    assert_eq!(again, first, "the stored rejection is replayed");
    assert_eq!(post.send("rich", &a, &b, kes(500)).await.outcome, Outcome::Ok);
    post.check();
    assert_ledger_invariants(&pool).await;
}

/// A rejection decided before the accounts are locked (no fee band for the amount) names
/// both accounts on its transfer, and each foreign key check locks one. While movements
/// locked accounts FOR UPDATE, those checks waited for them, one account at a time, and
/// a movement going on to lock the account already checked closed a circle: a deadlock,
/// seen in CI. Here a movement holds the payee, the rejection runs, then the movement
/// takes the payer; both must finish.
async fn a_rejection_before_the_lock_and_a_movement_never_deadlock(
    path: Path,
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let pool = big_pool(opts, conn, 8).await;
    let post = Poster::new(path, &pool);
    let payer = customer(&pool, "+254711000001", 2, 100_00).await;
    let payee = customer(&pool, "+254711000002", 2, 0).await;
    let mut movement = pool.begin().await.unwrap();
    sqlx::query("SELECT ledger_lock($1, $1)").bind(payee).execute(&mut *movement).await.unwrap();
    let rejection = tokio::spawn({
        let post = post.clone();
        async move {
            let (a, b) = (m("+254711000001"), m("+254711000002"));
            post.send("huge", &a, &b, kes(10_000_000)).await
        }
    });
    until("the rejection finishes or waits for the movement", || async {
        rejection.is_finished() || lock_waiters(&pool).await > 0
    })
    .await;
    let took_payer = sqlx::query("SELECT ledger_lock($1, $1)").bind(payer).execute(&mut *movement).await;
    let took_payer = took_payer.map(|_| ()).map_err(|e| e.to_string());
    let committed = movement.commit().await.map_err(|e| e.to_string());
    let rejected = rejection.await.unwrap();
    assert_eq!((took_payer, committed), (Ok(()), Ok(())), "the movement goes through");
    assert_eq!(rejected.outcome, Outcome::LimitExceeded);
    post.check();
    assert_ledger_invariants(&pool).await;
}

async fn the_daily_limit_holds_under_concurrent_debits(
    path: Path,
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let pool = big_pool(opts, conn, 20).await;
    let post = Poster::new(path, &pool);
    // More money than the tier-2 daily limit (KES 500,000) allows to be sent.
    let payer = customer(&pool, "+254711000001", 2, 1_000_000_00).await;
    for r in 0..16 {
        customer(&pool, &format!("+2547120000{r:02}"), 2, 0).await;
    }
    let calls = (0..16).map(|r| {
        let post = post.clone();
        tokio::spawn(async move {
            let to = m(&format!("+2547120000{r:02}"));
            post.send(&format!("daily:{r}"), &m("+254711000001"), &to, kes(40_000)).await.outcome
        })
    });
    let outcomes: Vec<_> = join_all(calls).await.into_iter().map(|r| r.unwrap()).collect();
    let ok = outcomes.iter().filter(|o| **o == Outcome::Ok).count();
    let limited = outcomes.iter().filter(|o| **o == Outcome::LimitExceeded).count();
    assert_eq!((ok, limited), (12, 4), "{outcomes:?}");
    let used: i64 = sqlx::query_scalar("SELECT debited FROM daily_usage WHERE account_id = $1")
        .bind(payer)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(used, 480_000_00);
    post.check();
    assert_ledger_invariants(&pool).await;
}

async fn per_transfer_and_maximum_balance_limits_follow_the_tier(
    path: Path,
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let pool = big_pool(opts, conn, 8).await;
    let post = Poster::new(path, &pool);
    customer(&pool, "+254711000001", 1, 100_000_00).await;
    customer(&pool, "+254711000002", 1, 95_000_00).await;
    customer(&pool, "+254711000003", 2, 0).await;
    let (basic, near_max, verified) = (m("+254711000001"), m("+254711000002"), m("+254711000003"));
    // Tier 1 sends at most KES 70,000 at once.
    let t = post.send("a", &basic, &verified, kes(70_001)).await;
    assert_eq!(t.outcome, Outcome::LimitExceeded);
    assert_eq!(post.send("b", &basic, &verified, kes(70_000)).await.outcome, Outcome::Ok);
    // Tier 1 holds at most KES 100,000.
    let t = post.send("c", &verified, &near_max, kes(5_001)).await;
    assert_eq!(t.outcome, Outcome::LimitExceeded);
    assert_eq!(post.send("d", &verified, &near_max, kes(5_000)).await.outcome, Outcome::Ok);
    post.check();
    assert_ledger_invariants(&pool).await;
}

async fn fee_band_boundaries_are_exact(path: Path, opts: PgPoolOptions, conn: PgConnectOptions) {
    let pool = big_pool(opts, conn, 8).await;
    let post = Poster::new(path, &pool);
    customer(&pool, "+254711000001", 2, 500_000_00).await;
    customer(&pool, "+254711000002", 2, 0).await;
    let (a, b) = (m("+254711000001"), m("+254711000002"));
    let cases = [
        (1_00, Some(0)),
        (100_00, Some(0)),
        (100_01, Some(7_00)),
        (500_00, Some(7_00)),
        (500_01, Some(13_00)),
        (1_000_00, Some(13_00)),
        (1_000_01, Some(23_00)),
        (20_000_00, Some(105_00)),
        (20_000_01, Some(108_00)),
        (250_000_00, Some(108_00)),
        (99, None),
        (250_000_01, None),
    ];
    for (i, (amount, fee)) in cases.into_iter().enumerate() {
        let t = post.send(&format!("fee:{i}"), &a, &b, Amount::from_minor(amount).unwrap()).await;
        match fee {
            Some(fee) => assert_eq!((t.outcome, t.fee), (Outcome::Ok, fee), "amount {amount}"),
            None => assert_eq!(t.outcome, Outcome::LimitExceeded, "amount {amount}"),
        }
    }
    let gaps: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT min_amount, lag(max_amount) OVER (ORDER BY min_amount) AS prev
                                 FROM fee_bands WHERE kind = 'p2p') x
          WHERE prev IS NOT NULL AND min_amount <> prev + 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(gaps, 0, "fee bands must be contiguous");
    post.check();
    assert_ledger_invariants(&pool).await;
}

/// Fee revenue shards each fee's transfer credited: (the transfer that picked the
/// shard, shard). A transfer posted alone picks its own; a group's first transfer picks
/// one for the whole group (its transaction).
async fn fee_shards_credited(pool: &PgPool, after: i64) -> Vec<(i64, i16)> {
    sqlx::query_as(
        "SELECT min(t.id) OVER (PARTITION BY t.xmin::text), a.shard
           FROM entries e JOIN accounts a ON a.id = e.account_id JOIN transfers t ON t.id = e.transfer_id
          WHERE a.kind = 'fee_revenue' AND e.amount > 0 AND e.transfer_id > $1 ORDER BY e.transfer_id",
    )
    .bind(after)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn fees_spread_over_as_many_shards_as_set(path: Path, opts: PgPoolOptions, conn: PgConnectOptions) {
    let pool = big_pool(opts, conn, 12).await;
    let post = Poster::new(path, &pool);
    customer(&pool, "+254711000001", 2, 400_000_00).await;
    customer(&pool, "+254711000002", 2, 0).await;
    let (a, b) = (m("+254711000001"), m("+254711000002"));
    let send = |tag: &'static str| {
        let (post, a, b) = (post.clone(), a.clone(), b.clone());
        async move {
            let sends = (0..40).map(|i| {
                let (post, a, b) = (post.clone(), a.clone(), b.clone());
                async move { post.send(&format!("{tag}:{i}"), &a, &b, kes(200)).await }
            });
            for sent in join_all(sends).await {
                assert_eq!(sent.outcome, Outcome::Ok);
            }
        }
    };
    let shards = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i16>(
            "SELECT shard FROM accounts WHERE kind = 'fee_revenue' AND customer_id IS NULL ORDER BY shard",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    // Raised to 32 while nothing moves: the new accounts open, and fees use them.
    ussd_gateway::money::ledger::set_fee_shards(&pool, 32).await.unwrap();
    assert_eq!(shards(pool.clone()).await, (0..32).collect::<Vec<i16>>());
    send("wide").await;
    let credited = fee_shards_credited(&pool, 0).await;
    assert!(credited.iter().all(|&(transfer, shard)| i64::from(shard) == transfer % 32), "{credited:?}");
    let used: std::collections::HashSet<i16> = credited.iter().map(|&(_, s)| s).collect();
    // In groups the forty sends share a few shards, the ones their groups' first
    // transfers picked (checked above).
    assert!(path == Path::InGroups || used.len() > 8, "fees reach the new shards: {used:?}");
    // Lowered to 3 while money moves: every movement sees one count or the other, and
    // the accounts past it keep what they earned.
    let last: i64 = sqlx::query_scalar("SELECT max(id) FROM transfers").fetch_one(&pool).await.unwrap();
    let (lowered, _) = tokio::join!(ussd_gateway::money::ledger::set_fee_shards(&pool, 3), send("narrow"));
    lowered.unwrap();
    send("after").await;
    let credited = fee_shards_credited(&pool, last).await;
    let narrow = credited.iter().rev().take(40).all(|&(transfer, shard)| i64::from(shard) == transfer % 3);
    assert!(narrow, "the sends after it use three shards: {credited:?}");
    assert!(
        credited.iter().all(|&(transfer, shard)| {
            i64::from(shard) == transfer % 3 || i64::from(shard) == transfer % 32
        })
    );
    assert_eq!(shards(pool.clone()).await.len(), 32);
    post.check();
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn entries_cannot_be_changed_or_removed(pool: PgPool) {
    customer(&pool, "+254711000001", 2, 100_00).await;
    for statement in
        ["UPDATE entries SET amount = amount + 1", "DELETE FROM entries", "TRUNCATE entries CASCADE"]
    {
        let err = sqlx::query(statement).execute(&pool).await.expect_err(statement);
        assert!(err.to_string().contains("append-only"), "{statement}: {err}");
    }
    assert_ledger_invariants(&pool).await;
}

/// A reference reads the same wherever it is written: the receipts' SQL and the
/// program, past 2^32 transfers too (lpad would cut it to eight digits).
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn references_are_written_alike_by_the_database_and_the_program(pool: PgPool) {
    for id in [1_i64, 42, 0xFFFF_FFFF, 0x1_0000_0000, i64::MAX] {
        let written: String =
            sqlx::query_scalar("SELECT transfer_ref($1)").bind(id).fetch_one(&pool).await.unwrap();
        assert_eq!(written, ussd_gateway::money::reference(id), "{id}");
    }
}
