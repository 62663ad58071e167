//! The admin API's identity checks: the review queue (the provider found a mismatch or
//! a duplicate, refused, or never answered), one check, and an operator's decision —
//! verifying against the provider's answer takes four eyes.

use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::approvals::Guard;
use super::extract::{Allowed, Body, CheckId, Example, InPath, Limit, Trail, said_why, scope};
use super::{AdminError, Answer, AppState, ok};
use crate::domain::shape::Schemas;
use crate::money::identity::{self, Decision, Settled};

/// `GET /admin/identity/reviews`: the checks waiting for an operator.
#[utoipa::path(get, path = "/admin/identity/reviews", tag = "identity",
    summary = "The identity checks waiting for review, oldest first, with why (`mismatch`, `duplicate`, `refused`, `no_answer`, `id_changed`); the ID number stays sealed",
    extensions(("x-scope" = json!("identity"))),
    params(Limit<500, 50>),
    responses((status = 200, description = "the checks", body = Object)))]
pub(super) async fn reviews(
    _: Allowed<scope::Identity>,
    State(state): State<AppState>,
    Limit(limit): Limit<500, 50>,
) -> Result<Answer, AdminError> {
    Ok(ok(identity::reviews(state.pool(), limit).await?))
}

/// `GET /admin/identity/checks/{id}`: one check, in any state.
#[utoipa::path(get, path = "/admin/identity/checks/{id}", tag = "identity",
    summary = "One identity check: its state, the provider's tries, who decided it",
    extensions(("x-scope" = json!("identity"))),
    params(InPath<CheckId>),
    responses(
        (status = 200, description = "the check", body = Object),
        (status = 404, description = "no such check"),
    ))]
pub(super) async fn show(
    _: Allowed<scope::Identity>,
    State(state): State<AppState>,
    InPath(id, _): InPath<CheckId>,
) -> Result<Answer, AdminError> {
    identity::show(state.pool(), &id).await?.map(ok).ok_or_else(no_check)
}

/// Why a check is decided as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Review {
    #[schema(schema_with = Schemas::reason)]
    note: String,
}

impl Example for Review {
    const EXAMPLE: &'static str = r#"{"note": "the customer showed their ID card at the Westlands branch"}"#;
}

/// `POST /admin/identity/checks/{id}/verify`: verifies the customer against the
/// provider's answer.
#[utoipa::path(post, path = "/admin/identity/checks/{id}/verify", tag = "identity",
    summary = "Verify a check waiting for review against the provider's answer: the customer moves to the verified tier, with an SMS. Never when another wallet holds the ID",
    extensions(("x-scope" = json!("identity"))),
    params(InPath<CheckId>),
    request_body = Review,
    responses(
        (status = 200, description = "the check, overridden", body = Object),
        (status = 202, description = "four eyes are on (FOUR_EYES): the call is proposed, and is carried out when another token approves it (`proposal`)", body = Object),
        (status = 404, description = "no such check"),
        (status = 409, description = "the check is not waiting for review, or another wallet holds the ID"),
        (status = 422, description = "the note says nothing but white space"),
    ))]
pub(super) async fn verify(
    _: Allowed<scope::Identity>,
    State(state): State<AppState>,
    InPath(id, _): InPath<CheckId>,
    guard: Guard,
    trail: Trail,
    Body { asked, sent }: Body<Review>,
) -> Result<Answer, AdminError> {
    let note = said_why("note", &asked.note)?;
    trail.target(id.clone());
    // Refused before it is proposed, as when it is carried out: a check that is not
    // waiting for review is never verified, whoever approves it.
    in_review(&state, &id).await?;
    let by = guard.deciders(trail.actor());
    if let Some(proposed) = guard.propose(&state, &trail, Some(sent)).await? {
        return Ok(proposed);
    }
    trail.detail(json!({ "note": note }));
    decided(&state, &id, Decision::Override { by: &by, note }).await
}

/// `POST /admin/identity/checks/{id}/reject`: ends the check unverified.
#[utoipa::path(post, path = "/admin/identity/checks/{id}/reject", tag = "identity",
    summary = "Reject a check waiting for review: the customer keeps their tier and is told by SMS to visit an agent",
    extensions(("x-scope" = json!("identity"))),
    params(InPath<CheckId>),
    request_body = Review,
    responses(
        (status = 200, description = "the check, rejected", body = Object),
        (status = 404, description = "no such check"),
        (status = 409, description = "the check is not waiting for review"),
        (status = 422, description = "the note says nothing but white space"),
    ))]
pub(super) async fn reject(
    _: Allowed<scope::Identity>,
    State(state): State<AppState>,
    InPath(id, _): InPath<CheckId>,
    trail: Trail,
    Body { asked, .. }: Body<Review>,
) -> Result<Answer, AdminError> {
    let note = said_why("note", &asked.note)?;
    trail.target(id.clone());
    trail.detail(json!({ "note": note }));
    let by = trail.actor();
    decided(&state, &id, Decision::Reject { by: &by, note }).await
}

/// Refused unless check `id` waits for review.
async fn in_review(state: &AppState, id: &str) -> Result<(), AdminError> {
    let check = identity::show(state.pool(), id).await?.ok_or_else(no_check)?;
    match check["state"].as_str() {
        Some("review") => Ok(()),
        was => Err(not_in_review(was.unwrap_or_default())),
    }
}

fn not_in_review(was: &str) -> AdminError {
    AdminError::Conflict(format!("the check is {was}, not waiting for review"))
}

/// Decided with or without a provider configured: what was promised is kept.
async fn decided(state: &AppState, id: &str, decision: Decision<'_>) -> Result<Answer, AdminError> {
    match state.money().identity_checks().decide(id, decision).await? {
        Settled::NoSuchCheck => Err(no_check()),
        Settled::Before(was) => Err(not_in_review(&was)),
        Settled::HeldElsewhere => Err(AdminError::Conflict(
            "another customer's wallet holds this ID: one ID, one verified wallet".into(),
        )),
        Settled::NoVerifiedTier => {
            Err(AdminError::Conflict("no KYC tier is named `verified`: add one to verify anybody".into()))
        }
        Settled::Now(_) => identity::show(state.pool(), id).await?.map(ok).ok_or_else(no_check),
    }
}

fn no_check() -> AdminError {
    AdminError::NotFound("no identity check has this id".into())
}
