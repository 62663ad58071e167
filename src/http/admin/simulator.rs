//! The admin API's simulator (`serve --simulator`): the web phone's hops, the menus'
//! maps and where a session is, for a token with the `simulator` scope. The hops speak
//! the generic channel's format and go through the gateway as any channel's do.

use std::time::Instant;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use serde::Deserialize;
use serde_json::json;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Allowed, Body, Example, Trail, parameter, scope, written_as_number};
use super::{AdminError, Answer, AppState, ok};
use crate::channel::SIMULATOR_CHANNEL;
use crate::channel::ussd;
use crate::channel::{CloseReason, Closed, Hop, Input};
use crate::domain::Msisdn;
use crate::domain::shape::{self, Schemas};
use crate::http::phone;

/// One hop of the web phone, in the generic channel's format.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SimulatedHop {
    /// The page's own id for the session.
    #[schema(schema_with = Schemas::session_id)]
    session_id: String,
    /// Whose phone it is: any subscriber's number.
    #[schema(schema_with = Schemas::msisdn)]
    msisdn: String,
    event: Event,
    /// `start`: the code dialled, with jump-ahead inputs (`*384*1#`); needed there
    /// (without it: 422), ignored otherwise.
    #[serde(default)]
    #[schema(schema_with = Schemas::service_code)]
    service_code: String,
    /// `input`: what was typed on this screen.
    #[serde(default)]
    #[schema(schema_with = Schemas::typed)]
    input: String,
    /// The hop's number in the session (1 for the start), which makes a retry exact.
    #[serde(default, deserialize_with = "shape::whole_opt")]
    #[schema(schema_with = Schemas::sequence)]
    sequence: Option<i64>,
    /// `close`: why the session ended (`aborted` when left out).
    #[serde(default)]
    reason: Option<Reason>,
}

#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum Reason {
    Timeout,
    Aborted,
    Ended,
}

#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum Event {
    Start,
    Input,
    Close,
}

impl Example for SimulatedHop {
    const EXAMPLE: &'static str =
        r#"{"session_id": "web-1", "msisdn": "+254700000001", "event": "start", "service_code": "*384#"}"#;
}

/// Answers 404 unless the gateway serves the simulator.
fn switched_on(state: &AppState) -> Result<(), AdminError> {
    if state.simulator {
        Ok(())
    } else {
        Err(AdminError::NotFound("the simulator is off: start the gateway with `serve --simulator`".into()))
    }
}

/// A number as the simulator takes it: written as one (else 400), in a numbering plan
/// the gateway serves (else 422).
fn number(given: &str, state: &AppState) -> Result<Msisdn, AdminError> {
    written_as_number(given)?;
    Msisdn::parse(given, state.default_region).map_err(|e| {
        AdminError::Unacceptable(format!("`{given}` is {e} in any numbering plan the gateway serves"))
    })
}

/// `POST /admin/simulator/hop`: one hop as a subscriber; the screen that answers it.
#[utoipa::path(post, path = "/admin/simulator/hop", tag = "simulator",
    summary = "One hop of the web phone as any subscriber, in the generic channel's format: the screen that answers it (money moves as it would for the subscriber)",
    extensions(("x-scope" = json!("simulator"))),
    request_body = SimulatedHop,
    responses(
        (status = 200, description = "the screen: `message`, `end`, `secret` (the next answer is a PIN or another secret); for `close`, `closed: true`", body = Object),
        (status = 404, description = "the gateway runs without `--simulator`"),
        (status = 422, description = "a number no numbering plan has, or a start without `service_code`"),
    ))]
pub(super) async fn hop(
    _: Allowed<scope::Simulator>,
    State(state): State<AppState>,
    trail: Trail,
    Body { asked, .. }: Body<SimulatedHop>,
) -> Result<Answer, AdminError> {
    // Never the body in the trail: its input may be a PIN.
    let started = Instant::now();
    switched_on(&state)?;
    if !shape::SESSION_ID.fits(&asked.session_id) {
        return Err(AdminError::Malformed("`session_id` is 1 to 128 printable ASCII characters".into()));
    }
    if !shape::SERVICE_CODE.fits(&asked.service_code) {
        return Err(AdminError::Malformed("`service_code` is digits, `*` and `#`, at most 64".into()));
    }
    if !shape::TYPED.fits(&asked.input) {
        return Err(AdminError::Malformed(
            "`input` is at most 182 characters, none of them a control".into(),
        ));
    }
    let seq = match asked.sequence.map(u32::try_from) {
        None => None,
        Some(Ok(seq)) => Some(seq),
        Some(Err(_)) => return Err(AdminError::Malformed("`sequence` is 0 to 4294967295".into())),
    };
    let msisdn = number(&asked.msisdn, &state)?;
    trail.target(msisdn.as_e164());
    let event = match asked.event {
        Event::Start => "start",
        Event::Input => "input",
        Event::Close => "close",
    };
    trail.detail(json!({ "event": event, "session_id": asked.session_id }));
    let session_id = asked.session_id;
    let (service_code, text, first) = match asked.event {
        Event::Start if asked.service_code.trim_matches(['*', '#']).is_empty() => {
            return Err(AdminError::Unacceptable("a `start` needs the `service_code` dialled".into()));
        }
        Event::Start => {
            let code = ussd::dial_code("service_code", &asked.service_code)
                .map_err(|e| AdminError::Malformed(e.to_string()))?;
            (code, String::new(), true)
        }
        Event::Input => (String::new(), asked.input, false),
        Event::Close => {
            let reason = match asked.reason {
                Some(Reason::Timeout) => CloseReason::TimedOut,
                Some(Reason::Ended) => CloseReason::Ended,
                Some(Reason::Aborted) | None => CloseReason::Aborted,
            };
            let closed = Closed { channel: SIMULATOR_CHANNEL.to_owned(), session_id, msisdn, reason };
            Box::pin(state.gateway.close(&closed)).await;
            return Ok(ok(json!({ "session_id": closed.session_id, "closed": true })));
        }
    };
    let hop = Hop {
        provider: SIMULATOR_CHANNEL,
        channel: SIMULATOR_CHANNEL.to_owned(),
        session_id,
        msisdn,
        service_code,
        input: Input::PerHop { text, first, seq },
    };
    let (reply, kind) = Box::pin(state.gateway.handle(&hop)).await;
    crate::telemetry::record_hop(SIMULATOR_CHANNEL, kind.as_str(), started.elapsed());
    Ok(ok(json!({
        "session_id": hop.session_id,
        "message": reply.text,
        "end": reply.end,
        "secret": reply.secret_next,
    })))
}

/// `GET /admin/simulator/menus`: every menu served, its screens and the ways between
/// them, for the web phone's map.
#[utoipa::path(get, path = "/admin/simulator/menus", tag = "simulator",
    summary = "Every menu served: its codes, screens (name, shape, caption) and the ways between them, with its Back, Home and More keys",
    extensions(("x-scope" = json!("simulator"))),
    responses(
        (status = 200, description = "the menus", body = Object),
        (status = 404, description = "the gateway runs without `--simulator`"),
    ))]
pub(super) async fn menus(
    _: Allowed<scope::Simulator>,
    State(state): State<AppState>,
) -> Result<Answer, AdminError> {
    switched_on(&state)?;
    Ok(ok(phone::drawings(&state.gateway.menus())))
}

/// `?msisdn=…&session=…`: a session of the simulator.
pub(super) struct SessionAt {
    msisdn: String,
    session: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct At {
    msisdn: String,
    session: String,
}

impl FromRequestParts<AppState> for SessionAt {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AdminError> {
        let Query(at) = Query::<At>::from_request_parts(parts, state)
            .await
            .map_err(|e| AdminError::Malformed(e.body_text()))?;
        if !shape::SESSION_ID.fits(&at.session) {
            return Err(AdminError::Malformed("`session` is 1 to 128 printable ASCII characters".into()));
        }
        Ok(SessionAt { msisdn: at.msisdn, session: at.session })
    }
}

impl IntoParams for SessionAt {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            parameter("msisdn", ParameterIn::Query, true, shape::MSISDN.schema())
                .description(Some("the phone's number"))
                .build(),
            parameter("session", ParameterIn::Query, true, shape::SESSION_ID.schema())
                .description(Some("the page's id for the session, as in its hops"))
                .build(),
        ]
    }
}

/// `GET /admin/simulator/state?msisdn=…&session=…`: where a simulator session is.
#[utoipa::path(get, path = "/admin/simulator/state", tag = "simulator",
    summary = "Where a simulator session is: its menu, screen and the screens behind it, and its last screen's cost against the budget it was paged to (`screen: null` for a session the store does not hold)",
    extensions(("x-scope" = json!("simulator"))),
    params(SessionAt),
    responses(
        (status = 200, description = "the session's place", body = Object),
        (status = 404, description = "the gateway runs without `--simulator`"),
        (status = 422, description = "a number no numbering plan has"),
    ))]
pub(super) async fn state(
    _: Allowed<scope::Simulator>,
    State(state): State<AppState>,
    at: SessionAt,
) -> Result<Answer, AdminError> {
    switched_on(&state)?;
    let msisdn = number(&at.msisdn, &state)?;
    let found = phone::whereabouts(&state, SIMULATOR_CHANNEL, &msisdn, &at.session).await;
    found.map(ok).map_err(AdminError::Sessions)
}
