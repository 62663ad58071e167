//! Africa's Talking: form-encoded callbacks with cumulative `text`, `CON `/`END `
//! replies, and the end-of-session notification (a form carrying `status`) on the
//! same path.

use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{BadRequest, Context, Echo, Inbound, Parsed, Request};
use crate::channel::{CloseReason, Closed, Hop, Input};

pub const PROVIDER: &str = "africastalking";

/// The fields Africa's Talking posts. Fields it may add later are ignored.
// No `Debug`: the fields may hold a PIN.
#[derive(Deserialize)]
struct Callback {
    #[serde(rename = "sessionId", default)]
    session_id: String,
    #[serde(rename = "serviceCode", default)]
    service_code: String,
    #[serde(rename = "phoneNumber", default)]
    phone_number: String,
    /// Empty on the first hop; everything typed since, joined by `*`, afterwards.
    #[serde(default)]
    text: String,
    /// Only in the end-of-session notification: Success, Incomplete or Failed.
    status: Option<String>,
}

pub fn parse(req: &Request<'_>, ctx: &Context<'_>) -> Result<Parsed, BadRequest> {
    let cb: Callback = super::from_form(req.body)?;
    let session_id = super::session_id("sessionId", &cb.session_id)?;
    let msisdn = super::msisdn("phoneNumber", &cb.phone_number, ctx)?;
    let echo = Echo::default();
    if let Some(status) = cb.status {
        // A status this adapter does not know still ends the session; refusing it would
        // only make Africa's Talking send it again.
        let reason = match status.as_str() {
            // The subscriber was left on a screen that wanted input: dropped or timed out.
            "Incomplete" => CloseReason::Aborted,
            _ => CloseReason::Ended,
        };
        let closed = Closed { channel: ctx.channel.to_owned(), session_id, msisdn, reason };
        return Ok(Parsed { inbound: Inbound::Closed(closed), echo });
    }
    super::check("serviceCode", &cb.service_code, super::MAX_SERVICE_CODE, true)?;
    let hop = Hop {
        provider: PROVIDER,
        channel: ctx.channel.to_owned(),
        session_id,
        msisdn,
        service_code: cb.service_code,
        input: Input::Cumulative(super::text("text", &cb.text)?),
    };
    Ok(Parsed { inbound: Inbound::Hop(hop), echo })
}

/// `CON …` keeps the session open, `END …` closes it.
pub fn render(reply: &crate::menu::Reply) -> Response {
    super::plain(super::con_end(reply)).into_response()
}

#[cfg(test)]
mod tests {
    use crate::menu::Reply;

    #[test]
    fn replies_start_with_con_or_end() {
        assert_eq!(super::super::con_end(&Reply::con("Menu\n1. A")), "CON Menu\n1. A");
        assert_eq!(super::super::con_end(&Reply::end("Bye")), "END Bye");
    }
}
