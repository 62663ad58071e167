//! The admin API's webhook endpoints: subscribe a partner's endpoint, change or
//! disable it, rotate its secret, read its deliveries, replay a dead one.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::approvals::Guard;
use super::extract::{Allowed, Body, DeliveryId, Example, InPath, Limit, Trail, WebhookId, scope};
use super::{AdminError, Answer, AppState, ok};
use crate::events::webhooks::{self, NewWebhook, Rotation, WebhookChange};

impl Example for NewWebhook {
    const EXAMPLE: &'static str =
        r#"{"url": "https://partner.example/hooks", "types": ["transfer.*", "bill.paid"]}"#;
    const STRING_LISTS: &'static [&'static str] = &["types"];
}

impl Example for WebhookChange {
    const EXAMPLE: &'static str = r#"{"status": "disabled"}, or any of url, types, status"#;
    const STRING_LISTS: &'static [&'static str] = &["types"];
}

impl Example for Rotation {
    const EXAMPLE: &'static str = r#"{"grace_secs": 86400}, or {}"#;
}

/// `POST /admin/webhooks`: subscribes an endpoint; its secret is in this answer only.
#[utoipa::path(post, path = "/admin/webhooks", tag = "webhooks",
    summary = "Subscribe a partner's endpoint to event types; the answer holds its signing secret, shown this once",
    extensions(("x-scope" = json!("webhooks"))),
    request_body = NewWebhook,
    responses(
        (status = 201, description = "the webhook, with `secret` (whsec_…)", body = Object),
        (status = 422, description = "an address the gateway must not call, plain http outside a demo, or a type that names no family of events"),
    ))]
pub(super) async fn create(
    _: Allowed<scope::Webhooks>,
    State(state): State<AppState>,
    trail: Trail,
    Body { asked: new, sent }: Body<NewWebhook>,
) -> Result<Answer, AdminError> {
    trail.detail(sent);
    let money = state.money();
    let webhook = webhooks::create(money.pool(), money.vault(), &new, state.demo).await?;
    trail.target(webhook["id"].as_str().unwrap_or_default().to_owned());
    Ok((StatusCode::CREATED, Json(webhook)))
}

/// `GET /admin/webhooks`: every endpoint, with its deliveries pending and dead.
#[utoipa::path(get, path = "/admin/webhooks", tag = "webhooks",
    summary = "Every subscribed endpoint: its types, status, breaker, and deliveries pending and dead (never its secret)",
    extensions(("x-scope" = json!("webhooks"))),
    responses((status = 200, description = "the webhooks", body = Object)))]
pub(super) async fn list(
    _: Allowed<scope::Webhooks>,
    State(state): State<AppState>,
) -> Result<Answer, AdminError> {
    Ok(ok(webhooks::list(state.reads().await).await?))
}

/// `PATCH /admin/webhooks/{id}`: changes what is sent, keeps the rest.
#[utoipa::path(patch, path = "/admin/webhooks/{id}", tag = "webhooks",
    summary = "Change an endpoint's address or types, or disable it (its deliveries wait) or enable it again (its breaker closes)",
    extensions(("x-scope" = json!("webhooks"))),
    params(InPath<WebhookId>),
    request_body = WebhookChange,
    responses(
        (status = 200, description = "the webhook", body = Object),
        (status = 202, description = "a merchant's confirmation endpoint and four eyes are on (FOUR_EYES): the call is proposed, and is carried out when another token approves it (`proposal`)", body = Object),
        (status = 404, description = "no webhook has this id"),
        (status = 422, description = "an address the gateway must not call, or a type that names no family of events"),
    ))]
pub(super) async fn change(
    _: Allowed<scope::Webhooks>,
    State(state): State<AppState>,
    InPath(id, _): InPath<WebhookId>,
    guard: Guard,
    trail: Trail,
    Body { asked, sent }: Body<WebhookChange>,
) -> Result<Answer, AdminError> {
    if let Some(problem) = webhooks::change_problem(&asked, state.demo) {
        return Err(problem.into());
    }
    // A merchant's confirmations go where two tokens said, as its other settings do.
    if webhooks::is_merchants(state.pool(), &id).await?
        && let Some(proposed) = guard.propose(&state, &trail, Some(sent.clone())).await?
    {
        return Ok(proposed);
    }
    trail.detail(sent);
    Ok(ok(webhooks::change(state.pool(), &id, &asked, state.demo).await?))
}

/// `POST /admin/webhooks/{id}/rotate`: a new secret, the old one signing beside it for
/// the grace period.
#[utoipa::path(post, path = "/admin/webhooks/{id}/rotate", tag = "webhooks",
    summary = "Give an endpoint a new signing secret, shown this once; deliveries carry both signatures until the old secret's grace ends",
    extensions(("x-scope" = json!("webhooks"))),
    params(InPath<WebhookId>),
    request_body = Rotation,
    responses(
        (status = 200, description = "`secret`, and until when the previous one still signs", body = Object),
        (status = 202, description = "a merchant's confirmation endpoint and four eyes are on (FOUR_EYES): the call is proposed, and is carried out when another token approves it (`proposal`); the new secret goes to the approver", body = Object),
        (status = 404, description = "no webhook has this id"),
    ))]
pub(super) async fn rotate(
    _: Allowed<scope::Webhooks>,
    State(state): State<AppState>,
    InPath(id, _): InPath<WebhookId>,
    guard: Guard,
    trail: Trail,
    Body { asked, sent }: Body<Rotation>,
) -> Result<Answer, AdminError> {
    asked.grace()?;
    if webhooks::is_merchants(state.pool(), &id).await?
        && let Some(proposed) = guard.propose(&state, &trail, Some(sent.clone())).await?
    {
        return Ok(proposed);
    }
    trail.detail(sent);
    let money = state.money();
    Ok(ok(webhooks::rotate(money.pool(), money.vault(), &id, &asked).await?))
}

/// `GET /admin/webhooks/{id}/deliveries`: the latest deliveries, newest first.
#[utoipa::path(get, path = "/admin/webhooks/{id}/deliveries", tag = "webhooks",
    summary = "An endpoint's latest deliveries, newest first: the event, status (pending, delivered, dead), attempts, the last answer or error",
    extensions(("x-scope" = json!("webhooks"))),
    params(InPath<WebhookId>, Limit<500, 50>),
    responses(
        (status = 200, description = "the deliveries", body = Object),
        (status = 404, description = "no webhook has this id"),
    ))]
pub(super) async fn deliveries(
    _: Allowed<scope::Webhooks>,
    State(state): State<AppState>,
    InPath(id, _): InPath<WebhookId>,
    Limit(limit): Limit<500, 50>,
) -> Result<Answer, AdminError> {
    Ok(ok(webhooks::deliveries(state.reads().await, &id, limit).await?))
}

/// `POST /admin/webhooks/deliveries/{delivery}/replay`: sends a dead delivery again.
#[utoipa::path(post, path = "/admin/webhooks/deliveries/{delivery}/replay", tag = "webhooks",
    summary = "Send a dead delivery again, with a new day of retries",
    extensions(("x-scope" = json!("webhooks"))),
    params(InPath<DeliveryId>),
    responses(
        (status = 200, description = "the delivery, pending again", body = Object),
        (status = 404, description = "no delivery has this id"),
        (status = 409, description = "the delivery is not dead (pending or delivered)"),
    ))]
pub(super) async fn replay(
    _: Allowed<scope::Webhooks>,
    State(state): State<AppState>,
    InPath(delivery, _): InPath<DeliveryId>,
) -> Result<Answer, AdminError> {
    let delivery =
        delivery.parse().map_err(|_| AdminError::Malformed(format!("`{delivery}` is not a delivery id")))?;
    Ok(ok(webhooks::replay(state.pool(), delivery).await?))
}
