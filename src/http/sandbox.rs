//! The sandbox partners `--demo` pays: billers — prepaid power (`KPLC`, a token per
//! payment) and water (`WATER`) — speaking the biller protocol of
//! `money::bills::client` at `/sandbox/billers/{code}`, and an airtime provider
//! speaking its airtime protocol at `/sandbox/airtime`. Meter `00000000000` does not
//! exist and meter `99999999999` is blocked; of phone numbers, `+254799000000` does
//! not exist, `+254799000001` is barred and `+254799000002` is topped up but answered
//! too late, so that refusals and a lost answer can be tried too.
//!
//! And an identity provider speaking the protocol of `money::identity::client` at
//! `/sandbox/identity`: an ID number beginning `99` does not match its names, one
//! beginning `88` is already behind another registration, one beginning `77` is
//! answered (a match) only after [`SLOW_ANSWER`], by a callback signed with the demo's
//! secret and on the status call; every other ID matches.

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
    /// Identity checks by reference: the answer, and when it is ready.
    checks: Arc<Mutex<HashMap<String, (&'static str, std::time::Instant)>>>,
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
        .route("/sandbox/identity/verifications", post(verify))
        .route("/sandbox/identity/verifications/{reference}", get(verification))
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

/// How long the sandbox takes to answer an ID beginning `77`.
pub const SLOW_ANSWER: std::time::Duration = std::time::Duration::from_secs(3);

/// What the sandbox provider says of an ID number.
fn identity_answer(id_number: &str) -> &'static str {
    match id_number.get(..2) {
        Some("99") => "mismatch",
        Some("88") => "duplicate",
        _ => "match",
    }
}

async fn verify(State(sandbox): State<Sandbox>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let (Some(reference), Some(id_number)) = (body["reference"].as_str(), body["id_number"].as_str()) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "status": "rejected", "reason": "reference and id_number are required" })),
        );
    };
    let slow = id_number.starts_with("77");
    let ready = std::time::Instant::now() + if slow { SLOW_ANSWER } else { std::time::Duration::ZERO };
    let answer = identity_answer(id_number);
    let first = {
        let mut checks = sandbox.checks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        checks.insert(reference.to_owned(), (answer, ready)).is_none()
    };
    if !slow {
        return (StatusCode::OK, Json(json!({ "reference": reference, "status": answer })));
    }
    if let (true, Some(url)) = (first, body["callback_url"].as_str()) {
        tokio::spawn(call_back(url.to_owned(), reference.to_owned(), answer));
    }
    (StatusCode::ACCEPTED, Json(json!({ "reference": reference, "status": "pending" })))
}

async fn verification(
    State(sandbox): State<Sandbox>,
    Path(reference): Path<String>,
) -> (StatusCode, Json<Value>) {
    let checks = sandbox.checks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match checks.get(&reference) {
        Some((answer, ready)) if *ready <= std::time::Instant::now() => {
            (StatusCode::OK, Json(json!({ "reference": reference, "status": answer })))
        }
        Some(_) => (StatusCode::OK, Json(json!({ "reference": reference, "status": "pending" }))),
        None => (StatusCode::NOT_FOUND, Json(json!({ "error": "unknown reference" }))),
    }
}

/// The slow answer, signed and sent to the gateway's callback once it is ready.
async fn call_back(url: String, reference: String, answer: &'static str) {
    tokio::time::sleep(SLOW_ANSWER).await;
    let body = json!({ "reference": reference, "status": answer }).to_string();
    let secret = secrecy::SecretString::from(crate::money::identity::settings::DEMO_WEBHOOK_SECRET);
    let id = format!("msg_{reference}");
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let Some(signature) = crate::signature::signature(&[&secret], &id, now, body.as_bytes()) else { return };
    let sent = reqwest::Client::new()
        .post(&url)
        .timeout(std::time::Duration::from_secs(5))
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    if let Err(e) = sent {
        // The gateway polls too: a lost callback only costs time.
        tracing::debug!(error = %e, "the sandbox identity provider could not call back");
    }
}
