//! Africa's Talking USSD: form-encoded callbacks, cumulative `text`, `CON `/`END ` replies.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::channel::Hop;
use crate::domain::Msisdn;
use crate::http::AppState;
use crate::menu::Reply;

pub const PROVIDER: &str = "africastalking";

/// The fields Africa's Talking posts on every hop. Fields it may add later are ignored.
#[derive(Debug, Deserialize)]
struct Callback {
    #[serde(rename = "sessionId")]
    session_id: String,
    #[serde(rename = "serviceCode")]
    service_code: String,
    #[serde(rename = "phoneNumber")]
    phone_number: String,
    /// Empty on the first hop; everything typed since, joined by `*`, afterwards.
    #[serde(default)]
    text: String,
}

const MAX_SESSION_ID: usize = 128;
const MAX_SERVICE_CODE: usize = 64;
const MAX_TEXT: usize = 4096;

/// A request that is not a well-formed Africa's Talking callback: 400 with the reason.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    #[error("malformed form body: {0}")]
    Form(String),
    #[error("`{field}` is empty or longer than {max} bytes")]
    Length { field: &'static str, max: usize },
    #[error("`phoneNumber` is not a valid phone number: {0}")]
    PhoneNumber(String),
}

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("bad Africa's Talking request: {self}\n"),
        )
            .into_response()
    }
}

fn parse(body: &[u8], state: &AppState) -> Result<Hop, BadRequest> {
    let cb: Callback = serde_urlencoded::from_bytes(body).map_err(|e| BadRequest::Form(e.to_string()))?;
    let check = |field: &'static str, value: &str, max: usize, allow_empty: bool| {
        if (!allow_empty && value.trim().is_empty()) || value.len() > max {
            Err(BadRequest::Length { field, max })
        } else {
            Ok(())
        }
    };
    check("sessionId", &cb.session_id, MAX_SESSION_ID, false)?;
    check("serviceCode", &cb.service_code, MAX_SERVICE_CODE, false)?;
    check("text", &cb.text, MAX_TEXT, true)?;
    let msisdn = Msisdn::parse(&cb.phone_number, state.default_region)
        .map_err(|e| BadRequest::PhoneNumber(e.to_string()))?;
    Ok(Hop {
        provider: PROVIDER,
        session_id: cb.session_id,
        msisdn,
        service_code: cb.service_code,
        text: cb.text,
    })
}

/// `CON …` keeps the session open, `END …` closes it.
pub fn render(reply: &Reply) -> String {
    let verb = if reply.end { "END" } else { "CON" };
    format!("{verb} {}", reply.text)
}

pub async fn callback(State(state): State<AppState>, body: Bytes) -> Result<Response, BadRequest> {
    let started = std::time::Instant::now();
    let hop = parse(&body, &state)?;
    let (reply, kind) = state.gateway.handle(&hop).await;
    crate::telemetry::record_hop(PROVIDER, kind, started.elapsed());
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], render(&reply)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_start_with_con_or_end() {
        assert_eq!(render(&Reply::con("Menu\n1. A")), "CON Menu\n1. A");
        assert_eq!(render(&Reply::end("Bye")), "END Bye");
    }
}
