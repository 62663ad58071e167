//! Property tests: whatever an aggregator (or an attacker) posts, the endpoint answers
//! without panicking and without a 5xx.

use crate::common;
use crate::common::{Store, at_form, spawn, unique_session};
use axum::http::StatusCode;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use sqlx::PgPool;

/// Draws `cases` values from `strategy` (the body of a proptest, run inside our async test).
fn draw<T: std::fmt::Debug>(strategy: impl Strategy<Value = T>, cases: usize) -> Vec<T> {
    let mut runner = TestRunner::new(Config { cases: cases as u32, ..Config::default() });
    (0..cases).map(|_| strategy.new_tree(&mut runner).expect("strategy").current()).collect()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn arbitrary_bodies_never_panic_or_5xx(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    for body in draw(proptest::collection::vec(any::<u8>(), 0..2048), 300) {
        let r = app.post_raw(body.clone()).await;
        assert!(
            r.status.is_success() || r.status.is_client_error(),
            "{} for {:?}",
            r.status,
            String::from_utf8_lossy(&body)
        );
    }
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn arbitrary_form_fields_never_panic_or_5xx(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    let field = || prop_oneof![any::<String>(), "[0-9*#+ ]{0,40}", Just(String::new())];
    let phone = prop_oneof![
        Just("+254700000001".to_owned()),
        Just("+254700000004".to_owned()),
        "\\+?[0-9]{0,16}",
        any::<String>()
    ];
    for (session, code, phone, text) in draw((field(), field(), phone, field()), 300) {
        let r = app.post_raw(at_form(&session, &code, &phone, &text)).await;
        assert!(
            r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST,
            "{} for {:?}",
            r.status,
            (session, code, phone, text)
        );
        if r.status == StatusCode::OK {
            assert!(r.body.starts_with("CON ") || r.body.starts_with("END "), "{}", r.body);
        }
    }
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn arbitrary_text_within_a_live_session_never_panics_or_5xx(pool: PgPool) {
    // Sixty sessions of one subscriber in a second: lift the per-number limit.
    let settings =
        ussd_gateway::config::Settings { rate_per_msisdn_per_minute: 1_000_000, ..common::settings() };
    let app = common::spawn_with(pool, Store::Memory, settings).await;
    let texts = draw(proptest::collection::vec(prop_oneof!["[0-9*]{0,12}", any::<String>()], 1..6), 60);
    for inputs in texts {
        let s = unique_session();
        assert!(app.at_hop(&s, "+254700000005", "").await.starts_with("CON "));
        let mut text = String::new();
        for input in inputs {
            text = if text.is_empty() { input } else { format!("{text}*{input}") };
            let r = app.post_raw(at_form(&s, "*384#", "+254700000005", &text)).await;
            assert!(
                r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST,
                "{} for {text:?}",
                r.status
            );
            if r.status == StatusCode::OK {
                assert!(r.body.starts_with("CON ") || r.body.starts_with("END "), "{}", r.body);
            }
        }
    }
}

/// Every adapter's path, with the method its provider uses.
const ADAPTERS: [(&str, bool); 10] = [
    ("/ussd/africastalking", false),
    ("/ussd/hubtel", false),
    ("/ussd/hubtel-programmable", false),
    ("/ussd/nalo", false),
    ("/ussd/arkesel", false),
    ("/ussd/infobip/s1/start", false),
    ("/ussd/cellulant", true),
    ("/ussd/safaricom", true),
    ("/ussd/airtel", true),
    ("/ussd/generic", false),
];

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn arbitrary_requests_to_every_adapter_never_panic_or_5xx(pool: PgPool) {
    use axum::body::Body;
    use axum::http::Request;
    // Valid hops of a few numbers, hundreds of times: lift the per-number limit so
    // that they reach the gateway rather than the polite END.
    let settings =
        ussd_gateway::config::Settings { rate_per_msisdn_per_minute: 1_000_000, ..common::settings() };
    let app = common::spawn_with(pool, Store::Memory, settings).await;
    // Raw bytes, JSON objects over the fields the providers use, and query strings.
    let key = prop_oneof![
        Just("Mobile"),
        Just("SessionId"),
        Just("Type"),
        Just("Message"),
        Just("Sequence"),
        Just("MSISDN"),
        Just("USERDATA"),
        Just("MSGTYPE"),
        Just("SESSIONID"),
        Just("sessionID"),
        Just("newSession"),
        Just("msisdn"),
        Just("userData"),
        Just("text"),
        Just("session_id"),
        Just("event"),
        Just("service_code"),
        Just("input"),
        Just("opCode"),
        Just("INPUT"),
        Just("ORIG"),
        Just("DEST"),
        Just("SESSION_ID"),
        Just("USSD_PARAMS"),
        Just("SessionID"),
    ];
    let value = prop_oneof![
        Just(serde_json::json!("+254700000001")),
        Just(serde_json::json!("*384#")),
        Just(serde_json::json!(true)),
        Just(serde_json::json!("Initiation")),
        Just(serde_json::json!("start")),
        Just(serde_json::json!("BEG")),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ];
    let fields = proptest::collection::vec((key, value), 0..8);
    let bodies = draw((0..ADAPTERS.len(), proptest::collection::vec(any::<u8>(), 0..512), fields), 400);
    for (i, bytes, fields) in bodies {
        let (path, uses_get) = ADAPTERS[i];
        let object: serde_json::Map<String, serde_json::Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let requests = if uses_get {
            let pairs: Vec<(String, String)> = object
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect();
            let query = serde_urlencoded::to_string(&pairs).unwrap();
            let raw: String =
                String::from_utf8_lossy(&bytes).chars().filter(|c| c.is_ascii_graphic()).collect();
            vec![format!("{path}?{query}"), format!("{path}?{raw}")]
                .into_iter()
                .filter_map(|uri| Request::get(uri).body(Body::empty()).ok())
                .collect::<Vec<_>>()
        } else {
            vec![
                Request::post(path).body(Body::from(bytes.clone())).unwrap(),
                Request::post(path).body(Body::from(serde_json::Value::Object(object).to_string())).unwrap(),
            ]
        };
        for request in requests {
            let shown = format!("{} {}", request.method(), request.uri());
            let r = app.send(request).await;
            assert!(
                r.status.is_success() || r.status.is_client_error(),
                "{} for {shown}: {}",
                r.status,
                r.body
            );
        }
    }
}
