//! Notices: a subscriber told to wait for an SMS learns by SMS why their op was refused.

use serde_json::json;

use super::lane::Db;
use crate::domain::Msisdn;
use crate::ops::Outcome;

/// Queues the `not_completed` notice for the op under `op_key`, at most once per op.
pub async fn refused(
    db: impl Db,
    msisdn: &Msisdn,
    op_key: &str,
    language: &str,
    outcome: Outcome,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (op_key, role, msisdn, language, template, data)
         VALUES ($1, 'outcome', $2, $3, 'not_completed', $4) ON CONFLICT (op_key) DO NOTHING",
    )
    .bind(op_key)
    .bind(msisdn.as_e164())
    .bind(language)
    .bind(json!({ "outcome": outcome.as_str() }))
    .execute(db)
    .await?;
    Ok(())
}
