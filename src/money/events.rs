//! The event log as a consumer reads it: every movement posted or rejected, once per
//! party account and numbered per account (written by the ledger in the movement's
//! own transaction, `migrations/20261206000001_events.sql`), as CloudEvents envelopes;
//! and the relay's side of it, the events waiting to be published, claimed a part at
//! a time (`migrations/20261206000002_event_relay.sql`).

use serde_json::{Value, json};
use sqlx::{PgPool, Postgres, Transaction};

use super::crypto::Place;

/// Where a webhook endpoint's secrets are sealed: bound to its row, whichever column
/// holds them (a rotation moves the current one to `previous_sealed`). A partner's
/// endpoint and a merchant's confirmation endpoint alike.
pub fn webhook_place(id: &str) -> Place<'_> {
    Place { table: "webhooks", column: "secret", row: id }
}

/// One event: its position in the log (the order it was written in) and its envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub position: i64,
    pub envelope: Value,
}

impl Event {
    pub fn kind(&self) -> &str {
        self.envelope["type"].as_str().unwrap_or_default()
    }

    /// The stable id consumers drop repeats by (`TX0000002A.AC00000003`; a held
    /// transfer's first event for its payer ends in `.held`).
    pub fn id(&self) -> &str {
        self.envelope["id"].as_str().unwrap_or_default()
    }

    /// The account the event is numbered under (`AC00000003`).
    pub fn account(&self) -> &str {
        self.envelope["account"].as_str().unwrap_or_default()
    }

    pub fn sequence(&self) -> i64 {
        self.envelope["sequence"].as_i64().unwrap_or_default()
    }
}

/// An event as the queries below read it.
struct Row {
    id: i64,
    event_id: String,
    r#type: String,
    subject: String,
    account: String,
    sequence: i64,
    time: String,
    data: Value,
}

impl From<Row> for Event {
    fn from(r: Row) -> Self {
        Event {
            position: r.id,
            envelope: json!({
                "specversion": "1.0",
                "id": r.event_id,
                "source": "ussd-gateway",
                "type": r.r#type,
                "subject": r.subject,
                "account": r.account,
                "sequence": r.sequence,
                "time": r.time,
                "datacontenttype": "application/json",
                "data": r.data,
            }),
        }
    }
}

/// The events after `position`, oldest first, at most `limit`.
pub async fn after(pool: &PgPool, position: i64, limit: i64) -> Result<Vec<Event>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT e.id, event_id(e) AS "event_id!", e.type, e.subject,
                  account_ref(e.account_id) AS "account!",
                  e.sequence, to_char(e.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "time!", e.data
             FROM events e WHERE e.id > $1 ORDER BY e.id LIMIT $2"#,
        position,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Event::from).collect())
}

/// The events at `positions`, in the log's order.
pub async fn at(pool: &PgPool, positions: &[i64]) -> Result<Vec<Event>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT e.id, event_id(e) AS "event_id!", e.type, e.subject,
                  account_ref(e.account_id) AS "account!",
                  e.sequence, to_char(e.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "time!", e.data
             FROM events e WHERE e.id = ANY($1) ORDER BY e.id"#,
        positions,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Event::from).collect())
}

/// One part of the waiting events, held by this relay until [`Claim::published`] or
/// until it is dropped (then they wait for the next relay, to be published again).
pub struct Claim {
    tx: Transaction<'static, Postgres>,
    part: i16,
    /// The part's waiting events in the order they were written, one account's in
    /// the order of its sequence.
    pub events: Vec<Event>,
}

/// How long a claim may sit between statements before the database ends it: a relay
/// that hangs (rather than dies, which lets go at once) gives its part back.
const CLAIM_IDLE_LIMIT: &str = "60s";

/// Claims the part whose events have waited longest among those no other relay
/// holds, with its first `batch` events; `None` when no part has any waiting.
pub async fn claim(pool: &PgPool, batch: i64) -> Result<Option<Claim>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query_scalar!(
        r#"SELECT set_config('idle_in_transaction_session_timeout', $1, true) AS "set!""#,
        CLAIM_IDLE_LIMIT
    )
    .fetch_one(&mut *tx)
    .await?;
    let part = sqlx::query_scalar!(
        "SELECT p.part FROM event_relay_parts p
          WHERE EXISTS (SELECT 1 FROM event_outbox o WHERE o.part = p.part)
          ORDER BY p.relayed_at LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED"
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(part) = part else {
        return Ok(None);
    };
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT e.id, event_id(e) AS "event_id!", e.type, e.subject,
                  account_ref(e.account_id) AS "account!",
                  e.sequence, to_char(e.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "time!", e.data
             FROM event_outbox o JOIN events e ON e.id = o.event_id
            WHERE o.part = $1 ORDER BY o.event_id LIMIT $2"#,
        part,
        batch,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(Some(Claim { tx, part, events: rows.into_iter().map(Event::from).collect() }))
}

impl Claim {
    /// The claimed events are published: they stop waiting, each becomes a delivery
    /// to every webhook that wants its type (one that is disabled keeps it until it is
    /// enabled) and the next link of its part's hash chain, and the part goes to the
    /// back of the queue.
    pub async fn published(mut self) -> Result<(), sqlx::Error> {
        let positions: Vec<i64> = self.events.iter().map(|e| e.position).collect();
        sqlx::query!(
            "WITH gone AS (DELETE FROM event_outbox WHERE event_id = ANY($1) RETURNING event_id),
                  fanned AS (INSERT INTO webhook_deliveries (webhook_id, event_id)
                             SELECT f.webhook, f.event FROM (
                                 SELECT w.id AS webhook, e.id AS event FROM gone g JOIN events e ON e.id = g.event_id
                                   JOIN webhooks w ON w.merchant_id IS NULL AND webhook_wants(w.types, e.type)
                                 UNION ALL
                                 -- A merchant's own endpoint: by the account, through indexes,
                                 -- however many merchants have one.
                                 SELECT w.id, e.id FROM gone g JOIN events e ON e.id = g.event_id
                                   JOIN merchant_settlement_shards s ON s.account_id = e.account_id
                                   JOIN webhooks w ON w.merchant_id = s.merchant_id AND webhook_wants(w.types, e.type)) f
                             ORDER BY f.event
                             ON CONFLICT DO NOTHING),
                  chained AS (SELECT chain_events($2, $1) AS done)
             UPDATE event_relay_parts SET relayed_at = clock_timestamp() FROM chained WHERE part = $2",
            &positions,
            self.part,
        )
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await
    }
}

/// The events waiting to be published, and how long the oldest has waited (seconds).
pub async fn backlog(pool: &PgPool) -> Result<(i64, f64), sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM event_outbox) AS "waiting!",
                  coalesce((SELECT extract(epoch FROM clock_timestamp() - e.time)::float8
                              FROM events e WHERE e.id = (SELECT min(event_id) FROM event_outbox)), 0) AS "oldest!""#
    )
    .fetch_one(pool)
    .await?;
    Ok((row.waiting, row.oldest))
}
