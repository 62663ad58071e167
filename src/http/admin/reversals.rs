//! The admin API's queue of reversal requests: the open ones, and an operator's
//! decision on one (approve: the reversal runs; reject: the hold is released).

use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::approvals::Guard;
use super::extract::{Allowed, Body, Example, InPath, Trail, TransferReference, said_why, scope};
use super::{AdminError, Answer, AppState, ok};
use crate::admin::proposals::Subject;
use crate::domain::shape::Schemas;
use crate::money::reversals::{self, Decision};

/// `GET /admin/reversal-requests`: the open requests, oldest first.
#[utoipa::path(get, path = "/admin/reversal-requests", tag = "transfers",
    summary = "The open reversal requests, oldest first: `queued` ones wait for an operator (the recipient disputed, or had spent the money), `held` ones for their dispute window to pass",
    extensions(("x-scope" = json!("transfers:reverse"))),
    responses((status = 200, description = "the requests", body = Object)))]
pub(super) async fn queue(
    _: Allowed<scope::TransfersReverse>,
    State(state): State<AppState>,
) -> Result<Answer, AdminError> {
    Ok(ok(reversals::queue(state.pool()).await?))
}

/// `POST /admin/reversal-requests/{reference}/approve`: runs the reversal asked for send
/// `reference`.
#[utoipa::path(post, path = "/admin/reversal-requests/{reference}/approve", tag = "transfers",
    summary = "Approve the reversal request on a send: its hold is released and the send reversed (the fee kept), with a receipt to each party",
    extensions(("x-scope" = json!("transfers:reverse"))),
    params(InPath<TransferReference>),
    responses(
        (status = 200, description = "the request, reversed", body = Object),
        (status = 202, description = "four eyes are on (FOUR_EYES): the call is proposed, and is carried out when another token approves it (`proposal`)", body = Object),
        (status = 404, description = "no reversal request was made on this send"),
        (status = 409, description = "the request was decided before"),
        (status = 422, description = "the recipient no longer has the amount; nothing was moved"),
    ))]
pub(super) async fn approve(
    _: Allowed<scope::TransfersReverse>,
    State(state): State<AppState>,
    InPath(reference, _): InPath<TransferReference>,
    guard: Guard,
    trail: Trail,
) -> Result<Answer, AdminError> {
    let original = original(&reference)?;
    if let Some(proposed) = guard
        .propose_on(&state, &trail, None, Some((Subject::OpenRequest(original), no_open_request())))
        .await?
    {
        return Ok(proposed);
    }
    let by = trail.actor();
    decided(reversals::decide(state.pool(), original, Decision::Approve, &by).await?)
}

/// Why a request is rejected.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Rejection {
    #[schema(schema_with = Schemas::reason)]
    note: String,
}

impl Example for Rejection {
    const EXAMPLE: &'static str = r#"{"note": "the recipient showed the goods were delivered"}"#;
}

/// `POST /admin/reversal-requests/{reference}/reject`: ends the request on send
/// `reference` without a reversal.
#[utoipa::path(post, path = "/admin/reversal-requests/{reference}/reject", tag = "transfers",
    summary = "Reject the reversal request on a send: its hold is released and both parties told",
    extensions(("x-scope" = json!("transfers:reverse"))),
    params(InPath<TransferReference>),
    request_body = Rejection,
    responses(
        (status = 200, description = "the request, rejected", body = Object),
        (status = 404, description = "no reversal request was made on this send"),
        (status = 409, description = "the request was decided before"),
        (status = 422, description = "the note says nothing but white space"),
    ))]
pub(super) async fn reject(
    _: Allowed<scope::TransfersReverse>,
    State(state): State<AppState>,
    InPath(reference, _): InPath<TransferReference>,
    trail: Trail,
    Body { asked, .. }: Body<Rejection>,
) -> Result<Answer, AdminError> {
    let note = said_why("note", &asked.note)?;
    trail.detail(json!({ "note": note }));
    let by = trail.actor();
    let decision = Decision::Reject { note: Some(note) };
    decided(reversals::decide(state.pool(), original(&reference)?, decision, &by).await?)
}

fn original(reference: &str) -> Result<i64, AdminError> {
    crate::money::parse_reference(reference).ok_or_else(no_request)
}

fn no_open_request() -> AdminError {
    AdminError::NotFound(
        "no open reversal request on this send: none was made, or it was decided before".into(),
    )
}

fn no_request() -> AdminError {
    AdminError::NotFound("no reversal request was made on this send".into())
}

fn decided(decision: Option<Result<serde_json::Value, String>>) -> Result<Answer, AdminError> {
    match decision {
        None => Err(no_request()),
        Some(Ok(request)) => Ok(ok(request)),
        Some(Err(why)) if why == "insufficient_funds" => {
            Err(AdminError::Unacceptable("the recipient no longer has the amount; nothing was moved".into()))
        }
        Some(Err(state)) => Err(AdminError::Conflict(format!("the request was {state} before"))),
    }
}
