//! Cellulant: GET with `MSISDN, sessionID, opCode, INPUT, ABORT`; per-hop input;
//! replies are pipe-delimited `nextLevel|text|valueOfSelection|serviceId|status|extra`
//! with `status` `end` or `continue`. `opCode` `BEG` opens a session (`INPUT` is the
//! dial string), `ABO` or `ABORT=1` is the subscriber cancelling, `TMO` a timeout.

use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{BadRequest, Context, Echo, Inbound, Parsed, Request};
use crate::channel::{CloseReason, Closed, Hop, Input};
use crate::menu::Reply;

pub const PROVIDER: &str = "cellulant";

// No `Debug`: the fields may hold a PIN.
#[derive(Deserialize)]
struct Callback {
    #[serde(rename = "MSISDN", default)]
    msisdn: String,
    #[serde(rename = "sessionID", default)]
    session_id: String,
    #[serde(rename = "opCode", default)]
    op_code: String,
    #[serde(rename = "INPUT", default)]
    input: String,
    #[serde(rename = "ABORT", deserialize_with = "super::flexible_bool", default)]
    abort: bool,
}

pub fn parse(req: &Request<'_>, ctx: &Context<'_>) -> Result<Parsed, BadRequest> {
    let cb: Callback = super::from_query(req.query)?;
    let session_id = super::session_id("sessionID", &cb.session_id)?;
    let msisdn = super::msisdn("MSISDN", &cb.msisdn, ctx)?;
    let closed = |reason| {
        let closed = Closed {
            channel: ctx.channel.to_owned(),
            session_id: session_id.clone(),
            msisdn: msisdn.clone(),
            reason,
        };
        Ok(Parsed { inbound: Inbound::Closed(closed), echo: Echo::default() })
    };
    if cb.abort {
        return closed(CloseReason::Aborted);
    }
    let (service_code, input) = match cb.op_code.to_ascii_uppercase().as_str() {
        "BEG" => {
            let code = super::dial_code("INPUT", &cb.input)?;
            (code, Input::PerHop { text: String::new(), first: true, seq: None })
        }
        "ABO" => return closed(CloseReason::Aborted),
        "TMO" => return closed(CloseReason::TimedOut),
        "END" => return closed(CloseReason::Ended),
        "CON" | "" => {
            (String::new(), Input::PerHop { text: super::text("INPUT", &cb.input)?, first: false, seq: None })
        }
        _ => return Err(BadRequest::Value { field: "opCode", value: cb.op_code }),
    };
    let hop =
        Hop { provider: PROVIDER, channel: ctx.channel.to_owned(), session_id, msisdn, service_code, input };
    Ok(Parsed { inbound: Inbound::Hop(hop), echo: Echo::default() })
}

/// A `|` inside the screen would shift the fields, so it is shown as `/`.
pub fn render(reply: &Reply) -> Response {
    let status = if reply.end { "end" } else { "continue" };
    let text = reply.text.replace('|', "/");
    super::plain(format!("|{text}|||{status}|")).into_response()
}
