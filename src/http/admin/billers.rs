//! The admin API's biller endpoints: register, change or suspend a biller, list the catalogue.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{AppState, Note, answer, caller, error, json_body, unavailable};
use crate::admin::billers::{self, BillerChange, BillerError, NewBiller};
use crate::admin::{Scope, shape};
use crate::money::bills::credentials::Credentials;

const REGISTER: &str = r#"{"code": "KPLC", "name": "Kenya Power", "account_pattern": "[0-9]{11}", "account_label": "meter number", "fee_payer": "customer", "base_url": "https://…", "timeout_ms": 3000}"#;

/// `POST /admin/billers` (scope `billers`): registers a biller with a settlement account.
pub(super) async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let who = match caller(&state, &headers, Scope::Billers).await {
        Ok(who) => who,
        Err(refused) => return refused,
    };
    let mut note = Note::by(&who);
    let new: NewBiller = match json_body(&body, REGISTER) {
        Ok(new) => new,
        Err(reason) => return error(StatusCode::BAD_REQUEST, note, reason),
    };
    note.target = Some(new.code.clone());
    note.detail = Some(serde_json::json!({
        "name": new.name, "account_pattern": new.account_pattern, "fee_payer": new.fee_payer,
        "base_url": new.base_url, "timeout_ms": new.timeout_ms,
    }));
    let currency = state.money().currency().to_owned();
    match billers::register(state.pool(), &new, &currency).await {
        Ok(biller) => answer(StatusCode::CREATED, note, biller),
        Err(e) => refusal(note, e),
    }
}

fn refusal(note: Note, e: BillerError) -> Response {
    match e {
        BillerError::Invalid(reason) => error(StatusCode::BAD_REQUEST, note, reason),
        BillerError::Unacceptable(reason) => error(StatusCode::UNPROCESSABLE_ENTITY, note, reason),
        e @ BillerError::CodeTaken(_) => error(StatusCode::CONFLICT, note, e.to_string()),
        e @ BillerError::Unknown(_) => error(StatusCode::NOT_FOUND, note, e.to_string()),
        BillerError::Database(e) => unavailable(note, &e),
    }
}

/// For a call about the biller `code` with a JSON body of the shape `example`: the
/// call's note and the body, once the caller holds `billers` and both are well formed.
async fn about_biller<T: serde::de::DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    code: &str,
    body: &[u8],
    example: &str,
) -> Result<(Note, T), Response> {
    let who = caller(state, headers, Scope::Billers).await?;
    let note = Note { target: Some(code.to_owned()), ..Note::by(&who) };
    if !shape::BILLER_CODE.fits(code) {
        let reason = format!("`{code}` is not a biller code (2 to 12 capital letters or digits)");
        return Err(error(StatusCode::BAD_REQUEST, note, reason));
    }
    match json_body(body, example) {
        Ok(asked) => Ok((note, asked)),
        Err(reason) => Err(error(StatusCode::BAD_REQUEST, note, reason)),
    }
}

const CHANGE: &str = r#"{"status": "suspended"}, or any of name, account_pattern, account_label, fee_payer, base_url, timeout_ms"#;

/// `PATCH /admin/billers/{code}` (scope `billers`): changes what is sent, keeps the rest;
/// `{"status": "suspended"}` takes a biller out of the menu.
pub(super) async fn change(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (mut note, asked): (_, BillerChange) =
        match about_biller(&state, &headers, &code, &body, CHANGE).await {
            Ok(found) => found,
            Err(refused) => return refused,
        };
    note.detail = serde_json::from_slice(&body).ok();
    match billers::change(state.pool(), &code, &asked).await {
        Ok(biller) => answer(StatusCode::OK, note, biller),
        Err(e) => refusal(note, e),
    }
}

/// `GET /admin/billers` (scope `billers`): the catalogue, with settlement balances and
/// the payments still pending with each biller.
pub(super) async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let who = match caller(&state, &headers, Scope::Billers).await {
        Ok(who) => who,
        Err(refused) => return refused,
    };
    let note = Note::by(&who);
    match billers::list(state.pool()).await {
        Ok(all) => answer(StatusCode::OK, note, all),
        Err(e) => unavailable(note, &e),
    }
}

/// `PUT /admin/billers/{code}/credentials` (scope `billers`): replaces the biller's
/// credentials (`{}` clears them), sealed; answers which are set, never what they are.
pub(super) async fn set_credentials(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (mut note, credentials): (_, Credentials) =
        match about_biller(&state, &headers, &code, &body, CREDENTIALS).await {
            Ok(found) => found,
            Err(refused) => return refused,
        };
    let money = state.money();
    match billers::set_credentials(money.pool(), money.vault(), &code, &credentials).await {
        Ok(set) => {
            note.detail = Some(set["credentials"].clone());
            answer(StatusCode::OK, note, set)
        }
        Err(e) => refusal(note, e),
    }
}

const CREDENTIALS: &str = r#"{"api_key": {"header": "X-Api-Key", "value": "…"}, "hmac": {"key_id": "…", "secret": "…"}, "mtls": {"certificate": "PEM", "private_key": "PEM"}, "ca_certificate": "PEM"}, each optional"#;
