//! Webhooks against local receivers: a good one (each delivery signed, once per
//! delivery id), a failing one (backoff, breaker, dead letter, replay), a slow one, a
//! flapping one; secret rotation; an endpoint failing for a day disabled with an audit
//! row; and the Python receiver of `examples/webhooks/verify.py` verifying them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::PgPool;
use ussd_gateway::admin;
use ussd_gateway::domain::Amount;
use ussd_gateway::events::Relay;
use ussd_gateway::events::webhooks::deliver::{Deliverer, Policy};

use crate::common::sms::{msisdn, serve};
use crate::common::{Store, TestApp, spawn, until};

/// A delivery as the receiver saw it.
#[derive(Clone, Debug)]
struct Seen {
    id: String,
    timestamp: String,
    signature: String,
    body: Bytes,
}

/// A receiver answering each request with the next of `answers` (the last repeats),
/// after `delay`.
#[derive(Clone)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<Mutex<Vec<u16>>>,
    delay: Duration,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    r.seen.lock().unwrap().push(Seen {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
    });
    tokio::time::sleep(r.delay).await;
    let mut answers = r.answers.lock().unwrap();
    let answer = if answers.len() > 1 { answers.remove(0) } else { answers[0] };
    StatusCode::from_u16(answer).unwrap()
}

impl Receiver {
    async fn start(answers: &[u16], delay: Duration) -> (Receiver, String) {
        let r = Receiver { seen: Arc::default(), answers: Arc::new(Mutex::new(answers.to_vec())), delay };
        let url =
            serve(Router::new().route("/hook", axum::routing::post(receive)).with_state(r.clone())).await;
        (r, format!("{url}/hook"))
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn answer(&self, status: u16) {
        *self.answers.lock().unwrap() = vec![status];
    }
}

/// Whether `signature` (the header) holds a `v1` signature of the delivery by `secret`.
fn signed_by(seen: &Seen, secret: &str) -> bool {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", seen.id, seen.timestamp).as_bytes());
    mac.update(&seen.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    seen.signature.split(' ').any(|s| s == expected)
}

struct Harness {
    app: TestApp,
    token: String,
    relay: Relay,
}

impl Harness {
    async fn new(pool: PgPool) -> Harness {
        let app = spawn(pool.clone(), Store::Memory).await;
        let token = admin::create(&pool, "partners-desk", &["webhooks".to_owned()]).await.unwrap();
        Harness { app, token, relay: Relay::new(pool, None, 500) }
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.app.admin(method, path, Some(&self.token), None, Some(body.to_string())).await
    }

    async fn subscribe(&self, url: &str, types: &[&str]) -> (String, String) {
        let (status, body) =
            self.call("POST", "/admin/webhooks", json!({ "url": url, "types": types })).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (body["id"].as_str().unwrap().to_owned(), body["secret"].as_str().unwrap().to_owned())
    }

    fn deliverer(&self, policy: Policy) -> Deliverer {
        Deliverer::new(self.app.pool.clone(), self.app.state.money().vault().clone(), policy)
    }

    /// Transfers from demo wallet 1 to 2; each has a payer's and a payee's event.
    async fn transfers(&self, n: u32) {
        for i in 0..n {
            let key = format!("wh:{:x}:{i}", rand::random::<u32>());
            ussd_gateway::money::transfer_p2p(
                &self.app.pool,
                &key,
                &msisdn(1),
                &msisdn(2),
                Amount::from_minor(100).unwrap(),
            )
            .await
            .unwrap();
        }
        while self.relay.pass().await.unwrap() > 0 {}
    }

    async fn deliveries(&self, id: &str) -> Vec<Value> {
        let (status, body) =
            self.call("GET", &format!("/admin/webhooks/{id}/deliveries?limit=500"), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["deliveries"].as_array().unwrap().clone()
    }
}

/// Retries within milliseconds, so that a test sees a day's schedule pass quickly.
fn quick() -> Policy {
    Policy {
        retry_base: Duration::from_millis(5),
        retry_cap: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
        private_networks: true,
        ..Policy::default()
    }
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_subscribed_endpoint_gets_each_event_it_wants_once_signed(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (good, url) = Receiver::start(&[204], Duration::ZERO).await;
    let (id, secret) = h.subscribe(&url, &["transfer.*"]).await;
    h.transfers(3).await;
    let deliverer = h.deliverer(quick());
    assert_eq!(deliverer.pass().await.unwrap(), 6, "a payer's and a payee's event per transfer");
    assert_eq!(deliverer.pass().await.unwrap(), 0, "nothing is sent twice");
    let seen = good.seen();
    assert_eq!(seen.len(), 6);
    let ids: HashSet<&str> = seen.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), 6, "one delivery per event id");
    for s in &seen {
        assert!(signed_by(s, &secret), "{s:?}");
        let event: Value = serde_json::from_slice(&s.body).unwrap();
        assert_eq!(event["id"], s.id.as_str());
        assert_eq!(event["type"], "transfer.posted", "the demo's opening deposits are not wanted");
    }
    let deliveries = h.deliveries(&id).await;
    assert!(deliveries.iter().all(|d| d["status"] == "delivered" && d["attempts"] == 1), "{deliveries:?}");
    // A forged signature is not the secret's.
    let mut forged = seen[0].clone();
    forged.body = Bytes::from_static(b"{\"type\": \"transfer.posted\", \"amount\": 1000000}");
    assert!(!signed_by(&forged, &secret));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_failing_endpoint_backs_off_opens_its_breaker_dies_and_is_replayed(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (failing, url) = Receiver::start(&[500], Duration::ZERO).await;
    let (id, _) = h.subscribe(&url, &["transfer.posted"]).await;
    h.transfers(3).await;
    let policy = Policy {
        breaker_threshold: 3,
        breaker_cooldown: Duration::from_millis(300),
        retry_for: Duration::from_secs(2),
        ..quick()
    };
    let deliverer = h.deliverer(policy);
    assert_eq!(deliverer.pass().await.unwrap(), 6);
    // Three failures open the breaker: the other three wait for it, not counted as tries.
    assert_eq!(failing.seen().len(), 3);
    let deliveries = h.deliveries(&id).await;
    let attempts: Vec<i64> = deliveries.iter().map(|d| d["attempts"].as_i64().unwrap()).collect();
    assert_eq!(attempts.iter().filter(|&&a| a == 1).count(), 3, "{deliveries:?}");
    assert_eq!(attempts.iter().filter(|&&a| a == 0).count(), 3, "{deliveries:?}");
    assert!(
        deliveries
            .iter()
            .filter(|d| d["attempts"] == 1)
            .all(|d| d["last_status"] == 500 && d["status"] == "pending")
    );
    assert_eq!(deliverer.pass().await.unwrap(), 0, "the breaker is open");
    let (_, listed) = h.call("GET", "/admin/webhooks", json!({})).await;
    assert!(listed["webhooks"][0]["breaker_open_until"].is_string(), "{listed}");

    // Retried until the retry window closes, then dead.
    until("every delivery dies", || async {
        deliverer.pass().await.unwrap();
        h.deliveries(&id).await.iter().all(|d| d["status"] == "dead")
    })
    .await;
    let tries = failing.seen().len();
    assert!(tries > 6, "retried: {tries} tries");
    let dead = h.deliveries(&id).await[0]["id"].as_i64().unwrap();

    // A delivery that is not dead is not replayed; a dead one is, and goes through.
    failing.answer(200);
    let (status, body) =
        h.call("POST", &format!("/admin/webhooks/deliveries/{dead}/replay"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = h.call("POST", &format!("/admin/webhooks/deliveries/{dead}/replay"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    until("the replayed delivery goes through", || async {
        deliverer.pass().await.unwrap();
        h.deliveries(&id).await.iter().any(|d| d["id"] == dead && d["status"] == "delivered")
    })
    .await;
    let delivered = h.deliveries(&id).await.iter().filter(|d| d["status"] == "delivered").count();
    assert_eq!(delivered, 1, "only the replayed one");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_slow_endpoint_holds_up_only_its_own_deliveries(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (slow, slow_url) = Receiver::start(&[200], Duration::from_secs(3)).await;
    let (good, good_url) = Receiver::start(&[200], Duration::ZERO).await;
    let (slow_id, _) = h.subscribe(&slow_url, &["transfer.*"]).await;
    h.subscribe(&good_url, &["transfer.*"]).await;
    h.transfers(2).await;
    let deliverer =
        h.deliverer(Policy { timeout: Duration::from_millis(300), breaker_threshold: 100, ..quick() });
    deliverer.pass().await.unwrap();
    assert_eq!(good.seen().len(), 4, "the good endpoint got every event of the pass");
    assert_eq!(slow.seen().len(), 4, "each was tried once");
    let slow_deliveries = h.deliveries(&slow_id).await;
    assert!(
        slow_deliveries
            .iter()
            .all(|d| d["status"] == "pending"
                && d["last_error"].as_str().unwrap().starts_with("no answer within")),
        "{slow_deliveries:?}"
    );
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_flapping_endpoint_gets_everything_exactly_once_in_the_end(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (flapping, url) =
        Receiver::start(&[500, 200, 503, 200, 500, 500, 200, 200, 500, 200], Duration::ZERO).await;
    let (id, _) = h.subscribe(&url, &["transfer.posted"]).await;
    h.transfers(4).await;
    let deliverer = h.deliverer(Policy { breaker_cooldown: Duration::from_millis(50), ..quick() });
    until("every delivery goes through", || async {
        deliverer.pass().await.unwrap();
        h.deliveries(&id).await.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    // What the receiver accepted: each event once.
    let accepted: Vec<String> = {
        let seen = flapping.seen();
        let answers = [500, 200, 503, 200, 500, 500, 200, 200, 500, 200];
        seen.iter()
            .enumerate()
            .filter(|(i, _)| answers.get(*i).copied().unwrap_or(200) == 200)
            .map(|(_, s)| s.id.clone())
            .collect()
    };
    let unique: HashSet<&String> = accepted.iter().collect();
    assert_eq!((accepted.len(), unique.len()), (8, 8), "{accepted:?}");
    let failures: i32 =
        sqlx::query_scalar("SELECT failures_in_row FROM webhooks").fetch_one(&pool).await.unwrap();
    assert_eq!(failures, 0, "a success closes the run of failures");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_rotation_signs_with_both_secrets_until_the_grace_ends(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (good, url) = Receiver::start(&[204], Duration::ZERO).await;
    let (id, old) = h.subscribe(&url, &["transfer.*"]).await;
    let (status, rotated) = h.call("POST", &format!("/admin/webhooks/{id}/rotate"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    h.transfers(1).await;
    let deliverer = h.deliverer(quick());
    deliverer.pass().await.unwrap();
    let seen = good.seen();
    assert!(
        seen.iter().all(|s| signed_by(s, &old) && signed_by(s, &new) && s.signature.split(' ').count() == 2)
    );

    // With no grace, only the new secret signs.
    let (_, rotated) =
        h.call("POST", &format!("/admin/webhooks/{id}/rotate"), json!({ "grace_secs": 0 })).await;
    let newest = rotated["secret"].as_str().unwrap().to_owned();
    h.transfers(1).await;
    deliverer.pass().await.unwrap();
    let last = good.seen().last().unwrap().clone();
    assert!(signed_by(&last, &newest) && !signed_by(&last, &new) && last.signature.split(' ').count() == 1);
    // The secrets are sealed at rest; the list never shows them.
    let (_, listed) = h.call("GET", "/admin/webhooks", json!({})).await;
    assert!(!listed.to_string().contains(&newest[6..]), "{listed}");
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT secret_sealed FROM webhooks").fetch_one(&pool).await.unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains(&newest[6..]));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn an_endpoint_failing_for_a_day_is_disabled_with_an_audit_row(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (failing, url) = Receiver::start(&[502], Duration::ZERO).await;
    let (id, _) = h.subscribe(&url, &["transfer.*"]).await;
    h.transfers(1).await;
    // Its failures began a day and a minute ago.
    sqlx::query("UPDATE webhooks SET failing_since = now() - interval '1 day 1 minute', failures_in_row = 1")
        .execute(&pool)
        .await
        .unwrap();
    let deliverer = h.deliverer(quick());
    deliverer.pass().await.unwrap();
    assert_eq!(failing.seen().len(), 1, "disabled after its first failure today");
    let (_, listed) = h.call("GET", "/admin/webhooks", json!({})).await;
    let webhook = &listed["webhooks"][0];
    assert_eq!(webhook["status"], "disabled", "{webhook}");
    assert!(webhook["disabled_reason"].as_str().unwrap().contains("502"), "{webhook}");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM admin_audit WHERE target = $1 AND method = 'DISABLE' AND token_name = '(webhook worker)'",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    // Its deliveries wait, those of events made while it is disabled too, until an
    // operator enables it.
    assert_eq!(deliverer.pass().await.unwrap(), 0);
    h.transfers(1).await;
    assert_eq!(deliverer.pass().await.unwrap(), 0);
    assert_eq!(h.deliveries(&id).await.len(), 4, "the events made while it was disabled wait for it");
    failing.answer(200);
    let (status, body) =
        h.call("PATCH", &format!("/admin/webhooks/{id}"), json!({ "status": "active" })).await;
    assert_eq!(
        (status, &body["status"], &body["failures_in_row"]),
        (StatusCode::OK, &json!("active"), &json!(0))
    );
    until("its waiting deliveries go through", || async {
        deliverer.pass().await.unwrap();
        h.deliveries(&id).await.iter().all(|d| d["status"] == "delivered")
    })
    .await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn subscriptions_are_checked(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let cases = [
        (json!({ "url": "https://169.254.169.254/x", "types": ["*"] }), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({ "url": "https://partner.example/x", "types": ["loan.*"] }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({ "url": "https://partner.example/x", "types": [] }), StatusCode::BAD_REQUEST),
        (
            json!({ "url": "https://partner.example/x", "types": ["Transfer Posted"] }),
            StatusCode::BAD_REQUEST,
        ),
        (json!({ "url": "https://partner.example/x", "types": ["*.rejected"] }), StatusCode::CREATED),
    ];
    for (body, expected) in cases {
        let (status, answer) = h.call("POST", "/admin/webhooks", body.clone()).await;
        assert_eq!(status, expected, "{body}: {answer}");
    }
    // Outside a demo, partners' endpoints are https.
    let vault = h.app.state.money().vault();
    let new = ussd_gateway::events::webhooks::NewWebhook {
        url: "http://partner.example/x".into(),
        types: vec!["*".into()],
    };
    let refused = ussd_gateway::events::webhooks::create(&pool, vault, &new, false).await.unwrap_err();
    assert!(refused.to_string().contains("must be https://"), "{refused}");
    let (status, _) = h.call("GET", "/admin/webhooks/wh_0000000000000000/deliveries", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_python_receiver_of_the_readme_verifies_deliveries(pool: PgPool) {
    use std::io::{BufRead, BufReader};
    let h = Harness::new(pool.clone()).await;
    let (id, secret) = h.subscribe("http://127.0.0.1:9/not-yet", &["transfer.*"]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/webhooks/verify.py");
    let mut python = std::process::Command::new("python3")
        .args([script, "0"])
        .env("WEBHOOK_SECRET", &secret)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the example receiver");
    let mut lines = BufReader::new(python.stdout.take().unwrap()).lines();
    let port = lines.next().unwrap().unwrap().trim_start_matches("listening on ").to_owned();
    let url = format!("http://127.0.0.1:{port}/hook");
    let (status, _) = h.call("PATCH", &format!("/admin/webhooks/{id}"), json!({ "url": url })).await;
    assert_eq!(status, StatusCode::OK);
    h.transfers(2).await;
    h.deliverer(quick()).pass().await.unwrap();
    let deliveries = h.deliveries(&id).await;
    assert!(
        deliveries.iter().all(|d| d["status"] == "delivered" && d["last_status"] == 204),
        "{deliveries:?}"
    );
    // A request not signed with the secret is refused.
    let forged = reqwest::Client::new()
        .post(&url)
        .header("webhook-id", "TX1.AC1")
        .header("webhook-timestamp", (ussd_gateway::gateway::unix_ms() / 1000).to_string())
        .header("webhook-signature", "v1,AAAA")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    python.kill().unwrap();
    let _ = python.wait();
    let printed: Vec<Value> =
        lines.map_while(Result::ok).map(|l| serde_json::from_str(&l).unwrap()).collect();
    let mut expected: Vec<String> =
        deliveries.iter().map(|d| d["event"].as_str().unwrap().to_owned()).collect();
    let mut got: Vec<String> = printed.iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "the receiver verified each delivery");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_worker_killed_mid_send_loses_no_delivery(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (slow, url) = Receiver::start(&[204], Duration::from_millis(300)).await;
    let (id, _) = h.subscribe(&url, &["transfer.*"]).await;
    h.transfers(1).await;
    // A claim lasts as long as sending it can take: 2 × 400 ms here.
    let policy = Policy { timeout: Duration::from_millis(400), per_endpoint: 1, ..quick() };
    let dying = h.deliverer(policy.clone());
    let killed = tokio::spawn(async move { dying.pass().await });
    until("the dying worker's request arrives", || async { !slow.seen().is_empty() }).await;
    killed.abort();
    assert!(killed.await.unwrap_err().is_cancelled());
    assert!(h.deliveries(&id).await.iter().all(|d| d["status"] == "pending"), "nothing was recorded");

    // Its claim runs out, and the next worker sends what it held.
    let next = h.deliverer(policy);
    until("every delivery goes through", || async {
        next.pass().await.unwrap();
        h.deliveries(&id).await.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    let seen = slow.seen();
    let ids: HashSet<&str> = seen.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "both events delivered");
    assert!(
        seen.len() >= 3,
        "the one in flight at the kill went again, under the same webhook-id: {}",
        seen.len()
    );
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn outside_a_demo_a_name_resolving_inside_is_not_called(pool: PgPool) {
    let h = Harness::new(pool.clone()).await;
    let (inside, url) = Receiver::start(&[204], Duration::ZERO).await;
    let by_name = url.replace("127.0.0.1", "localhost");
    let (id, _) = h.subscribe(&by_name, &["transfer.*"]).await;
    h.transfers(1).await;
    h.deliverer(Policy { private_networks: false, ..quick() }).pass().await.unwrap();
    assert!(inside.seen().is_empty(), "nothing reached the gateway's own network");
    let deliveries = h.deliveries(&id).await;
    assert!(
        deliveries
            .iter()
            .all(|d| d["status"] == "pending" && d["last_error"].as_str().unwrap().contains("must not call")),
        "{deliveries:?}"
    );
}
