//! Airtel through Comviva's Flares gateway: GET with `SessionID, MSISDN, MSC, input`,
//! the full input on every hop (the dial string, then the dial string with what was
//! typed since); the reply is the bare screen with the header `Freeflow: FC` to
//! continue or `FB` to break.

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{BadRequest, Context, Echo, Inbound, Parsed, Request};
use crate::channel::Hop;
use crate::menu::Reply;

pub const PROVIDER: &str = "airtel";

// No `Debug`: the fields may hold a PIN.
#[derive(Deserialize)]
struct Callback {
    #[serde(rename = "SessionID", default)]
    session_id: String,
    #[serde(rename = "MSISDN", default)]
    msisdn: String,
    #[serde(default)]
    input: String,
}

pub fn parse(req: &Request<'_>, ctx: &Context<'_>) -> Result<Parsed, BadRequest> {
    let cb: Callback = super::from_query(req.query)?;
    let session_id = super::session_id("SessionID", &cb.session_id)?;
    let msisdn = super::msisdn("MSISDN", &cb.msisdn, ctx)?;
    let (service_code, input) = super::dial_or_text("input", &cb.input, String::new())?;
    let hop =
        Hop { provider: PROVIDER, channel: ctx.channel.to_owned(), session_id, msisdn, service_code, input };
    Ok(Parsed { inbound: Inbound::Hop(hop), echo: Echo::default() })
}

pub fn render(reply: &Reply) -> Response {
    let flow = HeaderValue::from_static(if reply.end { "FB" } else { "FC" });
    let headers: [(HeaderName, HeaderValue); 2] = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8")),
        (HeaderName::from_static("freeflow"), flow),
    ];
    (headers, reply.text.clone()).into_response()
}
