//! Arkesel (Ghana): JSON in and out, per-hop `userData` (the dial string when
//! `newSession` is true), and `continueSession` in the reply.

use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{BadRequest, Context, Echo, Inbound, Parsed, Request};
use crate::channel::{Hop, Input};
use crate::menu::Reply;

pub const PROVIDER: &str = "arkesel";

// No `Debug`: the fields may hold a PIN.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Callback {
    #[serde(rename = "sessionID", default)]
    session_id: String,
    #[serde(rename = "userID", default)]
    user_id: String,
    #[serde(deserialize_with = "super::flexible_bool", default)]
    new_session: bool,
    #[serde(default)]
    msisdn: String,
    #[serde(default)]
    user_data: String,
}

pub fn parse(req: &Request<'_>, ctx: &Context<'_>) -> Result<Parsed, BadRequest> {
    let cb: Callback = super::from_json(req.body)?;
    let session_id = super::session_id("sessionID", &cb.session_id)?;
    let msisdn = super::msisdn("msisdn", &cb.msisdn, ctx)?;
    super::check("userID", &cb.user_id, super::MAX_SESSION_ID, false)?;
    let echo = Echo { session_id: session_id.clone(), user: cb.user_id, msisdn: cb.msisdn };
    let (service_code, input) = if cb.new_session {
        let code = super::dial_code("userData", &cb.user_data)?;
        (code, Input::PerHop { text: String::new(), first: true, seq: None })
    } else {
        let text = super::text("userData", &cb.user_data)?;
        (String::new(), Input::PerHop { text, first: false, seq: None })
    };
    let hop =
        Hop { provider: PROVIDER, channel: ctx.channel.to_owned(), session_id, msisdn, service_code, input };
    Ok(Parsed { inbound: Inbound::Hop(hop), echo })
}

pub fn render(reply: &Reply, echo: &Echo) -> Response {
    super::json(json!({
        "sessionID": echo.session_id,
        "userID": echo.user,
        "msisdn": echo.msisdn,
        "message": reply.text,
        "continueSession": !reply.end,
    }))
}
