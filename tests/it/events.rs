//! The event log: every movement posted or rejected is an event for each party account,
//! numbered per account without gaps however many movements run at once, append-only,
//! and valid against the JSON Schema its type ships with (`schemas/events/`).

use std::collections::BTreeMap;

use crate::common::sms::msisdn;
use sqlx::PgPool;
use ussd_gateway::domain::Amount;
use ussd_gateway::money::events::{self, Event};
use ussd_gateway::money::{PinHasher, seed_demo};

async fn seeded(pool: &PgPool) {
    seed_demo(pool, &PinHasher::new(b"pepper"), "KES", 10).await.unwrap();
}

async fn all(pool: &PgPool) -> Vec<Event> {
    events::after(pool, 0, 100_000).await.unwrap()
}

/// Checks `event` against the schema of its type; panics with the reasons.
fn valid(event: &Event) {
    let errors: Vec<String> = crate::common::event_schema(event.kind())
        .iter_errors(&event.envelope)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{}: {errors:?}", event.envelope);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn concurrent_movements_number_each_accounts_events_without_gaps(pool: PgPool) {
    seeded(&pool).await;
    let before = all(&pool).await.len();
    // Sixteen senders, each sending to the others, some more than they have.
    let tasks: Vec<_> = (1..=16u32)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..25u32 {
                    let from = (task + i) % 10 + 1;
                    let to = (task + 2 * i + 1) % 10 + 1;
                    let minor = if i % 7 == 0 { 5_000_000 } else { i64::from(100 + i * 37) };
                    let key = format!("ev:{task}:{i}");
                    let amount = Amount::from_minor(minor).unwrap();
                    ussd_gateway::money::transfer_p2p(&pool, &key, &msisdn(from), &msisdn(to), amount)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let events = all(&pool).await;
    let mut by_account: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in &events {
        valid(e);
        by_account
            .entry(e.envelope["account"].as_str().unwrap().to_owned())
            .or_default()
            .push(e.envelope["sequence"].as_i64().unwrap());
    }
    for (account, sequences) in &by_account {
        let expected: Vec<i64> = (1..=sequences.len() as i64).collect();
        assert_eq!(sequences, &expected, "{account}: numbered in the log's order, from 1, without gaps");
    }
    // One event per party of each posted transfer, one for the payer of each refused one.
    let (posted, rejected): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'posted'), count(*) FILTER (WHERE status = 'rejected' AND debit_account_id IS NOT NULL)
           FROM transfers WHERE idempotency_key LIKE 'ev:%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(posted > 0 && rejected > 0, "{posted} posted, {rejected} refused");
    assert_eq!((events.len() - before) as i64, 2 * posted + rejected);
    let ids: std::collections::HashSet<&str> =
        events.iter().map(|e| e.envelope["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "event ids are unique");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn each_movement_has_its_events(pool: PgPool) {
    seeded(&pool).await;
    // The demo's ten subscribers: each wallet's first event is its registration, its
    // second the opening deposit (none for the funding suspense account).
    let opening = all(&pool).await;
    assert_eq!(opening.len(), 20);
    for e in &opening {
        valid(e);
        let expected = match e.sequence() {
            1 => "customer.registered",
            2 => "account.funded",
            n => panic!("sequence {n}: {}", e.envelope),
        };
        assert_eq!(e.kind(), expected, "{}", e.envelope);
    }
    assert!(
        opening
            .iter()
            .filter(|e| e.kind() == "account.funded")
            .all(|e| e.envelope["data"]["direction"] == "credit")
    );
    assert!(opening.iter().any(|e| e.envelope["data"]["msisdn"] == "+254700***001"), "numbers are masked");

    let sent = ussd_gateway::money::transfer_p2p(
        &pool,
        "k1",
        &msisdn(1),
        &msisdn(2),
        Amount::from_minor(250_00).unwrap(),
    )
    .await
    .unwrap();
    let refused = ussd_gateway::money::transfer_p2p(
        &pool,
        "k2",
        &msisdn(1),
        &msisdn(2),
        Amount::from_minor(5_000_00).unwrap(),
    )
    .await
    .unwrap();
    ussd_gateway::money::reverse(&pool, sent.transfer_id, true, "wrong number").await.unwrap();
    let last = opening.last().unwrap().position;
    let new = events::after(&pool, last, 100).await.unwrap();
    let seen: Vec<(String, String, i64)> = new
        .iter()
        .map(|e| {
            valid(e);
            let d = &e.envelope["data"];
            (
                e.kind().to_owned(),
                d["direction"].as_str().unwrap_or(d["reason"].as_str().unwrap_or_default()).to_owned(),
                e.envelope["sequence"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("transfer.posted".into(), "debit".into(), 3),
            ("transfer.posted".into(), "credit".into(), 3),
            ("transfer.rejected".into(), "insufficient_funds".into(), 4),
            ("transfer.reversed".into(), "debit".into(), 4),
            ("transfer.reversed".into(), "credit".into(), 5),
        ]
    );
    assert_eq!(new[0].envelope["subject"], sent.reference());
    assert_eq!(new[2].envelope["subject"], refused.reference());
    assert_eq!(new[0].envelope["data"]["fee"], sent.fee);
    assert_eq!(new[0].envelope["data"]["counterparty"], new[1].envelope["account"]);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn events_are_append_only(pool: PgPool) {
    seeded(&pool).await;
    for sql in ["UPDATE events SET data = '{}'", "DELETE FROM events"] {
        let err = sqlx::query(sql).execute(&pool).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}
