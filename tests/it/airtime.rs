//! Airtime against an airtime provider that is a local HTTP server speaking the airtime
//! protocol (`/topups`): a top-up paid, refused, answered too late and reconciled,
//! bought concurrently; numbers the provider does not serve; one provider at a time;
//! and the sandbox provider of `--demo` through the menu.

use std::sync::{Arc, Mutex};

use crate::common::*;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use sqlx::PgPool;
use ussd_gateway::domain::{Amount, Msisdn, Region};
use ussd_gateway::money::bills::Bill;
use ussd_gateway::money::seed_demo_billers;
use ussd_gateway::outcome::Outcome;

const AMINA: &str = "+254700000001";
const FRIEND: &str = "+254711000002";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mood {
    TopsUp,
    Refuses,
    /// Tops up, then never answers.
    TopsUpTooLate,
}

#[derive(Clone)]
struct Provider {
    mood: Arc<Mutex<Mood>>,
    /// The requests received: the path and the body (or the reference asked about).
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    /// References applied, once each.
    applied: Arc<Mutex<Vec<String>>>,
}

impl Provider {
    fn set(&self, mood: Mood) {
        *self.mood.lock().unwrap() = mood;
    }
    fn applied(&self) -> Vec<String> {
        self.applied.lock().unwrap().clone()
    }
    fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }
}

fn topped_up(reference: &str) -> Value {
    json!({ "status": "paid", "receipt": format!("AT-{reference}") })
}

async fn top_up(State(p): State<Provider>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    p.calls.lock().unwrap().push(("/topups".into(), body.clone()));
    let reference = body["reference"].as_str().unwrap_or_default().to_owned();
    let mood = *p.mood.lock().unwrap();
    if mood == Mood::Refuses {
        let refusal = json!({ "status": "rejected", "reason": "number barred" });
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(refusal));
    }
    {
        let mut applied = p.applied.lock().unwrap();
        if !applied.contains(&reference) {
            applied.push(reference.clone());
        }
    }
    if mood == Mood::TopsUpTooLate {
        std::future::pending::<()>().await;
    }
    (StatusCode::OK, Json(topped_up(&reference)))
}

async fn status(State(p): State<Provider>, Path(reference): Path<String>) -> (StatusCode, Json<Value>) {
    p.calls.lock().unwrap().push((format!("/topups/{reference}"), Value::Null));
    if p.applied.lock().unwrap().contains(&reference) {
        (StatusCode::OK, Json(topped_up(&reference)))
    } else {
        (StatusCode::NOT_FOUND, Json(json!({ "error": "unknown reference" })))
    }
}

/// Starts an airtime provider on loopback and registers it, serving Kenyan mobile numbers.
async fn provider(pool: &PgPool, mood: Mood) -> Provider {
    let p = Provider { mood: Arc::new(Mutex::new(mood)), calls: Arc::default(), applied: Arc::default() };
    let app = Router::new()
        .route("/topups", post(top_up))
        .route("/topups/{reference}", get(status))
        .with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, app).into_future());
    sqlx::query(
        r"WITH a AS (INSERT INTO accounts (kind, currency, name) VALUES ('biller_settlement', 'KES', 'biller AIR') RETURNING id)
         INSERT INTO billers (code, name, account_pattern, account_label, fee_payer, settlement_account_id, base_url,
                              timeout_ms, category, offer_amounts)
         SELECT 'AIR', 'Airtime', '\+254[17][0-9]{8}', 'phone number', 'biller', a.id, $1, 300, 'airtime', '{2000, 5000}' FROM a",
    )
    .bind(url)
    .execute(pool)
    .await
    .unwrap();
    p
}

fn number(e164: &str) -> Msisdn {
    Msisdn::parse(e164, Region::parse("KE").unwrap()).unwrap()
}

fn minor(amount: i64) -> Amount {
    Amount::from_minor(amount).unwrap()
}

async fn wallet(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT a.balance, a.held FROM accounts a JOIN customers c ON c.id = a.customer_id
          WHERE c.msisdn = $1 AND a.kind = 'wallet'",
    )
    .bind(AMINA)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The provider's settlement: what the operator owes it, over its shards.
async fn settlement(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(a.balance), 0)::bigint FROM accounts a
           JOIN biller_settlement_shards s ON s.account_id = a.id
           JOIN billers b ON b.id = s.biller_id WHERE b.category = 'airtime'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Amina's receipts: template and the number each names.
async fn receipts(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT template, data->>'account' FROM outbox WHERE msisdn = $1 AND transfer_id IS NOT NULL ORDER BY id",
    )
    .bind(AMINA)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn airtime_is_bought_for_another_number_and_a_replay_buys_nothing_more(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let air = provider(&pool, Mood::TopsUp).await;
    let bills = app.state.gateway.money().bills();
    let offer = bills.airtime_offer(&pool, &number(FRIEND)).await.unwrap();
    assert_eq!(offer.outcome, Outcome::Ok);
    assert_eq!(offer.data, json!({ "provider": "Airtime", "to": FRIEND, "amounts": [2000, 5000] }));

    let bought = bills.top_up("air-1", &number(AMINA), &number(FRIEND), minor(50_00)).await.unwrap();
    assert_eq!(bought.outcome, Outcome::Ok, "{:?}", bought.data);
    assert_eq!(bought.data["balance"], 950_00);
    assert_eq!(bought.data["fee"], 0, "airtime costs its face value");
    assert_eq!(wallet(&pool).await, (950_00, 0));
    assert_eq!(settlement(&pool).await, 50_00);
    let reference = bought.data["ref"].as_str().unwrap().to_owned();
    assert_eq!(
        air.calls(),
        [(
            "/topups".to_owned(),
            json!({ "reference": reference, "msisdn": FRIEND, "amount": 5000, "currency": "KES" })
        )],
        "the airtime protocol: our reference, the number in E.164, minor units"
    );
    assert_eq!(receipts(&pool).await, [("airtime_bought".to_owned(), FRIEND.to_owned())]);
    let receipt: Value = sqlx::query_scalar("SELECT data FROM outbox WHERE template = 'airtime_bought'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(receipt["biller_ref"], format!("AT-{reference}"));

    // The hop sent again: the same answer, and nothing more moves or is sent.
    let again = bills.top_up("air-1", &number(AMINA), &number(FRIEND), minor(50_00)).await.unwrap();
    assert_eq!((again.outcome, &again.data["ref"]), (Outcome::Ok, &bought.data["ref"]));
    assert_eq!(wallet(&pool).await, (950_00, 0));
    assert_eq!(air.applied().len(), 1);
    // Replayed after the provider was suspended: still the first answer, not a refusal.
    sqlx::query("UPDATE billers SET status = 'suspended' WHERE code = 'AIR'").execute(&pool).await.unwrap();
    let late = bills.top_up("air-1", &number(AMINA), &number(FRIEND), minor(50_00)).await.unwrap();
    assert_eq!((late.outcome, &late.data["ref"]), (Outcome::Ok, &bought.data["ref"]));
    sqlx::query("UPDATE billers SET status = 'active' WHERE code = 'AIR'").execute(&pool).await.unwrap();
    // The same key for another number is a conflict, not a second top-up.
    let other = bills.top_up("air-1", &number(AMINA), &number(AMINA), minor(50_00)).await.unwrap();
    assert_eq!(other.outcome, Outcome::Conflict);
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_refused_top_up_gives_the_money_back_and_says_why(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    provider(&pool, Mood::Refuses).await;
    let bills = app.state.gateway.money().bills();
    let refused = bills.top_up("air-1", &number(AMINA), &number(FRIEND), minor(20_00)).await.unwrap();
    assert_eq!(refused.outcome, Outcome::BillRejected);
    assert_eq!(refused.data["reason"], "number barred");
    assert_eq!(wallet(&pool).await, (1_000_00, 0));
    assert_eq!(settlement(&pool).await, 0);
    assert_eq!(receipts(&pool).await, [("airtime_refused".to_owned(), FRIEND.to_owned())]);
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_lost_answer_is_held_until_the_status_call_settles_it_once(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let air = provider(&pool, Mood::TopsUpTooLate).await;
    let money = app.state.gateway.money();
    let pending = money.bills().top_up("air-1", &number(AMINA), &number(AMINA), minor(100_00)).await.unwrap();
    assert_eq!(pending.outcome, Outcome::Pending);
    assert_eq!(wallet(&pool).await, (1_000_00, 100_00), "held while the provider has not said");
    assert!(receipts(&pool).await.is_empty());

    air.set(Mood::TopsUp);
    assert_eq!(money.reconcile_bills().await.unwrap(), 1);
    let reference = pending.data["ref"].as_str().unwrap();
    assert!(
        air.calls().iter().any(|(path, _)| *path == format!("/topups/{reference}")),
        "asked through the airtime status call: {:?}",
        air.calls()
    );
    assert_eq!(wallet(&pool).await, (900_00, 0));
    assert_eq!(settlement(&pool).await, 100_00);
    assert_eq!(air.applied(), [reference]);
    assert_eq!(receipts(&pool).await, [("airtime_bought".to_owned(), AMINA.to_owned())]);
    assert_eq!(money.reconcile_bills().await.unwrap(), 0, "nothing left to ask");
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn concurrent_and_duplicated_top_ups_never_overdraw_or_top_up_twice(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let air = provider(&pool, Mood::TopsUp).await;
    // KES 300 each: three fit in KES 1,000; twelve keys, each sent twice at once.
    let mut buyers = tokio::task::JoinSet::new();
    for i in 0..24 {
        let money = app.state.gateway.money().clone();
        buyers.spawn(async move {
            let key = format!("air-{}", i / 2);
            let answer =
                money.bills().top_up(&key, &number(AMINA), &number(FRIEND), minor(300_00)).await.unwrap();
            (i / 2, answer.outcome)
        });
    }
    let answers = buyers.join_all().await;
    for key in 0..12 {
        let both: Vec<_> = answers.iter().filter(|(k, _)| *k == key).map(|(_, o)| *o).collect();
        assert_eq!(both[0], both[1], "duplicates answer alike: {both:?}");
    }
    let bought = answers.iter().filter(|(_, o)| *o == Outcome::Ok).count();
    assert_eq!(bought, 2 * 3, "{answers:?}");
    assert_eq!(wallet(&pool).await, (1_000_00 - 3 * 300_00, 0));
    assert_eq!(air.applied().len(), 3);
    assert_eq!(settlement(&pool).await, 3 * 300_00);
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn only_numbers_the_provider_serves_and_only_one_provider_at_a_time(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let bills = app.state.gateway.money().bills();
    // No provider yet: nothing to offer, nothing bought.
    assert_eq!(bills.airtime_offer(&pool, &number(FRIEND)).await.unwrap().outcome, Outcome::RecipientUnknown);
    let none = bills.top_up("air-0", &number(AMINA), &number(FRIEND), minor(20_00)).await.unwrap();
    assert_eq!(none.outcome, Outcome::RecipientUnknown);

    let air = provider(&pool, Mood::TopsUp).await;
    let landline = number("+254201234567");
    assert_eq!(bills.airtime_offer(&pool, &landline).await.unwrap().outcome, Outcome::AccountInvalid);
    let refused = bills.top_up("air-1", &number(AMINA), &landline, minor(20_00)).await.unwrap();
    assert_eq!(refused.outcome, Outcome::AccountInvalid);
    // Outside the airtime fee bands (KES 5 to 10,000).
    let tiny = bills.top_up("air-2", &number(AMINA), &number(FRIEND), minor(4_00)).await.unwrap();
    assert_eq!(tiny.outcome, Outcome::LimitExceeded);
    // The provider is no biller: not in the catalogue, not payable as a bill.
    let catalogue = bills.catalogue(&pool).await.unwrap();
    assert_eq!(catalogue.data["billers"], json!([]));
    let bill = Bill { biller: "AIR", account: FRIEND, holder: "", amount: minor(20_00) };
    assert_eq!(bills.pay("air-3", &number(AMINA), bill).await.unwrap().outcome, Outcome::RecipientUnknown);
    assert_eq!(
        bills.validate("AIR", FRIEND, minor(20_00)).await.unwrap().unwrap().outcome,
        Outcome::RecipientUnknown
    );
    assert!(air.calls().is_empty(), "nothing reached the provider");
    assert_eq!(wallet(&pool).await, (1_000_00, 0));

    // Through the admin API: a second active provider, or one charging customers, is refused.
    let desk = ussd_gateway::admin::create(&pool, "biller-desk", &["billers".into()]).await.unwrap();
    let second = json!({ "code": "AIR2", "name": "Other airtime", "account_pattern": "\\+254[17][0-9]{8}",
                         "account_label": "phone number", "fee_payer": "biller", "base_url": "http://127.0.0.1:9/air",
                         "category": "airtime", "offer_amounts": [1000, 5e3] });
    let (status, answer) =
        app.admin("POST", "/admin/billers", Some(&desk), None, Some(second.to_string())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"], "another airtime provider is active: suspend it first");
    let mut charging = second.clone();
    charging["fee_payer"] = json!("customer");
    let (status, answer) =
        app.admin("POST", "/admin/billers", Some(&desk), None, Some(charging.to_string())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("`fee_payer` is `biller`"), "{answer}");
    let mut bad_amounts = second.clone();
    bad_amounts["offer_amounts"] = json!([0]);
    let (status, _) =
        app.admin("POST", "/admin/billers", Some(&desk), None, Some(bad_amounts.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Suspend the first, and the second may be registered; it is the one offered now.
    let suspend = json!({ "status": "suspended" }).to_string();
    let (status, _) = app.admin("PATCH", "/admin/billers/AIR", Some(&desk), None, Some(suspend)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, created) =
        app.admin("POST", "/admin/billers", Some(&desk), None, Some(second.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!((&created["category"], &created["offer_amounts"]), (&json!("airtime"), &json!([1000, 5000])));
    let offer = bills.airtime_offer(&pool, &number(FRIEND)).await.unwrap();
    assert_eq!(offer.data["provider"], "Other airtime");
    // And the first cannot come back while the second is active.
    let resume = json!({ "status": "active" }).to_string();
    let (status, answer) = app.admin("PATCH", "/admin/billers/AIR", Some(&desk), None, Some(resume)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_subscriber_buys_airtime_from_the_sandbox_provider_through_the_menu(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    // The sandbox answers on the gateway's own port, as under `--demo`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(axum::serve(listener, app.router.clone()).into_future());
    seed_demo_billers(&pool, &format!("http://127.0.0.1:{port}/sandbox"), "KES").await.unwrap();

    let bought = app.journey(AMINA, "10*1*2*1*1234").await;
    assert!(bought.starts_with("END You bought KES 50.00 of airtime for +254700000001. Ref TX"), "{bought}");
    assert!(bought.ends_with("Balance KES 950.00."), "{bought}");
    let refused = app.journey(AMINA, "10*2*0799000001*1*1*1234").await;
    assert_eq!(
        refused,
        "END The airtime was not bought: this number cannot receive airtime. No money was moved."
    );
    // The sandbox's slow number: topped up, but the answer comes after the provider's
    // timeout; the subscriber is told the money is held and an SMS will follow.
    let slow = app.journey(AMINA, "10*2*0799000002*3*1*1234").await;
    assert!(slow.starts_with("END The airtime provider has not confirmed yet."), "{slow}");
    assert_eq!(wallet(&pool).await, (950_00, 100_00));
    assert_eq!(app.state.gateway.money().reconcile_bills().await.unwrap(), 1);
    assert_eq!(wallet(&pool).await, (850_00, 0));
    let templates: Vec<String> = receipts(&pool).await.into_iter().map(|(t, _)| t).collect();
    assert_eq!(templates, ["airtime_bought", "airtime_refused", "airtime_bought"]);
    assert_ledger_invariants(&pool).await;
}
