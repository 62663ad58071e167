//! Paying merchants: Buy Goods at a till and Paybill, onboarded through the admin API.
//! Every fee band and fee payer at its edges, a suspended merchant, an account of the
//! wrong shape, replays, a receipt to each side, many customers paying one till at
//! once, and a paybill's validation URL (a local server) accepting, rejecting and
//! silent under each default; the ledger invariants after each.

use std::sync::{Arc, Mutex};

use crate::common::*;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use ussd_gateway::domain::{Amount, MerchantNumber, Msisdn, Region};
use ussd_gateway::money::merchants::{self, MerchantKind, MerchantPayment};
use ussd_gateway::money::{Money, seed_demo_merchants};
use ussd_gateway::outcome::{OpResult, Outcome};
use ussd_gateway::{admin, signature};

/// A customer of this test's own (the demo subscribers are seeded by `spawn`).
const PAYER: &str = "+254711000001";
const AMINA: &str = "+254700000001";
const OWNER: &str = "+254700000099";
const SHOP_PHONE: &str = "+254700000098";

fn ke() -> Region {
    Region::parse("KE").unwrap()
}

fn msisdn(text: &str) -> Msisdn {
    Msisdn::parse(text, ke()).unwrap()
}

fn number(text: &str) -> MerchantNumber {
    MerchantNumber::parse(text).unwrap()
}

async fn token(pool: &PgPool, scopes: &str) -> String {
    admin::create(pool, &format!("t{:08x}", rand::random::<u32>()), &[scopes.into()]).await.unwrap()
}

/// Onboards `body` through the admin API; the status and answer.
async fn onboard(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    app.admin("POST", "/admin/merchants", Some(token), None, Some(body.to_string())).await
}

fn till_merchant(fee_class: &str) -> Value {
    json!({
        "kind": "till", "legal_name": "Mama Mboga Groceries Ltd", "display_name": "Mama Mboga",
        "owner": OWNER, "notify_msisdn": OWNER, "fee_class": fee_class,
        "stores": [
            { "store_number": "1001", "name": "Westlands", "tills": ["512345", "512346"] },
            { "store_number": "1002", "name": "Kilimani", "notify_msisdn": SHOP_PHONE, "tills": ["512347"] },
        ],
    })
}

fn paybill(business: &str, fee_class: &str, fee_payer: &str) -> Value {
    json!({
        "kind": "paybill", "business_number": business, "legal_name": format!("Business {business}"),
        "display_name": format!("Biz {business}"), "owner": OWNER, "notify_msisdn": OWNER,
        "fee_class": fee_class, "fee_payer": fee_payer,
        "account_pattern": "[0-9]{4,8}", "account_label": "account number",
    })
}

async fn pay(money: &Money, key: &str, from: &str, kind: MerchantKind, to: &str, amount: i64) -> OpResult {
    let from = msisdn(from);
    let to = number(to);
    let account = (kind == MerchantKind::Paybill).then_some("123456");
    let payment = MerchantPayment {
        key,
        from: &from,
        kind,
        number: &to,
        account,
        amount: Amount::from_minor(amount).unwrap(),
    };
    merchants::pay(money.lane(), &payment).await.unwrap()
}

/// A merchant's settlement balance (the sum of its shards), found by a till or
/// business number.
async fn settlement(pool: &PgPool, kind: &str, number: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(a.balance), 0)::bigint FROM merchant_target($1, $2) t
           JOIN merchant_settlement_shards s ON s.merchant_id = t.merchant_id
           JOIN accounts a ON a.id = s.account_id",
    )
    .bind(kind)
    .bind(number)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn fee_revenue(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT sum(balance)::bigint FROM accounts WHERE kind = 'fee_revenue'")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn every_fee_band_and_fee_payer_holds_at_its_edges(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let money = app.state.gateway.money();
    let wallet = customer(&pool, PAYER, 2, 200_000_00).await;
    customer(&pool, OWNER, 2, 0).await;
    let root = token(&pool, "merchants").await;
    for body in [
        till_merchant("standard"),
        paybill("888880", "tariff", "customer"),
        paybill("888881", "standard", "merchant"),
        paybill("888882", "standard", "split"),
    ] {
        let (status, answer) = onboard(&app, &root, body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }

    // (kind, number, amount, the whole fee, the customer's part of it)
    let cases: &[(MerchantKind, &str, i64, i64, i64)] = &[
        // Buy Goods, standard: free to 100.00, then 0.5% rounded down, capped at 200.00.
        (MerchantKind::Till, "512345", 100_00, 0, 0),
        (MerchantKind::Till, "512345", 100_01, 50, 0),
        (MerchantKind::Till, "512346", 39_999_99, 199_99, 0),
        (MerchantKind::Till, "512347", 40_000_00, 200_00, 0),
        (MerchantKind::Till, "512345", 40_000_01, 200_00, 0),
        // A tariff the customer pays: fixed charges by band, each edge.
        (MerchantKind::Paybill, "888880", 100_00, 0, 0),
        (MerchantKind::Paybill, "888880", 100_01, 5_00, 5_00),
        (MerchantKind::Paybill, "888880", 500_00, 5_00, 5_00),
        (MerchantKind::Paybill, "888880", 500_01, 10_00, 10_00),
        // The business pays all of it.
        (MerchantKind::Paybill, "888881", 1_000_01, 5_00, 0),
        // Split: half each, the odd minor unit the business's.
        (MerchantKind::Paybill, "888882", 1_000_01, 5_00, 2_50),
        (MerchantKind::Paybill, "888882", 102_01, 51, 25),
    ];
    for (i, &(kind, to, amount, fee, customer_fee)) in cases.iter().enumerate() {
        let before = (balance_of(&pool, wallet).await, settlement(&pool, kind.as_str(), to).await);
        let revenue = fee_revenue(&pool).await;
        let paid = pay(money, &format!("fee-{i}"), PAYER, kind, to, amount).await;
        assert_eq!(paid.outcome, Outcome::Ok, "case {i}: {paid:?}");
        assert_eq!(paid.data["fee"], customer_fee, "case {i}: the customer is told their part");
        assert_eq!(balance_of(&pool, wallet).await, before.0 - amount - customer_fee, "case {i}");
        assert_eq!(
            settlement(&pool, kind.as_str(), to).await,
            before.1 + amount - (fee - customer_fee),
            "case {i}: the merchant's part comes out of the amount"
        );
        assert_eq!(fee_revenue(&pool).await, revenue + fee, "case {i}");
        let reference = paid.data["ref"].as_str().unwrap().to_owned();
        let (recorded, events): (i64, Vec<Value>) = sqlx::query_as(
            "SELECT t.fee, array_agg(e.data ORDER BY e.id) FROM transfers t JOIN events e ON e.subject = transfer_ref(t.id)
              WHERE transfer_ref(t.id) = $1 GROUP BY t.fee",
        )
        .bind(&reference)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(recorded, fee, "case {i}: the transfer records the whole fee");
        assert_eq!(events.len(), 2, "case {i}: an event for the wallet and the settlement account");
        assert_eq!(
            (events[0]["direction"].clone(), events[0]["fee"].clone()),
            (json!("debit"), json!(customer_fee))
        );
        assert_eq!(
            (events[1]["direction"].clone(), events[1]["fee"].clone()),
            (json!("credit"), json!(fee - customer_fee))
        );
    }
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_payment_tells_both_sides_replays_once_and_refuses_what_it_cannot_do(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let money = app.state.gateway.money();
    let wallet = customer(&pool, PAYER, 1, 1_000_00).await;
    customer(&pool, OWNER, 2, 0).await;
    let root = token(&pool, "merchants").await;
    let (_, shop) = onboard(&app, &root, till_merchant("standard")).await;
    onboard(&app, &root, paybill("888880", "tariff", "customer")).await;

    // The name before the amount; an unknown till is named as such.
    let found = merchants::find(money.lane(), MerchantKind::Till, &number("512347")).await.unwrap();
    assert_eq!(found.outcome, Outcome::Ok);
    assert_eq!(
        (found.data["name"].as_str(), found.data["store"].as_str()),
        (Some("Mama Mboga"), Some("Kilimani"))
    );
    let unknown = merchants::find(money.lane(), MerchantKind::Till, &number("999999")).await.unwrap();
    assert_eq!(unknown.outcome, Outcome::RecipientUnknown);
    // A business number is no till, and the other way round.
    let crossed = merchants::find(money.lane(), MerchantKind::Paybill, &number("512345")).await.unwrap();
    assert_eq!(crossed.outcome, Outcome::RecipientUnknown);

    let paid = pay(money, "pay-1", PAYER, MerchantKind::Till, "512347", 150_00).await;
    assert_eq!(paid.outcome, Outcome::Ok, "{paid:?}");
    assert_eq!(paid.data["balance"], 850_00);
    let again = pay(money, "pay-1", PAYER, MerchantKind::Till, "512347", 150_00).await;
    assert_eq!(again, paid, "a replay answers as the first call did");
    let other = pay(money, "pay-1", PAYER, MerchantKind::Till, "512347", 160_00).await;
    assert_eq!(other.outcome, Outcome::Conflict);
    assert_eq!(balance_of(&pool, wallet).await, 850_00, "paid once");
    // The mini statement shows what left the wallet (the merchant paid the fee) and who.
    let customer_id: i64 = sqlx::query_scalar("SELECT customer_id FROM accounts WHERE id = $1")
        .bind(wallet)
        .fetch_one(&pool)
        .await
        .unwrap();
    let statement = ussd_gateway::money::ledger::statement(&pool, customer_id).await.unwrap();
    assert_eq!(statement.data["entries"][0]["amount"], -150_00, "{statement:?}");
    assert_eq!(statement.data["entries"][0]["party"], "Mama Mboga");
    // And the operator's view of the customer names the merchant.
    let desk = token(&pool, "customers:read").await;
    let (_, viewed) = app.admin("GET", "/admin/customers/0711000001?limit=1", Some(&desk), None, None).await;
    let counterparty = viewed["transfers"][0]["counterparty"].as_str().unwrap_or_default();
    assert!(counterparty.starts_with("Mama Mboga (MC"), "{viewed}");

    // The customer's receipt, and the store's phone told who paid, their number masked.
    let receipts: Vec<(String, String, String, Value)> = sqlx::query_as(
        "SELECT role, msisdn, template, data FROM outbox WHERE transfer_id IS NOT NULL ORDER BY role",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(receipts.len(), 2, "{receipts:?}");
    assert_eq!(
        (receipts[0].0.as_str(), receipts[0].1.as_str(), receipts[0].2.as_str()),
        ("payee", SHOP_PHONE, "till_received")
    );
    assert_eq!(receipts[0].3["counterparty_msisdn"], "+254711***001");
    assert_eq!(receipts[0].3["fee"], 75, "0.5% of 150.00, the merchant's");
    assert_eq!(
        (receipts[1].0.as_str(), receipts[1].1.as_str(), receipts[1].2.as_str()),
        ("payer", PAYER, "till_paid")
    );
    assert_eq!(receipts[1].3["merchant"], "Mama Mboga");

    // A paybill account of the wrong shape: refused before anything is claimed.
    let from = msisdn(PAYER);
    let business = number("888880");
    let payment = |account, amount| MerchantPayment {
        key: "pay-2",
        from: &from,
        kind: MerchantKind::Paybill,
        number: &business,
        account: Some(account),
        amount: Amount::from_minor(amount).unwrap(),
    };
    let quoted = merchants::quote(money, &payment("12", 200_00), None).await.unwrap();
    assert_eq!(quoted.outcome, Outcome::AccountInvalid);
    let refused = merchants::pay(money.lane(), &payment("12", 200_00)).await.unwrap();
    assert_eq!(refused.outcome, Outcome::AccountInvalid);
    let quoted = merchants::quote(money, &payment("1234", 200_00), None).await.unwrap();
    assert_eq!(
        (quoted.outcome, quoted.data["fee"].clone(), quoted.data["total"].clone()),
        (Outcome::Ok, json!(5_00), json!(205_00))
    );
    // Over the basic tier's KES 70,000 a payment: refused by the quote and the payment.
    let over = merchants::quote(money, &payment("1234", 70_000_01), None).await.unwrap();
    assert_eq!((over.outcome, over.data["max"].clone()), (Outcome::LimitExceeded, json!(70_000_00)));
    let over = merchants::pay(money.lane(), &MerchantPayment { key: "pay-3", ..payment("1234", 70_000_01) })
        .await
        .unwrap();
    assert_eq!(over.outcome, Outcome::LimitExceeded);
    // Paid; then the business narrows its pattern: the same call again answers as it did.
    let paid = merchants::pay(money.lane(), &MerchantPayment { key: "pay-8", ..payment("1234", 100_00) })
        .await
        .unwrap();
    assert_eq!(paid.outcome, Outcome::Ok, "{paid:?}");
    let paybill_ref: String =
        sqlx::query_scalar("SELECT merchant_ref(id) FROM merchants WHERE business_number = '888880'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let narrower = json!({ "account_pattern": "[0-9]{6}" }).to_string();
    let (status, _) = app
        .admin("PATCH", &format!("/admin/merchants/{paybill_ref}"), Some(&root), None, Some(narrower))
        .await;
    assert_eq!(status, StatusCode::OK);
    let again = merchants::pay(money.lane(), &MerchantPayment { key: "pay-8", ..payment("1234", 100_00) })
        .await
        .unwrap();
    assert_eq!(again, paid, "a replay reads the first answer back, whatever the pattern is now");
    let refused = merchants::pay(money.lane(), &MerchantPayment { key: "pay-9", ..payment("1234", 100_00) })
        .await
        .unwrap();
    assert_eq!(refused.outcome, Outcome::AccountInvalid);
    let again = merchants::pay(money.lane(), &MerchantPayment { key: "pay-9", ..payment("123456", 100_00) })
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Conflict, "the refusal is kept under its key");
    let poor = merchants::pay(money.lane(), &MerchantPayment { key: "pay-4", ..payment("123456", 900_00) })
        .await
        .unwrap();
    assert_eq!(poor.outcome, Outcome::InsufficientFunds);

    // Suspended: shown as unable to take payments, and refused; active again, paid.
    let reference = shop["merchant"].as_str().unwrap();
    let suspend = json!({ "status": "suspended" }).to_string();
    let (status, changed) =
        app.admin("PATCH", &format!("/admin/merchants/{reference}"), Some(&root), None, Some(suspend)).await;
    assert_eq!((status, changed["status"].as_str()), (StatusCode::OK, Some("suspended")));
    let found = merchants::find(money.lane(), MerchantKind::Till, &number("512345")).await.unwrap();
    assert_eq!(found.outcome, Outcome::AccountBlocked);
    let blocked = pay(money, "pay-5", PAYER, MerchantKind::Till, "512345", 10_00).await;
    assert_eq!(blocked.outcome, Outcome::AccountBlocked);
    assert_eq!(balance_of(&pool, wallet).await, 750_00, "nothing moved");
    let activate = json!({ "status": "active" }).to_string();
    app.admin("PATCH", &format!("/admin/merchants/{reference}"), Some(&root), None, Some(activate)).await;
    let paid = pay(money, "pay-6", PAYER, MerchantKind::Till, "512345", 10_00).await;
    assert_eq!(paid.outcome, Outcome::Ok);

    // The owner cannot pay their own till.
    let own = pay(money, "pay-7", OWNER, MerchantKind::Till, "512345", 10_00).await;
    assert_eq!(own.outcome, Outcome::SameAccount);
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn many_customers_paying_one_till_at_once_all_post_across_its_shards(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    customer(&pool, OWNER, 2, 0).await;
    let root = token(&pool, "merchants").await;
    onboard(&app, &root, till_merchant("standard")).await;
    const CUSTOMERS: usize = 24;
    const EACH: usize = 4;
    for c in 0..CUSTOMERS {
        customer(&pool, &format!("+2547100{c:05}"), 2, 1_000_00).await;
    }
    // Each customer pays four times 300.00 at once from 1,000.00: three of each four post.
    let tasks: Vec<_> = (0..CUSTOMERS * EACH)
        .map(|i| {
            let money = app.state.gateway.money().clone();
            tokio::spawn(async move {
                let from = format!("+2547100{:05}", i % CUSTOMERS);
                pay(&money, &format!("rush-{i}"), &from, MerchantKind::Till, "512345", 300_00).await.outcome
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let posted = outcomes.iter().filter(|o| **o == Outcome::Ok).count();
    let short = outcomes.iter().filter(|o| **o == Outcome::InsufficientFunds).count();
    assert_eq!((posted, short), (CUSTOMERS * 3, CUSTOMERS), "{outcomes:?}");
    let fees = posted as i64 * 1_50;
    assert_eq!(settlement(&pool, "till", "512345").await, posted as i64 * 300_00 - fees);
    let shards: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM merchant_settlement_shards s JOIN accounts a ON a.id = s.account_id WHERE a.balance > 0",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(shards > 1, "payments spread over the settlement shards ({shards})");
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_till_paid_over_ussd_tells_the_merchant_and_the_demo_seeds_merchants_once(pool: PgPool) {
    // `spawn` seeds the demo subscribers, whose PIN is the demo's.
    let app = spawn(pool.clone(), Store::Memory).await;
    seed_demo_merchants(&pool, "KES").await.unwrap();
    seed_demo_merchants(&pool, "KES").await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM merchants").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 3, "seeding twice adds nothing");

    let paid = app.journey(AMINA, "9*1*512345*150*1*1234").await;
    assert!(paid.starts_with("END Paid KES 150.00 to Mama Mboga. Ref TX"), "{paid}");
    let told: Vec<(String, String)> = sqlx::query_as(
        "SELECT msisdn, template FROM outbox WHERE transfer_id IS NOT NULL AND template LIKE 'till_%' ORDER BY role",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        told,
        [
            ("+254700000009".to_owned(), "till_received".to_owned()),
            (AMINA.to_owned(), "till_paid".to_owned())
        ]
    );
    let paid = app.journey(AMINA, "9*2*222222*AB1234*100*1*1234").await;
    assert!(paid.starts_with("END Paid KES 100.00 to Faraja School for AB1234."), "{paid}");
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn onboarding_says_what_is_wrong_and_what_is_taken(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    customer(&pool, OWNER, 2, 0).await;
    let root = token(&pool, "merchants").await;
    let (status, shop) = onboard(&app, &root, till_merchant("standard")).await;
    assert_eq!(status, StatusCode::CREATED, "{shop}");
    assert_eq!(shop["stores"][0]["tills"], json!(["512345", "512346"]));
    assert_eq!(shop["settlement"]["balance"], 0);
    assert_eq!(shop["settlement"]["shards"], 8, "a merchant gets its shards as it is onboarded");

    let with = |change: Value| {
        let mut body = till_merchant("standard");
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (
            with(json!({ "stores": [{ "store_number": "2001", "name": "X", "tills": ["512345"] }] })),
            StatusCode::CONFLICT,
            "till 512345 is taken",
        ),
        (with(json!({ "owner": "+254711000111" })), StatusCode::UNPROCESSABLE_ENTITY, "registered customer"),
        (
            with(json!({ "fee_payer": "customer" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "costs the customer nothing",
        ),
        (
            with(json!({ "fee_class": "platinum" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no fee class `platinum`",
        ),
        (with(json!({ "stores": [] })), StatusCode::UNPROCESSABLE_ENTITY, "at least one store"),
        (
            with(json!({ "business_number": "777777" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no `business_number`",
        ),
        (with(json!({ "kind": "shop" })), StatusCode::BAD_REQUEST, "`kind` `shop`"),
        (
            with(json!({ "display_name": "a name far too long for one line of a screen" })),
            StatusCode::BAD_REQUEST,
            "display_name",
        ),
        (
            with(json!({ "stores": [{ "store_number": "2001", "name": "X", "tills": ["12"] }] })),
            StatusCode::BAD_REQUEST,
            "5 to 7 digits",
        ),
        (
            with(
                json!({ "stores": [{ "store_number": "2001", "name": "X", "tills": ["612345", "612345"] }] }),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "listed twice",
        ),
        (with(json!({ "surprise": 1 })), StatusCode::BAD_REQUEST, "surprise"),
    ];
    for (body, expected, says) in cases {
        let (status, answer) = onboard(&app, &root, body.clone()).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap_or_default().contains(says), "{body}: {answer}");
    }
    let (status, _) = onboard(&app, &root, paybill("888880", "tariff", "customer")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, answer) = onboard(&app, &root, paybill("888880", "tariff", "customer")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let mut no_pattern = paybill("888881", "tariff", "customer");
    no_pattern["account_pattern"] = json!("[0-9");
    let (status, answer) = onboard(&app, &root, no_pattern).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");

    let (status, listed) = app.admin("GET", "/admin/merchants", Some(&root), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["merchants"].as_array().map(Vec::len), Some(2), "{listed}");
    let reference = shop["merchant"].as_str().unwrap();
    let (status, shown) =
        app.admin("GET", &format!("/admin/merchants/{reference}"), Some(&root), None, None).await;
    assert_eq!((status, shown["display_name"].as_str()), (StatusCode::OK, Some("Mama Mboga")));
    let (status, _) = app.admin("GET", "/admin/merchants/MC000000FF", Some(&root), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let paybill_only = json!({ "account_label": "meter" }).to_string();
    let (status, answer) = app
        .admin("PATCH", &format!("/admin/merchants/{reference}"), Some(&root), None, Some(paybill_only))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");

    // Another scope's token learns nothing; every call is in the trail.
    let billers = token(&pool, "billers").await;
    let (status, _) = onboard(&app, &billers, paybill("888882", "tariff", "customer")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM admin_audit WHERE route LIKE '/admin/merchants%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(audited, 1 + 11 + 3 + 4 + 1);
}

/// A business's validation server: accepts account 1111, rejects 2222 with a reason
/// written across lines, never answers for 3333; records what it was sent and whether
/// the signature checked out under the secrets it holds.
#[derive(Clone, Default)]
struct Business {
    secrets: Arc<Mutex<Vec<String>>>,
    calls: Arc<Mutex<Vec<(Value, bool)>>>,
}

async fn validate(State(b): State<Business>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap_or_default();
    let signed = b.secrets.lock().unwrap().iter().any(|secret| {
        let secret = SecretString::from(secret.clone());
        signature::signature(&[&secret], &header("webhook-id"), timestamp, &body).as_deref()
            == Some(header("webhook-signature").as_str())
    });
    let sent: Value = serde_json::from_slice(&body).unwrap_or_default();
    b.calls.lock().unwrap().push((sent.clone(), signed));
    match sent["account"].as_str() {
        Some("1111") => (StatusCode::OK, json!({ "result": "accept" }).to_string()),
        Some("2222") => {
            (StatusCode::OK, json!({ "result": "reject", "reason": "account\nclosed\u{202E}" }).to_string())
        }
        _ => std::future::pending().await,
    }
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_paybill_asks_its_validation_url_and_its_default_speaks_when_it_is_silent(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let money = app.state.gateway.money();
    customer(&pool, PAYER, 2, 10_000_00).await;
    customer(&pool, OWNER, 2, 0).await;
    let business = Business::default();
    let server = Router::new().route("/validate", post(validate)).with_state(business.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/validate", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, server).into_future());

    let root = token(&pool, "merchants").await;
    for (number, default) in [("888880", "accept"), ("888881", "reject")] {
        let mut body = paybill(number, "tariff", "customer");
        body["validation_url"] = json!(url);
        body["validation_default"] = json!(default);
        body["validation_timeout_ms"] = json!(300);
        let (status, answer) = onboard(&app, &root, body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let secret = answer["validation"]["secret"].as_str().expect("the secret, shown once").to_owned();
        assert!(secret.starts_with("whsec_"));
        business.secrets.lock().unwrap().push(secret);
        let reference = answer["merchant"].as_str().unwrap().to_owned();
        let (_, shown) =
            app.admin("GET", &format!("/admin/merchants/{reference}"), Some(&root), None, None).await;
        assert_eq!(shown["validation"]["default"], default);
        assert_eq!(shown["validation"].get("secret"), None, "never shown again");
    }

    let from = msisdn(PAYER);
    let quote = |business: &'static str, account: &'static str| {
        let from = from.clone();
        async move {
            let number = number(business);
            let payment = MerchantPayment {
                key: "q",
                from: &from,
                kind: MerchantKind::Paybill,
                number: &number,
                account: Some(account),
                amount: Amount::from_minor(200_00).unwrap(),
            };
            merchants::quote(money, &payment, None).await.unwrap()
        }
    };
    let accepted = quote("888880", "1111").await;
    assert_eq!((accepted.outcome, accepted.data["fee"].clone()), (Outcome::Ok, json!(5_00)));
    let rejected = quote("888880", "2222").await;
    assert_eq!(rejected.outcome, Outcome::BillRejected);
    assert_eq!(rejected.data["reason"], "account closed", "one visible line");
    let silent = quote("888880", "3333").await;
    assert_eq!(silent.outcome, Outcome::Ok, "silent, and the default accepts");
    let silent = quote("888881", "3333").await;
    assert_eq!(silent.outcome, Outcome::BillRejected, "silent, and the default rejects");
    // A business slower than the hop: asked for what the hop has left, and its default
    // speaks in time (the merchant's own timeout, 5 s, would outlast the hop).
    let slow = json!({ "validation_timeout_ms": 5_000 }).to_string();
    let reference: String =
        sqlx::query_scalar("SELECT merchant_ref(id) FROM merchants WHERE business_number = '888880'")
            .fetch_one(&pool)
            .await
            .unwrap();
    app.admin("PATCH", &format!("/admin/merchants/{reference}"), Some(&root), None, Some(slow)).await;
    let business_number = number("888880");
    let in_time = MerchantPayment {
        key: "slow",
        from: &from,
        kind: MerchantKind::Paybill,
        number: &business_number,
        account: Some("3333"),
        amount: Amount::from_minor(200_00).unwrap(),
    };
    let budget = tokio::time::Instant::now() + std::time::Duration::from_millis(400);
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        merchants::quote(money, &in_time, Some(budget)),
    )
    .await
    .expect("answered within the hop's budget, not the business's timeout")
    .unwrap();
    assert_eq!(answered.outcome, Outcome::Ok, "the default (accept) answered");
    let pattern = quote("888881", "12").await;
    assert_eq!(
        pattern.outcome,
        Outcome::AccountInvalid,
        "the pattern is checked before the business is asked"
    );

    let calls = business.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 5, "{calls:?}");
    assert!(calls.iter().all(|(_, signed)| *signed), "every call signed with the merchant's secret");
    assert_eq!(
        calls[0].0,
        json!({ "business_number": "888880", "account": "1111", "amount": 200_00, "currency": "KES",
                "customer": { "name": "Test Customer", "msisdn": "+254711***001" } })
    );

    // Over USSD: the business's refusal is the screen, and nothing moved.
    let wallet = balance_of(&pool, customer_wallet(&pool, AMINA).await).await;
    let refused = app.journey(AMINA, "9*2*888880*2222*200").await;
    assert_eq!(refused, "END Biz 888880 did not accept this payment: account closed. No money was moved.");
    assert_eq!(balance_of(&pool, customer_wallet(&pool, AMINA).await).await, wallet);
    let paid = app.journey(AMINA, "9*2*888880*1111*200*1*1234").await;
    assert!(paid.starts_with("END Paid KES 200.00 to Biz 888880 for 1111."), "{paid}");
    assert_ledger_invariants(&pool).await;
}

async fn customer_wallet(pool: &PgPool, msisdn: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT a.id FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = $1 AND a.kind = 'wallet'",
    )
    .bind(msisdn)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// What a merchant's confirmation endpoint received: the body, and whether it was
/// signed by the secret it was given.
#[derive(Clone, Default)]
struct Confirmed {
    secret: Arc<Mutex<String>>,
    seen: Arc<Mutex<Vec<(Value, bool)>>>,
}

async fn confirm(State(c): State<Confirmed>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let secret = SecretString::from(c.secret.lock().unwrap().clone());
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap_or_default();
    let signed = signature::signature(&[&secret], &header("webhook-id"), timestamp, &body).as_deref()
        == Some(header("webhook-signature").as_str());
    c.seen.lock().unwrap().push((serde_json::from_slice(&body).unwrap_or_default(), signed));
    StatusCode::NO_CONTENT
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_merchant_gets_a_signed_confirmation_of_each_of_its_own_payments_only(pool: PgPool) {
    use ussd_gateway::events::Relay;
    use ussd_gateway::events::webhooks::deliver::{Deliverer, Policy};
    let app = spawn(pool.clone(), Store::Memory).await;
    let money = app.state.gateway.money();
    customer(&pool, PAYER, 2, 10_000_00).await;
    customer(&pool, OWNER, 2, 0).await;
    let confirmed = Confirmed::default();
    let server = Router::new().route("/confirm", post(confirm)).with_state(confirmed.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/confirm", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, server).into_future());

    let root = token(&pool, "merchants").await;
    let mut sacco = paybill("888880", "tariff", "customer");
    sacco["confirmation_url"] = json!(url);
    let (status, answer) = onboard(&app, &root, sacco).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let secret = answer["confirmation"]["secret"].as_str().expect("shown once").to_owned();
    *confirmed.secret.lock().unwrap() = secret;
    assert!(answer["confirmation"]["webhook"].as_str().unwrap().starts_with("wh_"));
    onboard(&app, &root, till_merchant("standard")).await;

    // A payment to the sacco, one to the shop, and one the sacco refuses: only the
    // first is the sacco's to hear of.
    let paid = pay(money, "c-1", PAYER, MerchantKind::Paybill, "888880", 250_00).await;
    assert_eq!(paid.outcome, Outcome::Ok);
    assert_eq!(pay(money, "c-2", PAYER, MerchantKind::Till, "512345", 100_00).await.outcome, Outcome::Ok);
    let poor = pay(money, "c-3", PAYER, MerchantKind::Paybill, "888880", 1_000_000_00).await;
    assert_ne!(poor.outcome, Outcome::Ok);
    let relay = Relay::new(pool.clone(), None, 500);
    while relay.pass().await.unwrap() > 0 {}
    let policy = Policy { private_networks: true, ..Policy::default() };
    let deliverer = Deliverer::new(pool.clone(), money.vault().clone(), policy);
    assert_eq!(deliverer.pass().await.unwrap(), 1, "one confirmation: the sacco's own payment");
    assert_eq!(deliverer.pass().await.unwrap(), 0);

    let seen = confirmed.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (event, signed) = &seen[0];
    assert!(signed, "signed with the secret the merchant was given");
    assert_eq!(event["type"], "merchant.posted");
    assert_eq!(event["subject"], paid.data["ref"]);
    let data = &event["data"];
    assert_eq!(
        (data["direction"].as_str(), data["amount"].as_i64(), data["business_number"].as_str()),
        (Some("credit"), Some(250_00), Some("888880"))
    );
    assert_eq!(data["account_reference"], "123456");
    assert_eq!(data["customer"], json!({ "name": "Test Customer", "msisdn": "+254711***001" }));
    assert!(event["time"].is_string());
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_owner_moves_the_settlement_from_every_shard_while_customers_keep_paying(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let money = app.state.gateway.money().clone();
    let owner_wallet = customer(&pool, OWNER, 2, 0).await;
    let root = token(&pool, "merchants").await;
    let (_, shop) = onboard(&app, &root, till_merchant("free")).await;
    let merchant = merchants::parse_merchant_ref(shop["merchant"].as_str().unwrap()).unwrap();
    const CUSTOMERS: usize = 16;
    for c in 0..CUSTOMERS {
        customer(&pool, &format!("+2547200{c:05}"), 2, 1_000_00).await;
    }
    // Sixteen payments of 100.00, spread over the shards.
    for c in 0..CUSTOMERS {
        let paid =
            pay(&money, &format!("p-{c}"), &format!("+2547200{c:05}"), MerchantKind::Till, "512345", 100_00)
                .await;
        assert_eq!(paid.outcome, Outcome::Ok);
    }
    let owner = msisdn(OWNER);
    let take = |key: &'static str, amount: i64| {
        let money = money.clone();
        let owner = owner.clone();
        async move {
            merchants::withdraw(money.lane(), key, &owner, merchant, Amount::from_minor(amount).unwrap())
                .await
                .unwrap()
        }
    };
    // More than there is: refused, nothing moved.
    assert_eq!(take("w-0", 1_600_01).await.outcome, Outcome::InsufficientFunds);
    // Most of it, from several shards in one movement.
    let moved = take("w-1", 1_500_00).await;
    assert_eq!(moved.outcome, Outcome::Ok, "{moved:?}");
    assert_eq!(
        (moved.data["settlement"].as_i64(), moved.data["balance"].as_i64()),
        (Some(100_00), Some(1_500_00))
    );
    assert_eq!(take("w-1", 1_500_00).await, moved, "a replay answers as the first call did");
    assert_eq!(balance_of(&pool, owner_wallet).await, 1_500_00);
    let owner_id: i64 = sqlx::query_scalar("SELECT customer_id FROM accounts WHERE id = $1")
        .bind(owner_wallet)
        .fetch_one(&pool)
        .await
        .unwrap();
    let statement = ussd_gateway::money::ledger::statement(&pool, owner_id).await.unwrap();
    assert_eq!(
        (statement.data["entries"][0]["amount"].as_i64(), statement.data["entries"][0]["party"].as_str()),
        (Some(1_500_00), Some("Mama Mboga")),
        "the owner's statement names where the money came from"
    );
    assert_eq!(settlement(&pool, "till", "512345").await, 100_00);
    let shards_taken: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE type = 'merchant.withdrawn' AND data->>'direction' = 'debit'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(shards_taken > 1, "every shard it took from has its event ({shards_taken})");
    let given: i64 = sqlx::query_scalar(
        "SELECT sum((data->>'amount')::bigint)::bigint FROM events
          WHERE type = 'merchant.withdrawn' AND data->>'direction' = 'debit'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(given, 1_500_00, "the shards' events say what each gave, and that adds up");
    // Suspended, the settlement stays put; active again, it moves.
    let reference = shop["merchant"].as_str().unwrap();
    let suspend = |status: &str| json!({ "status": status }).to_string();
    app.admin(
        "PATCH",
        &format!("/admin/merchants/{reference}"),
        Some(&root),
        None,
        Some(suspend("suspended")),
    )
    .await;
    assert_eq!(take("w-s", 1_00).await.outcome, Outcome::AccountBlocked);
    app.admin("PATCH", &format!("/admin/merchants/{reference}"), Some(&root), None, Some(suspend("active")))
        .await;

    // Only the owner, of their own merchant.
    let stranger = msisdn("+254720000000");
    let refused =
        merchants::withdraw(money.lane(), "w-2", &stranger, merchant, Amount::from_minor(1_00).unwrap())
            .await
            .unwrap();
    assert_eq!(refused.outcome, Outcome::RecipientUnknown);
    let named: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE type = 'merchant.withdrawal_rejected'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(named, 2, "the owner's own refusals are the merchant's events; a stranger's is not");

    // Customers pay while the owner takes what is there, at once: every payment posts,
    // the withdrawals never take more than the settlement held, and the books balance.
    let payments: Vec<_> = (0..CUSTOMERS)
        .map(|c| {
            let money = money.clone();
            tokio::spawn(async move {
                let from = format!("+2547200{c:05}");
                pay(&money, &format!("q-{c}"), &from, MerchantKind::Till, "512346", 50_00).await.outcome
            })
        })
        .collect();
    let withdrawals: Vec<_> = (0..8)
        .map(|i| {
            let money = money.clone();
            let owner = owner.clone();
            tokio::spawn(async move {
                let key = format!("w-rush-{i}");
                merchants::withdraw(money.lane(), &key, &owner, merchant, Amount::from_minor(100_00).unwrap())
                    .await
                    .unwrap()
                    .outcome
            })
        })
        .collect();
    for p in payments {
        assert_eq!(p.await.unwrap(), Outcome::Ok);
    }
    let mut taken = 0;
    for w in withdrawals {
        match w.await.unwrap() {
            Outcome::Ok => taken += 1,
            Outcome::InsufficientFunds => {}
            other => panic!("{other}"),
        }
    }
    assert!(taken >= 1, "the 100.00 left before the rush was there to take");
    assert_eq!(
        settlement(&pool, "till", "512345").await,
        100_00 + CUSTOMERS as i64 * 50_00 - taken * 100_00,
        "what was paid in, less what was taken"
    );
    assert_eq!(balance_of(&pool, owner_wallet).await, 1_500_00 + taken * 100_00);
    let receipts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE template = 'merchant_withdrawn' AND msisdn = $1",
    )
    .bind(OWNER)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(receipts, 1 + taken, "one receipt per withdrawal, to the owner");
    // Over the owner's wallet limit (a verified tier holds at most 500,000.00).
    let wallet = balance_of(&pool, owner_wallet).await;
    sqlx::query("SELECT ledger_fund('owner-top', $1, $2)")
        .bind(owner_wallet)
        .bind(500_000_00 - wallet)
        .execute(&pool)
        .await
        .unwrap();
    let over = take("w-o", 1_00).await;
    assert_eq!(over.outcome, Outcome::LimitExceeded);
    assert_eq!(take("w-o", 1_00).await, over, "a refusal replays as it was");
    assert_ledger_invariants(&pool).await;
}
