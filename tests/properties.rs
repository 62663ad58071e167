//! Property tests: whatever an aggregator (or an attacker) posts, the endpoint answers
//! without panicking and without a 5xx.

mod common;

use axum::http::StatusCode;
use common::{Store, at_form, spawn, unique_session};
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
    let app = spawn(pool, Store::Memory).await;
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
