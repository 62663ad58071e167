//! Hubtel (Ghana), both wire formats: the legacy USSD API and Programmable Services.
//! JSON in and out, per-hop input, the `Sequence` hop counter, and `Release`/`Timeout`
//! notices.

use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{BadRequest, Context, Echo, Inbound, Parsed, Request};
use crate::channel::{CloseReason, Closed, Hop, Input};
use crate::menu::Reply;

/// Programmable Services words `Type` in lower case and wants `Label`, `DataType` and
/// `FieldType` in every reply (a missing one fails the session).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Legacy,
    Programmable,
}

// No `Debug`: the fields may hold a PIN.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Callback {
    #[serde(default)]
    mobile: String,
    #[serde(default)]
    session_id: String,
    #[serde(default)]
    service_code: String,
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    sequence: Option<u32>,
}

pub fn parse(req: &Request<'_>, ctx: &Context<'_>, variant: Variant) -> Result<Parsed, BadRequest> {
    let cb: Callback = super::from_json(req.body)?;
    let session_id = super::session_id("SessionId", &cb.session_id)?;
    let msisdn = super::msisdn("Mobile", &cb.mobile, ctx)?;
    let echo = Echo { session_id: session_id.clone(), ..Echo::default() };
    let message = super::text("Message", &cb.message)?;
    let (input, service_code) = match cb.kind.to_ascii_lowercase().as_str() {
        // The opening message is the whole dial string, jump-ahead inputs included.
        "initiation" => {
            let dialled = message.trim();
            let code = if dialled.starts_with('*') {
                super::dial_code("Message", dialled)?
            } else {
                super::dial_code("ServiceCode", &cb.service_code)?
            };
            (Input::PerHop { text: String::new(), first: true, seq: cb.sequence }, code)
        }
        "response" => (Input::PerHop { text: message, first: false, seq: cb.sequence }, String::new()),
        "release" | "timeout" => {
            let reason = if cb.kind.eq_ignore_ascii_case("timeout") {
                CloseReason::TimedOut
            } else {
                CloseReason::Aborted
            };
            let closed = Closed { channel: ctx.channel.to_owned(), session_id, msisdn, reason };
            return Ok(Parsed { inbound: Inbound::Closed(closed), echo });
        }
        _ => return Err(BadRequest::Value { field: "Type", value: cb.kind }),
    };
    let provider = match variant {
        Variant::Legacy => "hubtel",
        Variant::Programmable => "hubtel-programmable",
    };
    let hop = Hop { provider, channel: ctx.channel.to_owned(), session_id, msisdn, service_code, input };
    Ok(Parsed { inbound: Inbound::Hop(hop), echo })
}

pub fn render(reply: &Reply, echo: &Echo, variant: Variant) -> Response {
    match variant {
        Variant::Legacy => super::json(json!({
            "Type": if reply.end { "Release" } else { "Response" },
            "Message": reply.text,
            "ClientState": "",
            "Mask": false,
            "MaskNextRoute": reply.secret_next,
        })),
        Variant::Programmable => super::json(json!({
            "SessionId": echo.session_id,
            "Type": if reply.end { "release" } else { "response" },
            "Message": reply.text,
            "Label": label(&reply.text),
            "DataType": if reply.end { "display" } else { "input" },
            "FieldType": "text",
            "ClientState": "",
        })),
    }
}

/// The screen's first line, which Hubtel shows as a title on its web and app channels.
fn label(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}
