//! The event log as a consumer reads it: every movement posted or rejected, once per
//! party account and numbered per account (written by the ledger in the movement's
//! own transaction, `migrations/20261206000001_events.sql`), as CloudEvents envelopes.

use serde_json::{Value, json};
use sqlx::PgPool;

/// One event: its position in the log (the order the relay publishes in) and its
/// envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub position: i64,
    pub envelope: Value,
}

impl Event {
    pub fn kind(&self) -> &str {
        self.envelope["type"].as_str().unwrap_or_default()
    }
}

/// The events after `position`, oldest first, at most `limit`.
pub async fn after(pool: &PgPool, position: i64, limit: i64) -> Result<Vec<Event>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT e.id, e.subject || '.' || account_ref(e.account_id) AS "event_id!", e.type, e.subject,
                  account_ref(e.account_id) AS "account!",
                  e.sequence, to_char(e.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS "time!", e.data
             FROM events e WHERE e.id > $1 ORDER BY e.id LIMIT $2"#,
        position,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Event {
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
        })
        .collect())
}
