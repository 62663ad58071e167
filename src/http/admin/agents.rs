//! The admin API's agent endpoints: onboard, look up, top up the float.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::{AppState, Note, answer, caller, error, json_body, unavailable};
use crate::admin::Scope;
use crate::admin::agents::{self, AgentError, NewAgent};
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

fn digits(text: &str, lengths: std::ops::RangeInclusive<usize>) -> bool {
    lengths.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

/// A name subscribers will read on screens and in receipts: one visible line.
fn a_name(field: &str, text: &str) -> Result<String, String> {
    DisplayText::parse(text, 40).map(DisplayText::into_string).map_err(|e| format!("{field} {e}"))
}

/// Checks an onboarding request field by field; the first problem is the answer.
fn new_agent(asked: Onboard, state: &AppState) -> Result<NewAgent, String> {
    let msisdn = Msisdn::parse(&asked.msisdn, state.default_region)
        .map_err(|e| format!("`msisdn` `{}` is {e}", asked.msisdn))?;
    if !digits(&asked.agent_number, 5..=7) {
        return Err(format!("`agent_number` `{}` must be 5 to 7 digits", asked.agent_number));
    }
    let name = a_name("`name`", &asked.name)?;
    let mut stores: Vec<(String, String)> = Vec::new();
    for s in asked.stores {
        if !digits(&s.store_number, 3..=7) {
            return Err(format!("store number `{}` must be 3 to 7 digits", s.store_number));
        }
        let store_name = a_name(&format!("store {}: `name`", s.store_number), &s.name)?;
        if stores.iter().any(|(n, _)| *n == s.store_number) {
            return Err(format!("store number {} is listed twice", s.store_number));
        }
        stores.push((s.store_number, store_name));
    }
    Ok(NewAgent { msisdn, agent_number: asked.agent_number, name, stores })
}

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
    let new = match json_body(&body, ONBOARD).and_then(|asked| new_agent(asked, &state)) {
        Ok(new) => new,
        Err(reason) => return error(StatusCode::BAD_REQUEST, note, reason),
    };
    note.target = Some(new.agent_number.clone());
    note.detail =
        Some(serde_json::json!({ "msisdn": new.msisdn.as_e164(), "name": new.name, "stores": new.stores }));
    match agents::onboard(state.gateway.money().pool(), &new).await {
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
    match agents::show(state.gateway.money().pool(), &number).await {
        Ok(Some(agent)) => answer(StatusCode::OK, note, agent),
        Ok(None) => error(StatusCode::NOT_FOUND, note, format!("no agent has the number {number}")),
        Err(e) => unavailable(note, &e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopUp {
    amount: i64,
}

/// The most one top-up may add, in minor units: KES 10,000,000.
const MAX_TOP_UP: i64 = 10_000_000_00;

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
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::trim);
    let Some(key) = key.filter(|k| (8..=100).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
    else {
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
    match agents::top_up(state.gateway.money().pool(), &number, amount, key).await {
        Ok(done) => answer(StatusCode::OK, note, done),
        Err(e) => refusal(note, e),
    }
}
