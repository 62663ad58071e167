//! Webhooks: partners' endpoints subscribed to event types through the admin API,
//! each with a secret shown once (a rotation keeps the old one signing for a grace
//! period), and the deliveries made to them — queryable, and replayable once dead.
//! `deliver.rs` sends them; `sign.rs` signs them.

pub mod deliver;
pub use crate::signature as sign;

use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use utoipa::ToSchema;

use super::FAMILIES;
use super::tail::glob;
use crate::address::{self, Schemes};
use crate::domain::shape::{self, Schemas};
use crate::money::DataVault;
use crate::money::crypto::VaultError;

/// An endpoint to subscribe, as the admin API takes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where deliveries are POSTed: https:// (http:// only with `serve --demo`).
    #[schema(schema_with = Schemas::webhook_url)]
    pub url: String,
    /// Event types, exact or with `*`: `["transfer.*", "bill.paid"]`.
    #[schema(schema_with = Schemas::event_types)]
    pub types: Vec<String>,
}

/// A change to an endpoint: its address, its types, or its status (`disabled` stops
/// deliveries, which wait; `active` resumes them and closes its breaker).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookChange {
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::webhook_url)]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::event_types)]
    pub types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::webhook_status)]
    pub status: Option<String>,
}

/// A rotation of an endpoint's secret.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// How long the old secret keeps signing beside the new one, in seconds (0 to
    /// 604800; a day when left out).
    #[serde(default, deserialize_with = "shape::whole_opt")]
    #[schema(schema_with = Schemas::grace_secs)]
    pub grace_secs: Option<i64>,
}

impl Rotation {
    /// The grace period in seconds, or why it is refused.
    pub fn grace(&self) -> Result<f64, WebhookError> {
        match self.grace_secs {
            None => Ok(DEFAULT_GRACE.as_secs_f64()),
            Some(secs @ 0..=604_800) => Ok(secs as f64),
            Some(secs) => {
                Err(WebhookError::Invalid(format!("`grace_secs` must be 0 to 604800 (got {secs})")))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The request breaks the admin API's document (a 400).
    #[error("{0}")]
    Invalid(String),
    /// The request keeps to the document but cannot be done (a 422).
    #[error("{0}")]
    Unacceptable(String),
    #[error("no webhook has the id {0}")]
    Unknown(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<VaultError> for WebhookError {
    fn from(e: VaultError) -> Self {
        WebhookError::Database(e.into_sqlx())
    }
}

pub use crate::money::events::webhook_place as place;

/// How long an old secret keeps signing after a rotation, unless the call says.
const DEFAULT_GRACE: Duration = Duration::from_secs(86_400);

fn url_problem(url: &str, demo: bool) -> Option<WebhookError> {
    let schemes = if demo { Schemes::HttpOrHttps } else { Schemes::HttpsOnly };
    match address::problem("url", url, schemes)? {
        address::Problem::Invalid(why) => Some(WebhookError::Invalid(why)),
        address::Problem::Unacceptable(why) => Some(WebhookError::Unacceptable(why)),
    }
}

fn types_problem(types: &[String]) -> Option<WebhookError> {
    if types.is_empty() || types.len() > 20 {
        return Some(WebhookError::Invalid(format!(
            "`types` must list 1 to 20 event types (got {})",
            types.len()
        )));
    }
    if let Some(bad) = types.iter().find(|t| !shape::EVENT_TYPE.fits(t)) {
        return Some(WebhookError::Invalid(format!(
            "`{bad}` is not an event type: write one as `transfer.posted`, or with `*` as `transfer.*`"
        )));
    }
    let unknown =
        types.iter().find(|t| !FAMILIES.iter().any(|f| glob(t.split('.').next().unwrap_or("*"), f)));
    unknown.map(|t| {
        WebhookError::Unacceptable(format!(
            "`{t}` names no family of events; there are {}",
            FAMILIES.join(", ")
        ))
    })
}

const STATUSES: &[&str] = &["active", "disabled"];

/// Subscribes an endpoint; answers it with its secret, shown this once.
pub async fn create(
    pool: &PgPool,
    vault: &DataVault,
    new: &NewWebhook,
    demo: bool,
) -> Result<Value, WebhookError> {
    if let Some(problem) = url_problem(&new.url, demo).or_else(|| types_problem(&new.types)) {
        return Err(problem);
    }
    let id = format!("wh_{:016x}", rand::random::<u64>());
    let secret = sign::new_secret();
    let sealed = vault.seal(place(&id), secret.expose_secret()).await?;
    sqlx::query!(
        "INSERT INTO webhooks (id, url, types, secret_sealed) VALUES ($1, $2, $3, $4)",
        id,
        new.url,
        &new.types,
        sealed,
    )
    .execute(pool)
    .await?;
    let mut shown = show(pool, &id).await?;
    shown["secret"] = json!(secret.expose_secret());
    Ok(shown)
}

/// Changes an endpoint's address, types or status.
/// What is wrong with `change` before anything is looked up, if anything.
pub fn change_problem(change: &WebhookChange, demo: bool) -> Option<WebhookError> {
    change
        .url
        .as_deref()
        .and_then(|u| url_problem(u, demo))
        .or_else(|| change.types.as_deref().and_then(types_problem))
        .or_else(|| {
            change
                .status
                .as_deref()
                .filter(|s| !STATUSES.contains(s))
                .map(|s| WebhookError::Invalid(format!("`status` `{s}` must be `active` or `disabled`")))
        })
}

/// Whether endpoint `id` is a merchant's confirmation endpoint: changed, like the
/// merchant, by two tokens.
pub async fn is_merchants(pool: &PgPool, id: &str) -> Result<bool, sqlx::Error> {
    let owned = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM webhooks WHERE id = $1 AND merchant_id IS NOT NULL) AS "owned!""#,
        id
    )
    .fetch_one(pool)
    .await?;
    Ok(owned)
}

pub async fn change(
    pool: &PgPool,
    id: &str,
    change: &WebhookChange,
    demo: bool,
) -> Result<Value, WebhookError> {
    if let Some(problem) = change_problem(change, demo) {
        return Err(problem);
    }
    let updated = sqlx::query!(
        "UPDATE webhooks SET url = coalesce($2, url), types = coalesce($3, types),
                status = coalesce($4, status),
                disabled_reason = CASE WHEN $4 IS NULL THEN disabled_reason
                                       WHEN $4 = 'disabled' THEN 'disabled by an operator' END,
                failures_in_row = CASE WHEN $4 = 'active' THEN 0 ELSE failures_in_row END,
                failing_since = CASE WHEN $4 = 'active' THEN NULL ELSE failing_since END,
                breaker_until = CASE WHEN $4 = 'active' THEN NULL ELSE breaker_until END
          WHERE id = $1",
        id,
        change.url,
        change.types.as_deref(),
        change.status,
    )
    .execute(pool)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(WebhookError::Unknown(id.to_owned()));
    }
    show(pool, id).await
}

/// A new secret for the endpoint, shown this once; the old one keeps signing beside it
/// for the grace period.
pub async fn rotate(
    pool: &PgPool,
    vault: &DataVault,
    id: &str,
    rotation: &Rotation,
) -> Result<Value, WebhookError> {
    let grace = rotation.grace()?;
    let secret = sign::new_secret();
    let sealed = vault.seal(place(id), secret.expose_secret()).await?;
    let rotated = sqlx::query_scalar!(
        r#"UPDATE webhooks SET previous_sealed = secret_sealed, secret_sealed = $2,
                previous_until = now() + make_interval(secs => $3)
          WHERE id = $1
          RETURNING to_char(previous_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS "until!""#,
        id,
        sealed,
        grace,
    )
    .fetch_optional(pool)
    .await?;
    let Some(until) = rotated else { return Err(WebhookError::Unknown(id.to_owned())) };
    Ok(json!({ "id": id, "secret": secret.expose_secret(), "previous_secret_signs_until": until }))
}

/// One endpoint as operators see it (never its secrets).
async fn show(pool: &PgPool, id: &str) -> Result<Value, WebhookError> {
    shown(pool, Some(id)).await?.pop().ok_or_else(|| WebhookError::Unknown(id.to_owned()))
}

/// Endpoints as the API shows them, oldest first: the one named, or every one.
async fn shown(pool: &PgPool, id: Option<&str>) -> Result<Vec<Value>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT jsonb_build_object(
                  'id', w.id, 'url', w.url, 'types', w.types, 'status', w.status,
                  'disabled_reason', w.disabled_reason, 'failures_in_row', w.failures_in_row,
                  'breaker_open_until', w.breaker_until,
                  'previous_secret_signs_until', CASE WHEN w.previous_until > now() THEN w.previous_until END,
                  'pending', (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending'),
                  'dead', (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'dead'),
                  'created_at', w.created_at) AS "shown!"
             FROM webhooks w WHERE $1::text IS NULL OR w.id = $1
            ORDER BY w.created_at, w.id"#,
        id
    )
    .fetch_all(pool)
    .await
}

/// Every endpoint.
pub async fn list(pool: &PgPool) -> Result<Value, WebhookError> {
    Ok(json!({ "webhooks": shown(pool, None).await? }))
}

/// An endpoint's latest deliveries, newest first, each with its event.
pub async fn deliveries(pool: &PgPool, id: &str, limit: i64) -> Result<Value, WebhookError> {
    show(pool, id).await?;
    let rows = sqlx::query_scalar!(
        r#"SELECT jsonb_build_object(
                  'id', d.id, 'event', event_id(e), 'type', e.type,
                  'status', d.status, 'attempts', d.attempts, 'last_status', d.last_status,
                  'last_error', d.last_error, 'next_attempt_at', CASE WHEN d.status = 'pending' THEN d.next_attempt_at END,
                  'created_at', d.created_at, 'delivered_at', d.delivered_at) AS "delivery!"
             FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
            WHERE d.webhook_id = $1 ORDER BY d.id DESC LIMIT $2"#,
        id,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(json!({ "webhook": id, "deliveries": rows }))
}

/// Sends a dead delivery again, with a new day of retries.
pub async fn replay(pool: &PgPool, delivery: i64) -> Result<Value, WebhookError> {
    let status = sqlx::query_scalar!("SELECT status FROM webhook_deliveries WHERE id = $1", delivery)
        .fetch_optional(pool)
        .await?;
    match status.as_deref() {
        None => return Err(WebhookError::Unknown(format!("delivery {delivery}"))),
        Some("dead") => {}
        Some(other) => {
            return Err(WebhookError::Conflict(format!(
                "delivery {delivery} is {other}; only a dead delivery is replayed"
            )));
        }
    }
    sqlx::query!(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), retry_from = now()
          WHERE id = $1 AND status = 'dead'",
        delivery
    )
    .execute(pool)
    .await?;
    Ok(json!({ "delivery": delivery, "status": "pending" }))
}
