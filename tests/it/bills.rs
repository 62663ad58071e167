//! Bill payment against billers that are local HTTP servers: one that pays, one that
//! refuses, one whose answer is lost (it pays, then never answers), one that fails
//! and then recovers; the money held until the biller answers, posted or given back
//! exactly once, and never charged twice.

use std::collections::HashMap;
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

/// How a test biller behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mood {
    Pays,
    Refuses,
    /// Pays, then never answers: the answer is lost.
    PaysTooLate,
    /// 500 to everything.
    Fails,
    /// Down for four calls, up for four, and so on.
    Flaps,
}

#[derive(Default)]
struct Ledger {
    /// Reference → how many `pay` calls the biller received for it.
    pays: HashMap<String, u32>,
    /// References the biller applied.
    paid: Vec<String>,
    calls: u32,
}

#[derive(Clone)]
struct TestBiller {
    mood: Arc<Mutex<Mood>>,
    ledger: Arc<Mutex<Ledger>>,
}

impl TestBiller {
    fn set(&self, mood: Mood) {
        *self.mood.lock().unwrap() = mood;
    }
    fn mood(&self) -> Mood {
        *self.mood.lock().unwrap()
    }
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap()
    }
    /// Counts a call and says whether it fails.
    fn fails(&self, ledger: &mut Ledger) -> bool {
        ledger.calls += 1;
        match self.mood() {
            Mood::Fails => true,
            Mood::Flaps => ((ledger.calls - 1) / 4).is_multiple_of(2),
            _ => false,
        }
    }
}

async fn validate(State(b): State<TestBiller>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let failing = b.fails(&mut b.ledger());
    match (failing, body["account"].as_str()) {
        (true, _) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({}))),
        (_, Some("00000000000")) => (StatusCode::NOT_FOUND, Json(json!({ "error": "no such meter" }))),
        _ => (StatusCode::OK, Json(json!({ "name": "JOHN KAMAU" }))),
    }
}

async fn pay(State(b): State<TestBiller>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let reference = body["reference"].as_str().unwrap_or_default().to_owned();
    let mood = b.mood();
    {
        let mut ledger = b.ledger();
        if b.fails(&mut ledger) {
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({})));
        }
        *ledger.pays.entry(reference.clone()).or_default() += 1;
        if mood == Mood::Refuses {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "status": "rejected", "reason": "meter blocked" })),
            );
        }
        // Idempotent by reference, as the protocol asks.
        if !ledger.paid.contains(&reference) {
            ledger.paid.push(reference.clone());
        }
    }
    if mood == Mood::PaysTooLate {
        // Applied, but the answer never comes: our timeout gives up on it.
        std::future::pending::<()>().await;
    }
    (StatusCode::OK, Json(paid(&reference)))
}

fn paid(reference: &str) -> Value {
    json!({ "status": "paid", "receipt": format!("KP-{reference}"), "token": "1234-5678-9012-3456-7890" })
}

async fn status(State(b): State<TestBiller>, Path(reference): Path<String>) -> (StatusCode, Json<Value>) {
    let mut ledger = b.ledger();
    if b.fails(&mut ledger) {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({})));
    }
    if ledger.paid.contains(&reference) {
        (StatusCode::OK, Json(paid(&reference)))
    } else {
        (StatusCode::NOT_FOUND, Json(json!({ "error": "unknown reference" })))
    }
}

/// Starts a biller on loopback and registers it as `code` (customer pays the fee).
async fn biller(pool: &PgPool, code: &str, mood: Mood) -> TestBiller {
    let b = TestBiller { mood: Arc::new(Mutex::new(mood)), ledger: Arc::default() };
    let app = Router::new()
        .route("/validate", post(validate))
        .route("/pay", post(pay))
        .route("/payments/{reference}", get(status))
        .with_state(b.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, app).into_future());
    register_biller(pool, code, &url, 300).await;
    b
}

fn bill<'a>(code: &'a str, amount: i64) -> Bill<'a> {
    Bill { biller: code, account: "12345678901", holder: "JOHN KAMAU", amount: minor(amount) }
}

fn minor(amount: i64) -> Amount {
    Amount::from_minor(amount).unwrap()
}

fn amina() -> Msisdn {
    Msisdn::parse(AMINA, Region::parse("KE").unwrap()).unwrap()
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

/// A biller's settlement balance: the sum of its shards.
async fn settlement(pool: &PgPool, code: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(a.balance), 0)::bigint FROM accounts a
           JOIN biller_settlement_shards s ON s.account_id = a.id
           JOIN billers b ON b.id = s.biller_id WHERE b.code = $1",
    )
    .bind(code)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// How many of a biller's settlement shards hold money.
async fn shards_paid(pool: &PgPool, code: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM accounts a JOIN biller_settlement_shards s ON s.account_id = a.id
           JOIN billers b ON b.id = s.biller_id WHERE b.code = $1 AND a.balance > 0",
    )
    .bind(code)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn templates(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT template FROM outbox WHERE msisdn = $1 AND transfer_id IS NOT NULL ORDER BY id",
    )
    .bind(AMINA)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_paid_bill_is_posted_with_the_billers_token_and_a_replay_pays_nothing_more(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let kplc = biller(&pool, "KPLC", Mood::Pays).await;
    let bills = app.state.gateway.money().bills();

    let checked = bills.validate("KPLC", "12345678901", minor(500_00)).await.unwrap().unwrap();
    assert_eq!(checked.outcome, Outcome::Ok);
    assert_eq!(checked.data["holder"], "JOHN KAMAU");
    assert_eq!(checked.data["fee"], 5_00);
    let unknown = bills.validate("KPLC", "00000000000", minor(500_00)).await.unwrap().unwrap();
    assert_eq!(unknown.outcome, Outcome::AccountInvalid);
    let malformed = bills.validate("KPLC", "123", minor(500_00)).await.unwrap().unwrap();
    assert_eq!(
        malformed.outcome,
        Outcome::AccountInvalid,
        "checked against the pattern, the biller not asked"
    );
    assert_eq!(kplc.ledger().calls, 2);

    let paid = bills.pay("bill-1", &amina(), bill("KPLC", 500_00)).await.unwrap();
    assert_eq!(paid.outcome, Outcome::Ok, "{paid:?}");
    assert_eq!(paid.data["token"], "1234-5678-9012-3456-7890");
    assert_eq!(paid.data["balance"], 1_000_00 - 505_00);
    assert_eq!(wallet(&pool).await, (495_00, 0));
    assert_eq!(settlement(&pool, "KPLC").await, 500_00);
    assert_eq!(templates(&pool).await, ["bill_paid"]);

    let again = bills.pay("bill-1", &amina(), bill("KPLC", 500_00)).await.unwrap();
    assert_eq!(again, paid, "a replay answers as the first did");
    assert_eq!(kplc.ledger().pays.values().sum::<u32>(), 1, "and does not ask the biller again");
    assert_eq!(wallet(&pool).await, (495_00, 0));
    let other = bills.pay("bill-1", &amina(), bill("KPLC", 600_00)).await.unwrap();
    assert_eq!(other.outcome, Outcome::Conflict);
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_refused_bill_gives_the_money_back_and_says_why(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    biller(&pool, "KPLC", Mood::Refuses).await;
    let refused =
        app.state.gateway.money().bills().pay("bill-1", &amina(), bill("KPLC", 500_00)).await.unwrap();
    assert_eq!(refused.outcome, Outcome::BillRejected);
    assert_eq!(refused.data["reason"], "meter blocked");
    assert_eq!(wallet(&pool).await, (1_000_00, 0));
    assert_eq!(settlement(&pool, "KPLC").await, 0);
    assert_eq!(templates(&pool).await, ["bill_rejected"]);
    let status: String = sqlx::query_scalar("SELECT status FROM transfers WHERE kind = 'bill'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "voided");
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_lost_answer_stays_pending_until_reconciled_and_never_charges_twice(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let kplc = biller(&pool, "KPLC", Mood::PaysTooLate).await;
    let money = app.state.gateway.money();
    let pending = money.bills().pay("bill-1", &amina(), bill("KPLC", 500_00)).await.unwrap();
    assert_eq!(pending.outcome, Outcome::Pending);
    assert_eq!(wallet(&pool).await, (1_000_00, 505_00), "held while the biller has not said");
    assert!(templates(&pool).await.is_empty());
    // The subscriber retries the same hop: still pending, still one payment.
    let again = money.bills().pay("bill-1", &amina(), bill("KPLC", 500_00)).await.unwrap();
    assert_eq!(again.outcome, Outcome::Pending);

    kplc.set(Mood::Pays);
    assert_eq!(money.reconcile_bills().await.unwrap(), 1);
    assert_eq!(wallet(&pool).await, (495_00, 0));
    assert_eq!(settlement(&pool, "KPLC").await, 500_00);
    assert_eq!(templates(&pool).await, ["bill_paid"]);
    assert_eq!(kplc.ledger().paid.len(), 1, "the biller applied it once");
    assert_eq!(money.reconcile_bills().await.unwrap(), 0, "nothing left to ask");
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_failing_biller_trips_its_breaker_and_payments_resolve_when_it_recovers(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let kplc = biller(&pool, "KPLC", Mood::Fails).await;
    let bills = app.state.gateway.money().bills();
    for i in 0..7 {
        let answer = bills.pay(&format!("bill-{i}"), &amina(), bill("KPLC", 100_00)).await.unwrap();
        assert_eq!(answer.outcome, Outcome::Pending);
    }
    assert_eq!(kplc.ledger().calls, 5, "after five failures the breaker stops calling");
    assert_eq!(wallet(&pool).await, (1_000_00, 7 * 100_00));
    // While it is open, checking an account says the service is unavailable.
    assert_eq!(bills.validate("KPLC", "12345678901", minor(100_00)).await.unwrap(), None);

    // The biller recovers; a restarted gateway (a fresh breaker) reconciles every
    // payment: none was received, so each is sent again under its reference.
    kplc.set(Mood::Pays);
    let restarted = spawn(pool.clone(), Store::Memory).await;
    sqlx::query("UPDATE bill_payments SET next_check_at = now()").execute(&pool).await.unwrap();
    assert_eq!(restarted.state.gateway.money().reconcile_bills().await.unwrap(), 7);
    assert_eq!(wallet(&pool).await, (1_000_00 - 7 * 100_00, 0));
    assert_eq!(kplc.ledger().paid.len(), 7);
    assert_eq!(settlement(&pool, "KPLC").await, 7 * 100_00);
    assert!(shards_paid(&pool, "KPLC").await > 1, "seven payments credit more than one shard");
    assert_ledger_invariants(&pool).await;
}

/// SETTLEMENT_SHARDS raised opens the new accounts for every biller and for funding;
/// lowered, payments use only the first shards and the others keep what they hold.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_settlement_shard_count_is_a_setting(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let _kplc = biller(&pool, "KPLC", Mood::Pays).await;
    let money = app.state.gateway.money();
    ussd_gateway::money::ledger::set_settlement_shards(&pool, 12).await.unwrap();
    let shards = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
    };
    assert_eq!(shards("SELECT count(*) FROM biller_settlement_shards s JOIN billers b ON b.id = s.biller_id WHERE b.code = 'KPLC'").await, 12);
    assert_eq!(
        shards("SELECT count(*) FROM accounts WHERE kind = 'suspense' AND name = 'funding'").await,
        12
    );
    ussd_gateway::money::ledger::set_settlement_shards(&pool, 2).await.unwrap();
    for i in 0..6 {
        assert_eq!(
            money.bills().pay(&format!("few-{i}"), &amina(), bill("KPLC", 10_00)).await.unwrap().outcome,
            Outcome::Ok
        );
    }
    let used: Vec<i16> = sqlx::query_scalar(
        "SELECT DISTINCT s.shard FROM transfers t JOIN biller_settlement_shards s ON s.account_id = t.credit_account_id
          WHERE t.kind = 'bill' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(used, [0, 1]);
    assert_eq!(settlement(&pool, "KPLC").await, 6 * 10_00);
    assert_ledger_invariants(&pool).await;
}

/// Payments to one biller from many subscribers at once spread over its settlement
/// shards (and the demo's funding over the funding shards): none queues on one row,
/// and the books balance.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn payments_to_one_biller_spread_over_its_settlement_shards(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let kplc = biller(&pool, "KPLC", Mood::Pays).await;
    let payments = (1..=10u32).flat_map(|n| (0..4).map(move |i| (n, i))).map(|(n, i)| {
        let money = app.state.gateway.money().clone();
        tokio::spawn(async move {
            let payer = Msisdn::parse(&format!("+2547{n:08}"), Region::parse("KE").unwrap()).unwrap();
            money.bills().pay(&format!("spread-{n}-{i}"), &payer, bill("KPLC", 10_00)).await.unwrap().outcome
        })
    });
    for paid in futures_util::future::join_all(payments).await {
        assert_eq!(paid.unwrap(), Outcome::Ok);
    }
    assert_eq!(kplc.ledger().paid.len(), 40);
    assert_eq!(settlement(&pool, "KPLC").await, 40 * 10_00);
    assert_eq!(shards_paid(&pool, "KPLC").await, 8, "forty payments in a row use every shard");
    let funding: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM accounts WHERE kind = 'suspense' AND name = 'funding' AND balance < 0",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(funding > 1, "the demo's ten opening deposits come from {funding} funding shard(s)");
    let listed = ussd_gateway::admin::billers::list(&pool).await.unwrap();
    let kplc = listed["billers"].as_array().unwrap().iter().find(|b| b["code"] == "KPLC").unwrap().clone();
    assert_eq!(kplc["settlement"]["balance"], 40 * 10_00, "{kplc}");
    assert_eq!(kplc["settlement"]["shards"], 8);
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn concurrent_and_duplicated_payments_never_overdraw_or_pay_twice(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let kplc = biller(&pool, "KPLC", Mood::Pays).await;
    // KES 300 and a KES 5 fee each: three fit in KES 1,000; twelve keys, each sent twice at once.
    let mut payers = tokio::task::JoinSet::new();
    for i in 0..24 {
        let money = app.state.gateway.money().clone();
        payers.spawn(async move {
            let answer =
                money.bills().pay(&format!("bill-{}", i / 2), &amina(), bill("KPLC", 300_00)).await.unwrap();
            (i / 2, answer.outcome)
        });
    }
    let answers = payers.join_all().await;
    for key in 0..12 {
        let both: Vec<_> = answers.iter().filter(|(k, _)| *k == key).map(|(_, o)| *o).collect();
        assert_eq!(both[0], both[1], "duplicates answer alike: {both:?}");
    }
    let paid = answers.iter().filter(|(_, o)| *o == Outcome::Ok).count();
    assert_eq!(paid, 2 * 3, "{answers:?}");
    assert_eq!(wallet(&pool).await, (1_000_00 - 3 * 305_00, 0));
    assert_eq!(kplc.ledger().paid.len(), 3);
    assert_eq!(settlement(&pool, "KPLC").await, 3 * 300_00);
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_subscriber_pays_the_sandbox_billers_through_the_menu(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    // The sandbox billers answer on the gateway's own port, as under `--demo`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(axum::serve(listener, app.router.clone()).into_future());
    seed_demo_billers(&pool, &format!("http://127.0.0.1:{port}/sandbox"), "KES").await.unwrap();

    let s = unique_session();
    app.at_hop(&s, AMINA, "").await;
    assert_eq!(
        app.at_hop(&s, AMINA, "8").await,
        "CON Pay bill\n1. Kenya Power prepaid\n2. Nairobi Water\n0. Back"
    );
    assert_eq!(app.at_hop(&s, AMINA, "8*1").await, "CON Enter meter number");
    assert_eq!(app.at_hop(&s, AMINA, "8*1*00000000000").await, "CON Enter amount");
    assert_eq!(
        app.at_hop(&s, AMINA, "8*1*00000000000*500").await,
        "CON No such meter number.\nEnter meter number"
    );
    app.at_hop(&s, AMINA, "8*1*00000000000*500*12345678901").await;
    let confirm = app.at_hop(&s, AMINA, "8*1*00000000000*500*12345678901*500").await;
    assert!(confirm.starts_with("CON Pay KES 500.00 to Kenya Power prepaid for "), "{confirm}");
    assert!(confirm.ends_with(", 12345678901? Fee KES 5.00.\n1. Yes\n2. No\n0. Back"), "{confirm}");
    assert_eq!(
        app.at_hop(&s, AMINA, "8*1*00000000000*500*12345678901*500*1").await,
        "CON Enter PIN to pay KES 500.00"
    );
    let paid = app.at_hop(&s, AMINA, "8*1*00000000000*500*12345678901*500*1*1234").await;
    let token: String = sqlx::query_scalar("SELECT token FROM bill_payments").fetch_one(&pool).await.unwrap();
    assert_eq!(token.len(), 24, "five groups of four digits: {token}");
    assert!(
        paid.starts_with(&format!("END Paid KES 500.00 to Kenya Power prepaid. Token {token}. Ref TX")),
        "{paid}"
    );
    assert!(paid.ends_with("Balance KES 495.00."), "{paid}");
    assert_eq!(templates(&pool).await, ["bill_paid"]);

    // Water: the biller pays the fee out of the amount; and a blocked meter is refused.
    let water = app.journey(AMINA, "8*2*1234567*200*1*1234").await;
    assert!(water.starts_with("END Paid KES 200.00 to Nairobi Water. Ref TX"), "{water}");
    assert!(water.ends_with("Balance KES 295.00."), "{water}");
    assert_eq!(settlement(&pool, "WATER").await, 200_00 - 5_00);
    let blocked = app.journey(AMINA, "8*1*99999999999*100*1*1234").await;
    assert_eq!(blocked, "END Kenya Power prepaid refused the payment: account blocked. No money was moved.");
    assert_eq!(wallet(&pool).await, (295_00, 0));
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn billers_are_registered_and_listed_through_the_admin_api(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let desk = ussd_gateway::admin::create(&pool, "biller-desk", &["billers".into()]).await.unwrap();
    let agents_only = ussd_gateway::admin::create(&pool, "agent-desk", &["agents".into()]).await.unwrap();
    let power = json!({ "code": "KPLC", "name": "Kenya Power", "account_pattern": "[0-9]{11}",
                        "account_label": "meter number", "fee_payer": "customer", "base_url": "http://127.0.0.1:9/kplc" });
    let with = |key: &str, value: Value| {
        let mut body = power.clone();
        body[key] = value;
        body
    };
    // 400: the request breaks the OpenAPI document; 422: it keeps to it, but cannot be.
    let (bad, unacceptable) = (StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY);
    for (body, status, says) in [
        (with("code", json!("kplc")), bad, "`code` `kplc` must be 2 to 12 capital letters"),
        (
            with("account_pattern", json!("[0-9")),
            unacceptable,
            "`account_pattern` `[0-9` is not a regular expression",
        ),
        (
            with("account_pattern", json!("1".repeat(201))),
            bad,
            "`account_pattern` must be at most 200 characters",
        ),
        (with("fee_payer", json!("nobody")), bad, "`fee_payer` `nobody` must be `customer` or `biller`"),
        (with("base_url", json!("ftp://x")), bad, "`base_url` `ftp://x` must be an http:// or https:// URL"),
        (with("base_url", json!("http://\u{2003}x")), bad, "must be an http:// or https:// URL"),
        (with("base_url", json!("http://[")), unacceptable, "is not a URL with a host"),
        (
            with("base_url", json!("http://169.254.169.254/latest")),
            unacceptable,
            "names an address the gateway must not call",
        ),
        (
            with("base_url", json!("http://[fd00:ec2::254]/")),
            unacceptable,
            "names an address the gateway must not call",
        ),
        (
            with("base_url", json!("http://[::ffff:169.254.169.254]/")),
            unacceptable,
            "names an address the gateway must not call",
        ),
        (
            with("base_url", json!("http://metadata.google.internal/")),
            unacceptable,
            "names an address the gateway must not call",
        ),
        (
            with("base_url", json!("http://0.0.0.0:80/")),
            unacceptable,
            "names an address the gateway must not call",
        ),
        (
            with("base_url", json!("https://user:pw@biller.example/")),
            unacceptable,
            "must not carry credentials",
        ),
        (with("timeout_ms", json!(5)), bad, "`timeout_ms` must be 100 to 30000"),
        (with("timeout_ms", json!(50.5)), bad, "is not a whole number"),
        (with("colour", json!("red")), bad, "unknown field `colour`"),
    ] {
        let (got, answer) =
            app.admin("POST", "/admin/billers", Some(&desk), None, Some(body.to_string())).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{body}: {answer}");
    }
    let (status, _) =
        app.admin("POST", "/admin/billers", Some(&agents_only), None, Some(power.to_string())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, created) =
        app.admin("POST", "/admin/billers", Some(&desk), None, Some(power.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["code"], "KPLC");
    assert_eq!(created["settlement"]["balance"], 0);
    let (status, taken) =
        app.admin("POST", "/admin/billers", Some(&desk), None, Some(power.to_string())).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(taken["error"], "biller code KPLC is taken");
    let water = with("code", json!("WATER"));
    assert_eq!(
        app.admin("POST", "/admin/billers", Some(&desk), None, Some(water.to_string())).await.0,
        StatusCode::CREATED
    );

    let (status, all) = app.admin("GET", "/admin/billers", Some(&desk), None, None).await;
    assert_eq!(status, StatusCode::OK);
    let codes: Vec<&str> =
        all["billers"].as_array().unwrap().iter().map(|b| b["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["KPLC", "WATER"]);
    assert_eq!(all["billers"][0]["pending_payments"], 0);
    // Every call is in the audit trail, refusals included.
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_audit WHERE route = '/admin/billers'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(audited, 16 + 1 + 2 + 1 + 1);
    // The registered biller is in the menu's catalogue.
    let catalogue = app.state.gateway.money().bills().catalogue(&app.pool).await.unwrap();
    assert_eq!(catalogue.data["billers"][0]["label"], "meter number");
}

/// `bill_hold` straight through the ledger: its outcome and fee.
async fn hold(pool: &PgPool, key: &str, from: &str, amount: i64) -> (String, i64) {
    sqlx::query_as(
        "SELECT outcome, fee FROM bill_hold($1, '\\x01', $2, 'KPLC', '12345678901', 'JOHN KAMAU', $3)",
    )
    .bind(key)
    .bind(from)
    .bind(amount)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn bill_fees_are_exact_at_band_boundaries_and_held_bills_count_against_the_day(pool: PgPool) {
    let _app = spawn(pool.clone(), Store::Memory).await;
    biller(&pool, "KPLC", Mood::Fails).await;
    // A verified customer rich enough that only the bands decide.
    let rich = "+254711000001";
    customer(&pool, rich, 2, 2_000_000_00).await;
    let bands = [
        (99, None),
        (1_00, Some(0)),
        (100_00, Some(0)),
        (100_01, Some(5_00)),
        (500_00, Some(5_00)),
        (500_01, Some(10_00)),
        (1_000_00, Some(10_00)),
        (1_000_01, Some(20_00)),
        (2_500_00, Some(20_00)),
        (2_500_01, Some(34_00)),
        (5_000_00, Some(34_00)),
        (5_000_01, Some(48_00)),
        (10_000_00, Some(48_00)),
        (10_000_01, Some(62_00)),
        (20_000_00, Some(62_00)),
        (20_000_01, Some(72_00)),
        (50_000_00, Some(72_00)),
        (50_000_01, Some(83_00)),
        (250_000_00, Some(83_00)),
        (250_000_01, None),
    ];
    for (i, (amount, fee)) in bands.into_iter().enumerate() {
        // Each hold is released before the next, so the day's limit never decides here.
        let (outcome, charged) = hold(&pool, &format!("band-{i}"), rich, amount).await;
        match fee {
            Some(fee) => assert_eq!((outcome.as_str(), charged), ("ok", fee), "KES {amount} minor"),
            None => assert_eq!(outcome, "limit_exceeded", "{amount} minor"),
        }
        sqlx::query("SELECT bill_settle(transfer_id, false, NULL, NULL, 'test') FROM bill_payments WHERE state = 'pending'")
            .execute(&pool)
            .await
            .unwrap();
    }

    // A basic customer may debit KES 140,000 a day: two pending KES 60,000 bills leave
    // no room for a third, though none is posted yet.
    let basic = "+254711000002";
    customer(&pool, basic, 1, 500_000_00).await;
    assert_eq!(hold(&pool, "day-1", basic, 60_000_00).await.0, "ok");
    assert_eq!(hold(&pool, "day-2", basic, 60_000_00).await.0, "ok");
    assert_eq!(hold(&pool, "day-3", basic, 60_000_00).await.0, "limit_exceeded");
    assert_eq!(hold(&pool, "day-4", basic, 20_000_00).await.0, "ok");
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn payments_to_a_flapping_biller_all_resolve_once(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let kplc = biller(&pool, "KPLC", Mood::Flaps).await;
    let money = app.state.gateway.money();
    let mut pending = 0;
    for i in 0..6 {
        let answer = money.bills().pay(&format!("bill-{i}"), &amina(), bill("KPLC", 100_00)).await.unwrap();
        assert!(matches!(answer.outcome, Outcome::Ok | Outcome::Pending), "{answer:?}");
        pending += usize::from(answer.outcome == Outcome::Pending);
    }
    assert!(pending > 0, "the first four calls fail");
    // Failures never come five in a row, so the breaker stays shut; each pass asks
    // every pending payment once, as if its next check were due.
    for _ in 0..10 {
        sqlx::query("UPDATE bill_payments SET next_check_at = now() WHERE state = 'pending'")
            .execute(&pool)
            .await
            .unwrap();
        money.reconcile_bills().await.unwrap();
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM bill_payments WHERE state = 'pending'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(kplc.ledger().paid.len(), 6);
    assert_eq!(wallet(&pool).await, (1_000_00 - 6 * 100_00, 0));
    assert_eq!(settlement(&pool, "KPLC").await, 6 * 100_00);
    assert_eq!(templates(&pool).await, ["bill_paid"; 6]);
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_changed_or_suspended_biller_settles_what_it_holds_as_it_was_held(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let kplc = biller(&pool, "KPLC", Mood::Fails).await;
    let desk = ussd_gateway::admin::create(&pool, "biller-desk", &["billers".into()]).await.unwrap();
    let patch =
        |body: Value| app.admin("PATCH", "/admin/billers/KPLC", Some(&desk), None, Some(body.to_string()));
    // Held with the customer paying the fee (KES 500 + KES 5) while the biller is down.
    let money = app.state.gateway.money();
    assert_eq!(
        money.bills().pay("bill-1", &amina(), bill("KPLC", 500_00)).await.unwrap().outcome,
        Outcome::Pending
    );
    assert_eq!(wallet(&pool).await, (1_000_00, 505_00));

    let (status, refused) = patch(json!({ "status": "closed" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["error"], "`status` `closed` must be `active` or `suspended`");
    let (status, _) = app.admin("PATCH", "/admin/billers/NOPE", Some(&desk), None, Some("{}".into())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.admin("PATCH", "/admin/billers/nope", Some(&desk), None, Some("{}".into())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not a biller code at all");
    // The document gives no field `null`; and its `integer` takes 4000.0, so the API does.
    let (status, refused) = patch(json!({ "base_url": null })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (status, changed) = patch(json!({ "timeout_ms": 4000.0 })).await;
    assert_eq!((status, &changed["timeout_ms"]), (StatusCode::OK, &json!(4000)), "{changed}");
    let (status, changed) = patch(json!({ "fee_payer": "biller", "status": "suspended" })).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (changed["fee_payer"].as_str(), changed["status"].as_str()),
        (Some("biller"), Some("suspended"))
    );
    assert_eq!(changed["pending_payments"], 1);

    // Suspended: out of the menu, new payments refused, the pending one still reconciled.
    let catalogue = money.bills().catalogue(money.read_pool().await).await.unwrap();
    assert_eq!(catalogue.data["billers"], json!([]));
    assert_eq!(
        money.bills().pay("bill-2", &amina(), bill("KPLC", 100_00)).await.unwrap().outcome,
        Outcome::AccountBlocked
    );
    kplc.set(Mood::Pays);
    let restarted = spawn(pool.clone(), Store::Memory).await;
    sqlx::query("UPDATE bill_payments SET next_check_at = now()").execute(&pool).await.unwrap();
    assert_eq!(restarted.state.gateway.money().reconcile_bills().await.unwrap(), 1);
    // Settled as held: the customer paid the fee, the biller gets the whole amount.
    assert_eq!(wallet(&pool).await, (495_00, 0));
    assert_eq!(settlement(&pool, "KPLC").await, 500_00);
    assert_ledger_invariants(&pool).await;
}
