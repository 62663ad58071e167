//! Agents end to end: onboarding and float top-ups through the admin API, cash-in and
//! the float screen through the agent menu on *385#, and concurrent cash-ins that
//! never overdraw a float.

use crate::common;
use crate::common::*;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use ussd_gateway::admin;
use ussd_gateway::money::{DEMO_PIN, seed_demo_agent};

const JAMES: &str = "+254700000010";

async fn post(app: &TestApp, path: &str, token: &str, key: Option<&str>, body: Value) -> (StatusCode, Value) {
    app.admin("POST", path, Some(token), key, Some(body.to_string())).await
}

async fn get(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    app.admin("GET", path, Some(token), None, None).await
}

/// One hop of the agent menu, as Africa's Talking sends it.
async fn agent_hop(app: &TestApp, session: &str, phone: &str, text: &str) -> String {
    let r = app.post_raw(at_form(session, "*385#", phone, text)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

async fn wallet(pool: &PgPool, msisdn: &str) -> i64 {
    sqlx::query_scalar("SELECT a.balance FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = $1 AND a.kind = 'wallet'")
        .bind(msisdn)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn agents_are_onboarded_and_funded_through_the_admin_api(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let ops = admin::create(&pool, "ops", &["agents".into(), "float".into()]).await.unwrap();
    let cynthia = json!({ "msisdn": "0700000003", "agent_number": "222333", "name": "Cynthia Shop",
                          "stores": [{ "store_number": "2001", "name": "Market Road" }] });

    // 400: the request breaks the OpenAPI document; 422: it keeps to it, but cannot be.
    let (bad, unacceptable) = (StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY);
    let store = |n: usize| json!({ "store_number": format!("{}", 1000 + n), "name": "a" });
    for (body, status, says) in [
        (
            json!({ "msisdn": "07x", "agent_number": "222333", "name": "x" }),
            bad,
            "`msisdn` `07x` must be written +254712345678 or 0712345678",
        ),
        (
            json!({ "msisdn": "0000000", "agent_number": "222333", "name": "x" }),
            unacceptable,
            "`msisdn` `0000000` is not a phone number",
        ),
        (
            json!({ "msisdn": "0700000003", "agent_number": "12", "name": "x" }),
            bad,
            "`agent_number` `12` must be 5 to 7 digits",
        ),
        (
            json!({ "msisdn": "0700000003", "agent_number": "222333", "name": "" }),
            bad,
            "`name` must not be empty",
        ),
        (
            json!({ "msisdn": "0700000003", "agent_number": "222333", "name": "x",
                 "stores": [{ "store_number": "2001", "name": "a" }, { "store_number": "2001", "name": "b" }] }),
            unacceptable,
            "store number 2001 is listed twice",
        ),
        (
            json!({ "msisdn": "0700000003", "agent_number": "222333", "name": "x",
                    "stores": (0..21).map(store).collect::<Vec<_>>() }),
            bad,
            "at most 20 stores",
        ),
        (json!({ "agent_number": "222333", "name": "x" }), bad, "missing field `msisdn`"),
    ] {
        let (got, answer) = post(&app, "/admin/agents", &ops, None, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{body}: {answer}");
    }
    let stranger = json!({ "msisdn": "+254711000111", "agent_number": "222333", "name": "x" });
    let (status, answer) = post(&app, "/admin/agents", &ops, None, stranger).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer["error"].as_str().unwrap().contains("registered customer first"), "{answer}");

    let (status, agent) = post(&app, "/admin/agents", &ops, None, cynthia.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    assert_eq!(agent["msisdn"], "+254700000003");
    assert_eq!(agent["float"]["balance"], 0);
    assert_eq!(agent["stores"], json!([{ "store_number": "2001", "name": "Market Road" }]));
    // Taken numbers and phones are refused whole: nothing of the second request stays.
    let (status, answer) = post(&app, "/admin/agents", &ops, None, cynthia).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::CONFLICT, Some("this customer is an agent already"))
    );
    let (status, answer) = post(
        &app,
        "/admin/agents",
        &ops,
        None,
        json!({ "msisdn": "0700000004", "agent_number": "444555", "name": "David", "stores": [{ "store_number": "2001", "name": "x" }] }),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::CONFLICT, Some("store number 2001 is taken"))
    );
    assert_eq!(get(&app, "/admin/agents/444555", &ops).await.0, StatusCode::NOT_FOUND);

    // Float top-ups: keyed, so that a retry does not pay twice.
    let float = "/admin/agents/222333/float";
    let (status, answer) = post(&app, float, &ops, None, json!({ "amount": 5_000_00 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("Idempotency-Key"), "{answer}");
    let (status, answer) = post(&app, float, &ops, Some("bank-ref-0001"), json!({ "amount": 0 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, first) = post(&app, float, &ops, Some("bank-ref-0001"), json!({ "amount": 5_000_00 })).await;
    assert_eq!((status, first["float"].as_i64()), (StatusCode::OK, Some(5_000_00)), "{first}");
    let (status, again) = post(&app, float, &ops, Some("bank-ref-0001"), json!({ "amount": 5_000_00 })).await;
    assert_eq!((status, &again), (StatusCode::OK, &first), "the same top-up");
    // JSON Schema's `integer` takes 500000.0; a fraction of a minor unit is refused.
    let (status, again) = post(&app, float, &ops, Some("bank-ref-0001"), json!({ "amount": 500000.0 })).await;
    assert_eq!((status, &again), (StatusCode::OK, &first), "the same top-up, written otherwise");
    let (status, _) = post(&app, float, &ops, Some("bank-ref-0009"), json!({ "amount": 10.5 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) =
        post(&app, "/admin/agents/12/float", &ops, Some("bank-ref-0009"), json!({ "amount": 1 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not an agent number at all");
    let (status, _) = post(&app, float, &ops, Some("bank-ref-0001"), json!({ "amount": 6_000_00 })).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        post(&app, "/admin/agents/999999/float", &ops, Some("bank-ref-0002"), json!({ "amount": 1 })).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, agent) = get(&app, "/admin/agents/222333", &ops).await;
    assert_eq!((status, agent["float"]["balance"].as_i64()), (StatusCode::OK, Some(5_000_00)));
    // Without the scope, refused.
    let reader = admin::create(&pool, "reader", &["agents".into()]).await.unwrap();
    assert_eq!(
        post(&app, float, &reader, Some("bank-ref-0003"), json!({ "amount": 1 })).await.0,
        StatusCode::FORBIDDEN
    );
    // The float's first event is the onboarding, its second the top-up.
    let told: Vec<(String, i64)> = sqlx::query_as(
        "SELECT e.type, e.sequence FROM events e JOIN agents g ON g.float_account_id = e.account_id
          WHERE g.agent_number = '222333' ORDER BY e.sequence",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let kinds: Vec<&str> = told.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["agent.onboarded", "account.funded"], "{told:?}");
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn an_agent_deposits_for_a_customer_through_the_agent_menu(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    assert!(seed_demo_agent(&pool).await.unwrap());
    assert!(!seed_demo_agent(&pool).await.unwrap(), "seeded once");
    let before = wallet(&pool, "+254700000001").await;
    let s = unique_session();
    assert_eq!(
        agent_hop(&app, &s, JAMES, "").await,
        "CON Agent 123456 Duka la Demo\n1. Deposit for a customer\n2. Float and commission\n3. Send float to an agent\n4. Float statement\n5. Withdrawal for a customer"
    );
    agent_hop(&app, &s, JAMES, "1").await;
    agent_hop(&app, &s, JAMES, "1*0700000001").await;
    assert_eq!(
        agent_hop(&app, &s, JAMES, "1*0700000001*1500").await,
        "CON Deposit KES 1,500.00 to Amina Otieno +254700***001?\n1. Yes\n2. No\n0. Back"
    );
    assert_eq!(
        agent_hop(&app, &s, JAMES, "1*0700000001*1500*1").await,
        "CON Enter your PIN to deposit KES 1,500.00"
    );
    let done = agent_hop(&app, &s, JAMES, &format!("1*0700000001*1500*1*{DEMO_PIN}")).await;
    assert!(done.starts_with("END Deposited KES 1,500.00 to Amina Otieno. Ref TX"), "{done}");
    assert!(done.ends_with("Float KES 98,500.00."), "{done}");
    assert_eq!(wallet(&pool, "+254700000001").await, before + 1_500_00);
    assert_ledger_invariants(&pool).await;
    let receipts: Vec<(String, String)> = sqlx::query_as(
        "SELECT msisdn, template FROM outbox WHERE template LIKE 'cash_in%' ORDER BY template",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        receipts,
        [
            (JAMES.to_owned(), "cash_in_given".to_owned()),
            ("+254700000001".to_owned(), "cash_in_received".to_owned())
        ]
    );

    // The float screen; and a customer who dials the agent code is turned away.
    let s = unique_session();
    agent_hop(&app, &s, JAMES, "").await;
    agent_hop(&app, &s, JAMES, "2").await;
    assert_eq!(
        agent_hop(&app, &s, JAMES, &format!("2*{DEMO_PIN}")).await,
        "END Float KES 98,500.00. Commission KES 0.00."
    );
    assert_eq!(
        agent_hop(&app, &unique_session(), "+254700000001", "").await,
        "END This number is not a registered agent. Dial *384# for your wallet."
    );
    // An agent cannot deposit to its own wallet.
    let s = unique_session();
    agent_hop(&app, &s, JAMES, "").await;
    agent_hop(&app, &s, JAMES, "1").await;
    agent_hop(&app, &s, JAMES, "1*0700000010").await;
    let own = agent_hop(&app, &s, JAMES, "1*0700000010*100").await;
    assert!(own.starts_with("CON Deposit to your own wallet at another agent."), "{own}");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn concurrent_cash_ins_never_overdraw_the_float(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    seed_demo_agent(&pool).await.unwrap();
    // Leave KES 1,000 of float: ten deposits of KES 100 fit, twenty are asked at once.
    sqlx::query("SELECT agent_cash_in('drain', '\\x00', $1, '+254700000009', (SELECT balance - 100000 FROM accounts WHERE kind = 'agent_float'))")
        .bind(JAMES)
        .execute(&pool)
        .await
        .unwrap();
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..20 {
        let pool = pool.clone();
        clients.spawn(async move {
            let to = format!("+2547000000{:02}", i % 8 + 1);
            sqlx::query_scalar::<_, String>("SELECT outcome FROM agent_cash_in($1, '\\x01', $2, $3, 10000)")
                .bind(format!("cash-in-{i}"))
                .bind(JAMES)
                .bind(to)
                .fetch_one(&pool)
                .await
                .unwrap()
        });
    }
    let outcomes = clients.join_all().await;
    assert_eq!(outcomes.iter().filter(|o| *o == "ok").count(), 10, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "insufficient_funds").count(), 10, "{outcomes:?}");
    let float: i64 = sqlx::query_scalar("SELECT balance FROM accounts WHERE kind = 'agent_float'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(float, 0);
    assert_ledger_invariants(&pool).await;
    let _ = app;
}

async fn account_of_kind(pool: &PgPool, kind: &str) -> i64 {
    sqlx::query_scalar("SELECT sum(balance)::bigint FROM accounts WHERE kind = $1")
        .bind(kind)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_customer_withdraws_at_a_store_and_the_agent_earns_its_commission(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    seed_demo_agent(&pool).await.unwrap();
    let amina = "+254700000001";
    let (float, fees) =
        (account_of_kind(&pool, "agent_float").await, account_of_kind(&pool, "fee_revenue").await);
    let s = unique_session();
    assert!(
        app.at_hop(&s, amina, "")
            .await
            .ends_with("6. Withdraw cash\n7. My approvals\n8. Pay bill\n9. Pay shop\n98. More")
    );
    assert_eq!(app.at_hop(&s, amina, "6").await, "CON Enter agent number");
    // A wrong store for this agent is caught before the PIN.
    app.at_hop(&s, amina, "6*123456").await;
    app.at_hop(&s, amina, "6*123456*9999").await;
    let unknown = app.at_hop(&s, amina, "6*123456*9999*500").await;
    assert_eq!(unknown, "CON No such agent and store.\nEnter agent number");
    app.at_hop(&s, amina, "6*123456*9999*500*123456").await;
    app.at_hop(&s, amina, "6*123456*9999*500*123456*1001").await;
    assert_eq!(
        app.at_hop(&s, amina, "6*123456*9999*500*123456*1001*500").await,
        "CON Withdraw KES 500.00 at Duka la Demo, Demo Street? Fee KES 29.00.\n1. Yes\n2. No\n0. Back"
    );
    assert_eq!(
        app.at_hop(&s, amina, "6*123456*9999*500*123456*1001*500*1").await,
        "CON Enter PIN to withdraw KES 500.00"
    );
    let done = app.at_hop(&s, amina, &format!("6*123456*9999*500*123456*1001*500*1*{DEMO_PIN}")).await;
    assert!(done.starts_with("END Take KES 500.00 in cash from the agent. Ref TX"), "{done}");
    assert!(done.ends_with("Balance KES 471.00."), "{done}");

    assert_eq!(wallet(&pool, amina).await, 1_000_00 - 500_00 - 29_00);
    assert_eq!(account_of_kind(&pool, "agent_float").await, float + 500_00);
    // The agent earns two fifths of the fee; fee revenue keeps the rest.
    assert_eq!(account_of_kind(&pool, "agent_commission").await, 11_60);
    assert_eq!(account_of_kind(&pool, "fee_revenue").await, fees + 29_00 - 11_60);
    assert_ledger_invariants(&pool).await;
    let receipts: Vec<(String, String)> = sqlx::query_as(
        "SELECT msisdn, template FROM outbox WHERE template LIKE 'cash_out%' ORDER BY template DESC",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        receipts,
        [(amina.to_owned(), "cash_out_withdrawn".to_owned()), (JAMES.to_owned(), "cash_out_paid".to_owned())]
    );
    // The agent sees its commission.
    let s = unique_session();
    agent_hop(&app, &s, JAMES, "").await;
    agent_hop(&app, &s, JAMES, "2").await;
    assert_eq!(
        agent_hop(&app, &s, JAMES, &format!("2*{DEMO_PIN}")).await,
        "END Float KES 100,500.00. Commission KES 11.60."
    );

    // More than the wallet holds with the fee; and an agent at its own store.
    // (Jump-ahead dials: the whole walk in the first hop's text.)
    let short = app.journey(amina, &format!("6*123456*1001*471*1*{DEMO_PIN}")).await;
    assert_eq!(short, "END Not enough money. You need KES 500.00 including the fee.");
    let own = app.at_hop(&unique_session(), JAMES, "6*123456*1001*100").await;
    assert!(own.starts_with("CON Withdraw at another agent's store."), "{own}");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn withdrawal_fees_and_commissions_are_exact_at_band_boundaries(pool: PgPool) {
    let _app = spawn(pool.clone(), Store::Memory).await;
    seed_demo_agent(&pool).await.unwrap();
    // A rich customer, so that only the bands decide.
    sqlx::query("SELECT ledger_fund('rich', (SELECT a.id FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = '+254700000005' AND a.kind = 'wallet'), 40000000)")
        .execute(&pool)
        .await
        .unwrap();
    for (i, (amount, fee)) in [
        (49_99, None),
        (50_00, Some(11_00)),
        (100_00, Some(11_00)),
        (100_01, Some(29_00)),
        (2_500_00, Some(29_00)),
        (2_500_01, Some(52_00)),
        (50_000_00, Some(278_00)),
        (50_000_01, Some(309_00)),
        (250_000_00, Some(309_00)),
        (250_000_01, None),
    ]
    .into_iter()
    .enumerate()
    {
        let (outcome, id, charged): (String, i64, i64) = sqlx::query_as(
            "SELECT outcome, transfer_id, fee FROM agent_cash_out($1, '\\x02', '+254700000005', '123456', '1001', $2)",
        )
        .bind(format!("band-{i}"))
        .bind(amount)
        .fetch_one(&pool)
        .await
        .unwrap();
        match fee {
            None => assert_eq!(outcome, "limit_exceeded", "{amount}"),
            Some(fee) => {
                assert_eq!((outcome.as_str(), charged), ("ok", fee), "{amount}");
                let commission: i64 = sqlx::query_scalar(
                    "SELECT e.amount FROM entries e JOIN accounts a ON a.id = e.account_id
                      WHERE e.transfer_id = $1 AND a.kind = 'agent_commission'",
                )
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
                assert_eq!(commission, fee * 2 / 5, "{amount}");
            }
        }
    }
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn agents_send_each_other_float_and_read_their_float_statement(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    seed_demo_agent(&pool).await.unwrap();
    let cynthia = ussd_gateway::admin::agents::NewAgent {
        msisdn: common::sms::msisdn(3),
        agent_number: "222333".into(),
        name: "Cynthia Shop".into(),
        stores: vec![("2001".into(), "Market Road".into())],
    };
    ussd_gateway::admin::agents::onboard(&pool, &cynthia).await.unwrap();

    // Refused before the PIN: its own number, an unknown one.
    let own = agent_hop(&app, &unique_session(), JAMES, "3*123456*500").await;
    assert!(own.starts_with("CON That is your own agent number."), "{own}");
    let unknown = agent_hop(&app, &unique_session(), JAMES, "3*765432*500").await;
    assert!(unknown.starts_with("CON No agent has that number."), "{unknown}");

    let s = unique_session();
    assert_eq!(
        agent_hop(&app, &s, JAMES, "3*222333*5000").await,
        "CON Send KES 5,000.00 of float to agent 222333 Cynthia Shop?\n1. Yes\n2. No\n0. Back"
    );
    agent_hop(&app, &s, JAMES, "3*222333*5000*1").await;
    let done = agent_hop(&app, &s, JAMES, &format!("3*222333*5000*1*{DEMO_PIN}")).await;
    assert!(done.starts_with("END Sent KES 5,000.00 of float to Cynthia Shop. Ref TX"), "{done}");
    assert!(done.ends_with("Float KES 95,000.00."), "{done}");
    let float: i64 = sqlx::query_scalar(
        "SELECT a.balance FROM agents g JOIN accounts a ON a.id = g.float_account_id WHERE g.agent_number = '222333'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(float, 5_000_00);
    let receipts: Vec<(String, String)> = sqlx::query_as(
        "SELECT msisdn, template FROM outbox WHERE template LIKE 'float_%' ORDER BY template DESC",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        receipts,
        [
            (JAMES.to_owned(), "float_sent".to_owned()),
            ("+254700000003".to_owned(), "float_received".to_owned())
        ]
    );

    // A deposit for Amina, then James's float statement, newest first; and Amina's
    // statement names the shop, not the phone behind it.
    app.walk("*385#", JAMES, &format!("1*0700000001*250*1*{DEMO_PIN}")).await;
    let statement = app.walk("*385#", JAMES, &format!("4*{DEMO_PIN}")).await;
    let lines: Vec<&str> = statement.trim_start_matches("END ").lines().collect();
    assert_eq!(lines.len(), 3, "{statement}");
    assert!(lines[0].ends_with(" -250.00 Amina O."), "{statement}");
    assert!(lines[1].ends_with(" -5,000.00 Cynthia Shop"), "{statement}");
    assert!(lines[2].ends_with(" 100,000.00 Top-up"), "{statement}");
    let mini = app.journey("+254700000001", &format!("3*{DEMO_PIN}")).await;
    assert!(mini.contains(" 250.00 Duka la Demo"), "{mini}");
    assert_ledger_invariants(&pool).await;
}
