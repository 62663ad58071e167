//! USSD adapters, one module per aggregator wire format, behind one [`Provider`] enum,
//! and the field checks they share. The HTTP handler is `crate::http::channels`.

pub mod africastalking;
pub mod airtel;
pub mod arkesel;
pub mod cellulant;
pub mod cumulative;
pub mod generic;
pub mod hubtel;
pub mod infobip;
pub mod nalo;
pub mod safaricom;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::channel::{Closed, Hop, Input};
use crate::domain::{Msisdn, Region};
use crate::menu::Reply;

/// The longest session id, service code and input accepted from any aggregator.
pub const MAX_SESSION_ID: usize = 128;
pub const MAX_SERVICE_CODE: usize = 64;
pub const MAX_TEXT: usize = 4096;

/// Every wire format the gateway speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    AfricasTalking,
    Hubtel,
    HubtelProgrammable,
    Nalo,
    Arkesel,
    Infobip,
    Cellulant,
    Safaricom,
    Airtel,
    Generic,
}

impl Provider {
    pub const ALL: [Provider; 10] = [
        Provider::AfricasTalking,
        Provider::Hubtel,
        Provider::HubtelProgrammable,
        Provider::Nalo,
        Provider::Arkesel,
        Provider::Infobip,
        Provider::Cellulant,
        Provider::Safaricom,
        Provider::Airtel,
        Provider::Generic,
    ];

    /// The name used in paths, configuration, session keys and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Provider::AfricasTalking => "africastalking",
            Provider::Hubtel => "hubtel",
            Provider::HubtelProgrammable => "hubtel-programmable",
            Provider::Nalo => "nalo",
            Provider::Arkesel => "arkesel",
            Provider::Infobip => "infobip",
            Provider::Cellulant => "cellulant",
            Provider::Safaricom => "safaricom",
            Provider::Airtel => "airtel",
            Provider::Generic => "generic",
        }
    }

    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Providers that call with GET and query parameters rather than a POSTed body.
    pub fn uses_get(self) -> bool {
        matches!(self, Provider::Cellulant | Provider::Safaricom | Provider::Airtel)
    }

    /// Whether the path below the provider's own carries part of the request (Infobip's
    /// `{sessionId}/start`); for every other provider anything there is no endpoint.
    pub fn uses_path_tail(self) -> bool {
        self == Provider::Infobip
    }

    /// Reads one request in this provider's format.
    pub fn parse(self, req: &Request<'_>, ctx: &Context<'_>) -> Result<Parsed, BadRequest> {
        match self {
            Provider::AfricasTalking => africastalking::parse(req, ctx),
            Provider::Hubtel => hubtel::parse(req, ctx, hubtel::Variant::Legacy),
            Provider::HubtelProgrammable => hubtel::parse(req, ctx, hubtel::Variant::Programmable),
            Provider::Nalo => nalo::parse(req, ctx),
            Provider::Arkesel => arkesel::parse(req, ctx),
            Provider::Infobip => infobip::parse(req, ctx),
            Provider::Cellulant => cellulant::parse(req, ctx),
            Provider::Safaricom => safaricom::parse(req, ctx),
            Provider::Airtel => airtel::parse(req, ctx),
            Provider::Generic => generic::parse(req, ctx),
        }
    }

    /// Writes a screen in this provider's format.
    pub fn render(self, reply: &Reply, echo: &Echo) -> Response {
        match self {
            Provider::AfricasTalking | Provider::Safaricom => africastalking::render(reply),
            Provider::Hubtel => hubtel::render(reply, echo, hubtel::Variant::Legacy),
            Provider::HubtelProgrammable => hubtel::render(reply, echo, hubtel::Variant::Programmable),
            Provider::Nalo => nalo::render(reply, echo),
            Provider::Arkesel => arkesel::render(reply, echo),
            Provider::Infobip => infobip::render(reply),
            Provider::Cellulant => cellulant::render(reply),
            Provider::Airtel => airtel::render(reply),
            Provider::Generic => generic::render(reply, echo),
        }
    }

    /// The answer to a close notification: the provider only needs a 2xx, but the
    /// JSON providers get a well-formed closing body in case they read it.
    pub fn acknowledge(self, echo: &Echo) -> Response {
        match self {
            Provider::AfricasTalking | Provider::Infobip | Provider::Cellulant => {
                (StatusCode::OK, plain("OK")).into_response()
            }
            _ => self.render(&Reply::end(""), echo),
        }
    }
}

/// One request as an adapter sees it.
pub struct Request<'a> {
    /// The raw query string (GET providers).
    pub query: &'a str,
    pub body: &'a [u8],
    /// The path below the provider's own (`{sessionId}/start` for Infobip).
    pub tail: &'a str,
}

/// What an adapter needs besides the request.
pub struct Context<'a> {
    /// The channel the request came through (part of the session key).
    pub channel: &'a str,
    /// Region for numbers in national form.
    pub region: Region,
}

/// A parsed request: a hop to answer or a notice to acknowledge, and what the reply
/// must echo back.
pub struct Parsed {
    pub inbound: Inbound,
    pub echo: Echo,
}

pub enum Inbound {
    Hop(Hop),
    Closed(Closed),
}

/// Request fields some providers want repeated in the reply.
#[derive(Clone, Debug, Default)]
pub struct Echo {
    pub session_id: String,
    /// The aggregator's account name (`USERID`, `userID`).
    pub user: String,
    /// The number exactly as the provider sent it.
    pub msisdn: String,
}

/// A request that is not well-formed for its provider: 400 with the reason.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    #[error("malformed body: {0}")]
    Body(String),
    #[error("malformed query string: {0}")]
    Query(String),
    #[error("`{field}` is missing, empty or longer than {max} bytes")]
    Length { field: &'static str, max: usize },
    #[error("`{field}` holds a control character")]
    Control { field: &'static str },
    #[error("`{field}` is not a valid phone number: {reason}")]
    PhoneNumber { field: &'static str, reason: String },
    #[error("`{field}` has an unknown value `{value}`")]
    Value { field: &'static str, value: String },
    #[error("no such endpoint: {0}")]
    Path(String),
}

impl BadRequest {
    pub fn into_response_for(self, provider: Provider) -> Response {
        let status =
            if matches!(self, BadRequest::Path(_)) { StatusCode::NOT_FOUND } else { StatusCode::BAD_REQUEST };
        (status, plain(format!("bad {} request: {self}\n", provider.name()))).into_response()
    }
}

fn plain(body: impl Into<String>) -> ([(HeaderName, HeaderValue); 1], String) {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], body.into())
}

/// A JSON reply body.
fn json(body: serde_json::Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `CON …` keeps the session open, `END …` closes it (Africa's Talking, Safaricom).
pub fn con_end(reply: &Reply) -> String {
    let verb = if reply.end { "END" } else { "CON" };
    format!("{verb} {}", reply.text)
}

pub fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, BadRequest> {
    serde_json::from_slice(body).map_err(|e| BadRequest::Body(e.to_string()))
}

pub fn from_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, BadRequest> {
    serde_urlencoded::from_bytes(body).map_err(|e| BadRequest::Body(e.to_string()))
}

pub fn from_query<T: DeserializeOwned>(query: &str) -> Result<T, BadRequest> {
    serde_urlencoded::from_str(query).map_err(|e| BadRequest::Query(e.to_string()))
}

/// Refuses a required field that is blank, any field that is too long, and any that
/// holds a control character (a NUL cannot even be stored, and no keypad types one).
pub fn check(field: &'static str, value: &str, max: usize, required: bool) -> Result<(), BadRequest> {
    if (required && value.trim().is_empty()) || value.len() > max {
        Err(BadRequest::Length { field, max })
    } else if value.chars().any(char::is_control) {
        Err(BadRequest::Control { field })
    } else {
        Ok(())
    }
}

pub fn session_id(field: &'static str, value: &str) -> Result<String, BadRequest> {
    check(field, value, MAX_SESSION_ID, true)?;
    Ok(value.to_owned())
}

pub fn text(field: &'static str, value: &str) -> Result<String, BadRequest> {
    check(field, value, MAX_TEXT, false)?;
    Ok(value.to_owned())
}

pub fn msisdn(field: &'static str, value: &str, ctx: &Context<'_>) -> Result<Msisdn, BadRequest> {
    Msisdn::parse(value, ctx.region).map_err(|e| BadRequest::PhoneNumber { field, reason: e.to_string() })
}

/// A service code in dial form: `714*5` and `*714*5#` both give `*714*5#`.
pub fn dial_code(field: &'static str, value: &str) -> Result<String, BadRequest> {
    check(field, value, MAX_SERVICE_CODE, true)?;
    let body = value.trim().trim_start_matches('*').trim_end_matches('#');
    Ok(format!("*{body}#"))
}

/// Cumulative input that may arrive as the whole dial string (`*384*1*2#`, as Safaricom
/// and Airtel send it) or as bare inputs (`1*2`): the service code and the input. A dial
/// string is its own service code (the gateway finds the menu's code in it when it
/// opens a session, and de-accumulates it against the last hop otherwise); bare inputs
/// keep `code` (which may be empty: a running session does not need it).
pub fn dial_or_text(field: &'static str, value: &str, code: String) -> Result<(String, Input), BadRequest> {
    check(field, value, MAX_TEXT, false)?;
    let value = value.trim();
    if value.starts_with('*') && value.ends_with('#') {
        Ok((value.to_owned(), Input::Dialled(value.to_owned())))
    } else {
        Ok((code, Input::Cumulative(value.to_owned())))
    }
}

/// Booleans some aggregators send as strings (`"true"`) and others as JSON booleans.
pub fn flexible_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flexible {
        Bool(bool),
        Text(String),
        Number(i64),
    }
    match Flexible::deserialize(d)? {
        Flexible::Bool(b) => Ok(b),
        Flexible::Number(n) => Ok(n != 0),
        Flexible::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" | "" => Ok(false),
            other => Err(serde::de::Error::custom(format!("`{other}` is not a boolean"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(Provider::from_name(p.name()), Some(p));
        }
        assert_eq!(Provider::from_name("nope"), None);
    }

    #[test]
    fn service_codes_take_dial_form() {
        assert_eq!(dial_code("c", "714*5").unwrap(), "*714*5#");
        assert_eq!(dial_code("c", "*384#").unwrap(), "*384#");
        assert!(dial_code("c", " ").is_err());
    }
}
