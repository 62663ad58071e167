//! Delivery reports: each stored once (providers retry them), then applied to the
//! outbox forward-only, so a late "sent" never undoes "delivered". A report stored
//! while the worker records the send may be missed by both; the worker's `reconcile`
//! applies it within seconds.

use sqlx::PgPool;

use crate::channel::sms::{Provider, Report};

/// Stores `reports` from `provider` and moves the messages they name forward (a report
/// in the generic format names a message sent through any provider). Returns
/// how many outbox rows changed: a repeat, a step back, or a message this gateway did
/// not send changes none.
pub async fn record(pool: &PgPool, provider: Provider, reports: &[Report]) -> Result<u64, sqlx::Error> {
    let mut changed = 0;
    for r in reports {
        let row = sqlx::query_scalar::<_, i64>(
            "WITH stored AS (
                 INSERT INTO sms_delivery_reports (provider, message_id, status, error)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (provider, message_id, status) DO NOTHING)
             UPDATE outbox SET status = $3, status_at = now(), last_error = coalesce($4, last_error)
              WHERE (provider = $1 OR $1 = 'generic') AND provider_message_id = $2
                AND sms_status_rank(status) < sms_status_rank($3)
                AND status <> 'dead'
             RETURNING id",
        )
        .bind(provider.name())
        .bind(&r.message_id)
        .bind(r.delivery.as_str())
        .bind(&r.error)
        .fetch_optional(pool)
        .await?;
        changed += u64::from(row.is_some());
    }
    Ok(changed)
}
