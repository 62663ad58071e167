//! The admin API: JSON over HTTP behind scoped bearer tokens, every call written to
//! the audit trail, described by the OpenAPI document it serves.

use axum::extract::rejection::QueryRejection;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::error;

mod agents;
mod billers;
mod openapi;

use super::AppState;
use crate::admin::{self, Principal, Scope, customers, shape};
use crate::domain::Msisdn;

pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/menus/reload", post(reload_menus))
        .route("/admin/customers/{msisdn}", get(customer))
        .route("/admin/customers/{msisdn}/pin/unlock", post(unlock_pin))
        .route("/admin/transfers/{reference}/reverse", post(reverse))
        .route("/admin/agents", post(agents::onboard))
        .route("/admin/agents/{agent_number}", get(agents::show))
        .route("/admin/agents/{agent_number}/float", post(agents::top_up))
        .route("/admin/billers", post(billers::register).get(billers::list))
        .route("/admin/billers/{code}", patch(billers::change))
        .route("/admin/billers/{code}/credentials", put(billers::set_credentials))
        .route("/admin/sms/dead", get(sms_dead))
        .route_layer(middleware::from_fn_with_state(state.clone(), audited))
        .route("/admin/openapi.json", get(openapi))
}

/// What a handler tells the trail about its call, beside the method, route and status.
#[derive(Clone, Debug, Default)]
struct Note {
    token: Option<String>,
    target: Option<String>,
    detail: Option<Value>,
}

impl Note {
    fn by(who: &Principal) -> Self {
        Note { token: Some(who.name.clone()), ..Note::default() }
    }

    fn on(mut self, target: &Msisdn) -> Self {
        self.target = Some(target.as_e164().to_owned());
        self
    }
}

/// A JSON answer carrying its note for the trail.
fn answer(status: StatusCode, note: Note, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.extensions_mut().insert(note);
    response
}

fn error(status: StatusCode, note: Note, message: impl Into<String>) -> Response {
    answer(status, note, json!({ "error": message.into() }))
}

/// Writes every call to the trail once its answer is known, refusals included.
async fn audited(
    State(state): State<AppState>,
    route: MatchedPath,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    // A path or query holding a control character (`%00`) is refused before any handler
    // reads it, and the refusal is in the trail like any other call.
    let uri = request.uri();
    let decoded = percent_encoding::percent_decode_str(uri.path())
        .chain(percent_encoding::percent_decode_str(uri.query().unwrap_or_default()));
    let response = if String::from_utf8_lossy(&decoded.collect::<Vec<u8>>()).chars().any(char::is_control) {
        error(StatusCode::BAD_REQUEST, Note::default(), "the path or query holds a control character")
    } else {
        // Whoever holds no valid token is answered before their body or query is read.
        match authenticated(&state, request.headers()).await {
            Ok(_) => next.run(request).await,
            Err(refused) => refused,
        }
    };
    let note = response.extensions().get::<Note>().cloned().unwrap_or_default();
    let entry = admin::Entry {
        token: note.token,
        method,
        route: route.as_str().to_owned(),
        target: note.target,
        status: response.status().as_u16(),
        detail: note.detail,
    };
    if let Err(e) = admin::audit(state.pool(), &entry).await {
        error!(error = %e, route = %entry.route, status = entry.status, "admin call not written to the audit trail");
    }
    response
}

/// `?limit=…`, or why the query is not that (answered as a 400 in JSON, like every
/// refusal, and only once the caller is known).
fn limit(query: Result<Query<Listing>, QueryRejection>) -> Result<Option<i64>, String> {
    query.map(|Query(listing)| listing.limit).map_err(|e| e.body_text())
}

/// `GET /admin/sms/dead` (scope `sms`): the dead-lettered inbound messages.
async fn sms_dead(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Listing>, QueryRejection>,
) -> Response {
    let who = match caller(&state, &headers, Scope::Sms).await {
        Ok(who) => who,
        Err(refused) => return refused,
    };
    let note = Note::by(&who);
    let limit = match limit(query) {
        Ok(limit) => limit.unwrap_or(50),
        Err(why) => return error(StatusCode::BAD_REQUEST, note, why),
    };
    if !(1..=500).contains(&limit) {
        return error(StatusCode::BAD_REQUEST, note, "`limit` must be between 1 and 500");
    }
    match crate::sms::answer::dead_letters(state.pool(), limit).await {
        Ok(dead) => answer(StatusCode::OK, note, json!({ "dead": dead })),
        Err(e) => unavailable(note, &e),
    }
}

/// The caller, when their token grants `scope`; otherwise the refusal to send.
async fn caller(state: &AppState, headers: &HeaderMap, scope: Scope) -> Result<Principal, Response> {
    match authenticated(state, headers).await? {
        who if who.allows(scope) => Ok(who),
        who => Err(error(
            StatusCode::FORBIDDEN,
            Note::by(&who),
            format!("token `{}` does not have the scope `{}`", who.name, scope.name()),
        )),
    }
}

/// The caller, when their token is valid; otherwise the refusal to send.
async fn authenticated(state: &AppState, headers: &HeaderMap) -> Result<Principal, Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|b| !b.is_empty());
    let unauthorized = |message: &str| {
        let mut r = error(StatusCode::UNAUTHORIZED, Note::default(), message);
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        r
    };
    let Some(bearer) = bearer else {
        return Err(unauthorized(
            "send the header `Authorization: Bearer <token>`; `ussd-gateway admin token create` makes a token",
        ));
    };
    let pool = state.pool();
    match admin::authenticate(pool, state.admin.root.as_deref(), bearer).await {
        Ok(Some(who)) => Ok(who),
        Ok(None) => Err(unauthorized("the token is unknown or revoked")),
        Err(e) => Err(unavailable(Note::default(), &e)),
    }
}

/// A JSON body of the shape `example`, or why it is not one.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], example: &str) -> Result<T, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body must be {example}: {e}"))?;
    // Postgres stores no NUL: refused here, not as an unavailable database.
    if holds_nul(&value) {
        return Err("the body holds a NUL character (\\u0000)".into());
    }
    // Serde would read `["X-Api-Key", "…"]` as the object it stands for; the document
    // says objects, and so does the API. Lists hold objects (an agent's stores).
    if !value.is_object() || !records_only(&value) {
        return Err(format!("the body must be {example}: objects where the document says objects"));
    }
    serde_json::from_value(value).map_err(|e| format!("the body must be {example}: {e}"))
}

/// Whether every array in `value` is a list of objects.
fn records_only(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().all(|item| item.is_object() && records_only(item)),
        Value::Object(fields) => fields.values().all(records_only),
        _ => true,
    }
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

fn unavailable(note: Note, e: &sqlx::Error) -> Response {
    error!(error = %e, "admin API: the database is unavailable");
    error(StatusCode::SERVICE_UNAVAILABLE, note, "the database is unavailable; retry later")
}

/// For a call about the customer whose number is `given` in the path (national or
/// international): the number and the call's note, once the caller holds `scope`. A
/// number written wrongly is a 400; one no numbering plan has cannot be a customer's
/// (404).
async fn about_customer(
    state: &AppState,
    headers: &HeaderMap,
    scope: Scope,
    given: &str,
) -> Result<(Msisdn, Note), Response> {
    let who = caller(state, headers, scope).await?;
    if !shape::MSISDN.fits(given) {
        let message =
            format!("`{given}` is not written as a phone number; write it as +254712345678 or 0712345678");
        return Err(error(StatusCode::BAD_REQUEST, Note::by(&who), message));
    }
    match Msisdn::parse(given, state.default_region) {
        Ok(msisdn) => {
            let note = Note::by(&who).on(&msisdn);
            Ok((msisdn, note))
        }
        Err(e) => Err(error(
            StatusCode::NOT_FOUND,
            Note::by(&who),
            format!("no customer has `{given}`: it is {e} in any numbering plan the gateway serves"),
        )),
    }
}

/// `POST /admin/menus/reload` (scope `menus`): compiles the menus again and serves them
/// if every check passes (200 with the editions now served); otherwise 422 with every
/// diagnostic while the current menus keep serving.
async fn reload_menus(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let who = match caller(&state, &headers, Scope::Menus).await {
        Ok(who) => who,
        Err(refused) => return refused,
    };
    let gateway = state.gateway.clone();
    let dir = state.admin.menus_dir.clone();
    match tokio::task::spawn_blocking(move || gateway.reload(&dir)).await {
        Ok(Ok(bundle)) => {
            let menus: Vec<_> = bundle
                .menus()
                .iter()
                .map(|m| json!({ "service": m.service, "version": m.version, "codes": m.codes, "screens": m.screen_count() }))
                .collect();
            let note = Note { detail: Some(json!({ "menus": menus })), ..Note::by(&who) };
            answer(StatusCode::OK, note, json!({ "menus": menus, "retired": bundle.retired() }))
        }
        Ok(Err(diagnostics)) => {
            let body = json!({
                "error": "the menus do not pass the checks; the current ones keep serving",
                "diagnostics": diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            answer(StatusCode::UNPROCESSABLE_ENTITY, Note::by(&who), body)
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, Note::by(&who), "the reload crashed"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Listing {
    limit: Option<i64>,
}

/// `GET /admin/customers/{msisdn}?limit=20` (scope `customers:read`): profile, PIN
/// state, wallet and the latest transfers.
async fn customer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(given): Path<String>,
    query: Result<Query<Listing>, QueryRejection>,
) -> Response {
    let (msisdn, note) = match about_customer(&state, &headers, Scope::CustomersRead, &given).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let limit = match limit(query) {
        Ok(limit) => limit.unwrap_or(20),
        Err(why) => return error(StatusCode::BAD_REQUEST, note, why),
    };
    if !(1..=100).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            note,
            format!("`limit` must be between 1 and 100 (got {limit})"),
        );
    }
    match customers::lookup(state.pool(), &msisdn, limit).await {
        Ok(Some(found)) => answer(StatusCode::OK, note, found),
        Ok(None) => error(StatusCode::NOT_FOUND, note, "no customer has this number"),
        Err(e) => unavailable(note, &e),
    }
}

/// `POST /admin/customers/{msisdn}/pin/unlock` (scope `customers:write`): clears the
/// wrong-PIN count and any lock.
async fn unlock_pin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(given): Path<String>,
) -> Response {
    let (msisdn, note) = match about_customer(&state, &headers, Scope::CustomersWrite, &given).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    match customers::unlock_pin(state.pool(), &msisdn).await {
        Ok(Some(done)) => answer(StatusCode::OK, Note { detail: Some(done.clone()), ..note }, done),
        Ok(None) => error(StatusCode::NOT_FOUND, note, "no customer has this number"),
        Err(e) => unavailable(note, &e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReverseRequest {
    reason: String,
    #[serde(default)]
    refund_fee: bool,
}

/// `POST /admin/transfers/{reference}/reverse` (scope `transfers:reverse`) with
/// `{"reason": "…", "refund_fee": false}`: moves a transfer's amount back, as a new
/// linked transfer with a receipt to each party; at most once.
async fn reverse(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(reference): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let who = match caller(&state, &headers, Scope::TransfersReverse).await {
        Ok(who) => who,
        Err(refused) => return refused,
    };
    let mut note = Note { target: Some(reference.clone()), ..Note::by(&who) };
    if !shape::REFERENCE.fits(&reference) {
        let message =
            format!("`{reference}` is not a transfer reference; write it as on the receipt, e.g. TX0000002A");
        return error(StatusCode::BAD_REQUEST, note, message);
    }
    let asked: ReverseRequest = match json_body(&body, r#"{"reason": "…", "refund_fee": false}"#) {
        Ok(asked) => asked,
        Err(reason) => return error(StatusCode::BAD_REQUEST, note, reason),
    };
    if !(3..=200).contains(&asked.reason.chars().count()) {
        return error(StatusCode::BAD_REQUEST, note, "`reason` must say why, in 3 to 200 characters");
    }
    let reason = asked.reason.trim();
    if reason.chars().count() < 3 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            note,
            "`reason` must say why: at least 3 visible characters",
        );
    }
    // Written as a reference but naming no transfer there can be (TX0, or past i64).
    let Some(original) = crate::money::parse_reference(&reference) else {
        return error(StatusCode::NOT_FOUND, note, "no transfer has this reference");
    };
    let done = match crate::money::reverse(state.pool(), original, asked.refund_fee, reason).await {
        Ok(done) => done,
        Err(e) => return unavailable(note, &e),
    };
    let reversal = done.transfer_id.map(crate::money::reference);
    let body = json!({
        "reversal": reversal, "amount": done.amount, "fee_refunded": done.fee_refunded,
    });
    note.detail = Some(json!({ "reason": reason, "refund_fee": asked.refund_fee, "reversal": reversal }));
    use crate::money::Reversed;
    match done.outcome {
        Reversed::Done => answer(StatusCode::OK, note, body),
        Reversed::Already => {
            let mut body = body;
            body["error"] =
                json!(format!("this transfer was reversed before, by {}", reversal.unwrap_or_default()));
            answer(StatusCode::CONFLICT, note, body)
        }
        Reversed::NotFound => error(StatusCode::NOT_FOUND, note, "no transfer has this reference"),
        Reversed::NotReversible => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            note,
            "only a posted transfer between customers can be reversed (not a deposit, a rejected transfer or a reversal)",
        ),
        Reversed::InsufficientFunds => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            note,
            "the payee no longer has the amount; nothing was moved",
        ),
    }
}

/// `GET /admin/openapi.json`: this API, described.
async fn openapi() -> Json<Value> {
    Json(openapi::spec())
}
