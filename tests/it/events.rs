//! The event log: every movement posted or rejected is an event for each party account,
//! numbered per account without gaps however many movements run at once, append-only,
//! and valid against the JSON Schema its type ships with (`schemas/events/`).

use std::collections::BTreeMap;

use crate::common::sms::msisdn;
use crate::common::{Store, assert_events, spawn};
use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use ussd_gateway::domain::{Amount, Msisdn, Region};
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

/// PIN lockouts (in a hop that asks for the PIN, and in a send that checks it in the
/// transfer's own statement), an operator's unlock, wrong one-time codes and a biller's
/// changes are events: each names the channel or the actor it came from, none carries a
/// secret, and each has an id of its own however often it happens to its subject.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn lockouts_unlocks_wrong_codes_and_biller_changes_are_events(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let seen = all(&pool).await.len();
    let locked = "END Too many wrong PINs. Your PIN is locked; try again later or call 100.";
    assert_eq!(app.journey("+254700000001", "2*0000*1111*2222").await, locked);
    // Brian's salt is known once his PIN was checked: his send checks it in its statement.
    assert!(app.journey("+254700000002", "2*1234").await.starts_with("END Your balance is"));
    let pinned = app.state.gateway.money().pinned_transfers();
    assert_eq!(app.journey("+254700000002", "1*0700000003*10*1*0000*1111*2222").await, locked);
    assert_eq!(app.state.gateway.money().pinned_transfers(), pinned + 3, "checked in the send's statement");
    // An operator unlocks Amina, who locks herself out again.
    let desk = ussd_gateway::admin::create(&pool, "desk", &["customers:write".into(), "billers".into()])
        .await
        .unwrap();
    let (status, body) =
        app.admin("POST", "/admin/customers/0700000001/pin/unlock", Some(&desk), None, None).await;
    assert_eq!((status, body["was_locked"].as_bool()), (StatusCode::OK, Some(true)), "{body}");
    assert_eq!(app.journey("+254700000001", "2*0000*1111*2222").await, locked);
    // Two wrong one-time codes from Chebet on an SMS channel.
    let chebet = Msisdn::parse("+254700000003", Region::parse("KE").unwrap()).unwrap();
    for _ in 0..2 {
        ussd_gateway::sms::codes::failed(&pool, &chebet, "sms:at-ke").await.unwrap();
    }
    // A biller registered, suspended, given credentials, and "changed" to what it is.
    let power = json!({ "code": "KPLC", "name": "Kenya Power", "account_pattern": "[0-9]{11}",
                        "account_label": "meter number", "fee_payer": "customer",
                        "base_url": "http://127.0.0.1:9/kplc" });
    let calls = [
        ("POST", "/admin/billers", power),
        ("PATCH", "/admin/billers/KPLC", json!({ "status": "suspended" })),
        (
            "PUT",
            "/admin/billers/KPLC/credentials",
            json!({ "api_key": { "header": "X-Api-Key", "value": "kplc-secret-4821" } }),
        ),
        ("PATCH", "/admin/billers/KPLC", json!({ "status": "suspended" })),
    ];
    for (method, path, body) in calls {
        let (status, answer) = app.admin(method, path, Some(&desk), None, Some(body.to_string())).await;
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
    }

    let new: Vec<Event> = all(&pool).await.split_off(seen);
    let got: Vec<(String, serde_json::Value)> =
        new.iter().map(|e| (e.kind().to_owned(), e.envelope["data"].clone())).collect();
    let kinds: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "pin.locked",
            "pin.locked",
            "pin.unlocked",
            "pin.locked",
            "otp.failed",
            "otp.failed",
            "biller.changed",
            "biller.changed",
            "biller.changed"
        ]
    );
    for (_, data) in &got[..4] {
        assert!(data["msisdn"].as_str().unwrap().contains("***"), "masked: {data}");
    }
    assert_eq!(
        (got[0].1["channel"].as_str(), got[0].1["failures"].as_i64()),
        (Some("africastalking"), Some(3))
    );
    assert_eq!(got[1].1["channel"], "africastalking", "the send's own check names it too");
    assert_eq!(got[2].1["by"], "admin");
    assert_eq!((got[4].1["channel"].as_str(), got[5].1["failures"].as_i64()), (Some("sms:at-ke"), Some(2)));
    let changes: Vec<(&str, &serde_json::Value)> =
        got[6..].iter().map(|(_, d)| (d["action"].as_str().unwrap(), &d["changed"])).collect();
    assert_eq!(
        changes,
        [("created", &json!([])), ("updated", &json!(["status"])), ("updated", &json!(["credentials"]))],
        "a change to nothing is no event"
    );
    assert!(got[6..].iter().all(|(_, d)| d["by"] == "admin"));
    let text = serde_json::to_string(&new.iter().map(|e| &e.envelope).collect::<Vec<_>>()).unwrap();
    for secret in ["kplc-secret-4821", "127.0.0.1:9", "+254700000001", "\"1111\"", "\"2222\""] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    // Amina's two lockouts and her unlock: three ids on one subject and account.
    let ids: std::collections::HashSet<&str> = new.iter().map(Event::id).collect();
    assert_eq!(ids.len(), new.len(), "every event has an id of its own");
    new.iter().for_each(valid);
    assert_events(&pool).await;
}
