//! The admin API: JSON over HTTP behind scoped bearer tokens, every call written to
//! the audit trail, described by the OpenAPI document generated from its handlers.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tracing::error;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod agents;
mod approvals;
mod billers;
mod customers;
mod error;
mod extract;
mod flags;
mod identity;
mod merchants;
mod openapi;
mod reversals;
mod simulator;
mod webhooks;

use super::AppState;
use crate::admin::{self, Principal};
pub use approvals::FourEyes;
pub use error::AdminError;
use extract::{Allowed, Limit, Trail, scope};

/// What a handler answers when it does what was asked.
type Answer = (StatusCode, Json<Value>);

fn ok(body: Value) -> Answer {
    (StatusCode::OK, Json(body))
}

/// The routes, and the document generated from the same handlers: a route cannot be
/// served undescribed, nor described unserved.
fn documented(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::new()
        .routes(routes!(reload_menus))
        .routes(routes!(customers::show))
        .routes(routes!(customers::unlock_pin))
        .routes(routes!(customers::reverse))
        .routes(routes!(reversals::queue))
        .routes(routes!(reversals::approve))
        .routes(routes!(reversals::reject))
        .routes(routes!(agents::onboard))
        .routes(routes!(agents::show))
        .routes(routes!(agents::top_up))
        .routes(routes!(billers::register, billers::list))
        .routes(routes!(billers::change))
        .routes(routes!(billers::set_credentials))
        .routes(routes!(merchants::onboard, merchants::list))
        .routes(routes!(merchants::show, merchants::change))
        .routes(routes!(sms_dead))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::change))
        .routes(routes!(webhooks::rotate))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::replay))
        .routes(routes!(anomalies))
        .routes(routes!(simulator::hop))
        .routes(routes!(simulator::menus))
        .routes(routes!(simulator::state))
        .routes(routes!(flags::create, flags::list))
        .routes(routes!(flags::change))
        .routes(routes!(approvals::register_totp))
        .routes(routes!(approvals::pending))
        .routes(routes!(approvals::show))
        .routes(routes!(approvals::approve))
        .routes(routes!(approvals::reject))
        .routes(routes!(identity::reviews))
        .routes(routes!(identity::show))
        .routes(routes!(identity::verify))
        .routes(routes!(identity::reject))
        .route_layer(middleware::from_fn_with_state(state.clone(), audited))
        .split_for_parts()
}

pub fn routes(state: &AppState) -> Router<AppState> {
    let (router, document) = documented(state);
    let document = openapi::finish(document);
    router.route("/admin/openapi.json", get(move || std::future::ready(Json(document.clone()))))
}

/// Writes every call to the trail once its answer is known, refusals included.
async fn audited(
    State(state): State<AppState>,
    route: MatchedPath,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let approved = request.extensions().get::<approvals::Approved>().cloned();
    let trail = Trail::default();
    // A path or query holding a control character (`%00`) is refused before any handler
    // reads it, and the refusal is in the trail like any other call.
    let uri = request.uri();
    let decoded = percent_encoding::percent_decode_str(uri.path())
        .chain(percent_encoding::percent_decode_str(uri.query().unwrap_or_default()));
    let response = if String::from_utf8_lossy(&decoded.collect::<Vec<u8>>()).chars().any(char::is_control) {
        AdminError::Malformed("the path or query holds a control character".into()).into_response()
    } else {
        // A call an approval makes again is its proposer's; whoever holds no valid token
        // is answered before their body or query is read.
        let who = match &approved {
            Some(approved) => Ok(approved.proposer.clone()),
            None => authenticated(&state, request.headers()).await,
        };
        match who {
            Ok(who) => {
                trail.by(&who);
                request.extensions_mut().insert(who);
                request.extensions_mut().insert(trail.clone());
                next.run(request).await
            }
            Err(refused) => refused.into_response(),
        }
    };
    let mut note = trail.note();
    if let Some(approved) = approved {
        note.detail = Some(json!({
            "proposal": approved.proposal, "approved_by": approved.approved_by, "detail": note.detail,
        }));
    }
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

/// The caller, when their token is valid.
async fn authenticated(state: &AppState, headers: &HeaderMap) -> Result<Principal, AdminError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|b| !b.is_empty());
    let Some(bearer) = bearer else {
        return Err(AdminError::Unauthorized(
            "send the header `Authorization: Bearer <token>`; `ussd-gateway admin token create` makes a token",
        ));
    };
    admin::authenticate(state.pool(), state.admin.root.as_ref().map(ExposeSecret::expose_secret), bearer)
        .await?
        .ok_or(AdminError::Unauthorized("the token is unknown or revoked"))
}

/// `POST /admin/menus/reload`: compiles the menus again and serves them if every check
/// passes; otherwise every diagnostic, while the current menus keep serving.
#[utoipa::path(post, path = "/admin/menus/reload", tag = "menus",
    summary = "Compile the menus again and serve them if every check passes",
    extensions(("x-scope" = json!("menus"))),
    responses(
        (status = 200, description = "the menu editions now served", body = Object),
        (status = 422, description = "every diagnostic (`diagnostics`); the current menus keep serving"),
    ))]
async fn reload_menus(
    _: Allowed<scope::Menus>,
    State(state): State<AppState>,
    trail: Trail,
) -> Result<Answer, AdminError> {
    let gateway = state.gateway.clone();
    let dir = state.admin.menus_dir.clone();
    match tokio::task::spawn_blocking(move || gateway.reload(&dir)).await {
        Ok(Ok(bundle)) => {
            let menus: Vec<_> = bundle
                .menus()
                .iter()
                .map(|m| json!({ "service": m.service, "version": m.version, "codes": m.codes, "screens": m.screen_count() }))
                .collect();
            trail.detail(json!({ "menus": menus }));
            Ok(ok(json!({ "menus": menus, "retired": bundle.retired() })))
        }
        Ok(Err(diagnostics)) => {
            Err(AdminError::MenusRefused(diagnostics.iter().map(ToString::to_string).collect()))
        }
        Err(_) => Err(AdminError::Crashed("the reload crashed")),
    }
}

/// `GET /admin/anomalies`: what the anomaly rules found, newest first.
#[utoipa::path(get, path = "/admin/anomalies", tag = "anomalies",
    summary = "What the anomaly rules found, newest first: the rule, the account and its customer's number, what was measured against the threshold over the window, and the event that reached it",
    extensions(("x-scope" = json!("anomalies"))),
    params(Limit<500, 50>),
    responses((status = 200, description = "the anomalies", body = Object)))]
async fn anomalies(
    _: Allowed<scope::Anomalies>,
    State(state): State<AppState>,
    Limit(limit): Limit<500, 50>,
) -> Result<Answer, AdminError> {
    Ok(ok(crate::events::anomalies::list(state.reads().await, limit).await?))
}

/// `GET /admin/sms/dead`: the dead-lettered inbound messages.
#[utoipa::path(get, path = "/admin/sms/dead", tag = "sms",
    summary = "Subscribers' messages that could not be answered after every try, latest first, with the reason (never their text); each sender was told to check their balance before trying again",
    extensions(("x-scope" = json!("sms"))),
    params(Limit<500, 50>),
    responses((status = 200, description = "the dead letters", body = Object)))]
async fn sms_dead(
    _: Allowed<scope::Sms>,
    State(state): State<AppState>,
    Limit(limit): Limit<500, 50>,
) -> Result<Answer, AdminError> {
    let dead = crate::sms::letters::dead_letters(state.reads().await, limit).await?;
    Ok(ok(json!({ "dead": dead })))
}
