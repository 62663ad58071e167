//! The admin API's agent endpoints: onboard, look up, top up the float.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::approvals::Guard;
use super::extract::{AgentNumber, Allowed, Body, Example, IdempotencyKey, InPath, Trail, scope};
use super::{AdminError, Answer, AppState, ok};
use crate::admin::agents::{self, NewAgent};
use crate::admin::proposals::Subject;
use crate::domain::shape::{self, Schemas};
use crate::domain::{Amount, DisplayText, Msisdn};

/// A registered customer's phone to make an agent, with its stores.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Onboard {
    #[schema(schema_with = Schemas::msisdn)]
    msisdn: String,
    #[schema(schema_with = Schemas::agent_number)]
    agent_number: String,
    #[schema(schema_with = Schemas::name40)]
    name: String,
    #[serde(default)]
    #[schema(schema_with = stores)]
    stores: Vec<Store>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Store {
    #[schema(schema_with = Schemas::store_number)]
    store_number: String,
    #[schema(schema_with = Schemas::name40)]
    name: String,
}

fn stores() -> RefOr<Schema> {
    ArrayBuilder::new().items(Store::schema()).max_items(Some(MAX_STORES)).into()
}

impl Example for Onboard {
    const EXAMPLE: &'static str = r#"{"msisdn": "+254712345678", "agent_number": "123456", "name": "…", "stores": [{"store_number": "1001", "name": "…"}]}"#;
}

/// A name subscribers will read on screens and in receipts: one visible line.
fn a_name(field: &str, text: &str) -> Result<String, AdminError> {
    DisplayText::parse(text, 40)
        .map(DisplayText::into_string)
        .map_err(|e| AdminError::Malformed(format!("{field} {e}")))
}

/// Checks an onboarding request field by field; the first problem is the answer.
fn new_agent(asked: Onboard, state: &AppState) -> Result<NewAgent, AdminError> {
    if !shape::MSISDN.fits(&asked.msisdn) {
        return Err(AdminError::Malformed(format!(
            "`msisdn` `{}` must be written +254712345678 or 0712345678",
            asked.msisdn
        )));
    }
    if !shape::AGENT_NUMBER.fits(&asked.agent_number) {
        return Err(AdminError::Malformed(format!(
            "`agent_number` `{}` must be 5 to 7 digits",
            asked.agent_number
        )));
    }
    let name = a_name("`name`", &asked.name)?;
    if asked.stores.len() > MAX_STORES {
        return Err(AdminError::Malformed(format!("an agent has at most {MAX_STORES} stores")));
    }
    let mut stores: Vec<(String, String)> = Vec::new();
    for s in asked.stores {
        if !shape::STORE_NUMBER.fits(&s.store_number) {
            return Err(AdminError::Malformed(format!(
                "store number `{}` must be 3 to 7 digits",
                s.store_number
            )));
        }
        let store_name = a_name(&format!("store {}: `name`", s.store_number), &s.name)?;
        stores.push((s.store_number, store_name));
    }
    for (i, (number, _)) in stores.iter().enumerate() {
        if stores[..i].iter().any(|(n, _)| n == number) {
            return Err(AdminError::Unacceptable(format!("store number {number} is listed twice")));
        }
    }
    let msisdn = Msisdn::parse(&asked.msisdn, state.default_region)
        .map_err(|e| AdminError::Unacceptable(format!("`msisdn` `{}` is {e}", asked.msisdn)))?;
    Ok(NewAgent { msisdn, agent_number: asked.agent_number, name, stores })
}

/// The most stores one onboarding names: so many that the largest request the document
/// allows still fits in the body limit, however its names are escaped.
const MAX_STORES: usize = 20;

/// `POST /admin/agents`: onboards a registered customer's phone as an agent, with a
/// float account, a commission account and its stores.
#[utoipa::path(post, path = "/admin/agents", tag = "agents",
    summary = "Onboard a registered customer's phone as an agent, with float and commission accounts and its stores",
    extensions(("x-scope" = json!("agents"))),
    request_body = Onboard,
    responses(
        (status = 201, description = "the agent", body = Object),
        (status = 202, description = "four eyes are on (FOUR_EYES): the call is proposed, and is carried out when another token approves it (`proposal`)", body = Object),
        (status = 409, description = "the phone, agent number or a store number is taken"),
        (status = 422, description = "the phone is no registered customer's, or a store is listed twice"),
    ))]
pub(super) async fn onboard(
    _: Allowed<scope::Agents>,
    State(state): State<AppState>,
    guard: Guard,
    trail: Trail,
    Body { asked, sent }: Body<Onboard>,
) -> Result<Answer, AdminError> {
    let new = new_agent(asked, &state)?;
    if let Some(proposed) = guard.propose(&state, &trail, Some(sent)).await? {
        return Ok(proposed);
    }
    trail.target(new.agent_number.clone());
    trail.detail(json!({ "msisdn": new.msisdn.as_e164(), "name": new.name, "stores": new.stores }));
    let agent = agents::onboard(state.pool(), &new).await?;
    Ok((StatusCode::CREATED, Json(agent)))
}

/// `GET /admin/agents/{agent_number}`: phone, status, float, commission and stores.
#[utoipa::path(get, path = "/admin/agents/{agent_number}", tag = "agents",
    summary = "An agent: phone, status, float, commission and stores",
    extensions(("x-scope" = json!("agents"))),
    params(InPath<AgentNumber>),
    responses((status = 200, description = "the agent", body = Object), (status = 404, description = "no agent has this number")))]
pub(super) async fn show(
    _: Allowed<scope::Agents>,
    State(state): State<AppState>,
    InPath(number, _): InPath<AgentNumber>,
) -> Result<Answer, AdminError> {
    match agents::show(state.reads().await, &number).await? {
        Some(agent) => Ok(ok(agent)),
        None => Err(no_agent(&number)),
    }
}

/// An amount of float to add, in minor units.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TopUp {
    #[serde(deserialize_with = "shape::whole")]
    #[schema(schema_with = top_up_amount)]
    amount: i64,
}

impl Example for TopUp {
    const EXAMPLE: &'static str = r#"{"amount": 5000000}"#;
}

/// The most one top-up may add, in minor units: KES 10,000,000.
const MAX_TOP_UP: i64 = 10_000_000_00;

fn top_up_amount() -> RefOr<Schema> {
    let schema = i64::schema();
    let RefOr::T(Schema::Object(object)) = schema else { return schema };
    utoipa::openapi::schema::ObjectBuilder::from(object)
        .minimum(Some(1))
        .maximum(Some(MAX_TOP_UP))
        .description(Some("minor units"))
        .into()
}

/// `POST /admin/agents/{agent_number}/float` with `{"amount": minor}` and an
/// `Idempotency-Key` header: moves money from the funding account to the agent's
/// float; the same key and amount again is the same top-up.
#[utoipa::path(post, path = "/admin/agents/{agent_number}/float", tag = "agents",
    summary = "Top up an agent's float from the funding account; the same Idempotency-Key and amount again is the same top-up",
    extensions(("x-scope" = json!("float"))),
    params(InPath<AgentNumber>, IdempotencyKey),
    request_body = TopUp,
    responses(
        (status = 200, description = "the top-up's reference and the float balance", body = Object),
        (status = 202, description = "over FOUR_EYES_FLOAT_OVER with four eyes on: the top-up is proposed, and is carried out when another token approves it (`proposal`)", body = Object),
        (status = 404, description = "no agent has this number"),
        (status = 409, description = "the Idempotency-Key was used for another top-up"),
    ))]
pub(super) async fn top_up(
    _: Allowed<scope::Float>,
    State(state): State<AppState>,
    InPath(number, _): InPath<AgentNumber>,
    IdempotencyKey(key): IdempotencyKey,
    guard: Guard,
    trail: Trail,
    Body { asked, sent }: Body<TopUp>,
) -> Result<Answer, AdminError> {
    let amount =
        Amount::from_minor(asked.amount).ok().filter(|a| a.minor() <= MAX_TOP_UP).ok_or_else(|| {
            AdminError::Malformed(format!(
                "`amount` is in minor units, 1 to {MAX_TOP_UP} (got {})",
                asked.amount
            ))
        })?;
    if Guard::float_needs_approval(&state, amount.minor())
        && let Some(proposed) = guard
            .propose_on(&state, &trail, Some(sent), Some((Subject::Agent(&number), no_agent(&number))))
            .await?
    {
        return Ok(proposed);
    }
    trail.detail(json!({ "amount": amount.minor(), "key": key }));
    Ok(ok(agents::top_up(state.pool(), &number, amount, &key).await?))
}

fn no_agent(number: &str) -> AdminError {
    AdminError::NotFound(format!("no agent has the number {number}"))
}
