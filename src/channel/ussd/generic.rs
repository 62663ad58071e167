//! The generic JSON format, for any aggregator without an adapter of its own (a small
//! proxy or a rule in the aggregator's console maps its fields onto these):
//!
//! ```text
//! → {"session_id":"s1","msisdn":"+254711000111","event":"start","service_code":"*384#"}
//! → {"session_id":"s1","msisdn":"+254711000111","event":"input","input":"1","sequence":2}
//! → {"session_id":"s1","msisdn":"+254711000111","event":"close","reason":"timeout"}
//! ← {"session_id":"s1","message":"Welcome…","end":false,"secret":false}
//! ```
//!
//! Input is per hop; `service_code` on `start` may carry jump-ahead inputs
//! (`*384*1#`); `sequence` (optional) is the provider's hop counter and makes retries
//! exact; `reason` is `timeout`, `aborted` or anything else; `secret: true` means the
//! next answer is a PIN or another secret that should be masked in the provider's logs.

use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{BadRequest, Context, Echo, Inbound, Parsed, Request};
use crate::channel::{CloseReason, Closed, Hop, Input};
use crate::menu::Reply;

pub const PROVIDER: &str = "generic";

// No `Debug`: the fields may hold a PIN.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Callback {
    session_id: String,
    msisdn: String,
    event: Event,
    #[serde(default)]
    service_code: String,
    #[serde(default)]
    input: String,
    #[serde(default)]
    sequence: Option<u32>,
    #[serde(default)]
    reason: Option<String>,
}

// No `Debug`: the fields may hold a PIN.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Event {
    Start,
    Input,
    Close,
}

pub fn parse(req: &Request<'_>, ctx: &Context<'_>) -> Result<Parsed, BadRequest> {
    let cb: Callback = super::from_json(req.body)?;
    let session_id = super::session_id("session_id", &cb.session_id)?;
    let msisdn = super::msisdn("msisdn", &cb.msisdn, ctx)?;
    let echo = Echo { session_id: session_id.clone(), ..Echo::default() };
    let (service_code, input) = match cb.event {
        Event::Start => (
            super::dial_code("service_code", &cb.service_code)?,
            Input::PerHop { text: String::new(), first: true, seq: cb.sequence },
        ),
        Event::Input => (
            String::new(),
            Input::PerHop { text: super::text("input", &cb.input)?, first: false, seq: cb.sequence },
        ),
        Event::Close => {
            let reason = match cb.reason.as_deref() {
                Some("timeout") => CloseReason::TimedOut,
                Some("aborted") => CloseReason::Aborted,
                _ => CloseReason::Ended,
            };
            let closed = Closed { channel: ctx.channel.to_owned(), session_id, msisdn, reason };
            return Ok(Parsed { inbound: Inbound::Closed(closed), echo });
        }
    };
    let hop =
        Hop { provider: PROVIDER, channel: ctx.channel.to_owned(), session_id, msisdn, service_code, input };
    Ok(Parsed { inbound: Inbound::Hop(hop), echo })
}

pub fn render(reply: &Reply, echo: &Echo) -> Response {
    super::json(json!({
        "session_id": echo.session_id,
        "message": reply.text,
        "end": reply.end,
        "secret": reply.secret_next,
    }))
}
