//! What operators and the metrics read of the stored messages: the backlogs (inbound
//! and the receipts' outbox), and the dead letters (never their text).

use sqlx::PgPool;

/// Messages waiting to be answered, and dead-lettered ones (for the metrics).
pub async fn backlog(pool: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE answered_at IS NULL AND dead_at IS NULL),
                count(*) FILTER (WHERE dead_at IS NOT NULL)
           FROM sms_inbound",
    )
    .fetch_one(pool)
    .await
}

/// Receipts waiting in the outbox to be sent, and how long the oldest has waited
/// (seconds).
pub async fn outbox_backlog(pool: &PgPool) -> Result<(i64, f64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at))::float8, 0)
           FROM outbox WHERE status = 'queued'",
    )
    .fetch_one(pool)
    .await
}

/// A dead-lettered message, as operators see it: never its text.
#[derive(Debug, serde::Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: i64,
    pub channel: String,
    pub provider: String,
    pub message_id: String,
    pub msisdn: String,
    /// RFC 3339, UTC.
    pub received_at: String,
    pub dead_at: String,
    pub attempts: i32,
    pub reason: Option<String>,
}

/// The latest `limit` dead-lettered messages.
pub async fn dead_letters(pool: &PgPool, limit: i64) -> Result<Vec<DeadLetter>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, channel, provider, message_id, msisdn,
                to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS received_at,
                to_char(dead_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS dead_at,
                attempts, last_error AS reason
           FROM sms_inbound WHERE dead_at IS NOT NULL ORDER BY dead_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}
