//! Reads that may go to a streaming replica (`DATABASE_READ_URL`): only once it has
//! replayed everything the primary had committed when the read began, so a subscriber's
//! statement always shows the send they just made; otherwise, and while the replica is
//! away, on the primary.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

use super::Db;

/// How long a read waits for the replica to replay what the primary had committed,
/// before it goes to the primary: a replica on the same network is milliseconds behind.
const CATCH_UP: Duration = Duration::from_millis(50);

/// How often the replica's replay position is asked for while a read waits.
const POLL: Duration = Duration::from_millis(2);

/// After a failure, how long reads skip the replica before trying it again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

const NOT_A_STANDBY: &str =
    "DATABASE_READ_URL is not a standby (pg_is_in_recovery() is false): reads stay on the primary";

/// A read replica and what became of the reads offered to it.
pub struct Replica {
    pool: PgPool,
    /// When the replica last failed, and why; cleared when it answers again.
    down: Mutex<Option<(Instant, String)>>,
    on_replica: AtomicU64,
    on_primary: AtomicU64,
}

impl Replica {
    pub fn new(pool: PgPool) -> Self {
        Replica { pool, down: Mutex::new(None), on_replica: AtomicU64::new(0), on_primary: AtomicU64::new(0) }
    }

    /// The replica's pool, when it holds everything `primary` had committed by now;
    /// `None` sends the read to the primary.
    pub async fn caught_up(&self, primary: impl Db) -> Option<&PgPool> {
        let on_replica = self.try_catch_up(primary).await;
        let counter = if on_replica { &self.on_replica } else { &self.on_primary };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("ussd_db_lagging_reads_total", "on" => if on_replica { "replica" } else { "primary" })
            .increment(1);
        on_replica.then_some(&self.pool)
    }

    async fn try_catch_up(&self, primary: impl Db) -> bool {
        if self.down().is_some_and(|(since, _)| since.elapsed() < RETRY_AFTER) {
            return false;
        }
        // A read of shared memory on the primary: no lock, no I/O.
        let Ok(written) =
            sqlx::query_scalar!(r#"SELECT pg_current_wal_lsn()::text AS "lsn!""#).fetch_one(primary).await
        else {
            return false;
        };
        let until = Instant::now() + CATCH_UP;
        loop {
            let replayed = sqlx::query_scalar!(
                r#"SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn AS "replayed""#,
                written
            )
            .fetch_one(&self.pool)
            .await;
            match replayed {
                Ok(Some(true)) => {
                    self.mark(None);
                    return true;
                }
                Ok(Some(false)) if Instant::now() < until => tokio::time::sleep(POLL).await,
                Ok(Some(false)) => return false,
                Ok(None) => {
                    self.mark(Some(NOT_A_STANDBY.to_owned()));
                    return false;
                }
                Err(e) => {
                    self.mark(Some(e.to_string()));
                    return false;
                }
            }
        }
    }

    /// Asks the replica whether it is one (for `/readyz`); `Err` with the reason when
    /// it does not answer as a standby.
    pub async fn probe(&self) -> Result<(), String> {
        let answer =
            sqlx::query_scalar!(r#"SELECT pg_is_in_recovery() AS "standby!""#).fetch_one(&self.pool).await;
        let why = match answer {
            Ok(true) => None,
            Ok(false) => Some(NOT_A_STANDBY.to_owned()),
            Err(e) => Some(e.to_string()),
        };
        self.mark(why.clone());
        why.map_or(Ok(()), Err)
    }

    fn mark(&self, why: Option<String>) {
        let mut down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        *down = why.map(|why| (Instant::now(), why));
    }

    fn down(&self) -> Option<(Instant, String)> {
        self.down.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// `Err` with the reason while the replica fails (reads are on the primary).
    pub fn status(&self) -> Result<(), String> {
        match self.down() {
            Some((_, why)) => Err(why),
            None => Ok(()),
        }
    }

    /// Reads served by the replica, and reads that went to the primary instead.
    pub fn counts(&self) -> (u64, u64) {
        (self.on_replica.load(Ordering::Relaxed), self.on_primary.load(Ordering::Relaxed))
    }
}
