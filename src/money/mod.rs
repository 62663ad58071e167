//! Money operations behind a narrow typed interface: the ops menus call, run against
//! Postgres, each answering with a typed [`OpResult`].

mod demo;
mod pin;
mod wallet;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::PgPool;

pub use self::demo::{DEMO_PIN, DemoSubscriber, demo_subscribers, seed_demo};
pub use self::pin::PinHasher;
use crate::domain::Msisdn;
use crate::menu::Action;
use crate::ops::{CATALOG, Op, OpResult};

/// A dependency failed; the subscriber gets "Service unavailable" and may retry.
#[derive(Debug, thiserror::Error)]
pub enum MoneyError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Runs ops against the ledger. Cheap to clone.
#[derive(Clone)]
pub struct Money {
    pool: PgPool,
    pins: PinHasher,
    runs: Arc<[AtomicU64]>,
}

/// Who asked and under which idempotency key.
#[derive(Debug)]
pub struct OpCall<'a> {
    pub msisdn: &'a Msisdn,
    pub idempotency_key: &'a str,
    pub action: &'a Action,
}

impl Money {
    pub fn new(pool: PgPool, pins: PinHasher) -> Self {
        let runs = CATALOG.iter().map(|_| AtomicU64::new(0)).collect();
        Money { pool, pins, runs }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn pins(&self) -> &PinHasher {
        &self.pins
    }

    pub async fn run(&self, call: OpCall<'_>) -> Result<OpResult, MoneyError> {
        let op = call.action.op;
        if let Some(counter) = CATALOG.iter().position(|s| s.op == op).and_then(|i| self.runs.get(i)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        match op {
            Op::CustomerProfile => wallet::profile(&self.pool, call.msisdn).await,
            Op::WalletBalance => {
                wallet::balance(&self.pool, &self.pins, call.msisdn, call.action.secret("pin")).await
            }
        }
    }

    /// How many times `op` has been started by this process (tests and metrics).
    pub fn runs(&self, op: Op) -> u64 {
        CATALOG
            .iter()
            .position(|s| s.op == op)
            .and_then(|i| self.runs.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    pub async fn ping(&self) -> Result<(), MoneyError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
