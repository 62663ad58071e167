//! `POST /identity/callback`: the identity provider's answer to a check, signed as
//! Standard Webhooks sign (`money::identity::client` has the protocol).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

use super::AppState;
use crate::money::identity::client::Answer;
use crate::money::identity::{Settled, is_check_id};

pub fn routes() -> Router<AppState> {
    Router::new().route("/identity/callback", post(callback))
}

#[derive(Deserialize)]
struct Callback {
    reference: String,
    status: String,
}

fn refused(status: StatusCode, error: &str) -> (StatusCode, Json<Value>) {
    (status, Json(json!({ "error": error })))
}

async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    // Mounted only with a provider configured.
    let Some(identity) = state.money().identity() else {
        return refused(StatusCode::NOT_FOUND, "identity checks are not configured here");
    };
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(timestamp), Some(signature)) =
        (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"))
    else {
        return refused(
            StatusCode::UNAUTHORIZED,
            "sign the callback: webhook-id, webhook-timestamp and webhook-signature (Standard Webhooks)",
        );
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let signed = timestamp.parse::<i64>().is_ok_and(|timestamp| {
        crate::signature::verify(identity.webhook_secret(), id, timestamp, &body, signature, now)
    });
    if !signed {
        return refused(
            StatusCode::UNAUTHORIZED,
            "the signature does not match IDENTITY_WEBHOOK_SECRET, or the timestamp is more than 5 minutes from now",
        );
    }
    let Ok(Callback { reference, status }) = serde_json::from_slice::<Callback>(&body) else {
        return refused(StatusCode::BAD_REQUEST, "the body must be JSON with `reference` and `status`");
    };
    let answer = match Answer::from_status(&status) {
        Some(answer) if is_check_id(&reference) => answer,
        Some(_) => return refused(StatusCode::NOT_FOUND, "no such check"),
        None => {
            return refused(
                StatusCode::BAD_REQUEST,
                "`status` must be match, mismatch, duplicate or pending",
            );
        }
    };
    match identity.answered(&reference, answer).await {
        Ok(Settled::NoSuchCheck) => refused(StatusCode::NOT_FOUND, "no such check"),
        Ok(Settled::Now(state) | Settled::Before(state)) => {
            (StatusCode::OK, Json(json!({ "reference": reference, "state": state })))
        }
        // Only an operator's override is refused so; the provider's match goes to review.
        Ok(Settled::HeldElsewhere | Settled::NoVerifiedTier) => {
            refused(StatusCode::CONFLICT, "the check cannot be verified")
        }
        Err(e) => {
            warn!(error = %e, "an identity callback could not be recorded; the provider is asked to send it again");
            refused(StatusCode::SERVICE_UNAVAILABLE, "not recorded; send it again")
        }
    }
}
