//! Infobip USSD session REST: `POST {path}/{sessionId}/start`, `…/response` and
//! `…/end`, JSON in (`msisdn, imsi, text, shortCode, language`) and out (`ussdMenu,
//! shouldClose, responseExitCode`); per-hop input.

use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{BadRequest, Context, Echo, Inbound, Parsed, Request};
use crate::channel::{CloseReason, Closed, Hop, Input};
use crate::menu::Reply;

pub const PROVIDER: &str = "infobip";

// No `Debug`: the fields may hold a PIN.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Callback {
    #[serde(default)]
    msisdn: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    short_code: String,
    /// On `end`: why the session closed, when Infobip says.
    #[serde(default)]
    reason: Option<String>,
}

pub fn parse(req: &Request<'_>, ctx: &Context<'_>) -> Result<Parsed, BadRequest> {
    let (session_id, event) = req.tail.split_once('/').ok_or_else(|| {
        BadRequest::Path(format!("`{}`: expected {{sessionId}}/start, response or end", req.tail))
    })?;
    let session_id = super::session_id("sessionId", session_id)?;
    let cb: Callback = super::from_json(req.body)?;
    let msisdn = super::msisdn("msisdn", &cb.msisdn, ctx)?;
    let echo = Echo { session_id: session_id.clone(), ..Echo::default() };
    let (service_code, input) = match event {
        "start" => {
            let dialled = if cb.text.trim_start().starts_with('*') { &cb.text } else { &cb.short_code };
            let code = super::dial_code("shortCode", dialled)?;
            (code, Input::PerHop { text: String::new(), first: true, seq: None })
        }
        "response" => {
            (String::new(), Input::PerHop { text: super::text("text", &cb.text)?, first: false, seq: None })
        }
        "end" => {
            let timed_out = cb.reason.is_some_and(|r| r.to_ascii_lowercase().contains("timeout"));
            let reason = if timed_out { CloseReason::TimedOut } else { CloseReason::Ended };
            let closed = Closed { channel: ctx.channel.to_owned(), session_id, msisdn, reason };
            return Ok(Parsed { inbound: Inbound::Closed(closed), echo });
        }
        other => return Err(BadRequest::Path(format!("`{other}`: expected start, response or end"))),
    };
    let hop =
        Hop { provider: PROVIDER, channel: ctx.channel.to_owned(), session_id, msisdn, service_code, input };
    Ok(Parsed { inbound: Inbound::Hop(hop), echo })
}

pub fn render(reply: &Reply) -> Response {
    super::json(json!({
        "ussdMenu": reply.text,
        "shouldClose": reply.end,
        "responseExitCode": 200,
    }))
}
