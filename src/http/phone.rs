//! `--demo`'s web phone: a feature phone in the browser on the generic channel, the SMS
//! its number received, and the menu's map with the screen its session is on lit.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::channel::ussd::generic;
use crate::domain::Msisdn;
use crate::menu::{Budget, Encoding, screen_cost};
use crate::session::SessionKey;

/// The page: markup, style and script in one file, so that it needs nothing from the
/// internet and nothing from disk.
const PAGE: &str = include_str!("phone.html");

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/phone", get(page))
        .route("/phone/menus", get(menus))
        .route("/phone/state", get(state))
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /phone/menus`: every menu served now, its screens and the ways between them,
/// and the demo subscribers' PIN.
async fn menus(State(state): State<AppState>) -> Json<Value> {
    let bundle = state.gateway.menus();
    let drawings: Vec<_> = bundle.menus().iter().map(|m| m.drawing()).collect();
    Json(json!({ "menus": drawings, "demo_pin": crate::money::DEMO_PIN }))
}

#[derive(Deserialize)]
pub struct Which {
    msisdn: String,
    session: String,
}

/// `GET /phone/state?msisdn=…&session=…`: where the generic channel's session is — its
/// menu, screen and the screens behind it — and what its last screen cost against the
/// menu's budget. `{"screen": null}` before the first hop or once it expired.
async fn state(
    State(state): State<AppState>,
    Query(which): Query<Which>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let msisdn = Msisdn::parse(&which.msisdn, state.default_region)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("msisdn: {e}")))?;
    let key = SessionKey::new(generic::PROVIDER, msisdn.as_e164(), &which.session);
    let loaded = state.gateway.store().load(&key).await.map_err(|e| {
        (StatusCode::SERVICE_UNAVAILABLE, format!("the session store did not answer ({e}); try again"))
    })?;
    let Some(loaded) = loaded else { return Ok(Json(json!({ "msisdn": msisdn.as_e164(), "screen": null }))) };
    let session = loaded.session;
    let bundle = state.gateway.menus();
    let budget = bundle
        .for_session(&session.service, &session.menu_version)
        .map_or_else(Budget::default, |m| m.budget);
    let cost = session.reply.as_ref().map(|reply| {
        let cost = screen_cost(&reply.text);
        let (encoding, budget) = match cost.encoding {
            Encoding::Gsm7 => ("GSM-7", budget.gsm7),
            Encoding::Ucs2 => ("UCS-2", budget.ucs2),
        };
        json!({ "encoding": encoding, "units": cost.units, "budget": budget })
    });
    let history: Vec<&str> = session.journey.history.iter().map(|f| f.screen.as_str()).collect();
    Ok(Json(json!({
        "msisdn": msisdn.as_e164(),
        "service": session.service,
        "screen": session.journey.screen,
        "history": history,
        "hops": session.hops,
        "cost": cost,
    })))
}
