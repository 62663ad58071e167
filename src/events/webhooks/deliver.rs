//! The delivery worker every replica runs: claims due deliveries (`SKIP LOCKED`, a
//! lease rather than an open transaction, a few per endpoint at a time), signs and
//! POSTs each, and records the outcome — delivered; retried with exponential backoff
//! and jitter for about a day, then dead; an endpoint failing in a row has its breaker
//! opened, and one failing for a day is disabled, with an audit row. Nothing here
//! holds up a hop or a movement: deliveries are made after the events are.

use std::collections::BTreeMap;
use std::time::Duration;

use metrics::counter;
use secrecy::SecretString;
use serde_json::json;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{place, sign};
use crate::address::Guard;
use crate::admin;
use crate::money::DataVault;
use crate::money::events::{self, Event};

/// How the worker sends and retries.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Deliveries claimed at once, and of those at most `per_endpoint` to one endpoint
    /// (sent one after another, so that a slow endpoint holds up only its own).
    pub batch: i64,
    pub per_endpoint: i64,
    /// How long an endpoint has to answer.
    pub timeout: Duration,
    /// The first retry's delay; each further one doubles, up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// How long a delivery is retried before it is dead.
    pub retry_for: Duration,
    /// Failures in a row that open an endpoint's breaker, and for how long.
    pub breaker_threshold: i32,
    pub breaker_cooldown: Duration,
    /// An endpoint failing for this long without a success is disabled.
    pub disable_after: Duration,
    /// How often an idle worker looks for due deliveries.
    pub idle_poll: Duration,
    /// Whether endpoints may be on loopback or private networks (`serve --demo`, tests):
    /// outside a demo a name resolving there is not called.
    pub private_networks: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            batch: 64,
            per_endpoint: 8,
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(5),
            retry_cap: Duration::from_secs(3_600),
            retry_for: Duration::from_secs(86_400),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(60),
            disable_after: Duration::from_secs(86_400),
            idle_poll: Duration::from_millis(200),
            private_networks: false,
        }
    }
}

impl Policy {
    /// The delay before try `attempts + 1`: exponential, capped, with jitter so that an
    /// endpoint coming back is not met by every delivery at once.
    fn backoff(&self, attempts: i32) -> Duration {
        let doubling = 2u32.saturating_pow(attempts.saturating_sub(1).clamp(0, 20) as u32);
        let full = self.retry_base.saturating_mul(doubling).min(self.retry_cap);
        full.mul_f64(rand::random_range(0.5..=1.0))
    }

    /// How long a claim lasts: every delivery of one endpoint, one after another.
    fn lease(&self) -> Duration {
        self.timeout * (self.per_endpoint as u32 + 1)
    }
}

/// A claimed delivery, with what sending it takes.
struct Claimed {
    id: i64,
    webhook_id: String,
    event_id: i64,
    url: String,
    secret_sealed: Vec<u8>,
    previous_sealed: Option<Vec<u8>>,
}

/// Whether an endpoint takes more deliveries after one.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint {
    Taking,
    /// Its breaker opened, or it was disabled.
    Resting,
}

/// What became of one delivery.
enum Fate {
    Delivered(u16),
    Failed { status: Option<u16>, error: String },
}

/// Sends the deliveries. Cheap to clone.
#[derive(Clone)]
pub struct Deliverer {
    pool: PgPool,
    vault: DataVault,
    client: reqwest::Client,
    policy: Policy,
}

impl Deliverer {
    pub fn new(pool: PgPool, vault: DataVault, policy: Policy) -> Self {
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            // A partner's endpoint answers itself; following it elsewhere could reach an
            // address no operator approved.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(std::sync::Arc::new(Guard { private_allowed: policy.private_networks }))
            .user_agent(concat!("ussd-gateway/", env!("CARGO_PKG_VERSION"), " (webhooks)"))
            .build()
            .expect("the HTTP client builds");
        Deliverer { pool, vault, client, policy }
    }

    /// Sends what is due; how many deliveries were tried.
    pub async fn pass(&self) -> Result<usize, sqlx::Error> {
        let claimed = self.claim().await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let positions: Vec<i64> = claimed.iter().map(|c| c.event_id).collect();
        let events: BTreeMap<i64, Event> =
            events::at(&self.pool, &positions).await?.into_iter().map(|e| (e.position, e)).collect();
        let tried = claimed.len();
        let mut by_endpoint: BTreeMap<String, Vec<Claimed>> = BTreeMap::new();
        for c in claimed {
            by_endpoint.entry(c.webhook_id.clone()).or_default().push(c);
        }
        let mut endpoints = JoinSet::new();
        for (_, deliveries) in by_endpoint {
            let (worker, events) =
                (self.clone(), deliveries.iter().map(|d| events.get(&d.event_id).cloned()).collect());
            endpoints.spawn(async move { worker.endpoint(deliveries, events).await });
        }
        while let Some(done) = endpoints.join_next().await {
            if let Ok(Err(e)) = done {
                warn!(error = %e, "a webhook delivery's outcome could not be recorded; it is sent again after its lease");
            }
        }
        Ok(tried)
    }

    /// Sends one endpoint's deliveries in order; after a failure that (re)opens its
    /// breaker or disables it, the rest wait, not counted as tries.
    async fn endpoint(
        &self,
        deliveries: Vec<Claimed>,
        events: Vec<Option<Event>>,
    ) -> Result<(), sqlx::Error> {
        let mut rest = deliveries.iter().zip(events);
        while let Some((delivery, event)) = rest.next() {
            let Some(event) = event else { continue };
            let fate = self.send(delivery, &event).await;
            if self.record(delivery, &fate).await? == Endpoint::Resting {
                let waiting: Vec<i64> = rest.map(|(d, _)| d.id).collect();
                self.defer(&delivery.webhook_id, &waiting).await?;
                break;
            }
        }
        Ok(())
    }

    #[tracing::instrument(name = "webhook.deliver", level = "debug", skip_all, fields(event = %event.id()))]
    async fn send(&self, delivery: &Claimed, event: &Event) -> Fate {
        let secrets = match self.secrets(delivery).await {
            Ok(secrets) => secrets,
            Err(e) => {
                return Fate::Failed { status: None, error: format!("the secret cannot be opened: {e}") };
            }
        };
        let body = event.envelope.to_string();
        let timestamp = crate::gateway::unix_ms() as i64 / 1000;
        let secrets: Vec<&SecretString> = secrets.iter().collect();
        let Some(signature) = sign::signature(&secrets, event.id(), timestamp, body.as_bytes()) else {
            return Fate::Failed {
                status: None,
                error: "the stored secret is not a whsec_ secret; rotate it".into(),
            };
        };
        let sent = crate::telemetry::trace::propagate(self.client.post(&delivery.url))
            .header("content-type", "application/json")
            .header("webhook-id", event.id())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Fate::Delivered(r.status().as_u16()),
            Ok(r) => {
                Fate::Failed { status: Some(r.status().as_u16()), error: format!("answered {}", r.status()) }
            }
            Err(e) if e.is_timeout() => {
                Fate::Failed { status: None, error: format!("no answer within {:?}", self.policy.timeout) }
            }
            Err(e) => Fate::Failed { status: None, error: cleaned(&chain_of(&e)) },
        }
    }

    /// The endpoint's secret, and while a rotation's grace lasts the one before it.
    async fn secrets(
        &self,
        delivery: &Claimed,
    ) -> Result<Vec<SecretString>, crate::money::crypto::VaultError> {
        let mut secrets = vec![SecretString::from(
            self.vault.open(place(&delivery.webhook_id), &delivery.secret_sealed).await?,
        )];
        if let Some(previous) = &delivery.previous_sealed {
            secrets.push(SecretString::from(self.vault.open(place(&delivery.webhook_id), previous).await?));
        }
        Ok(secrets)
    }
}

impl Deliverer {
    /// Sends until `stop` is cancelled; deliveries under way are finished first.
    pub async fn run(self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let rest = match self.pass().await {
                Ok(0) => self.policy.idle_poll,
                Ok(_) => continue,
                Err(e) => {
                    warn!(error = %e, "the webhook worker cannot reach the database; it tries again in 1 s");
                    Duration::from_secs(1)
                }
            };
            let _ = stop.run_until_cancelled(tokio::time::sleep(rest)).await;
        }
    }

    /// Due deliveries, at most `per_endpoint` of each endpoint whose breaker is shut,
    /// leased for as long as sending them can take.
    async fn claim(&self) -> Result<Vec<Claimed>, sqlx::Error> {
        sqlx::query_as!(
            Claimed,
            r#"WITH candidates AS (
                   SELECT d.id
                     FROM webhooks w
                    CROSS JOIN LATERAL (
                          SELECT d.id FROM webhook_deliveries d
                           WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.next_attempt_at <= now()
                           ORDER BY d.id LIMIT $2) d
                    WHERE w.status = 'active' AND (w.breaker_until IS NULL OR w.breaker_until <= now())),
               due AS (
                   SELECT d.id FROM webhook_deliveries d
                    WHERE d.id IN (SELECT id FROM candidates) AND d.status = 'pending' AND d.next_attempt_at <= now()
                    ORDER BY d.id LIMIT $1 FOR UPDATE SKIP LOCKED)
               UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $3)
                 FROM due, webhooks w
                WHERE d.id = due.id AND w.id = d.webhook_id
               RETURNING d.id, d.webhook_id, d.event_id, w.url, w.secret_sealed,
                         CASE WHEN w.previous_until > now() THEN w.previous_sealed END AS previous_sealed"#,
            self.policy.batch,
            self.policy.per_endpoint,
            self.policy.lease().as_secs_f64(),
        )
        .fetch_all(&self.pool)
        .await
    }

    /// Records what became of a delivery, and whether its endpoint takes more.
    async fn record(&self, delivery: &Claimed, fate: &Fate) -> Result<Endpoint, sqlx::Error> {
        let (status, error) = match fate {
            Fate::Delivered(status) => {
                sqlx::query!(
                    "WITH d AS (UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,
                                       last_status = $2, last_error = NULL, delivered_at = now()
                                 WHERE id = $1 AND status = 'pending' RETURNING webhook_id)
                     UPDATE webhooks w SET failures_in_row = 0, failing_since = NULL, breaker_until = NULL
                       FROM d WHERE w.id = d.webhook_id",
                    delivery.id,
                    i32::from(*status),
                )
                .execute(&self.pool)
                .await?;
                counter!("ussd_webhook_deliveries_total", "result" => "delivered").increment(1);
                return Ok(Endpoint::Taking);
            }
            Fate::Failed { status, error } => (status.map(i32::from), error),
        };
        let attempts =
            sqlx::query_scalar!("SELECT attempts FROM webhook_deliveries WHERE id = $1", delivery.id)
                .fetch_one(&self.pool)
                .await?;
        let row = sqlx::query!(
            r#"WITH d AS (UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3,
                                status = CASE WHEN retry_from + make_interval(secs => $4) <= now() + make_interval(secs => $5)
                                              THEN 'dead' ELSE 'pending' END,
                                next_attempt_at = now() + make_interval(secs => $5)
                          WHERE id = $1 AND status = 'pending' RETURNING webhook_id, status)
               UPDATE webhooks w SET failures_in_row = w.failures_in_row + 1, failing_since = coalesce(w.failing_since, now()),
                      breaker_until = CASE WHEN w.failures_in_row + 1 >= $6 THEN now() + make_interval(secs => $7)
                                           ELSE w.breaker_until END
                 FROM d WHERE w.id = d.webhook_id
               RETURNING d.status AS "delivery!", w.failures_in_row >= $6 AS "open!""#,
            delivery.id,
            status,
            error,
            self.policy.retry_for.as_secs_f64(),
            self.policy.backoff(attempts + 1).as_secs_f64(),
            self.policy.breaker_threshold,
            self.policy.breaker_cooldown.as_secs_f64(),
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(Endpoint::Taking) };
        let result = if row.delivery == "dead" { "dead" } else { "retry" };
        counter!("ussd_webhook_deliveries_total", "result" => result).increment(1);
        let disabled = self.disable_if_failing(&delivery.webhook_id, error).await?;
        Ok(if row.open || disabled { Endpoint::Resting } else { Endpoint::Taking })
    }

    /// Disables an endpoint that has failed for `disable_after` without a success, and
    /// writes why to the audit trail; whether it did.
    async fn disable_if_failing(&self, id: &str, error: &str) -> Result<bool, sqlx::Error> {
        let reason = sqlx::query_scalar!(
            r#"UPDATE webhooks SET status = 'disabled',
                      disabled_reason = 'every delivery failed since ' || to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ', the last: ' || $2
                WHERE id = $1 AND status = 'active' AND failing_since <= now() - make_interval(secs => $3)
               RETURNING disabled_reason AS "reason!""#,
            id,
            error,
            self.policy.disable_after.as_secs_f64(),
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(reason) = reason else { return Ok(false) };
        counter!("ussd_webhooks_disabled_total").increment(1);
        warn!(webhook = id, %reason, "a webhook endpoint was disabled");
        let entry = admin::Entry {
            token: Some("(webhook worker)".into()),
            method: "DISABLE".into(),
            route: "/admin/webhooks/{id}".into(),
            target: Some(id.to_owned()),
            status: 200,
            detail: Some(json!({ "status": "disabled", "reason": reason })),
        };
        admin::audit(&self.pool, &entry).await?;
        Ok(true)
    }

    /// Deliveries claimed for an endpoint that stopped taking them wait for its breaker
    /// (or, disabled, for an operator), not counted as tries.
    async fn defer(&self, id: &str, deliveries: &[i64]) -> Result<(), sqlx::Error> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let deferred = sqlx::query!(
            "UPDATE webhook_deliveries d SET next_attempt_at = coalesce(w.breaker_until, now())
               FROM webhooks w WHERE w.id = $1 AND d.id = ANY($2) AND d.status = 'pending'",
            id,
            deliveries,
        )
        .execute(&self.pool)
        .await?;
        counter!("ussd_webhook_deliveries_total", "result" => "deferred").increment(deferred.rows_affected());
        info!(
            webhook = id,
            deferred = deferred.rows_affected(),
            "the webhook's breaker is open; its deliveries wait"
        );
        Ok(())
    }
}

/// An error with its causes (reqwest's own says only "error sending request").
fn chain_of(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An error's text as the delivery list shows it: one line, at most 200 characters.
fn cleaned(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect()
}
