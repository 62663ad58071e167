//! The outbox worker: claims due messages with `SKIP LOCKED` (safe with several
//! replicas), puts them into words, waits for the provider's token bucket (charged per
//! segment), sends, and records the outcome — sent, retry later with backoff and
//! jitter, or dead-lettered with the reason.
//!
//! A claim is a lease: the row's `next_attempt_at` moves past the time a send can take,
//! in a short transaction, so no connection is held while the provider answers, and a
//! worker that dies mid-send only delays its messages until the lease runs out.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use metrics::{counter, gauge};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::breaker::Breaker;
use super::receipts::{self, Receipt};
use super::segments::segment;
use crate::channel::sms::{Message, Outbound, SendError};
use crate::domain::Currency;

/// How the worker paces and retries.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Messages claimed and sent at once.
    pub batch: u32,
    /// The provider's throughput, in segments per second (the bucket's refill and burst).
    pub segments_per_second: NonZeroU32,
    /// Tries before a message is dead-lettered.
    pub max_attempts: u32,
    /// The first retry's delay; each further one doubles, up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// Transient failures in a row that open the provider's breaker, and for how long.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    /// How long a claim lasts; longer than a send can take, the wait for the bucket included.
    pub lease: Duration,
    /// How often an idle worker looks for due messages.
    pub idle_poll: Duration,
    /// The currency receipts are written in.
    pub currency: Currency,
}

impl Policy {
    /// Defaults for a provider allowing `segments_per_second`.
    pub fn new(segments_per_second: NonZeroU32, currency: Currency) -> Self {
        Policy {
            batch: 16,
            segments_per_second,
            max_attempts: 10,
            retry_base: Duration::from_secs(2),
            retry_cap: Duration::from_secs(600),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
            lease: Duration::from_secs(120),
            idle_poll: Duration::from_millis(250),
            currency,
        }
    }

    /// The delay before try `attempts + 1`: exponential, capped, with jitter so that a
    /// provider coming back is not met by every message at once.
    fn backoff(&self, attempts: u32) -> Duration {
        let doubling = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        let full = self.retry_base.saturating_mul(doubling).min(self.retry_cap);
        full.mul_f64(rand::random_range(0.5..=1.0))
    }
}

/// Delivers the outbox through one provider. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    outbound: Outbound,
    bucket: DefaultDirectRateLimiter,
    breaker: Breaker,
    policy: Policy,
}

/// A claimed row.
#[derive(sqlx::FromRow)]
struct Claimed {
    id: i64,
    msisdn: String,
    language: String,
    template: String,
    data: Value,
    attempts: i32,
    transactional: bool,
    opted_out: bool,
    date: String,
    time: String,
}

/// What became of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Sent,
    Retry,
    Dead,
    /// The breaker was open: back to the queue, not counted as a try.
    Deferred,
}

impl Fate {
    fn name(self) -> &'static str {
        match self {
            Fate::Sent => "sent",
            Fate::Retry => "retry",
            Fate::Dead => "dead",
            Fate::Deferred => "deferred",
        }
    }
}

/// How often the worker applies delivery reports that raced with a send.
const RECONCILE_EVERY: Duration = Duration::from_secs(5);

/// What a message carrying a one-time code keeps of its text once it is sent.
const FORGOTTEN: &str = "(a one-time code, forgotten once sent)";

const CLAIM: &str = "
WITH due AS (
    SELECT id FROM outbox
     WHERE status = 'queued' AND next_attempt_at <= now()
     ORDER BY next_attempt_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED)
UPDATE outbox o
   SET attempts = o.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
  FROM due
 WHERE o.id = due.id
RETURNING o.id, o.msisdn, o.language, o.template, o.data, o.attempts, o.transactional,
          EXISTS (SELECT 1 FROM sms_opt_outs x WHERE x.msisdn = o.msisdn) AS opted_out,
          to_char(o.created_at AT TIME ZONE (SELECT value FROM ledger_settings WHERE key = 'timezone'), 'DD/MM/YY') AS date,
          to_char(o.created_at AT TIME ZONE (SELECT value FROM ledger_settings WHERE key = 'timezone'), 'HH24:MI') AS time";

impl Worker {
    pub fn new(pool: PgPool, outbound: Outbound, policy: Policy) -> Self {
        let rate = policy.segments_per_second;
        let bucket = RateLimiter::direct(Quota::per_second(rate));
        let breaker = Breaker::new(policy.breaker_threshold, policy.breaker_cooldown);
        Worker { inner: Arc::new(Inner { pool, outbound, bucket, breaker, policy }) }
    }

    /// Delivers until `stop` turns true, then finishes the batch in hand.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let provider = self.inner.outbound.provider().name();
        let mut reconciled = Instant::now();
        while !*stop.borrow() {
            if reconciled.elapsed() >= RECONCILE_EVERY {
                reconciled = Instant::now();
                if let Err(e) = self.reconcile().await {
                    warn!(error = %e, "SMS outbox: cannot apply delivery reports");
                }
            }
            let claimed = match self.tick().await {
                Ok(n) => n,
                Err(e) => {
                    warn!(error = %e, "SMS outbox: the database is unavailable; receipts wait in the outbox");
                    0
                }
            };
            let open = self.inner.breaker.is_open(Instant::now());
            gauge!("sms_breaker_open", "provider" => provider).set(if open { 1.0 } else { 0.0 });
            if claimed == 0 {
                tokio::select! {
                    () = tokio::time::sleep(self.inner.policy.idle_poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// Applies delivery reports of the last hour that a sent message does not show yet:
    /// a report stored while the worker recorded the send, each missing the other.
    /// Returns how many messages moved.
    pub async fn reconcile(&self) -> Result<u64, sqlx::Error> {
        let moved = sqlx::query(
            "UPDATE outbox o
                SET status = r.status, status_at = now(), last_error = coalesce(r.error, o.last_error)
               FROM (SELECT DISTINCT ON (provider, message_id) provider, message_id, status, error
                       FROM sms_delivery_reports
                      WHERE received_at > now() - interval '1 hour'
                      ORDER BY provider, message_id, sms_status_rank(status) DESC, id) r
              WHERE o.provider_message_id = r.message_id
                AND (o.provider = r.provider OR r.provider = 'generic')
                AND o.status NOT IN ('queued', 'dead')
                AND sms_status_rank(o.status) < sms_status_rank(r.status)",
        )
        .execute(&self.inner.pool)
        .await?;
        Ok(moved.rows_affected())
    }

    /// Claims one batch of due messages and sends it; returns how many were claimed.
    pub async fn tick(&self) -> Result<usize, sqlx::Error> {
        let inner = &self.inner;
        if inner.breaker.is_open(Instant::now()) {
            return Ok(0);
        }
        let claimed: Vec<Claimed> = sqlx::query_as(CLAIM)
            .bind(i64::from(inner.policy.batch.max(1)))
            .bind(inner.policy.lease.as_secs_f64())
            .fetch_all(&inner.pool)
            .await?;
        let count = claimed.len();
        let mut sends = JoinSet::new();
        for row in claimed {
            let worker = self.clone();
            sends.spawn(async move { worker.deliver(row).await });
        }
        while let Some(done) = sends.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(error = %e, "SMS outbox: cannot record an outcome; the message is retried when its claim runs out")
                }
                Err(e) => warn!(error = %e, "SMS outbox: a send task failed"),
            }
        }
        Ok(count)
    }

    async fn deliver(&self, row: Claimed) -> Result<(), sqlx::Error> {
        let inner = &self.inner;
        let provider = inner.outbound.provider().name();
        let receipt = Receipt {
            template: &row.template,
            language: &row.language,
            data: &row.data,
            date: &row.date,
            time: &row.time,
        };
        let fate = match receipts::render(&receipt, &inner.policy.currency) {
            _ if row.opted_out && !row.transactional => {
                self.dead(&row, "the subscriber opted out (STOP)").await?
            }
            Err(reason) => self.dead(&row, &reason).await?,
            Ok(text) => {
                let segments = segment(&text);
                if let Err(until) = inner.breaker.permit(Instant::now()) {
                    self.release(&row, until.saturating_duration_since(Instant::now())).await?
                } else {
                    let cells = u32::try_from(segments.count()).ok().and_then(NonZeroU32::new);
                    let cells = cells.unwrap_or(NonZeroU32::MIN).min(inner.policy.segments_per_second);
                    // Cannot fail: `cells` is at most the burst.
                    let _ = inner.bucket.until_n_ready(cells).await;
                    let secret = row.data.get("secret").is_some();
                    let message = Message { to: &row.msisdn, text: &text, segments: &segments, secret };
                    match inner.outbound.send(&message).await {
                        Ok(accepted) => {
                            inner.breaker.succeeded();
                            counter!("sms_segments_total", "provider" => provider)
                                .increment(segments.count() as u64);
                            self.sent(&row, accepted.message_id.as_deref(), segments.count()).await?
                        }
                        Err(SendError { permanent: true, reason }) => {
                            inner.breaker.succeeded();
                            self.dead(&row, &reason).await?
                        }
                        Err(SendError { permanent: false, reason }) => {
                            inner.breaker.failed(Instant::now());
                            let attempts = u32::try_from(row.attempts).unwrap_or(u32::MAX);
                            if attempts >= inner.policy.max_attempts {
                                self.dead(&row, &format!("{attempts} tries; the last: {reason}")).await?
                            } else {
                                self.retry(&row, inner.policy.backoff(attempts), &reason).await?
                            }
                        }
                    }
                }
            }
        };
        counter!("sms_outbox_total", "provider" => provider, "result" => fate.name()).increment(1);
        debug!(outbox_id = row.id, attempt = row.attempts, fate = fate.name(), "SMS outbox");
        Ok(())
    }

    async fn sent(
        &self,
        row: &Claimed,
        message_id: Option<&str>,
        segments: usize,
    ) -> Result<Fate, sqlx::Error> {
        // A delivery report may have overtaken this answer: the furthest one stored wins.
        // One stored at this very moment may be missed by both sides; `reconcile` applies it.
        sqlx::query(
            "UPDATE outbox o
                SET status = coalesce(
                        (SELECT r.status FROM sms_delivery_reports r
                          WHERE r.provider IN ($2, 'generic') AND r.message_id = $3
                          ORDER BY sms_status_rank(r.status) DESC, r.id LIMIT 1),
                        'sent'),
                    provider = $2, provider_message_id = $3, segments = $4,
                    sent_at = now(), status_at = now(), last_error = NULL,
                    data = CASE WHEN data ? 'secret' THEN jsonb_build_object('text', $5::text) ELSE data END
              WHERE o.id = $1 AND o.status = 'queued' AND o.attempts = $6",
        )
        .bind(row.id)
        .bind(self.inner.outbound.provider().name())
        .bind(message_id)
        .bind(i16::try_from(segments).unwrap_or(i16::MAX))
        .bind(FORGOTTEN)
        .bind(row.attempts)
        .execute(&self.inner.pool)
        .await?;
        Ok(Fate::Sent)
    }

    async fn retry(&self, row: &Claimed, after: Duration, reason: &str) -> Result<Fate, sqlx::Error> {
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3
              WHERE id = $1 AND status = 'queued' AND attempts = $4",
        )
        .bind(row.id)
        .bind(after.as_secs_f64())
        .bind(reason)
        .bind(row.attempts)
        .execute(&self.inner.pool)
        .await?;
        Ok(Fate::Retry)
    }

    async fn release(&self, row: &Claimed, after: Duration) -> Result<Fate, sqlx::Error> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts - 1, next_attempt_at = now() + make_interval(secs => $2)
              WHERE id = $1 AND status = 'queued' AND attempts = $3",
        )
        .bind(row.id)
        .bind(after.as_secs_f64())
        .bind(row.attempts)
        .execute(&self.inner.pool)
        .await?;
        Ok(Fate::Deferred)
    }

    async fn dead(&self, row: &Claimed, reason: &str) -> Result<Fate, sqlx::Error> {
        warn!(
            outbox_id = row.id,
            "SMS outbox: a message is dead-lettered (the reason is in outbox.last_error)"
        );
        sqlx::query(
            "UPDATE outbox SET status = 'dead', last_error = $2, status_at = now(), provider = $3,
                    data = CASE WHEN data ? 'secret' THEN jsonb_build_object('text', $4::text) ELSE data END
              WHERE id = $1 AND status = 'queued' AND attempts = $5",
        )
        .bind(row.id)
        .bind(reason)
        .bind(self.inner.outbound.provider().name())
        .bind(FORGOTTEN)
        .bind(row.attempts)
        .execute(&self.inner.pool)
        .await?;
        Ok(Fate::Dead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let p = Policy {
            retry_base: Duration::from_secs(2),
            retry_cap: Duration::from_secs(60),
            ..Policy::new(NonZeroU32::MIN, Currency::new("KES", 2))
        };
        for _ in 0..100 {
            let first = p.backoff(1);
            assert!((Duration::from_secs(1)..=Duration::from_secs(2)).contains(&first), "{first:?}");
            let fourth = p.backoff(4);
            assert!((Duration::from_secs(8)..=Duration::from_secs(16)).contains(&fourth), "{fourth:?}");
            let late = p.backoff(40);
            assert!((Duration::from_secs(30)..=Duration::from_secs(60)).contains(&late), "{late:?}");
        }
    }
}
