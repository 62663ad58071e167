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
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::receipts::{self, Receipt};
use crate::breaker::Breaker;
use crate::channel::sms::{Message, Outbound, SendError};
use crate::domain::Currency;
use crate::menu::{Bundle, Texts};
use crate::segments::segment;
use arc_swap::ArcSwap;

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
    /// The menus served, whose `texts/` word the receipts (a reload included); `None`:
    /// the shipped texts.
    menus: Option<Arc<ArcSwap<Bundle>>>,
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
#[derive(Debug)]
enum Fate {
    Sent {
        message_id: Option<String>,
        segments: usize,
    },
    /// A transient failure: try again after the delay.
    Retry(Duration, String),
    /// The breaker was open: back to the queue after the delay, not counted as a try.
    Deferred(Duration),
    Dead(String),
}

impl Fate {
    fn name(&self) -> &'static str {
        match self {
            Fate::Sent { .. } => "sent",
            Fate::Retry(..) => "retry",
            Fate::Dead(_) => "dead",
            Fate::Deferred(_) => "deferred",
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
    /// A worker whose receipts are in the shipped words.
    pub fn new(pool: PgPool, outbound: Outbound, policy: Policy) -> Self {
        Self::worded(pool, outbound, policy, None)
    }

    /// A worker whose receipts are in the words of `menus` as served (`texts/`), reloads
    /// included; `None`, the shipped words.
    pub fn worded(
        pool: PgPool,
        outbound: Outbound,
        policy: Policy,
        menus: Option<Arc<ArcSwap<Bundle>>>,
    ) -> Self {
        let rate = policy.segments_per_second;
        let bucket = RateLimiter::direct(Quota::per_second(rate));
        let breaker = Breaker::new(policy.breaker_threshold, policy.breaker_cooldown);
        Worker { inner: Arc::new(Inner { pool, outbound, bucket, breaker, policy, menus }) }
    }

    /// Delivers until `stop` is cancelled, then finishes the batch in hand.
    pub async fn run(self, stop: CancellationToken) {
        let provider = self.inner.outbound.provider().name();
        let mut reconciled = Instant::now();
        while !stop.is_cancelled() {
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
                    () = stop.cancelled() => {}
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

    /// Claims one batch of due messages, sends it, and records every outcome in one
    /// statement; returns how many were claimed.
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
            sends.spawn(async move { (row.id, row.attempts, worker.deliver(row).await) });
        }
        let mut outcomes = Outcomes::default();
        while let Some(done) = sends.join_next().await {
            match done {
                Ok((id, attempts, fate)) => outcomes.push(id, attempts, fate),
                Err(e) => {
                    warn!(error = %e, "SMS outbox: a send task failed; the message is retried when its claim runs out")
                }
            }
        }
        if !outcomes.ids.is_empty() {
            outcomes.record(&inner.pool, inner.outbound.provider().name()).await?;
        }
        Ok(count)
    }

    /// Sends one message and decides its fate; writes nothing.
    async fn deliver(&self, row: Claimed) -> Fate {
        let inner = &self.inner;
        let provider = inner.outbound.provider().name();
        let receipt = Receipt {
            template: &row.template,
            language: &row.language,
            data: &row.data,
            date: &row.date,
            time: &row.time,
        };
        // The served menus are held only while the text is made, not across the sends.
        let rendered = {
            let menus = inner.menus.as_ref().map(|m| m.load());
            let texts = menus.as_ref().map_or(&**Texts::shipped(), |m| m.texts());
            receipts::render(&receipt, &inner.policy.currency, texts)
        };
        let fate = match rendered {
            _ if row.opted_out && !row.transactional => Fate::Dead("the subscriber opted out (STOP)".into()),
            Err(reason) => Fate::Dead(reason),
            Ok(text) => {
                let segments = segment(&text);
                if let Err(until) = inner.breaker.permit(Instant::now()) {
                    Fate::Deferred(until.saturating_duration_since(Instant::now()))
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
                            Fate::Sent { message_id: accepted.message_id, segments: segments.count() }
                        }
                        Err(SendError { permanent: true, reason }) => {
                            inner.breaker.succeeded();
                            Fate::Dead(reason)
                        }
                        Err(SendError { permanent: false, reason }) => {
                            inner.breaker.failed(Instant::now());
                            let attempts = u32::try_from(row.attempts).unwrap_or(u32::MAX);
                            if attempts >= inner.policy.max_attempts {
                                Fate::Dead(format!("{attempts} tries; the last: {reason}"))
                            } else {
                                Fate::Retry(inner.policy.backoff(attempts), reason)
                            }
                        }
                    }
                }
            }
        };
        if matches!(fate, Fate::Dead(_)) {
            warn!(
                outbox_id = row.id,
                "SMS outbox: a message is dead-lettered (the reason is in outbox.last_error)"
            );
        }
        counter!("sms_outbox_total", "provider" => provider, "result" => fate.name()).increment(1);
        debug!(outbox_id = row.id, attempt = row.attempts, fate = fate.name(), "SMS outbox");
        fate
    }
}

/// A batch's outcomes, column by column, for one `UPDATE … FROM unnest(…)`.
#[derive(Default)]
struct Outcomes {
    ids: Vec<i64>,
    attempts: Vec<i32>,
    fates: Vec<&'static str>,
    message_ids: Vec<Option<String>>,
    segments: Vec<i16>,
    after_secs: Vec<f64>,
    reasons: Vec<Option<String>>,
}

/// Applies each outcome only while its claim stands (`status` queued, `attempts` as
/// claimed): a worker whose lease ran out cannot overwrite the next worker's result.
/// A sent message takes the furthest delivery report already stored (a report may
/// overtake the provider's answer); one stored at this very moment may be missed by
/// both sides, and `reconcile` applies it. A deferred message gets its try back.
/// Secret texts are forgotten once sent or dead.
const RECORD: &str = "
UPDATE outbox x
   SET status = CASE o.fate
                  WHEN 'sent' THEN coalesce(
                      (SELECT r.status FROM sms_delivery_reports r
                        WHERE r.provider IN ($8, 'generic') AND r.message_id = o.message_id
                        ORDER BY sms_status_rank(r.status) DESC, r.id LIMIT 1),
                      'sent')
                  WHEN 'dead' THEN 'dead'
                  ELSE x.status END,
       attempts = CASE WHEN o.fate = 'deferred' THEN x.attempts - 1 ELSE x.attempts END,
       next_attempt_at = CASE WHEN o.fate IN ('retry', 'deferred')
                              THEN now() + make_interval(secs => o.after_secs)
                              ELSE x.next_attempt_at END,
       provider = CASE WHEN o.fate IN ('sent', 'dead') THEN $8 ELSE x.provider END,
       provider_message_id = CASE WHEN o.fate = 'sent' THEN o.message_id ELSE x.provider_message_id END,
       segments = CASE WHEN o.fate = 'sent' THEN o.segments ELSE x.segments END,
       sent_at = CASE WHEN o.fate = 'sent' THEN now() ELSE x.sent_at END,
       status_at = CASE WHEN o.fate IN ('sent', 'dead') THEN now() ELSE x.status_at END,
       last_error = CASE WHEN o.fate = 'deferred' THEN x.last_error ELSE o.reason END,
       data = CASE WHEN o.fate IN ('sent', 'dead') AND x.data ? 'secret'
                   THEN jsonb_build_object('text', $9::text) ELSE x.data END
  FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::smallint[], $6::float8[], $7::text[])
       AS o(id, attempts, fate, message_id, segments, after_secs, reason)
 WHERE x.id = o.id AND x.status = 'queued' AND x.attempts = o.attempts";

impl Outcomes {
    fn push(&mut self, id: i64, attempts: i32, fate: Fate) {
        self.ids.push(id);
        self.attempts.push(attempts);
        self.fates.push(fate.name());
        let (message_id, segments, after, reason) = match fate {
            Fate::Sent { message_id, segments } => {
                (message_id, i16::try_from(segments).unwrap_or(i16::MAX), Duration::ZERO, None)
            }
            Fate::Retry(after, reason) => (None, 0, after, Some(reason)),
            Fate::Deferred(after) => (None, 0, after, None),
            Fate::Dead(reason) => (None, 0, Duration::ZERO, Some(reason)),
        };
        self.message_ids.push(message_id);
        self.segments.push(segments);
        self.after_secs.push(after.as_secs_f64());
        self.reasons.push(reason);
    }

    async fn record(self, pool: &PgPool, provider: &str) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(RECORD)
            .bind(self.ids)
            .bind(self.attempts)
            .bind(self.fates)
            .bind(self.message_ids)
            .bind(self.segments)
            .bind(self.after_secs)
            .bind(self.reasons)
            .bind(provider)
            .bind(FORGOTTEN)
            .execute(pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Queues `text` to the sender of the inbound message `inbound_id`, once per message
/// (a secret one, such as a one-time code, has its text wiped once sent or dead).
pub(super) async fn queue_reply(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    inbound_id: i64,
    msisdn: &str,
    text: &str,
    secret: bool,
    language: &str,
) -> Result<(), sqlx::Error> {
    let data = if secret { json!({ "text": text, "secret": true }) } else { json!({ "text": text }) };
    sqlx::query(
        "INSERT INTO outbox (inbound_id, role, msisdn, language, template, data)
         VALUES ($1, 'reply', $2, $3, 'reply', $4) ON CONFLICT (inbound_id) DO NOTHING",
    )
    .bind(inbound_id)
    .bind(msisdn)
    .bind(language)
    .bind(data)
    .execute(&mut **tx)
    .await?;
    Ok(())
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
