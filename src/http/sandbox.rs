//! The sandbox billers `--demo` pays: prepaid power (`KPLC`, a token per payment) and
//! water (`WATER`), speaking the biller protocol of `money::bills::client` at
//! `/sandbox/billers/{code}`. Meter `00000000000` does not exist; meter `99999999999`
//! is blocked, so that a refusal can be tried too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// What the sandbox remembers: each payment's answer by reference, so that asking
/// again (our retries, the reconciler) answers the same.
#[derive(Clone, Default)]
pub struct Sandbox {
    paid: Arc<Mutex<HashMap<String, Value>>>,
}

const HOLDERS: [&str; 6] =
    ["WANJIRU KAMAU", "OTIENO ODHIAMBO", "AMINA HASSAN", "MUTUA NDETI", "CHEBET KOECH", "NJERI MWANGI"];

pub fn routes<S>(sandbox: Sandbox) -> Router<S> {
    Router::new()
        .route("/sandbox/billers/{code}/validate", post(validate))
        .route("/sandbox/billers/{code}/pay", post(pay))
        .route("/sandbox/billers/{code}/payments/{reference}", get(status))
        .with_state(sandbox)
}

fn known(code: &str, account: &str) -> bool {
    let digits = account.bytes().all(|b| b.is_ascii_digit());
    match code {
        "KPLC" => digits && account.len() == 11 && account != "00000000000",
        "WATER" => digits && (6..=10).contains(&account.len()),
        _ => false,
    }
}

fn holder(account: &str) -> &'static str {
    let sum: usize = account.bytes().map(usize::from).sum();
    HOLDERS[sum % HOLDERS.len()]
}

async fn validate(Path(code): Path<String>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let account = body["account"].as_str().unwrap_or_default();
    if known(&code, account) {
        (StatusCode::OK, Json(json!({ "name": holder(account) })))
    } else {
        (StatusCode::NOT_FOUND, Json(json!({ "error": "no such account" })))
    }
}

async fn pay(
    State(sandbox): State<Sandbox>,
    Path(code): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let (Some(reference), Some(account), Some(amount)) =
        (body["reference"].as_str(), body["account"].as_str(), body["amount"].as_i64())
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "reference, account and amount are required" })),
        );
    };
    let mut paid = sandbox.paid.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(answer) = paid.get(reference) {
        return (StatusCode::OK, Json(answer.clone()));
    }
    if !known(&code, account) || account == "99999999999" || amount <= 0 {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "status": "rejected", "reason": "account blocked" })),
        );
    }
    let digest = Sha256::digest(reference.as_bytes());
    let receipt = format!("{code}{}", &crate::bytes::to_hex(&digest[..4]).to_uppercase());
    let token = (code == "KPLC").then(|| {
        let digits: String = digest.iter().take(20).map(|b| char::from(b'0' + b % 10)).collect();
        digits
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    });
    let answer = json!({ "status": "paid", "receipt": receipt, "token": token });
    paid.insert(reference.to_owned(), answer.clone());
    (StatusCode::OK, Json(answer))
}

async fn status(
    State(sandbox): State<Sandbox>,
    Path((_, reference)): Path<(String, String)>,
) -> (StatusCode, Json<Value>) {
    let paid = sandbox.paid.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match paid.get(&reference) {
        Some(answer) => (StatusCode::OK, Json(answer.clone())),
        None => (StatusCode::NOT_FOUND, Json(json!({ "error": "unknown reference" }))),
    }
}
