//! Messages subscribers send, through the real router and Postgres: each provider's
//! format, one effect per provider message id, long messages joined from their parts,
//! STOP and START, replies in the subscriber's language through the outbox, signatures,
//! and no text of a message in the logs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::common;
use crate::common::sms::{quick_policy, twilio_signature};
use crate::common::{Store, TestApp, spawn_with};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use sqlx::PgPool;
use ussd_gateway::config::{Settings, SmsChannelSettings};
use ussd_gateway::sms::outbox::Worker;

const TWILIO_TOKEN: &str = "twilio-auth-token-for-tests";

fn settings() -> Settings {
    Settings {
        sms_channels: vec![SmsChannelSettings {
            name: "twilio".into(),
            provider: "twilio".into(),
            signing_secret: Some(TWILIO_TOKEN.into()),
            public_url: Some("https://gw.example.com".into()),
            ..SmsChannelSettings::default()
        }],
        ..common::settings()
    }
}

fn form(path: &str, pairs: &[(&str, &str)]) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(serde_urlencoded::to_string(pairs).unwrap()))
        .unwrap()
}

/// Posts one message as Africa's Talking would, then lets the answerer run: the status
/// and body are the callback's acknowledgement.
async fn at_sms(app: &TestApp, id: &str, from: &str, text: &str) -> (StatusCode, String) {
    let r = app
        .send(form(
            "/sms/africastalking/inbound",
            &[
                ("from", from),
                ("to", "22384"),
                ("text", text),
                ("id", id),
                ("date", "2026-11-22 01:00:00"),
                ("linkId", "l1"),
            ],
        ))
        .await;
    app.answer_sms().await;
    (r.status, r.body)
}

/// The replies queued for `msisdn`, oldest first, once the answerer has answered
/// everything waiting.
async fn replies(app: &TestApp, msisdn: &str) -> Vec<String> {
    app.answer_sms().await;
    sqlx::query_scalar("SELECT data->>'text' FROM outbox WHERE role = 'reply' AND msisdn = $1 ORDER BY id")
        .bind(msisdn)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn every_message_gets_one_reply_however_often_the_provider_retries(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, settings()).await;
    for _ in 0..3 {
        assert_eq!(at_sms(&app, "at-1", "+254700000001", "hello").await, (StatusCode::OK, "OK".into()));
    }
    let sent = replies(&app, "+254700000001").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("BAL - your balance\n"), "{}", sent[0]);
    assert!(sent[0].ends_with(
        "Dial *384# for your wallet. Never send your PIN by SMS. Reply STOP to stop promotional messages."
    ));
    // Copies from several connections at once are all acknowledged, and there is
    // still one reply.
    let tries: Vec<_> = (0..8).map(|_| at_sms(&app, "at-2", "0700000001", "help")).collect();
    for (status, _) in futures_util::future::join_all(tries).await {
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(at_sms(&app, "at-2", "0700000001", "help").await.0, StatusCode::OK);
    assert_eq!(
        replies(&app, "+254700000001").await.len(),
        2,
        "a national-form number is the same subscriber"
    );

    // The reply goes out through the outbox, to the demo sink here.
    let worker = Worker::new(pool.clone(), app.state.sms.clone().unwrap(), quick_policy());
    app.answer_sms().await;
    assert_eq!(worker.tick().await.unwrap(), 2);
    let listed = app.get("/demo/sms?to=%2B254700000001").await.body;
    assert_eq!(listed.matches("Dial *384#").count(), 2, "{listed}");

    // A subscriber who chose Swahili is answered in Swahili.
    sqlx::query("UPDATE customers SET language = 'sw' WHERE msisdn = '+254700000002'")
        .execute(&pool)
        .await
        .unwrap();
    at_sms(&app, "at-3", "+254700000002", "habari").await;
    assert!(replies(&app, "+254700000002").await[0].starts_with("SALIO - salio lako\n"));

    let bad =
        app.send(form("/sms/africastalking/inbound", &[("from", "+254700000001"), ("text", "BAL")])).await;
    assert_eq!(
        (bad.status, bad.body.as_str()),
        (StatusCode::BAD_REQUEST, "bad africastalking callback: `id` is missing\n")
    );
    // Not a number: acknowledged (or the provider retries for hours) and not answered.
    assert_eq!(at_sms(&app, "at-4", "MPESA", "hello").await.0, StatusCode::OK);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM sms_inbound").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 3);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn stop_holds_back_promotions_but_not_receipts_and_start_undoes_it(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, settings()).await;
    let amina = "+254700000001";
    at_sms(&app, "s-1", amina, "Stop").await;
    assert!(replies(&app, amina).await[0].starts_with("You will no longer receive promotional messages."));
    let promotion = |text: &str| {
        sqlx::query(
            "INSERT INTO outbox (role, msisdn, language, template, data, transactional)
             VALUES ('reply', $1, 'en', 'reply', jsonb_build_object('text', $2::text), false)",
        )
        .bind(amina)
        .bind(text.to_owned())
        .execute(&pool)
    };
    promotion("Win a prize!").await.unwrap();
    let worker = Worker::new(pool.clone(), app.state.sms.clone().unwrap(), quick_policy());
    while worker.tick().await.unwrap() > 0 {}
    let (status, reason): (String, String) =
        sqlx::query_as("SELECT status, last_error FROM outbox WHERE NOT transactional")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("dead", "the subscriber opted out (STOP)"));
    let to_amina = app.get("/demo/sms?to=%2B254700000001").await.body;
    assert!(
        to_amina.contains("You will no longer receive") && !to_amina.contains("Win a prize"),
        "{to_amina}"
    );

    at_sms(&app, "s-2", amina, "START").await;
    let opted_out: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sms_opt_outs").fetch_one(&pool).await.unwrap();
    assert_eq!(opted_out, 0);
    promotion("Win another prize!").await.unwrap();
    while worker.tick().await.unwrap() > 0 {}
    assert!(app.get("/demo/sms?to=%2B254700000001").await.body.contains("Win another prize!"));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn twilio_messages_need_their_signature_and_a_replay_changes_nothing(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, settings()).await;
    let params = [
        ("MessageSid", "SM9"),
        ("AccountSid", "AC1"),
        ("From", "+254700000003"),
        ("To", "+15005550006"),
        ("Body", "HELP"),
        ("NumSegments", "1"),
    ];
    let request = |signature: &str| {
        let mut r = form("/sms/twilio/inbound", &params);
        r.headers_mut().insert("X-Twilio-Signature", signature.parse().unwrap());
        r
    };
    assert_eq!(app.send(request("bm90IGEgc2lnbmF0dXJl")).await.status, StatusCode::UNAUTHORIZED);
    assert!(replies(&app, "+254700000003").await.is_empty());
    let good = twilio_signature(TWILIO_TOKEN, "https://gw.example.com/sms/twilio/inbound", &params);
    for _ in 0..2 {
        let r = app.send(request(&good)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.content_type.as_deref(), Some("text/xml"));
        assert!(r.body.ends_with("<Response></Response>"));
    }
    assert_eq!(replies(&app, "+254700000003").await.len(), 1);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_long_vonage_message_is_answered_once_when_its_last_piece_arrives(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, settings()).await;
    let piece = |n: &str, id: &str, text: &str| {
        let query = serde_urlencoded::to_string([
            ("msisdn", "254700000004"),
            ("to", "WALLET"),
            ("messageId", id),
            ("text", text),
            ("type", "text"),
            ("concat", "true"),
            ("concat-ref", "77"),
            ("concat-total", "3"),
            ("concat-part", n),
            ("message-timestamp", "2026-11-22 01:00:00"),
        ])
        .unwrap();
        Request::get(format!("/sms/vonage/inbound?{query}")).body(Body::empty()).unwrap()
    };
    // Out of order, with the first piece retried.
    for (n, id, text) in [
        ("3", "v3", "please"),
        ("1", "v1", "STOP sending "),
        ("1", "v1", "STOP sending "),
        ("2", "v2", "promotions "),
    ] {
        assert_eq!(app.send(piece(n, id, text)).await.status, StatusCode::OK);
    }
    let sent = replies(&app, "+254700000004").await;
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].starts_with("You will no longer receive"),
        "the joined text starts with STOP: {}",
        sent[0]
    );
    let waiting =
        || sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sms_parts WHERE NOT joined").fetch_one(&pool);
    assert_eq!(waiting().await.unwrap(), 0);
    // A piece retried after its message was joined is not kept, and not answered again.
    assert_eq!(app.send(piece("2", "v2", "promotions ")).await.status, StatusCode::OK);
    assert_eq!((waiting().await.unwrap(), replies(&app, "+254700000004").await.len()), (0, 1));
    // Phones reuse concatenation references: a later long message with the same one is
    // a message of its own.
    for (n, id, text) in [("1", "w1", "START "), ("2", "w2", "again "), ("3", "w3", "please")] {
        assert_eq!(app.send(piece(n, id, text)).await.status, StatusCode::OK);
    }
    let sent = replies(&app, "+254700000004").await;
    assert_eq!(sent.len(), 2);
    assert!(sent[1].starts_with("You will receive our messages again."), "{}", sent[1]);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn infobip_batches_and_the_generic_format_are_read(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, settings()).await;
    let json = |path: &str, body: serde_json::Value| {
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let batch = serde_json::json!({ "results": [
        { "messageId": "ib-in-1", "from": "254700000005", "to": "22384", "text": "HELP", "cleanText": "", "keyword": "HELP", "receivedAt": "2026-11-22T01:00:00.000+0000", "smsCount": 1 },
        { "messageId": "ib-in-2", "from": "254700000006", "to": "22384", "text": "stop", "receivedAt": "2026-11-22T01:00:01.000+0000", "smsCount": 1 },
    ], "messageCount": 2, "pendingMessageCount": 0 });
    assert_eq!(app.send(json("/sms/infobip/inbound", batch)).await.status, StatusCode::OK);
    assert_eq!(replies(&app, "+254700000005").await.len(), 1);
    assert_eq!(replies(&app, "+254700000006").await.len(), 1);
    let generic = app
        .send(json(
            "/sms/generic/inbound",
            serde_json::json!({ "message_id": "g1", "from": "+254700000007", "text": "hi" }),
        ))
        .await;
    assert_eq!((generic.status, generic.body.as_str()), (StatusCode::OK, "{\"ok\":true}"));
    assert_eq!(replies(&app, "+254700000007").await.len(), 1);
    let wrong = app.send(json("/sms/generic/inbound", serde_json::json!({ "msg": "hi" }))).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(wrong.body.contains("not the generic JSON format"), "{}", wrong.body);
    // serde's message would quote the value: the reply names only the place.
    let typed = app
        .send(json(
            "/sms/generic/inbound",
            serde_json::json!({ "message_id": "g2", "from": "+254700000007", "text": 4821 }),
        ))
        .await;
    assert_eq!(typed.status, StatusCode::BAD_REQUEST);
    assert!(
        typed.body.contains("a field has the wrong type") && !typed.body.contains("4821"),
        "{}",
        typed.body
    );
}

/// Collects every log line written while it is the default subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_pin_sent_by_sms_reaches_neither_the_logs_nor_the_database(pool: PgPool) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    crate::common::consulted_callsites();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = spawn_with(pool.clone(), Store::Memory, settings()).await;
    // A conversation waiting for a one-time code; the "PIN" below is never that code.
    at_sms(&app, "pin-0", "+254700000001", "SEND 0700000002 500").await;
    let prompt = replies(&app, "+254700000001").await[0].clone();
    let code: String =
        prompt.split("YES ").nth(1).unwrap().chars().take_while(char::is_ascii_digit).collect();
    let pin = if prompt.contains("4821") { "4822" } else { "4821" };
    assert_eq!(at_sms(&app, "pin-1", "+254700000008", pin).await.0, StatusCode::OK);
    assert_eq!(at_sms(&app, "pin-2", "+254700000008", &format!("PIN {pin}")).await.0, StatusCode::OK);
    // In the conversation, a PIN is a wrong code, and stays secret.
    at_sms(&app, "pin-3", "+254700000001", pin).await;
    assert_eq!(
        replies(&app, "+254700000001").await[1],
        "That code is not right. Reply YES and the code we sent you."
    );
    let worker = Worker::new(pool.clone(), app.state.sms.clone().unwrap(), quick_policy());
    while worker.tick().await.unwrap() > 0 {}

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("SMS (demo sink)"), "the capture works: {logs}");
    // As a number of its own: timings and timestamps may hold the same digits.
    let alone = regex::Regex::new(&format!(r"\b{pin}\b")).unwrap();
    assert!(!alone.is_match(&logs), "{logs}");
    // Nor does the one-time code: the sink logs a placeholder, and once sent the outbox
    // forgets the text.
    let code_alone = regex::Regex::new(&format!(r"\b{code}\b")).unwrap();
    assert!(!code_alone.is_match(&logs), "{logs}");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE data::text LIKE '%' || $1 || '%'")
        .bind(&code)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 0);
    let everywhere: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM sms_inbound WHERE message_id || msisdn LIKE '%' || $1 || '%')
              + (SELECT count(*) FROM outbox WHERE data::text || msisdn LIKE '%' || $1 || '%')",
    )
    .bind(pin)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(everywhere, 0);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_number_sending_more_than_its_limit_is_not_answered(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, settings()).await;
    // Ten a minute by default; a provider's retries of one message count once.
    for n in 0..10 {
        for _ in 0..2 {
            assert_eq!(at_sms(&app, &format!("lim-{n}"), "+254700000009", "hello").await.0, StatusCode::OK);
        }
    }
    assert_eq!(replies(&app, "+254700000009").await.len(), 10);
    assert_eq!(at_sms(&app, "lim-10", "+254700000009", "hello").await.0, StatusCode::OK);
    assert_eq!(replies(&app, "+254700000009").await.len(), 10, "the eleventh is acknowledged, not answered");
    // Another number is not held back.
    at_sms(&app, "lim-other", "+254700000010", "hello").await;
    assert_eq!(replies(&app, "+254700000010").await.len(), 1);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_message_stored_without_its_text_is_dead_lettered_once_nobody_can_be_answering_it(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, settings()).await;
    // As a version that answered inside the callback stored them: no text kept.
    sqlx::query(
        "INSERT INTO sms_inbound (channel, provider, message_id, msisdn, received_at) VALUES
           ('africastalking', 'africastalking', 'old-1', '+254700000001', now() - interval '2 minutes'),
           ('africastalking', 'africastalking', 'new-1', '+254700000002', now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(app.answer_sms().await, 1, "the recent one may still be answered by its callback");
    let (attempts, reason): (i32, Option<String>) = sqlx::query_as(
        "SELECT attempts, last_error FROM sms_inbound WHERE message_id = 'old-1' AND dead_at IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(attempts, 1, "trying again cannot bring the text back");
    assert_eq!(reason.as_deref(), Some("the message's text was not kept or cannot be read"));
    assert_eq!(
        replies(&app, "+254700000001").await,
        ["We cannot confirm your request right now. Please check your balance before you try again."]
    );
    assert!(replies(&app, "+254700000002").await.is_empty());
}
