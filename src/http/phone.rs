//! The web phone: a feature phone in the browser, the SMS its number received, and the
//! menu's map with the screen its session is on lit — on the generic channel with
//! `--demo`, on the admin listener behind a `simulator` token with `--simulator`.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::channel::ussd::Provider;
use crate::domain::Msisdn;
use crate::menu::{Budget, Bundle, Encoding, screen_cost};
use crate::session::{SessionKey, StoreError};

/// The page: markup, style and script in one file, so that it needs nothing from the
/// internet and nothing from disk. `/*LINE*/null` is where it learns whom it talks to.
const PAGE: &str = include_str!("phone.html");

/// The page with the line it talks over: where hops, menus, state and SMS are, and
/// whether it must send an admin token.
fn page(line: Value) -> Html<String> {
    // Inside <script> JSON must not close the tag: a channel's path is the operator's text.
    let line = line.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026");
    Html(PAGE.replacen("/*LINE*/null", &line, 1))
}

/// `--demo`'s phone on the aggregators' listener, or `None` when no channel of the
/// generic format is open to anyone (an operator took `/ussd/generic` for their own).
pub fn demo_routes(state: &AppState) -> Option<axum::Router<AppState>> {
    let open = state.channels.iter().find(|c| {
        c.provider == Provider::Generic
            && c.callers.token.is_none()
            && c.callers.basic.is_none()
            && c.callers.allow.is_empty()
    })?;
    let line = json!({
        "hop": open.callers.path, "menus": "/phone/menus", "state": "/phone/state",
        "sms": "/demo/sms", "token": false,
    });
    let html = page(line);
    let channel = open.name.clone();
    Some(
        axum::Router::new()
            .route("/phone", get(move || std::future::ready(html.clone())))
            .route(
                "/phone/menus",
                get(|State(state): State<AppState>| async move {
                    let mut menus = drawings(&state.gateway.menus());
                    menus["demo_pin"] = json!(crate::money::DEMO_PIN);
                    Json(menus)
                }),
            )
            .route(
                "/phone/state",
                get(move |State(state): State<AppState>, Query(which): Query<Which>| async move {
                    let msisdn = Msisdn::parse(&which.msisdn, state.default_region)
                        .map_err(|e| (StatusCode::BAD_REQUEST, format!("msisdn: {e}")))?;
                    let found = whereabouts(&state, &channel, &msisdn, &which.session).await;
                    found.map(Json).map_err(|e| {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("the session store did not answer ({e}); try again"),
                        )
                    })
                }),
            ),
    )
}

/// `--simulator`'s page on the admin listener: it asks for a token and talks to the
/// admin API's `/admin/simulator/…`.
pub fn admin_page() -> axum::Router<AppState> {
    let line = json!({
        "hop": "/admin/simulator/hop", "menus": "/admin/simulator/menus",
        "state": "/admin/simulator/state", "sms": null, "token": true,
    });
    let html = page(line);
    axum::Router::new().route("/phone", get(move || std::future::ready(html.clone())))
}

/// Every menu served now, its screens and the ways between them.
pub fn drawings(bundle: &Bundle) -> Value {
    let drawings: Vec<_> = bundle.menus().iter().map(|m| m.drawing()).collect();
    json!({ "menus": drawings })
}

/// A session of the phone: its number and the id the page gave it.
#[derive(Deserialize)]
struct Which {
    msisdn: String,
    session: String,
}

/// Where a session of `channel` is — its menu, screen and the screens behind it — and
/// what its last screen cost against the budget it was paged to (the menu's, or the
/// channel's where smaller). `{"screen": null}` before the
/// first hop or once it expired.
pub async fn whereabouts(
    state: &AppState,
    channel: &str,
    msisdn: &Msisdn,
    session: &str,
) -> Result<Value, StoreError> {
    let key = SessionKey::new(channel, msisdn.as_e164(), session);
    let Some(loaded) = state.gateway.store().load(&key).await? else {
        return Ok(json!({ "msisdn": msisdn.as_e164(), "screen": null }));
    };
    let session = loaded.session;
    let bundle = state.gateway.menus();
    // As the engine pages: the channel's budget where it is smaller than the menu's.
    let menu = bundle
        .for_session(&session.service, &session.menu_version)
        .map_or_else(Budget::default, |m| m.budget);
    let budget = session.journey.budget.map_or(menu, |b| b.min(menu));
    let cost = session.reply.as_ref().map(|reply| {
        let cost = screen_cost(&reply.text);
        let (encoding, budget) = match cost.encoding {
            Encoding::Gsm7 => ("GSM-7", budget.gsm7),
            Encoding::Ucs2 => ("UCS-2", budget.ucs2),
        };
        json!({ "encoding": encoding, "units": cost.units, "budget": budget })
    });
    let history: Vec<&str> = session.journey.history.iter().map(|f| f.screen.as_str()).collect();
    Ok(json!({
        "msisdn": msisdn.as_e164(),
        "service": session.service,
        "screen": session.journey.screen,
        "history": history,
        "hops": session.hops,
        "cost": cost,
    }))
}
