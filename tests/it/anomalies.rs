//! The anomaly rules on the real streams: each fires at its threshold and not below,
//! once per account and window; a hit is a row operators list and an
//! `anomaly.detected` event, valid against its schema and published like any other.

use std::sync::Arc;

use sqlx::PgPool;
use ussd_gateway::domain::Amount;
use ussd_gateway::events::anomalies::detect::Detector;
use ussd_gateway::events::anomalies::{By, Kind, Rule};
use ussd_gateway::events::redis::{RedisStreams, stream};
use ussd_gateway::events::{FAMILIES, Relay};
use ussd_gateway::money::events::{self, Event};
use ussd_gateway::money::{PinHasher, seed_demo, transfer_p2p};

use crate::common::redis_url;
use crate::common::sms::msisdn;

fn rule(name: &str, kind: Kind, threshold: i64) -> Rule {
    Rule {
        name: name.into(),
        kind,
        by: By::Account,
        window_secs: 86_400,
        threshold,
        types: vec!["transfer.posted".into()],
    }
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
        redis::cmd("XLEN").arg(stream(&prefix, "anomaly", false)).query_async(&mut redis).await.unwrap();
    assert_eq!(published, 3);
    let listed = ussd_gateway::events::anomalies::list(&pool, 10).await.unwrap();
    assert_eq!(listed["anomalies"][0]["rule"], "one_above", "{listed}");
    assert_eq!(listed["anomalies"][0]["msisdn"], msisdn(1).as_e164(), "{listed}");
    for family in FAMILIES {
        let _: () =
            redis::cmd("DEL").arg(stream(&prefix, family, false)).query_async(&mut redis).await.unwrap();
    }
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut redis).await.unwrap();
    for key in keys {
        let _: () = redis::cmd("DEL").arg(key).query_async(&mut redis).await.unwrap();
    }
}

/// Wrong PINs on `n` (one locks: a policy of one attempt) through `channel`, as the
/// gateway's check makes them: the channel set in the check's own statement.
async fn lock_out(pool: &PgPool, n: u32, channel: &str) {
    let locked: String = sqlx::query_scalar(
        "SELECT c.outcome FROM customers u, pin_check(u.msisdn, u.pin_salt, '\\x00'::bytea, 1, 600) c,
                set_config('ussd.channel', $2, true)
          WHERE u.msisdn = $1",
    )
    .bind(msisdn(n).as_e164())
    .bind(channel)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(locked, "pin_locked");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_channels_rules_fire_at_their_threshold_and_not_below(pool: PgPool) {
    seed_demo(&pool, &PinHasher::new(b"pepper"), "KES", 10).await.unwrap();
    let prefix = format!("test:{:016x}:", rand::random::<u64>());
    let url = redis_url();
    let connect = || ussd_gateway::events::redis::connect(&url, std::time::Duration::from_secs(2));
    let (conn, own) = (connect().await.unwrap(), connect().await.unwrap());
    let on_channel = |name: &str, kind, threshold, types: &str| Rule {
        by: By::Channel,
        types: vec![types.into()],
        ..rule(name, kind, threshold)
    };
    let rules = vec![
        on_channel("three_lockouts", Kind::DistinctAccounts, 3, "pin.locked"),
        on_channel("four_lockouts", Kind::DistinctAccounts, 4, "pin.locked"),
        on_channel("three_codes", Kind::Events, 3, "otp.failed"),
        on_channel("four_codes", Kind::Events, 4, "otp.failed"),
    ];
    let detector = Detector::new(own, pool.clone(), &prefix, rules);
    detector.join().await.unwrap();
    let relay =
        Relay::new(pool.clone(), Some(Arc::new(RedisStreams::new(conn.clone(), &prefix, 100_000))), 500);
    // Each event is published and seen before the next is made: the relay keeps each
    // account's order, not the order across accounts, and "the third" must be this one.
    let seen = || async {
        while relay.pass().await.unwrap() > 0 {}
        while detector.pass(std::time::Duration::from_millis(50)).await.unwrap() > 0 {}
    };
    // Three numbers locked through one channel, two through another; one number locked
    // twice (unlocked between) counts once.
    lock_out(&pool, 1, "farm").await;
    sqlx::query("UPDATE customers SET pin_locked_until = NULL, pin_failures = 0")
        .execute(&pool)
        .await
        .unwrap();
    for (n, channel) in [(1, "farm"), (2, "farm"), (4, "quiet"), (5, "quiet"), (3, "farm")] {
        lock_out(&pool, n, channel).await;
        seen().await;
    }
    // Three wrong codes through an SMS channel, from two numbers.
    for n in [6, 7, 6] {
        ussd_gateway::sms::codes::failed(&pool, &msisdn(n), "sms:guess").await.unwrap();
        seen().await;
    }

    let log = events::after(&pool, 0, 10_000).await.unwrap();
    let last_of = |kind: &str| log.iter().rfind(|e| e.kind() == kind).unwrap();
    let (third_lockout, third_code) = (last_of("pin.locked"), last_of("otp.failed"));
    let found: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT a.rule, a.trigger, a.observed, e.data ->> 'channel'
           FROM anomalies a JOIN events e ON e.type = 'anomaly.detected' AND e.subject = anomaly_ref(a.id)
          ORDER BY a.rule",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        found,
        [
            ("three_codes".to_owned(), third_code.id().to_owned(), 3, "sms:guess".to_owned()),
            ("three_lockouts".to_owned(), third_lockout.id().to_owned(), 3, "farm".to_owned()),
        ],
        "each fires on the event that reaches it, on that event's account; the rules a step above do not"
    );
    assert_eq!(third_lockout.account(), msisdn_account(&pool, 3).await);
    let listed = ussd_gateway::events::anomalies::list(&pool, 10).await.unwrap();
    let channels: Vec<&str> =
        listed["anomalies"].as_array().unwrap().iter().filter_map(|a| a["channel"].as_str()).collect();
    assert_eq!(channels, ["sms:guess", "farm"], "operators see the channel: {listed}");
    crate::common::assert_events(&pool).await;
    let mut redis = conn.clone();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut redis).await.unwrap();
    for key in keys {
        let _: () = redis::cmd("DEL").arg(key).query_async(&mut redis).await.unwrap();
    }
}

/// The wallet of demo subscriber `n`, as events name it.
async fn msisdn_account(pool: &PgPool, n: u32) -> String {
    sqlx::query_scalar(
        "SELECT account_ref(a.id) FROM accounts a JOIN customers c ON c.id = a.customer_id
          WHERE c.msisdn = $1 AND a.kind = 'wallet'",
    )
    .bind(msisdn(n).as_e164())
    .fetch_one(pool)
    .await
    .unwrap()
}
