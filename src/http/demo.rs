//! What `--demo` shows a person: the SMS the gateway would have sent.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;

#[derive(Deserialize)]
pub struct Filter {
    /// Only messages to this number (E.164, `+254700000001`).
    to: Option<String>,
}

/// `GET /demo/sms[?to=+254…]`: the latest messages of the demo sink, newest first.
pub async fn sms(State(state): State<AppState>, Query(filter): Query<Filter>) -> Json<Value> {
    let messages =
        state.sms.as_ref().and_then(|sms| sms.sink()).map(|sink| sink.latest(filter.to.as_deref()));
    Json(json!({ "messages": messages.unwrap_or_default() }))
}
