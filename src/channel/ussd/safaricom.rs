//! Safaricom direct: GET with `ORIG` (the subscriber), `DEST` (the short code),
//! `SESSION_ID` and cumulative `USSD_PARAMS`; `CON `/`END ` replies. Safaricom may send
//! a session's first request twice: the second gets the first's reply.

use serde::Deserialize;

use super::{BadRequest, Context, Echo, Inbound, Parsed, Request};
use crate::channel::Hop;

pub const PROVIDER: &str = "safaricom";

// No `Debug`: the fields may hold a PIN.
#[derive(Deserialize)]
#[serde(rename_all = "UPPERCASE")]
struct Callback {
    #[serde(default)]
    orig: String,
    #[serde(default)]
    dest: String,
    #[serde(default)]
    session_id: String,
    #[serde(default)]
    ussd_params: String,
}

pub fn parse(req: &Request<'_>, ctx: &Context<'_>) -> Result<Parsed, BadRequest> {
    let cb: Callback = super::from_query(req.query)?;
    let session_id = super::session_id("SESSION_ID", &cb.session_id)?;
    let msisdn = super::msisdn("ORIG", &cb.orig, ctx)?;
    let code = super::dial_code("DEST", &cb.dest)?;
    let (service_code, input) = super::dial_or_text("USSD_PARAMS", &cb.ussd_params, code)?;
    let hop =
        Hop { provider: PROVIDER, channel: ctx.channel.to_owned(), session_id, msisdn, service_code, input };
    Ok(Parsed { inbound: Inbound::Hop(hop), echo: Echo::default() })
}
