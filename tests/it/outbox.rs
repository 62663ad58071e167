//! The SMS outbox against the real Postgres and local HTTP servers standing in for the
//! providers: outages, throttling, permanent refusals, several workers at once, each
//! provider's wire format, and receipts for a transfer made over USSD.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::sms::{Received, at_provider, msisdn, quick_policy, serve, transfers};
use crate::common::{Store, main_menu, spawn};
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use sqlx::PgPool;
use ussd_gateway::channel::sms::{Account, Message, Outbound, Provider};
use ussd_gateway::money::DEMO_PIN;
use ussd_gateway::segments::segment;
use ussd_gateway::sms::outbox::{Policy, Worker};

async fn statuses(pool: &PgPool) -> HashMap<String, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM outbox GROUP BY status").fetch_all(pool).await.unwrap();
    rows.into_iter().collect()
}

/// Waits (bounded) until every outbox row has left `queued`.
async fn until_drained(pool: &PgPool, within: Duration) {
    let deadline = Instant::now() + within;
    while statuses(pool).await.contains_key("queued") {
        assert!(Instant::now() < deadline, "the outbox did not drain: {:?}", statuses(pool).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each transfer's two receipts arrived exactly once, each to its own party.
fn assert_one_receipt_per_party(accepted: &[Received], made: &[(String, String, String)]) {
    assert_eq!(accepted.len(), made.len() * 2, "one message per party per transfer");
    let pairs: HashSet<(String, String)> =
        accepted.iter().map(|r| (r.to.clone(), r.text.split(' ').next().unwrap().to_owned())).collect();
    assert_eq!(pairs.len(), accepted.len(), "no party got a receipt twice");
    for (reference, payer, payee) in made {
        let to_payer =
            accepted.iter().find(|r| &r.to == payer && r.text.starts_with(reference.as_str())).unwrap();
        assert!(to_payer.text.contains("KES 100.00 sent to"), "{}", to_payer.text);
        let to_payee =
            accepted.iter().find(|r| &r.to == payee && r.text.starts_with(reference.as_str())).unwrap();
        assert!(to_payee.text.contains("You have received KES 100.00 from"), "{}", to_payee.text);
    }
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn receipts_outlast_a_provider_outage_and_arrive_once_per_party(pool: PgPool) {
    let made = transfers(&pool, 20).await;
    let (fake, outbound) = at_provider().await;
    fake.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(Worker::new(pool.clone(), outbound, quick_policy()).run(stop.clone()));

    // The provider is down: the worker keeps trying and nothing is marked sent.
    let deadline = Instant::now() + Duration::from_secs(20);
    let failures_recorded = || async {
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM outbox WHERE last_error IS NOT NULL)")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    while fake.calls.lock().unwrap().len() < 10 || !failures_recorded().await {
        assert!(Instant::now() < deadline, "the worker did not call the provider");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(statuses(&pool).await, HashMap::from([("queued".to_owned(), 40)]));
    let errors: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT last_error FROM outbox WHERE last_error IS NOT NULL")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(errors, ["HTTP 503: maintenance"]);

    fake.down.store(false, std::sync::atomic::Ordering::SeqCst);
    until_drained(&pool, Duration::from_secs(30)).await;
    stop.cancel();
    worker.await.unwrap();

    assert_eq!(statuses(&pool).await, HashMap::from([("sent".to_owned(), 40)]));
    let accepted = fake.accepted.lock().unwrap().clone();
    assert_one_receipt_per_party(&accepted, &made);
    // Each row remembers the provider's id for its delivery reports.
    let ids: HashSet<String> = sqlx::query_scalar(
        "SELECT provider_message_id FROM outbox WHERE provider = 'africastalking' AND sent_at IS NOT NULL AND segments = 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(ids, accepted.iter().map(|r| r.id.clone()).collect());
    let retried: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE attempts > 1").fetch_one(&pool).await.unwrap();
    assert!(retried > 0, "some receipts needed more than one try");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn several_workers_share_the_outbox_without_sending_twice(pool: PgPool) {
    let made = transfers(&pool, 30).await;
    let (fake, outbound) = at_provider().await;
    let stop = tokio_util::sync::CancellationToken::new();
    let policy = Policy { batch: 4, ..quick_policy() };
    let workers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(Worker::new(pool.clone(), outbound.clone(), policy.clone()).run(stop.clone())))
        .collect();
    until_drained(&pool, Duration::from_secs(30)).await;
    stop.cancel();
    for w in workers {
        w.await.unwrap();
    }
    assert_one_receipt_per_party(&fake.accepted.lock().unwrap(), &made);
    assert_eq!(fake.calls.lock().unwrap().len(), 60, "no message was sent twice");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn refused_numbers_are_dead_lettered_with_the_reason(pool: PgPool) {
    transfers(&pool, 10).await;
    let (fake, outbound) = at_provider().await;
    // One number the provider calls invalid (permanent), one it always fails on (5xx).
    let (invalid, failing) = (msisdn(1).as_e164().to_owned(), msisdn(2).as_e164().to_owned());
    fake.refuse.lock().unwrap().extend([(invalid.clone(), 403), (failing.clone(), 500)]);
    let policy = Policy { max_attempts: 3, breaker_threshold: 1_000, ..quick_policy() };
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(Worker::new(pool.clone(), outbound, policy).run(stop.clone()));
    until_drained(&pool, Duration::from_secs(30)).await;
    stop.cancel();
    worker.await.unwrap();

    let dead: Vec<(String, i32, String)> =
        sqlx::query_as("SELECT msisdn, attempts, last_error FROM outbox WHERE status = 'dead' ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    // Each demo subscriber pays once and is paid once in `transfers(10)`.
    assert_eq!(dead.len(), 4, "{dead:?}");
    for (to, attempts, reason) in &dead {
        if to == &invalid {
            assert_eq!((*attempts, reason.as_str()), (1, "InvalidPhoneNumber (403)"));
        } else {
            assert_eq!(to, &failing);
            assert_eq!((*attempts, reason.as_str()), (3, "3 tries; the last: HTTP 500: boom"));
        }
    }
    let calls = fake.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|(to, _)| to == &invalid).count(),
        2,
        "a permanent refusal is not retried"
    );
    assert_eq!(
        calls.iter().filter(|(to, _)| to == &failing).count(),
        6,
        "three tries for each of two receipts"
    );
    assert_eq!(statuses(&pool).await.get("sent"), Some(&16));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_token_bucket_paces_segments(pool: PgPool) {
    transfers(&pool, 10).await;
    let (fake, outbound) = at_provider().await;
    let rate = 5;
    let policy = Policy { segments_per_second: NonZeroU32::new(rate).unwrap(), ..quick_policy() };
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(Worker::new(pool.clone(), outbound, policy).run(stop.clone()));
    until_drained(&pool, Duration::from_secs(60)).await;
    stop.cancel();
    worker.await.unwrap();

    let accepted = fake.accepted.lock().unwrap().clone();
    let segments: u32 = accepted.iter().map(|r| segment(&r.text).count() as u32).sum();
    assert!(segments >= 20, "{segments}");
    // A full bucket (`rate` segments) may go at once; every further segment waits 1/rate s.
    let first = accepted.iter().map(|r| r.at).min().unwrap();
    let last = accepted.iter().map(|r| r.at).max().unwrap();
    let floor = Duration::from_secs_f64(f64::from(segments - rate - 1) / f64::from(rate));
    assert!(
        last - first >= floor,
        "{segments} segments in {:?}, under the {floor:?} the bucket allows",
        last - first
    );
}

/// What a provider stand-in saw of one request.
#[derive(Clone, Debug, Default)]
struct Seen {
    path: String,
    authorization: String,
    content_type: String,
    body: String,
}

#[tokio::test]
async fn each_provider_gets_its_own_wire_format() {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    let router = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let record = record.clone();
        async move {
            let header = |name| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            record.lock().unwrap().push(Seen {
                path: uri.path().to_owned(),
                authorization: header("authorization"),
                content_type: header("content-type"),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let answer = match uri.path() {
                p if p.ends_with("/Messages.json") => r#"{"sid":"SMabc","status":"queued"}"#,
                "/sms/3/messages" => r#"{"messages":[{"messageId":"ib-1","status":{"groupName":"PENDING","description":"ok"}}]}"#,
                "/sms/json" => r#"{"message-count":"1","messages":[{"status":"0","message-id":"vo-1"}]}"#,
                "/v1/messages/send" => r#"{"messageId":"hu-1","status":0}"#,
                _ => return (StatusCode::NOT_FOUND, "no such path").into_response(),
            };
            (StatusCode::OK, answer).into_response()
        }
    });
    let base_url = serve(router).await;
    let text = "Reçu: KES 5.00";
    let segments = segment(text);
    let message = Message { to: "+254711000111", text, segments: &segments, secret: false };
    let basic = |user: &str, password: &str| {
        use base64::Engine;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
    };
    let cases = [
        (
            Provider::Twilio,
            "AC123",
            "SMabc",
            "/2010-04-01/Accounts/AC123/Messages.json",
            basic("AC123", "s3cret"),
        ),
        (Provider::Infobip, "", "ib-1", "/sms/3/messages", "App s3cret".to_owned()),
        (Provider::Vonage, "key", "vo-1", "/sms/json", String::new()),
        (Provider::Hubtel, "client", "hu-1", "/v1/messages/send", basic("client", "s3cret")),
    ];
    for (provider, account, id, path, authorization) in cases {
        let account = Account {
            provider,
            base_url: base_url.clone(),
            sender: Some("WALLET".into()),
            account: account.into(),
            secret: "s3cret".into(),
            status_url: Some("https://gw.example.com/sms/p/status".into()),
        };
        let accepted = Outbound::new(account, Duration::from_secs(5)).send(&message).await;
        assert_eq!(accepted.unwrap().message_id.as_deref(), Some(id), "{provider}");
        let request = seen.lock().unwrap().pop().unwrap();
        assert_eq!(
            (request.path.as_str(), request.authorization.as_str()),
            (path, authorization.as_str()),
            "{provider}"
        );
        match provider {
            Provider::Twilio => {
                let form: HashMap<String, String> = serde_urlencoded::from_str(&request.body).unwrap();
                assert_eq!(form["To"], "+254711000111");
                assert_eq!(form["From"], "WALLET");
                assert_eq!(form["Body"], text);
                assert_eq!(form["StatusCallback"], "https://gw.example.com/sms/p/status");
            }
            Provider::Infobip => {
                let json: serde_json::Value = serde_json::from_str(&request.body).unwrap();
                assert_eq!(request.content_type, "application/json");
                assert_eq!(json["messages"][0]["destinations"][0]["to"], "254711000111");
                assert_eq!(json["messages"][0]["content"]["text"], text);
                assert_eq!(json["messages"][0]["sender"], "WALLET");
                assert_eq!(
                    json["messages"][0]["webhooks"]["delivery"]["url"],
                    "https://gw.example.com/sms/p/status"
                );
            }
            Provider::Vonage => {
                let form: HashMap<String, String> = serde_urlencoded::from_str(&request.body).unwrap();
                assert_eq!((form["api_key"].as_str(), form["api_secret"].as_str()), ("key", "s3cret"));
                assert_eq!((form["to"].as_str(), form["text"].as_str()), ("254711000111", text));
                assert_eq!(form["type"], "unicode", "ç is outside GSM-7");
                assert_eq!(form["callback"], "https://gw.example.com/sms/p/status");
            }
            Provider::Hubtel => {
                let json: serde_json::Value = serde_json::from_str(&request.body).unwrap();
                assert_eq!(
                    json,
                    serde_json::json!({ "From": "WALLET", "To": "254711000111", "Content": text })
                );
            }
            _ => unreachable!(),
        }
    }
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_transfer_over_ussd_sends_both_parties_a_receipt_in_their_language(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    // Brian reads Swahili.
    sqlx::query("UPDATE customers SET language = 'sw' WHERE msisdn = '+254700000002'")
        .execute(&pool)
        .await
        .unwrap();
    let session = common::unique_session();
    let amina = "+254700000001";
    assert_eq!(app.at_hop(&session, amina, "").await, main_menu("Amina"));
    for text in ["1", "1*0700000002", "1*0700000002*500", "1*0700000002*500*1"] {
        assert!(app.at_hop(&session, amina, text).await.starts_with("CON"));
    }
    let done = app.at_hop(&session, amina, &format!("1*0700000002*500*1*{DEMO_PIN}")).await;
    assert!(done.starts_with("END Sent KES 500.00"), "{done}");

    // The demo's sink stands in for the provider; `/demo/sms` shows what went out.
    let outbound = app.state.sms.clone().expect("--demo sends SMS to the sink");
    assert!(app.get("/demo/sms").await.body.contains(r#""messages":[]"#));
    let worker = Worker::new(pool.clone(), outbound, quick_policy());
    assert_eq!(worker.tick().await.unwrap(), 2);
    assert_eq!(worker.tick().await.unwrap(), 0, "each receipt is sent once");

    let listed: serde_json::Value = serde_json::from_str(&app.get("/demo/sms").await.body).unwrap();
    let messages = listed["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    let text_to =
        |to: &str| messages.iter().find(|m| m["to"] == to).unwrap()["text"].as_str().unwrap().to_owned();
    let (to_amina, to_brian) = (text_to(amina), text_to("+254700000002"));
    assert!(to_amina.contains("Confirmed. KES 500.00 sent to Brian Kamau +254700000002"), "{to_amina}");
    assert!(to_amina.contains("Fee KES 7.00. New balance"), "{to_amina}");
    assert!(to_brian.contains("Imethibitishwa. Umepokea KES 500.00 kutoka kwa Amina"), "{to_brian}");
    let only_brian: serde_json::Value =
        serde_json::from_str(&app.get("/demo/sms?to=%2B254700000002").await.body).unwrap();
    assert_eq!(only_brian["messages"].as_array().unwrap().len(), 1);
}

#[test]
fn sms_settings_are_checked_with_what_to_do() {
    use ussd_gateway::config::{Settings, SmsSettings};
    let check = |sms: SmsSettings| {
        let settings = Settings { sms: Some(sms), ..common::settings() };
        settings.validate(None, true).map(|c| c.sms.unwrap()).map_err(|e| e.to_string())
    };
    let err = check(SmsSettings { provider: "nexmo".into(), ..SmsSettings::default() }).unwrap_err();
    assert!(err.contains("[sms]: `provider` `nexmo` is not one of africastalking, twilio"), "{err}");
    let err = check(SmsSettings { provider: "twilio".into(), ..SmsSettings::default() }).unwrap_err();
    assert!(err.contains("`account` is required for twilio: the Account SID"), "{err}");
    assert!(err.contains("`secret` is required for twilio: its auth token"), "{err}");
    let err =
        check(SmsSettings { provider: "infobip".into(), secret: Some("k".into()), ..SmsSettings::default() })
            .unwrap_err();
    assert!(err.contains("`base_url` is required for infobip"), "{err}");
    let err = check(SmsSettings {
        provider: "hubtel".into(),
        account: Some("id".into()),
        secret: Some("s".into()),
        segments_per_second: Some(0),
        max_attempts: Some(0),
        timeout_ms: Some(5),
        ..SmsSettings::default()
    })
    .unwrap_err();
    for p in [
        "`segments_per_second` must be between",
        "`max_attempts` must be between",
        "`timeout_ms` must be between",
    ] {
        assert!(err.contains(p), "{p}: {err}");
    }
    let ok = check(SmsSettings {
        provider: "infobip".into(),
        base_url: Some("https://xyz.api.infobip.com/".into()),
        secret: Some("k".into()),
        ..SmsSettings::default()
    })
    .unwrap();
    assert_eq!(ok.account.base_url, "https://xyz.api.infobip.com");
    assert!(!format!("{ok:?}").contains("\"k\""), "the secret stays out of Debug");
    // Without [sms], --demo keeps SMS in the sink.
    let demo = common::settings().validate(None, true).unwrap();
    assert_eq!(demo.sms.unwrap().account.provider, Provider::Sink);
}

/// A subscriber who reads French gets receipts in the words of the menu folder's
/// `texts/fr.yaml`, made when they are sent: a reload's words reach those still waiting.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn receipts_are_worded_by_the_texts_served_when_they_are_sent(pool: PgPool) {
    use ussd_gateway::menu::Bundle;
    use ussd_gateway::money::{PinHasher, seed_demo};
    seed_demo(&pool, &PinHasher::new(b"pepper"), "KES", 10).await.unwrap();
    sqlx::query("UPDATE customers SET language = 'fr' WHERE msisdn = '+254700000001'")
        .execute(&pool)
        .await
        .unwrap();
    let made = transfers(&pool, 1).await;
    let (reference, payer, payee) = made[0].clone();
    assert_eq!(payer, "+254700000001");

    // The menus as served, then reloaded with French reworded, before the worker sends.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("menus");
    let served = Arc::new(arc_swap::ArcSwap::from_pointee(Bundle::load_dir(&shipped).unwrap()));
    let dir = std::env::temp_dir().join(format!("texts-reload-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(dir.join("texts")).unwrap();
    std::fs::copy(shipped.join("wallet.yaml"), dir.join("wallet.yaml")).unwrap();
    let french = std::fs::read_to_string(shipped.join("texts/fr.yaml")).unwrap();
    assert!(french.contains("{ref} Confirmé. {amount} envoyés à {party}"));
    let reworded = french
        .replace("{ref} Confirmé. {amount} envoyés à {party}", "{ref} Merci! {amount} envoyés à {party}");
    std::fs::write(dir.join("texts/fr.yaml"), reworded).unwrap();
    served.store(Arc::new(Bundle::load_dir(&dir).unwrap()));
    std::fs::remove_dir_all(&dir).unwrap();

    let (fake, outbound) = at_provider().await;
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = Worker::worded(pool.clone(), outbound, quick_policy(), Some(served));
    let running = tokio::spawn(worker.run(stop.clone()));
    until_drained(&pool, Duration::from_secs(15)).await;
    stop.cancel();
    running.await.unwrap();
    let accepted = fake.accepted.lock().unwrap().clone();
    let to = |who: &str| accepted.iter().find(|r| r.to == who).map(|r| r.text.clone()).unwrap();
    assert!(to(&payer).starts_with(&format!("{reference} Merci! KES 100.00 envoyés à ")), "{}", to(&payer));
    assert!(to(&payer).contains("Frais KES") && to(&payer).contains("Nouveau solde"), "{}", to(&payer));
    assert!(
        to(&payee).starts_with(&format!("{reference} Confirmed. You have received KES 100.00")),
        "{}",
        to(&payee)
    );
}
