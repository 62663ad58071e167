//! Stand-ins for SMS providers (local HTTP servers) and outbox fixtures.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use sqlx::PgPool;
use ussd_gateway::channel::sms::{Account, Outbound, Provider};
use ussd_gateway::domain::{Amount, Currency, Msisdn, Region};
use ussd_gateway::money::{PinHasher, seed_demo, transfer_p2p};
use ussd_gateway::sms::outbox::Policy;

/// What the fake provider saw.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub to: String,
    pub text: String,
    pub id: String,
}

/// An Africa's Talking stand-in: down (503) while `down` is set, refusing numbers in
/// `refuse` with the given recipient status code (or an HTTP 500 for `500`).
#[derive(Clone, Default)]
pub struct FakeAt {
    pub down: Arc<std::sync::atomic::AtomicBool>,
    pub refuse: Arc<Mutex<HashMap<String, u16>>>,
    pub accepted: Arc<Mutex<Vec<Received>>>,
    /// Every request, accepted or not: (to, status code given).
    pub calls: Arc<Mutex<Vec<(String, u16)>>>,
}

async fn fake_at(State(fake): State<FakeAt>, headers: HeaderMap, body: Bytes) -> axum::response::Response {
    assert_eq!(headers.get("apiKey").and_then(|v| v.to_str().ok()), Some("at-key"));
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).expect("a form");
    assert_eq!(form.get("username").map(String::as_str), Some("sandbox"));
    let to = form["to"].clone();
    if fake.down.load(std::sync::atomic::Ordering::SeqCst) {
        fake.calls.lock().unwrap().push((to, 503));
        return (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response();
    }
    let refusal = fake.refuse.lock().unwrap().get(&to).copied();
    fake.calls.lock().unwrap().push((to.clone(), refusal.unwrap_or(101)));
    match refusal {
        Some(500) => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Some(code) => {
            let body = format!(
                r#"{{"SMSMessageData":{{"Message":"Sent to 0/1","Recipients":[{{"statusCode":{code},"number":"{to}","status":"InvalidPhoneNumber","cost":"0","messageId":"None"}}]}}}}"#
            );
            (StatusCode::CREATED, body).into_response()
        }
        None => {
            let mut accepted = fake.accepted.lock().unwrap();
            let id = format!("ATXid_{}", accepted.len() + 1);
            accepted.push(Received {
                at: Instant::now(),
                to: to.clone(),
                text: form["message"].clone(),
                id: id.clone(),
            });
            let body = format!(
                r#"{{"SMSMessageData":{{"Message":"Sent to 1/1 Total Cost: KES 0.8000","Recipients":[{{"statusCode":101,"number":"{to}","status":"Success","cost":"KES 0.8000","messageId":"{id}"}}]}}}}"#
            );
            (StatusCode::CREATED, body).into_response()
        }
    }
}

/// Serves `router` on a free loopback port; returns its base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

pub async fn at_provider() -> (FakeAt, Outbound) {
    let fake = FakeAt::default();
    let router =
        Router::new().route("/version1/messaging", axum::routing::post(fake_at)).with_state(fake.clone());
    let base_url = serve(router).await;
    let account = Account {
        provider: Provider::AfricasTalking,
        base_url,
        sender: Some("WALLET".into()),
        account: "sandbox".into(),
        secret: "at-key".into(),
        status_url: None,
    };
    (fake, Outbound::new(account, Duration::from_secs(5)))
}

/// A policy that retries within milliseconds, so that outages pass quickly.
pub fn quick_policy() -> Policy {
    Policy {
        retry_base: Duration::from_millis(20),
        retry_cap: Duration::from_millis(200),
        breaker_threshold: 3,
        breaker_cooldown: Duration::from_millis(100),
        idle_poll: Duration::from_millis(20),
        max_attempts: 1_000,
        ..Policy::new(NonZeroU32::new(10_000).unwrap(), Currency::new("KES", 2))
    }
}

pub fn msisdn(n: u32) -> Msisdn {
    Msisdn::parse(&format!("+2547{n:08}"), Region::parse("KE").unwrap()).unwrap()
}

/// `count` transfers between the ten demo subscribers, made by concurrent clients.
/// Returns (reference, payer, payee) of each.
pub async fn transfers(pool: &PgPool, count: u32) -> Vec<(String, String, String)> {
    seed_demo(pool, &PinHasher::new(b"pepper"), "KES", 10).await.unwrap();
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..count {
        let pool = pool.clone();
        clients.spawn(async move {
            let (from, to) = (msisdn(i % 10 + 1), msisdn((i + 3) % 10 + 1));
            let t = transfer_p2p(
                &pool,
                &format!("outbox-test-{i}"),
                &from,
                &to,
                Amount::from_minor(100_00).unwrap(),
            )
            .await
            .unwrap();
            assert_eq!(t.outcome, ussd_gateway::outcome::Outcome::Ok);
            (t.reference(), from.as_e164().to_owned(), to.as_e164().to_owned())
        });
    }
    clients.join_all().await
}

/// `X-Twilio-Signature` as Twilio computes it: the URL, then each form field's name
/// and value sorted by name, under HMAC-SHA1 with the auth token.
pub fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut sorted = params.to_vec();
    sorted.sort();
    let data: String =
        std::iter::once(url.to_owned()).chain(sorted.iter().map(|(k, v)| format!("{k}{v}"))).collect();
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}
