//! Four eyes on sensitive calls: the guard that turns one into a proposal (202), and the
//! approvals that carry it out — by another token, with its one-time password.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;
use utoipa::ToSchema;

use super::extract::{Allowed, Body, Example, InPath, Limit, PathValue, Trail, said_why, scope};
use super::{AdminError, Answer, AppState, ok};
use crate::admin::proposals::{self, Call, ProposalError, Proposed, Subject};
use crate::admin::totp::{self, TotpError};
use crate::admin::{self, Principal};
use crate::domain::shape::{self, Schemas, Shape};

/// What a sensitive call needs of four eyes, from the settings (`FOUR_EYES`).
#[derive(Clone, Copy, Debug)]
pub struct FourEyes {
    /// A float top-up above this many minor units is proposed (`FOUR_EYES_FLOAT_OVER`).
    pub float_over: i64,
    /// How long a proposal waits for its approval (`PROPOSAL_TTL_SECS`).
    pub ttl: std::time::Duration,
}

/// Set on the call an approval makes again: it is carried out as its proposer's, and
/// its line in the trail names the proposal and its approver.
#[derive(Clone, Debug)]
pub(super) struct Approved {
    pub proposer: Principal,
    pub proposal: String,
    pub approved_by: String,
}

/// A call that four eyes may stop: who makes it, and the call as it would be made again.
pub(super) struct Guard {
    who: Principal,
    call: Call,
    /// The approver, when this is an approved call made again.
    approved_by: Option<String>,
}

impl FromRequestParts<AppState> for Guard {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, AdminError> {
        let who = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(AdminError::Unauthorized("send the header `Authorization: Bearer <token>`"))?;
        let call = Call {
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
            idempotency_key: parts
                .headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: None,
        };
        let approved_by = parts.extensions.get::<Approved>().map(|a| a.approved_by.clone());
        Ok(Guard { who, call, approved_by })
    }
}

impl Guard {
    /// With four eyes on and this call not approved yet: the call written down as a
    /// proposal, answered 202 with its id. Called once the request is known to keep to
    /// the document, and before anything changes.
    pub async fn propose(
        self,
        state: &AppState,
        trail: &Trail,
        body: Option<Value>,
    ) -> Result<Option<Answer>, AdminError> {
        self.propose_on(state, trail, body, None).await
    }

    /// [`Self::propose`] for a call on `subject`: refused with `absent` when it is not
    /// there, rather than proposed. Refused here, not by going on: what was not there a
    /// moment ago may be by the time the call would act, and would then be acted on
    /// by one token.
    pub async fn propose_on(
        self,
        state: &AppState,
        trail: &Trail,
        body: Option<Value>,
        subject: Option<(Subject<'_>, AdminError)>,
    ) -> Result<Option<Answer>, AdminError> {
        self.proposing(state, trail, body, None, subject).await
    }

    /// [`Self::propose_on`] for a call whose body is a secret (credentials): it is
    /// sealed, and the proposal shows `shown` in its place.
    pub async fn propose_secret(
        self,
        state: &AppState,
        trail: &Trail,
        body: Value,
        shown: Value,
        subject: Option<(Subject<'_>, AdminError)>,
    ) -> Result<Option<Answer>, AdminError> {
        self.proposing(state, trail, Some(shown), Some(body), subject).await
    }

    async fn proposing(
        self,
        state: &AppState,
        trail: &Trail,
        body: Option<Value>,
        secret: Option<Value>,
        subject: Option<(Subject<'_>, AdminError)>,
    ) -> Result<Option<Answer>, AdminError> {
        let Some(rules) = state.admin.four_eyes.filter(|_| self.approved_by.is_none()) else {
            return Ok(None);
        };
        if let Some((subject, absent)) = subject
            && !proposals::is_there(state.pool(), subject).await?
        {
            return Err(absent);
        }
        let call = Call { body, ..self.call };
        let sealed = secret.as_ref().map(|body| (state.money().vault(), body));
        let proposal = match proposals::propose(state.pool(), &self.who.name, &call, sealed, rules.ttl)
            .await?
        {
            Proposed::New(proposal) | Proposed::Again(proposal) => proposal,
            Proposed::KeyReused => {
                return Err(AdminError::Conflict(
                    "this Idempotency-Key was proposed before with another body: use a new key for a new call".into(),
                ));
            }
        };
        trail.detail(json!({ "proposal": proposal["id"], "body": call.body }));
        Ok(Some((
            StatusCode::ACCEPTED,
            Json(json!({
                "proposal": proposal,
                "next": "another token with the `approvals` scope approves it: POST /admin/proposals/{id}/approve with its one-time password",
            })),
        )))
    }

    /// Who decided this call, for records beside the trail: `actor`, and with four eyes
    /// the approver too (`admin:ops, approved by admin:checker`).
    pub fn deciders(&self, actor: String) -> String {
        match &self.approved_by {
            Some(approver) => format!("{actor}, approved by admin:{approver}"),
            None => actor,
        }
    }

    /// Whether a float top-up of `amount` needs four eyes.
    pub fn float_needs_approval(state: &AppState, amount: i64) -> bool {
        state.admin.four_eyes.is_some_and(|rules| amount > rules.float_over)
    }
}

pub(super) struct ProposalId;

impl PathValue for ProposalId {
    const NAME: &'static str = "id";
    const SHAPE: &'static Shape = &shape::PROPOSAL_ID;
    const ABOUT: &'static str = "the proposal, as the 202 answered";
    const EXAMPLE: &'static str = "pr_0123456789abcdef";
    fn refused(given: &str) -> String {
        format!("`{given}` is not a proposal id (pr_ and 16 hex digits)")
    }
}

/// An approval: the approver's one-time password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Approval {
    #[schema(schema_with = Schemas::totp)]
    totp: String,
}

impl Example for Approval {
    const EXAMPLE: &'static str = r#"{"totp": "123456"}"#;
}

/// Why a proposal is rejected.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ProposalRejection {
    #[schema(schema_with = Schemas::reason)]
    note: String,
}

impl Example for ProposalRejection {
    const EXAMPLE: &'static str = r#"{"note": "the agent's documents are not in yet"}"#;
}

impl From<ProposalError> for AdminError {
    fn from(e: ProposalError) -> Self {
        match e {
            ProposalError::Unknown(_) => AdminError::NotFound(e.to_string()),
            ProposalError::Decided(_) | ProposalError::Expired(_) => AdminError::Conflict(e.to_string()),
            ProposalError::OwnProposal => AdminError::Unacceptable(e.to_string()),
            ProposalError::Database(e) => AdminError::Unavailable(e),
        }
    }
}

impl From<TotpError> for AdminError {
    fn from(e: TotpError) -> Self {
        match e {
            TotpError::Registered(_) => AdminError::Conflict(e.to_string()),
            TotpError::NotRegistered(_) | TotpError::Wrong | TotpError::Locked => {
                AdminError::Unacceptable(e.to_string())
            }
            TotpError::Vault(e) => {
                AdminError::Crashed(if matches!(e, crate::money::VaultError::Database(_)) {
                    "the data keys cannot be read now"
                } else {
                    "the one-time password's secret cannot be opened"
                })
            }
            TotpError::Database(e) => AdminError::Unavailable(e),
        }
    }
}

/// `POST /admin/approvals/totp`: the calling token's one-time password secret.
#[utoipa::path(post, path = "/admin/approvals/totp", tag = "approvals",
    summary = "Register the calling token's one-time password (RFC 6238: SHA-1, 6 digits, 30 s), required with each of its approvals; the secret is shown this once, with the otpauth:// address an authenticator app reads",
    extensions(("x-scope" = json!("approvals"))),
    responses(
        (status = 201, description = "the secret (base32) and its otpauth:// address", body = Object),
        (status = 409, description = "this token has one already"),
    ))]
pub(super) async fn register_totp(
    _: Allowed<scope::Approvals>,
    State(state): State<AppState>,
    guard: Guard,
    trail: Trail,
) -> Result<Answer, AdminError> {
    trail.target(guard.who.name.clone());
    let (secret, uri) =
        totp::register(state.pool(), state.money().vault(), &guard.who.name, "ussd-gateway").await?;
    Ok((StatusCode::CREATED, Json(json!({ "secret": secret, "otpauth": uri }))))
}

/// `GET /admin/proposals`: what waits for an approval.
#[utoipa::path(get, path = "/admin/proposals", tag = "approvals",
    summary = "The proposals waiting for an approval, oldest first: the call (method, path, body), who proposed it, when it expires",
    extensions(("x-scope" = json!("approvals"))),
    params(Limit<500, 50>),
    responses((status = 200, description = "the proposals", body = Object)))]
pub(super) async fn pending(
    _: Allowed<scope::Approvals>,
    State(state): State<AppState>,
    Limit(limit): Limit<500, 50>,
) -> Result<Answer, AdminError> {
    Ok(ok(json!({ "proposals": proposals::pending(state.pool(), limit).await? })))
}

/// `GET /admin/proposals/{id}`: a proposal and what became of it.
#[utoipa::path(get, path = "/admin/proposals/{id}", tag = "approvals",
    summary = "A proposal: the call, who proposed it, its state (pending, approved, rejected, expired), who decided it, and what carrying it out answered",
    extensions(("x-scope" = json!("proposals"))),
    params(InPath<ProposalId>),
    responses((status = 200, description = "the proposal", body = Object), (status = 404, description = "no proposal has this id")))]
pub(super) async fn show(
    _: Allowed<scope::Proposals>,
    State(state): State<AppState>,
    InPath(id, _): InPath<ProposalId>,
) -> Result<Answer, AdminError> {
    let found = proposals::show(state.pool(), &id).await?;
    found.map(ok).ok_or_else(|| AdminError::NotFound(format!("no proposal has the id {id}")))
}

/// `POST /admin/proposals/{id}/approve`: carries the call out as its proposer's.
#[utoipa::path(post, path = "/admin/proposals/{id}/approve", tag = "approvals",
    summary = "Approve a proposal with this token's one-time password: the call is carried out as its proposer made it, and its answer comes back (and stays with the proposal). The proposer's own token cannot approve it",
    extensions(("x-scope" = json!("approvals"))),
    params(InPath<ProposalId>),
    request_body = Approval,
    responses(
        (status = 200, description = "the proposal, and what carrying it out answered (`status`, `answer`)", body = Object),
        (status = 404, description = "no proposal has this id"),
        (status = 409, description = "the proposal was decided already, or expired"),
        (status = 422, description = "the token proposed it itself, has no one-time password, or the password is wrong or used (five wrong in a row lock it for 15 minutes)"),
    ))]
pub(super) async fn approve(
    _: Allowed<scope::Approvals>,
    State(state): State<AppState>,
    InPath(id, _): InPath<ProposalId>,
    guard: Guard,
    trail: Trail,
    Body { asked, .. }: Body<Approval>,
) -> Result<Answer, AdminError> {
    trail.target(id.clone());
    let approver = &guard.who.name;
    if !shape::TOTP.fits(&asked.totp) {
        return Err(AdminError::Malformed("`totp` is the 6 digits the authenticator app shows".into()));
    }
    // What cannot be approved is refused before a password is spent on it: the
    // approver's own proposal, one decided or expired, one whose proposer is gone.
    let shown =
        proposals::show(state.pool(), &id).await?.ok_or_else(|| ProposalError::Unknown(id.clone()))?;
    let proposed_by = shown["proposed_by"].as_str().unwrap_or_default().to_owned();
    if proposed_by == *approver {
        return Err(ProposalError::OwnProposal.into());
    }
    match shown["state"].as_str() {
        Some("pending") => {}
        Some("expired") => return Err(ProposalError::Expired(id).into()),
        _ => return Err(ProposalError::Decided(id).into()),
    }
    let root = state.admin.root.is_some();
    let Some(proposer) = admin::principal_named(state.pool(), root, &proposed_by).await? else {
        return Err(AdminError::Conflict(format!(
            "the token `{proposed_by}` that proposed it was revoked, so it cannot be carried out: reject it"
        )));
    };
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    totp::check(state.pool(), state.money().vault(), approver, &asked.totp, unix).await?;
    let (call, _) = proposals::approve(state.pool(), state.money().vault(), &id, approver).await?;
    let approved = Approved { proposer, proposal: id.clone(), approved_by: approver.clone() };
    let (status, answer) = carry_out(&state, call, approved).await;
    // The call was made: its answer goes back even if it cannot be kept with the proposal.
    if let Err(e) = proposals::carried_out(state.pool(), &id, status.as_u16(), &answer).await {
        tracing::error!(proposal = %id, error = %e, "an approved call was carried out, but its answer was not kept with the proposal");
    }
    trail.detail(json!({ "status": status.as_u16() }));
    let proposal = proposals::show(state.pool(), &id).await?;
    Ok(ok(json!({ "proposal": proposal, "status": status.as_u16(), "answer": answer })))
}

/// The proposed call made again through the admin API as its proposer, marked approved
/// so that its guard lets it through; what it answered.
async fn carry_out(state: &AppState, call: Call, approved: Approved) -> (StatusCode, Value) {
    let mut request = Request::builder().method(call.method.as_str()).uri(&call.path);
    if let Some(key) = &call.idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let body = match &call.body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            axum::body::Body::from(body.to_string())
        }
        None => axum::body::Body::empty(),
    };
    let Ok(mut request) = request.body(body) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "error": "the proposed call cannot be made again" }),
        );
    };
    request.extensions_mut().insert(approved);
    let router = super::routes(state).with_state(state.clone());
    let Ok(response) = router.oneshot(request).await;
    let status = response.status();
    // The admin API's answers are small JSON documents; the limit only guards the read.
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
    let answer = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, answer)
}

/// `POST /admin/proposals/{id}/reject`: nothing is carried out.
#[utoipa::path(post, path = "/admin/proposals/{id}/reject", tag = "approvals",
    summary = "Reject a proposal: nothing is carried out",
    extensions(("x-scope" = json!("approvals"))),
    params(InPath<ProposalId>),
    request_body = ProposalRejection,
    responses(
        (status = 200, description = "the proposal, rejected", body = Object),
        (status = 404, description = "no proposal has this id"),
        (status = 409, description = "the proposal was decided already, or expired"),
        (status = 422, description = "the note says nothing but white space"),
    ))]
pub(super) async fn reject(
    _: Allowed<scope::Approvals>,
    State(state): State<AppState>,
    InPath(id, _): InPath<ProposalId>,
    guard: Guard,
    trail: Trail,
    Body { asked, .. }: Body<ProposalRejection>,
) -> Result<Answer, AdminError> {
    trail.target(id.clone());
    let note = said_why("note", &asked.note)?;
    trail.detail(json!({ "note": note }));
    Ok(ok(proposals::reject(state.pool(), &id, &guard.who.name, note).await?))
}
