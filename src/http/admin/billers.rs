//! The admin API's biller endpoints: register, change or suspend a biller, list the catalogue.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use super::approvals::Guard;
use super::extract::{Allowed, BillerCode, Body, Example, InPath, Trail, scope};
use super::{AdminError, Answer, AppState, ok};
use crate::admin::billers::{self, BillerChange, NewBiller};
use crate::admin::proposals::Subject;
use crate::money::bills::credentials::Credentials;

impl Example for NewBiller {
    const EXAMPLE: &'static str = r#"{"code": "KPLC", "name": "Kenya Power", "account_pattern": "[0-9]{11}", "account_label": "meter number", "fee_payer": "customer", "base_url": "https://…", "timeout_ms": 3000}, and for the airtime provider "category": "airtime", "offer_amounts": [2000, 5000]"#;
    const NUMBER_LISTS: &'static [&'static str] = &["offer_amounts"];
}

impl Example for BillerChange {
    const EXAMPLE: &'static str = r#"{"status": "suspended"}, or any of name, account_pattern, account_label, fee_payer, base_url, timeout_ms, offer_amounts"#;
    const NUMBER_LISTS: &'static [&'static str] = &["offer_amounts"];
}

impl Example for Credentials {
    const EXAMPLE: &'static str = r#"{"api_key": {"header": "X-Api-Key", "value": "…"}, "hmac": {"key_id": "…", "secret": "…"}, "mtls": {"certificate": "PEM", "private_key": "PEM"}, "ca_certificate": "PEM"}, each optional"#;
}

/// `POST /admin/billers`: registers a biller with a settlement account.
#[utoipa::path(post, path = "/admin/billers", tag = "billers",
    summary = "Register a biller, with a settlement account; it answers the biller protocol (the airtime provider, `category` `airtime`: the airtime protocol) at `base_url`",
    extensions(("x-scope" = json!("billers"))),
    request_body = NewBiller,
    responses(
        (status = 201, description = "the biller", body = Object),
        (status = 202, description = "four eyes are on (FOUR_EYES): the call is proposed, and is carried out when another token approves it (`proposal`)", body = Object),
        (status = 409, description = "the code is taken"),
        (status = 422, description = "the account pattern does not compile, or the address is one a biller cannot have"),
    ))]
pub(super) async fn register(
    _: Allowed<scope::Billers>,
    State(state): State<AppState>,
    guard: Guard,
    trail: Trail,
    Body { asked: new, sent }: Body<NewBiller>,
) -> Result<Answer, AdminError> {
    if let Some(problem) = new.problem() {
        return Err(problem.into());
    }
    trail.target(new.code.clone());
    if let Some(proposed) = guard.propose(&state, &trail, Some(sent)).await? {
        return Ok(proposed);
    }
    trail.detail(json!({
        "name": new.name, "account_pattern": new.account_pattern, "fee_payer": new.fee_payer,
        "base_url": new.base_url, "timeout_ms": new.timeout_ms,
    }));
    let currency = state.money().currency().to_owned();
    let biller = billers::register(state.pool(), &new, &currency).await?;
    Ok((StatusCode::CREATED, Json(biller)))
}

/// `PATCH /admin/billers/{code}`: changes what is sent, keeps the rest;
/// `{"status": "suspended"}` takes a biller out of the menu.
#[utoipa::path(patch, path = "/admin/billers/{code}", tag = "billers",
    summary = "Change a biller's settings, or suspend it (out of the menu, new payments refused; pending ones still reconciled)",
    extensions(("x-scope" = json!("billers"))),
    params(InPath<BillerCode>),
    request_body = BillerChange,
    responses(
        (status = 200, description = "the biller", body = Object),
        (status = 202, description = "four eyes are on (FOUR_EYES): the call is proposed, and is carried out when another token approves it (`proposal`)", body = Object),
        (status = 404, description = "no biller has this code"),
        (status = 422, description = "the account pattern does not compile, or the address is one a biller cannot have"),
    ))]
pub(super) async fn change(
    _: Allowed<scope::Billers>,
    State(state): State<AppState>,
    InPath(code, _): InPath<BillerCode>,
    guard: Guard,
    trail: Trail,
    Body { asked, sent }: Body<BillerChange>,
) -> Result<Answer, AdminError> {
    if let Some(problem) = asked.problem() {
        return Err(problem.into());
    }
    if let Some(proposed) = guard
        .propose_on(&state, &trail, Some(sent.clone()), Some((Subject::Biller(&code), no_biller(&code))))
        .await?
    {
        return Ok(proposed);
    }
    trail.detail(sent);
    Ok(ok(billers::change(state.pool(), &code, &asked).await?))
}

/// `GET /admin/billers`: the catalogue, with settlement balances and the payments still
/// pending with each biller.
#[utoipa::path(get, path = "/admin/billers", tag = "billers",
    summary = "The biller catalogue, with settlement balances and payments pending with each biller",
    extensions(("x-scope" = json!("billers"))),
    responses((status = 200, description = "the billers", body = Object)))]
pub(super) async fn list(
    _: Allowed<scope::Billers>,
    State(state): State<AppState>,
) -> Result<Answer, AdminError> {
    Ok(ok(billers::list(state.reads().await).await?))
}

/// `PUT /admin/billers/{code}/credentials`: replaces the biller's credentials (`{}`
/// clears them), sealed; answers which are set, never what they are.
#[utoipa::path(put, path = "/admin/billers/{code}/credentials", tag = "billers",
    summary = "Replace a biller's credentials (each optional; `{}` clears them), sealed at rest and never shown again: an API key header, HMAC request signing, a client certificate for mutual TLS, the biller's certificate authority",
    extensions(("x-scope" = json!("billers"))),
    params(InPath<BillerCode>),
    request_body = Credentials,
    responses(
        (status = 200, description = "which credentials are set (the header's name, the signing key's id), never their values", body = Object),
        (status = 202, description = "four eyes are on (FOUR_EYES): the call is proposed, and is carried out when another token approves it (`proposal`); the credentials are sealed with it, and the proposal shows only which are set", body = Object),
        (status = 404, description = "no biller has this code"),
        (status = 422, description = "a header the gateway sets itself, or a certificate and key that do not make a TLS identity"),
    ))]
pub(super) async fn set_credentials(
    _: Allowed<scope::Billers>,
    State(state): State<AppState>,
    InPath(code, _): InPath<BillerCode>,
    guard: Guard,
    trail: Trail,
    Body { asked: credentials, sent }: Body<Credentials>,
) -> Result<Answer, AdminError> {
    if let Some(problem) = billers::credentials_problem(&credentials) {
        return Err(problem.into());
    }
    let subject = Some((Subject::Biller(&code), no_biller(&code)));
    let shown = json!({ "credentials": credentials.summary() });
    if let Some(proposed) = guard.propose_secret(&state, &trail, sent, shown, subject).await? {
        return Ok(proposed);
    }
    let money = state.money();
    let set = billers::set_credentials(money.pool(), money.vault(), &code, &credentials).await?;
    trail.detail(set["credentials"].clone());
    Ok(ok(set))
}

fn no_biller(code: &str) -> AdminError {
    crate::admin::billers::BillerError::Unknown(code.to_owned()).into()
}
