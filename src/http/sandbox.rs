//! The sandbox partners `--demo` pays: billers — prepaid power (`KPLC`, a token per
//! payment) and water (`WATER`) — speaking the biller protocol of
//! `money::bills::client` at `/sandbox/billers/{code}`, and an airtime provider
//! speaking its airtime protocol at `/sandbox/airtime`. Meter `00000000000` does not
//! exist and meter `99999999999` is blocked; of phone numbers, `+254799000000` does
//! not exist, `+254799000001` is barred and `+254799000002` is topped up but answered
//! too late, so that refusals and a lost answer can be tried too.

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
/// again (our retries, the reconciler) answers the same. A reference sent again for
/// another account or amount is a new payment: the scratch databases of transcripts
/// reuse references, one run after another.
#[derive(Clone, Default)]
pub struct Sandbox {
    paid: Arc<Mutex<HashMap<String, Paid>>>,
}

/// A payment the sandbox applied: to what, how much, and its answer.
struct Paid {
    account: String,
    amount: i64,
    answer: Value,
}

impl Sandbox {
    /// The answer to a payment sent again, if it is one.
    fn replay(&self, reference: &str, account: &str, amount: i64) -> Option<Value> {
        let paid = self.paid.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        paid.get(reference).filter(|p| p.account == account && p.amount == amount).map(|p| p.answer.clone())
    }

    fn remember(&self, reference: &str, account: &str, amount: i64, answer: &Value) {
        let mut paid = self.paid.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let payment = Paid { account: account.to_owned(), amount, answer: answer.clone() };
        paid.insert(reference.to_owned(), payment);
    }

    fn status(&self, reference: &str) -> (StatusCode, Json<Value>) {
        let paid = self.paid.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match paid.get(reference) {
            Some(p) => (StatusCode::OK, Json(p.answer.clone())),
            None => (StatusCode::NOT_FOUND, Json(json!({ "error": "unknown reference" }))),
        }
    }
}

const HOLDERS: [&str; 6] =
    ["WANJIRU KAMAU", "OTIENO ODHIAMBO", "AMINA HASSAN", "MUTUA NDETI", "CHEBET KOECH", "NJERI MWANGI"];

pub fn routes<S>(sandbox: Sandbox) -> Router<S> {
    Router::new()
        .route("/sandbox/billers/{code}/validate", post(validate))
        .route("/sandbox/billers/{code}/pay", post(pay))
        .route("/sandbox/billers/{code}/payments/{reference}", get(status))
        .route("/sandbox/airtime/topups", post(top_up))
        .route("/sandbox/airtime/topups/{reference}", get(top_up_status))
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
    if let Some(answer) = sandbox.replay(reference, account, amount) {
        return (StatusCode::OK, Json(answer));
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
    sandbox.remember(reference, account, amount, &answer);
    (StatusCode::OK, Json(answer))
}

async fn status(
    State(sandbox): State<Sandbox>,
    Path((_, reference)): Path<(String, String)>,
) -> (StatusCode, Json<Value>) {
    sandbox.status(&reference)
}

/// The sandbox's numbers that cannot be topped up, and why.
const NO_SUCH_NUMBER: &str = "+254799000000";
const BARRED: &str = "+254799000001";
/// Topped up, but answered after the gateway has stopped waiting.
const SLOW: &str = "+254799000002";
/// Longer than any provider timeout the admin API takes.
const TOO_LATE: std::time::Duration = std::time::Duration::from_secs(31);

async fn top_up(State(sandbox): State<Sandbox>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let (Some(reference), Some(msisdn), Some(amount)) =
        (body["reference"].as_str(), body["msisdn"].as_str(), body["amount"].as_i64())
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "reference, msisdn and amount are required" })),
        );
    };
    let refused = |reason: &str| {
        (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "status": "rejected", "reason": reason })))
    };
    let answer = match sandbox.replay(reference, msisdn, amount) {
        Some(answer) => answer,
        None => {
            match msisdn {
                NO_SUCH_NUMBER => return refused("no such number"),
                BARRED => return refused("this number cannot receive airtime"),
                _ if amount <= 0 => return refused("no amount"),
                _ => {}
            }
            let digest = Sha256::digest(reference.as_bytes());
            let receipt = format!("AT{}", &crate::bytes::to_hex(&digest[..5]).to_uppercase());
            let answer = json!({ "status": "paid", "receipt": receipt });
            sandbox.remember(reference, msisdn, amount, &answer);
            answer
        }
    };
    if msisdn == SLOW {
        tokio::time::sleep(TOO_LATE).await;
    }
    (StatusCode::OK, Json(answer))
}

async fn top_up_status(
    State(sandbox): State<Sandbox>,
    Path(reference): Path<String>,
) -> (StatusCode, Json<Value>) {
    sandbox.status(&reference)
}
