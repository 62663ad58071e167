//! Delivery reports through the real router and Postgres: every provider's format,
//! forward-only status, repeats, reports that overtake the send, signatures valid,
//! invalid and replayed, and the channel guard.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::common;
use crate::common::sms::{at_provider, quick_policy, transfers, twilio_signature};
use crate::common::{Store, TestApp, spawn_with};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use hmac::{Hmac, Mac};
use sqlx::PgPool;
use ussd_gateway::channel::GateSettings;
use ussd_gateway::config::{Settings, SmsChannelSettings};
use ussd_gateway::sms::outbox::Worker;

const TWILIO_TOKEN: &str = "twilio-auth-token-for-tests";
const VONAGE_SECRET: &str = "vonage-signature-secret";
const AT_TOKEN: &str = "at-callback-token-0123456789";

fn settings() -> Settings {
    let channel = |name: &str, provider: &str| SmsChannelSettings {
        name: name.into(),
        provider: provider.into(),
        ..SmsChannelSettings::default()
    };
    Settings {
        sms_channels: vec![
            SmsChannelSettings {
                gate: GateSettings { token: Some(AT_TOKEN.into()), ..GateSettings::default() },
                ..channel("at-ke", "africastalking")
            },
            SmsChannelSettings {
                signing_secret: Some(TWILIO_TOKEN.into()),
                public_url: Some("https://gw.example.com/".into()),
                ..channel("twilio", "twilio")
            },
            SmsChannelSettings { signing_secret: Some(VONAGE_SECRET.into()), ..channel("vonage", "vonage") },
            channel("infobip", "infobip"),
        ],
        ..common::settings()
    }
}

fn form(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// Marks every outbox row sent through `provider` with the id `<prefix><row id>`.
async fn sent_as(pool: &PgPool, provider: &str, prefix: &str) {
    sqlx::query(
        "UPDATE outbox SET status = 'sent', provider = $1, provider_message_id = $2 || id, sent_at = now()",
    )
    .bind(provider)
    .bind(prefix)
    .execute(pool)
    .await
    .unwrap();
}

async fn status_of(pool: &PgPool, message_id: &str) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, last_error FROM outbox WHERE provider_message_id = $1")
        .bind(message_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn at_report(app: &TestApp, id: &str, status: &str) -> StatusCode {
    let body = serde_urlencoded::to_string([
        ("id", id),
        ("status", status),
        ("phoneNumber", "+254700000001"),
        ("networkCode", "63902"),
        ("failureReason", if status == "Failed" { "UserInBlacklist" } else { "" }),
        ("retryCount", "0"),
    ])
    .unwrap();
    app.send(form(&format!("/sms/at-ke/{AT_TOKEN}/status"), &body)).await.status
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn africas_talking_reports_move_messages_forward_only(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, settings()).await;
    transfers(&pool, 2).await;
    sent_as(&pool, "africastalking", "ATXid_").await;

    assert_eq!(at_report(&app, "ATXid_1", "Success").await, StatusCode::OK);
    assert_eq!(status_of(&pool, "ATXid_1").await, ("delivered".into(), None));
    // A late "Sent" and a contradicting "Failed" do not undo "delivered".
    assert_eq!(at_report(&app, "ATXid_1", "Sent").await, StatusCode::OK);
    assert_eq!(at_report(&app, "ATXid_1", "Failed").await, StatusCode::OK);
    assert_eq!(status_of(&pool, "ATXid_1").await.0, "delivered");

    assert_eq!(at_report(&app, "ATXid_2", "Buffered").await, StatusCode::OK);
    assert_eq!(status_of(&pool, "ATXid_2").await.0, "sent");
    assert_eq!(at_report(&app, "ATXid_2", "Failed").await, StatusCode::OK);
    assert_eq!(status_of(&pool, "ATXid_2").await, ("failed".into(), Some("UserInBlacklist".into())));

    // The provider retries a report: stored once.
    for _ in 0..3 {
        assert_eq!(at_report(&app, "ATXid_3", "Success").await, StatusCode::OK);
    }
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sms_delivery_reports WHERE message_id = 'ATXid_3'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, 1);
    assert_eq!(status_of(&pool, "ATXid_3").await.0, "delivered");
    // Untouched messages stay sent.
    assert_eq!(status_of(&pool, "ATXid_4").await.0, "sent");

    // A report for a message this gateway never sent is kept, and changes nothing.
    assert_eq!(at_report(&app, "ATXid_unknown", "Success").await, StatusCode::OK);

    let bad = app.send(form(&format!("/sms/at-ke/{AT_TOKEN}/status"), "status=Success")).await;
    assert_eq!(
        (bad.status, bad.body.as_str()),
        (StatusCode::BAD_REQUEST, "bad africastalking callback: `id` is missing\n")
    );
    // A status this build does not know is acknowledged (or the provider retries it for
    // hours) and changes nothing.
    let odd = app.send(form(&format!("/sms/at-ke/{AT_TOKEN}/status"), "id=ATXid_4&status=Lost")).await;
    assert_eq!(odd.status, StatusCode::OK);
    // Without the channel's token the path does not exist.
    let stranger =
        app.send(form("/sms/at-ke/wrong-token-0123456789/status", "id=ATXid_4&status=Success")).await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
    let bare = app.send(form("/sms/at-ke/status", "id=ATXid_4&status=Success")).await;
    assert_eq!(bare.status, StatusCode::NOT_FOUND);
    assert_eq!(status_of(&pool, "ATXid_4").await.0, "sent");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_report_that_overtakes_the_send_is_applied_when_the_send_is_recorded(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, settings()).await;
    transfers(&pool, 1).await;
    // The fake provider numbers its messages ATXid_1, ATXid_2 in the order it takes them;
    // both reports arrive before the worker has recorded either send.
    assert_eq!(at_report(&app, "ATXid_1", "Success").await, StatusCode::OK);
    assert_eq!(at_report(&app, "ATXid_2", "Rejected").await, StatusCode::OK);
    let (_fake, outbound) = at_provider().await;
    let worker = Worker::new(pool.clone(), outbound, quick_policy());
    assert_eq!(worker.tick().await.unwrap(), 2);
    let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM outbox ORDER BY provider_message_id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(statuses, ["delivered", "rejected"]);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn twilio_callbacks_must_carry_a_valid_signature(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, settings()).await;
    transfers(&pool, 1).await;
    sent_as(&pool, "twilio", "SM").await;
    let params = [
        ("MessageSid", "SM1"),
        ("MessageStatus", "delivered"),
        ("AccountSid", "AC1"),
        ("To", "+254700000001"),
    ];
    let body = serde_urlencoded::to_string(params).unwrap();
    let signed = |signature: &str| {
        Request::post("/sms/twilio/status")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", signature)
            .body(Body::from(body.clone()))
            .unwrap()
    };
    let good = twilio_signature(TWILIO_TOKEN, "https://gw.example.com/sms/twilio/status", &params);

    let forged = app.send(signed("AAAAAAAAAAAAAAAAAAAAAAAAAAA=")).await;
    assert_eq!(
        (forged.status, forged.body.as_str()),
        (StatusCode::UNAUTHORIZED, "bad twilio callback: the signature does not match\n")
    );
    // Signed for another URL (a proxy rewriting the path, or a report for another endpoint).
    let elsewhere = twilio_signature(TWILIO_TOKEN, "https://gw.example.com/sms/other/status", &params);
    assert_eq!(app.send(signed(&elsewhere)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(status_of(&pool, "SM1").await.0, "sent", "a refused callback changes nothing");

    assert_eq!(app.send(signed(&good)).await.status, StatusCode::OK);
    assert_eq!(status_of(&pool, "SM1").await.0, "delivered");
    // The same signed request again (a replay, or Twilio retrying) has no further effect.
    assert_eq!(app.send(signed(&good)).await.status, StatusCode::OK);
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sms_delivery_reports").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 1);
}

fn vonage_query(message_id: &str, status: &str, timestamp: u64, secret: &str) -> String {
    let timestamp = timestamp.to_string();
    let mut params = vec![
        ("messageId", message_id),
        ("msisdn", "254700000001"),
        ("to", "WALLET"),
        ("status", status),
        ("err-code", "0"),
        ("message-timestamp", "2026-11-22 00:40:00"),
        ("timestamp", timestamp.as_str()),
    ];
    params.sort();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for (k, v) in &params {
        mac.update(format!("&{k}={}", v.replace(['&', '='], "_")).as_bytes());
    }
    let sig = ussd_gateway::bytes::to_hex(&mac.finalize().into_bytes()).to_uppercase();
    params.push(("sig", &sig));
    serde_urlencoded::to_string(&params).unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn vonage_receipts_are_checked_for_signature_and_age(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, settings()).await;
    transfers(&pool, 1).await;
    sent_as(&pool, "vonage", "0A00").await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let get =
        |query: String| Request::get(format!("/sms/vonage/status?{query}")).body(Body::empty()).unwrap();

    let stale = app.send(get(vonage_query("0A001", "delivered", now - 3_600, VONAGE_SECRET))).await;
    assert_eq!(
        (stale.status, stale.body.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            "bad vonage callback: the signed timestamp is more than five minutes away\n"
        )
    );
    let forged = app.send(get(vonage_query("0A001", "delivered", now, "not-the-secret"))).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let unsigned = app.send(get("messageId=0A001&status=delivered".into())).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    assert_eq!(status_of(&pool, "0A001").await.0, "sent");

    assert_eq!(
        app.send(get(vonage_query("0A001", "delivered", now, VONAGE_SECRET))).await.status,
        StatusCode::OK
    );
    assert_eq!(status_of(&pool, "0A001").await.0, "delivered");
    // Vonage may also post the receipt as a form.
    let posted =
        app.send(form("/sms/vonage/status", &vonage_query("0A002", "expired", now, VONAGE_SECRET))).await;
    assert_eq!(posted.status, StatusCode::OK);
    assert_eq!(status_of(&pool, "0A002").await.0, "expired");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn infobip_reports_arrive_in_batches(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, settings()).await;
    transfers(&pool, 1).await;
    sent_as(&pool, "infobip", "ib-").await;
    let body = serde_json::json!({ "results": [
        { "messageId": "ib-1", "to": "254700000001", "status": { "groupName": "DELIVERED", "description": "Delivered" },
          "error": { "groupName": "OK", "description": "No Error" } },
        { "messageId": "ib-2", "to": "254700000004", "status": { "groupName": "UNDELIVERABLE", "description": "Not delivered" },
          "error": { "groupName": "HANDSET_ERRORS", "description": "Absent subscriber" } },
    ]});
    let request = Request::post("/sms/infobip/status")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    assert_eq!(app.send(request).await.status, StatusCode::OK);
    assert_eq!(status_of(&pool, "ib-1").await, ("delivered".into(), None));
    assert_eq!(status_of(&pool, "ib-2").await, ("failed".into(), Some("Absent subscriber".into())));
    let garbage = Request::post("/sms/infobip/status")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"results\": 5}"))
        .unwrap();
    assert_eq!(app.send(garbage).await.status, StatusCode::BAD_REQUEST);
}

#[test]
fn sms_channels_are_checked_with_what_to_do() {
    let check = |c: SmsChannelSettings| {
        Settings { sms_channels: vec![c], ..common::settings() }
            .validate(None, true)
            .map_err(|e| e.to_string())
    };
    let twilio =
        SmsChannelSettings { name: "tw".into(), provider: "twilio".into(), ..SmsChannelSettings::default() };
    let err = check(twilio.clone()).unwrap_err();
    assert!(err.contains("Twilio signs every callback: set `signing_secret`"), "{err}");
    let err = check(SmsChannelSettings { provider: "hubtel".into(), ..twilio.clone() }).unwrap_err();
    assert!(
        err.contains("`provider` `hubtel` is not one of africastalking, twilio, infobip, vonage"),
        "{err}"
    );
    let err = check(SmsChannelSettings {
        provider: "africastalking".into(),
        signing_secret: Some("x".into()),
        gate: GateSettings {
            token: Some("short".into()),
            path: Some("/metrics".into()),
            ..GateSettings::default()
        },
        ..twilio.clone()
    })
    .unwrap_err();
    for p in [
        "`signing_secret` is for providers that sign",
        "`token` must be at least 16",
        "taken by the gateway's own endpoints",
    ] {
        assert!(err.contains(p), "{p}: {err}");
    }
    let ok = check(SmsChannelSettings {
        signing_secret: Some("s".into()),
        public_url: Some("https://gw.example.com/".into()),
        ..twilio
    })
    .unwrap();
    // Outside --demo a channel must prove its callbacks come from the provider, the
    // sink is refused, and a code may not outlive the conversation holding it.
    let production = |sms_channels: Vec<SmsChannelSettings>,
                      sms: Option<ussd_gateway::config::SmsSettings>| {
        Settings {
            sms_channels,
            sms,
            pin_pepper: Some("p".repeat(32).into()),
            data_key: Some("0f".repeat(32).into()),
            channels: vec![ussd_gateway::config::ChannelSettings {
                name: "at".into(),
                provider: "africastalking".into(),
                ..Default::default()
            }],
            ..common::settings()
        }
        .validate(None, false)
        .map_err(|e| e.to_string())
    };
    let open = SmsChannelSettings {
        name: "open".into(),
        provider: "africastalking".into(),
        ..SmsChannelSettings::default()
    };
    let err = production(vec![open.clone()], None).unwrap_err();
    assert!(err.contains("nothing proves a callback comes from the provider"), "{err}");
    let gate = GateSettings { token: Some("t".repeat(20).into()), ..GateSettings::default() };
    let long_code = SmsChannelSettings { gate: gate.clone(), code_ttl_secs: Some(600), ..open.clone() };
    let err = production(vec![long_code], None).unwrap_err();
    assert!(err.contains("`code_ttl_secs` must be between 30 and SESSION_TTL_SECS (180)"), "{err}");
    let no_codes = SmsChannelSettings { gate, wrong_codes_per_day: Some(0), ..open };
    let err = production(vec![no_codes], None).unwrap_err();
    assert!(err.contains("`wrong_codes_per_day` must be at least 1"), "{err}");
    let sink = ussd_gateway::config::SmsSettings { provider: "sink".into(), ..Default::default() };
    let err = production(vec![], Some(sink)).unwrap_err();
    assert!(err.contains("`provider` `sink` keeps messages in memory"), "{err}");

    let tw = ok.sms_channels.iter().find(|c| c.name == "tw").unwrap();
    assert_eq!(
        (tw.callers.path.as_str(), tw.public_url.as_deref()),
        ("/sms/tw", Some("https://gw.example.com"))
    );
    assert!(!format!("{tw:?}").contains("\"s\""));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_generic_report_names_a_message_sent_through_any_provider(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, settings()).await;
    transfers(&pool, 1).await;
    sent_as(&pool, "africastalking", "ATXid_").await;
    let report = |id: &str, status: &str| {
        Request::post("/sms/generic/status")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::json!({ "message_id": id, "status": status }).to_string()))
            .unwrap()
    };
    assert_eq!(app.send(report("ATXid_1", "delivered")).await.status, StatusCode::OK);
    assert_eq!(status_of(&pool, "ATXid_1").await.0, "delivered");
    let bad = app.send(report("ATXid_2", "gone")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(status_of(&pool, "ATXid_2").await.0, "sent");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_report_missed_by_a_concurrent_send_record_is_applied_by_the_sweep(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, settings()).await;
    transfers(&pool, 1).await;
    // The report is stored before the send is recorded, and the record does not apply
    // it — as when the two statements run at the same moment.
    assert_eq!(at_report(&app, "ATXid_1", "Success").await, StatusCode::OK);
    sent_as(&pool, "africastalking", "ATXid_").await;
    assert_eq!(status_of(&pool, "ATXid_1").await.0, "sent");
    let (_fake, outbound) = at_provider().await;
    let worker = Worker::new(pool.clone(), outbound, quick_policy());
    assert_eq!(worker.reconcile().await.unwrap(), 1);
    assert_eq!(status_of(&pool, "ATXid_1").await.0, "delivered");
    assert_eq!(worker.reconcile().await.unwrap(), 0, "applied once");
    assert_eq!(status_of(&pool, "ATXid_2").await.0, "sent");
}
