//! The anomaly rules on the real streams: each fires at its threshold and not below,
//! once per account and window; a hit is a row operators list and an
//! `anomaly.detected` event, valid against its schema and published like any other.

use std::sync::Arc;

use sqlx::PgPool;
use ussd_gateway::domain::Amount;
use ussd_gateway::events::anomalies::detect::Detector;
use ussd_gateway::events::anomalies::{Kind, Rule};
use ussd_gateway::events::redis::{RedisStreams, stream};
use ussd_gateway::events::{FAMILIES, Relay};
use ussd_gateway::money::events::{self, Event};
use ussd_gateway::money::{PinHasher, seed_demo, transfer_p2p};

use crate::common::redis_url;
use crate::common::sms::msisdn;

fn rule(name: &str, kind: Kind, threshold: i64) -> Rule {
    Rule { name: name.into(), kind, window_secs: 86_400, threshold, types: vec!["transfer.posted".into()] }
}

async fn send(pool: &PgPool, from: u32, to: u32, minor: i64) {
    let key = format!("an:{:x}", rand::random::<u64>());
    let sent = transfer_p2p(pool, &key, &msisdn(from), &msisdn(to), Amount::from_minor(minor).unwrap())
        .await
        .unwrap();
    assert!(sent.reference().starts_with("TX"));
}

/// What `from`'s debit events paid out, amount and fee, each.
fn outflows(log: &[Event], account: &str) -> Vec<(String, i64)> {
    log.iter()
        .filter(|e| e.account() == account && e.envelope["data"]["direction"] == "debit")
        .map(|e| {
            let d = &e.envelope["data"];
            (e.id().to_owned(), d["amount"].as_i64().unwrap() + d["fee"].as_i64().unwrap())
        })
        .collect()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn each_rule_fires_at_its_threshold_and_not_below_once_a_window(pool: PgPool) {
    seed_demo(&pool, &PinHasher::new(b"pepper"), "KES", 10).await.unwrap();
    let conn =
        ussd_gateway::events::redis::connect(&redis_url(), std::time::Duration::from_secs(2)).await.unwrap();
    let prefix = format!("test:{:016x}:", rand::random::<u64>());
    // Wallet 1 pays three times; wallet 3 pays 4, 5, 4, 6 (its third payee on the fourth).
    for minor in [20_000, 15_000, 9_000] {
        send(&pool, 1, 2, minor).await;
    }
    for to in [4, 5, 4, 6] {
        send(&pool, 3, to, 1_000).await;
    }
    let log = events::after(&pool, 0, 10_000).await.unwrap();
    let payer = log
        .iter()
        .find(|e| e.kind() == "transfer.posted" && e.envelope["data"]["direction"] == "debit")
        .map(|e| e.account().to_owned())
        .unwrap();
    let paid = outflows(&log, &payer);
    assert_eq!(paid.len(), 3);
    let total: i64 = paid.iter().map(|(_, p)| p).sum();
    let rules = vec![
        rule("at_the_total", Kind::Outflow, total),
        rule("one_above", Kind::Outflow, total + 1),
        rule("three_payees", Kind::DistinctPayees, 3),
        rule("four_payees", Kind::DistinctPayees, 4),
    ];
    let own =
        ussd_gateway::events::redis::connect(&redis_url(), std::time::Duration::from_secs(2)).await.unwrap();
    let detector = Detector::new(own, pool.clone(), &prefix, rules);
    detector.join().await.unwrap();
    let relay =
        Relay::new(pool.clone(), Some(Arc::new(RedisStreams::new(conn.clone(), &prefix, 100_000))), 500);
    while relay.pass().await.unwrap() > 0 {}
    while detector.pass(std::time::Duration::from_millis(50)).await.unwrap() > 0 {}

    let found: Vec<(String, String, i64, i64)> =
        sqlx::query_as("SELECT rule, trigger, observed, threshold FROM anomalies ORDER BY rule")
            .fetch_all(&pool)
            .await
            .unwrap();
    let third_payment = paid[2].0.clone();
    let spreader_fourth = log
        .iter()
        .filter(|e| {
            e.kind() == "transfer.posted"
                && e.envelope["data"]["direction"] == "debit"
                && e.account() != payer
        })
        .nth(3)
        .unwrap()
        .id()
        .to_owned();
    assert_eq!(
        found,
        [
            ("at_the_total".to_owned(), third_payment, total, total),
            ("three_payees".to_owned(), spreader_fourth, 3, 3),
        ],
        "each fires on the event that reaches its threshold; neither rule a step above fires"
    );

    // Once a window: more outflow does not fire the rule again.
    send(&pool, 1, 2, 5_000).await;
    while relay.pass().await.unwrap() > 0 {}
    while detector.pass(std::time::Duration::from_millis(50)).await.unwrap() > 0 {}
    // The rule a step above fires now that the outflow reached it.
    let rules: Vec<String> =
        sqlx::query_scalar("SELECT rule FROM anomalies ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(rules.last().map(String::as_str), Some("one_above"), "{rules:?}");
    let hits: i64 = sqlx::query_scalar("SELECT count(*) FROM anomalies WHERE rule = 'at_the_total'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(hits, 1);

    // Each hit is an event, valid, numbered in its account's sequence, and published.
    let detected: Vec<Event> = events::after(&pool, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind() == "anomaly.detected")
        .collect();
    assert_eq!(detected.len(), 3);
    for e in &detected {
        let errors: Vec<String> =
            crate::common::event_schema(e.kind()).iter_errors(&e.envelope).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", e.envelope);
    }
    crate::common::assert_events(&pool).await;
    while relay.pass().await.unwrap() > 0 {}
    let mut redis = conn.clone();
    let published: usize =
        redis::cmd("XLEN").arg(stream(&prefix, "anomaly")).query_async(&mut redis).await.unwrap();
    assert_eq!(published, 3);
    let listed = ussd_gateway::events::anomalies::list(&pool, 10).await.unwrap();
    assert_eq!(listed["anomalies"][0]["rule"], "one_above", "{listed}");
    assert_eq!(listed["anomalies"][0]["msisdn"], msisdn(1).as_e164(), "{listed}");
    for family in FAMILIES {
        let _: () = redis::cmd("DEL").arg(stream(&prefix, family)).query_async(&mut redis).await.unwrap();
    }
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut redis).await.unwrap();
    for key in keys {
        let _: () = redis::cmd("DEL").arg(key).query_async(&mut redis).await.unwrap();
    }
}
