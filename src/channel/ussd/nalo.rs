//! Nalo Solutions (Ghana): JSON in and out, per-hop `USERDATA` (the dial string on
//! the first hop, flagged by `MSGTYPE: true`), and `MSGTYPE` in the reply for
//! continue (true) or end (false).

use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{BadRequest, Context, Echo, Inbound, Parsed, Request};
use crate::channel::{Hop, Input};
use crate::menu::Reply;

pub const PROVIDER: &str = "nalo";

// No `Debug`: the fields may hold a PIN.
#[derive(Deserialize)]
#[serde(rename_all = "UPPERCASE")]
struct Callback {
    #[serde(default)]
    userid: String,
    #[serde(default)]
    msisdn: String,
    #[serde(default)]
    userdata: String,
    #[serde(deserialize_with = "super::flexible_bool", default)]
    msgtype: bool,
    #[serde(default)]
    sessionid: String,
}

pub fn parse(req: &Request<'_>, ctx: &Context<'_>) -> Result<Parsed, BadRequest> {
    let cb: Callback = super::from_json(req.body)?;
    let session_id = super::session_id("SESSIONID", &cb.sessionid)?;
    let msisdn = super::msisdn("MSISDN", &cb.msisdn, ctx)?;
    super::check("USERID", &cb.userid, super::MAX_SESSION_ID, false)?;
    let echo = Echo { session_id: session_id.clone(), user: cb.userid, msisdn: cb.msisdn };
    let (service_code, input) = if cb.msgtype {
        let code = super::dial_code("USERDATA", &cb.userdata)?;
        (code, Input::PerHop { text: String::new(), first: true, seq: None })
    } else {
        (
            String::new(),
            Input::PerHop { text: super::text("USERDATA", &cb.userdata)?, first: false, seq: None },
        )
    };
    let hop =
        Hop { provider: PROVIDER, channel: ctx.channel.to_owned(), session_id, msisdn, service_code, input };
    Ok(Parsed { inbound: Inbound::Hop(hop), echo })
}

pub fn render(reply: &Reply, echo: &Echo) -> Response {
    super::json(json!({
        "USERID": echo.user,
        "MSISDN": echo.msisdn,
        "MSG": reply.text,
        "MSGTYPE": !reply.end,
    }))
}
