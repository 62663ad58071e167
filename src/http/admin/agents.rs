//! The admin API's agent endpoints: onboard, look up, top up the float.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::{AppState, Note, answer, caller, error, json_body, unavailable};
use crate::admin::agents::{self, AgentError, NewAgent};
use crate::admin::{Scope, shape};
use crate::domain::{Amount, DisplayText, Msisdn};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Onboard {
    msisdn: String,
    agent_number: String,
    name: String,
    #[serde(default)]
    stores: Vec<Store>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Store {
    store_number: String,
    name: String,
}

const ONBOARD: &str = r#"{"msisdn": "+254712345678", "agent_number": "123456", "name": "…", "stores": [{"store_number": "1001", "name": "…"}]}"#;

/// A name subscribers will read on screens and in receipts: one visible line.
fn a_name(field: &str, text: &str) -> Result<String, Refusal> {
    DisplayText::parse(text, 40).map(DisplayText::into_string).map_err(|e| malformed(format!("{field} {e}")))
}

/// Why a request is refused: the status and the reason.
type Refusal = (StatusCode, String);

/// The request breaks the OpenAPI document.
fn malformed(reason: String) -> Refusal {
    (StatusCode::BAD_REQUEST, reason)
}

/// The request keeps to the document, but what it asks cannot be done.
fn unacceptable(reason: String) -> Refusal {
    (StatusCode::UNPROCESSABLE_ENTITY, reason)
}

/// Checks an onboarding request field by field; the first problem is the answer.
fn new_agent(asked: Onboard, state: &AppState) -> Result<NewAgent, Refusal> {
    if !shape::MSISDN.fits(&asked.msisdn) {
        return Err(malformed(format!(
            "`msisdn` `{}` must be written +254712345678 or 0712345678",
            asked.msisdn
        )));
    }
    if !shape::AGENT_NUMBER.fits(&asked.agent_number) {
        return Err(malformed(format!("`agent_number` `{}` must be 5 to 7 digits", asked.agent_number)));
    }
    let name = a_name("`name`", &asked.name)?;
    if asked.stores.len() > MAX_STORES {
        return Err(malformed(format!("an agent has at most {MAX_STORES} stores")));
    }
    let mut stores: Vec<(String, String)> = Vec::new();
    for s in asked.stores {
        if !shape::STORE_NUMBER.fits(&s.store_number) {
            return Err(malformed(format!("store number `{}` must be 3 to 7 digits", s.store_number)));
        }
        let store_name = a_name(&format!("store {}: `name`", s.store_number), &s.name)?;
        stores.push((s.store_number, store_name));
    }
    for (i, (number, _)) in stores.iter().enumerate() {
        if stores[..i].iter().any(|(n, _)| n == number) {
            return Err(unacceptable(format!("store number {number} is listed twice")));
        }
    }
    let msisdn = Msisdn::parse(&asked.msisdn, state.default_region)
        .map_err(|e| unacceptable(format!("`msisdn` `{}` is {e}", asked.msisdn)))?;
    Ok(NewAgent { msisdn, agent_number: asked.agent_number, name, stores })
}

/// The most stores one onboarding names: so many that the largest request the document
/// allows still fits in the body limit, however its names are escaped.
pub(super) const MAX_STORES: usize = 20;

/// `POST /admin/agents` (scope `agents`): onboards a registered customer's phone as an
/// agent, with a float account, a commission account and its stores.
pub(super) async fn onboard(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let who = match caller(&state, &headers, Scope::Agents).await {
        Ok(who) => who,
        Err(refused) => return refused,
    };
    let mut note = Note::by(&who);
    let new = match json_body(&body, ONBOARD).map_err(malformed).and_then(|asked| new_agent(asked, &state)) {
        Ok(new) => new,
        Err((status, reason)) => return error(status, note, reason),
    };
    note.target = Some(new.agent_number.clone());
    note.detail =
        Some(serde_json::json!({ "msisdn": new.msisdn.as_e164(), "name": new.name, "stores": new.stores }));
    match agents::onboard(state.pool(), &new).await {
        Ok(agent) => answer(StatusCode::CREATED, note, agent),
        Err(e) => refusal(note, e),
    }
}

fn refusal(note: Note, e: AgentError) -> Response {
    let status = match &e {
        AgentError::NotACustomer => StatusCode::UNPROCESSABLE_ENTITY,
        AgentError::AlreadyAgent
        | AgentError::NumberTaken(_)
        | AgentError::StoreTaken(_)
        | AgentError::KeyReused => StatusCode::CONFLICT,
        AgentError::Unknown(_) => StatusCode::NOT_FOUND,
        AgentError::Database(e) => return unavailable(note, e),
    };
    error(status, note, e.to_string())
}

/// `GET /admin/agents/{agent_number}` (scope `agents`): phone, status, float,
/// commission and stores.
pub(super) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(number): Path<String>,
) -> Response {
    let who = match caller(&state, &headers, Scope::Agents).await {
        Ok(who) => who,
        Err(refused) => return refused,
    };
    let note = Note { target: Some(number.clone()), ..Note::by(&who) };
    if !shape::AGENT_NUMBER.fits(&number) {
        return error(
            StatusCode::BAD_REQUEST,
            note,
            format!("`{number}` is not an agent number (5 to 7 digits)"),
        );
    }
    match agents::show(state.pool(), &number).await {
        Ok(Some(agent)) => answer(StatusCode::OK, note, agent),
        Ok(None) => error(StatusCode::NOT_FOUND, note, format!("no agent has the number {number}")),
        Err(e) => unavailable(note, &e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopUp {
    #[serde(deserialize_with = "shape::whole")]
    amount: i64,
}

/// The most one top-up may add, in minor units: KES 10,000,000.
pub(super) const MAX_TOP_UP: i64 = 10_000_000_00;

/// `POST /admin/agents/{agent_number}/float` (scope `float`) with `{"amount": minor}`
/// and an `Idempotency-Key` header: moves money from the funding account to the
/// agent's float; the same key and amount again is the same top-up.
pub(super) async fn top_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(number): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let who = match caller(&state, &headers, Scope::Float).await {
        Ok(who) => who,
        Err(refused) => return refused,
    };
    let mut note = Note { target: Some(number.clone()), ..Note::by(&who) };
    if !shape::AGENT_NUMBER.fits(&number) {
        return error(
            StatusCode::BAD_REQUEST,
            note,
            format!("`{number}` is not an agent number (5 to 7 digits)"),
        );
    }
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    let Some(key) = key.filter(|k| shape::IDEMPOTENCY_KEY.fits(k)) else {
        let message = "send an `Idempotency-Key` header (8 to 100 visible characters, e.g. the bank transfer's reference): a retried top-up must not pay twice";
        return error(StatusCode::BAD_REQUEST, note, message);
    };
    let amount = json_body::<TopUp>(&body, r#"{"amount": 5000000}"#).and_then(|t| {
        Amount::from_minor(t.amount)
            .ok()
            .filter(|a| a.minor() <= MAX_TOP_UP)
            .ok_or_else(|| format!("`amount` is in minor units, 1 to {MAX_TOP_UP} (got {})", t.amount))
    });
    let amount = match amount {
        Ok(amount) => amount,
        Err(reason) => return error(StatusCode::BAD_REQUEST, note, reason),
    };
    note.detail = Some(serde_json::json!({ "amount": amount.minor(), "key": key }));
    match agents::top_up(state.pool(), &number, amount, key).await {
        Ok(done) => answer(StatusCode::OK, note, done),
        Err(e) => refusal(note, e),
    }
}
