//! Cash-out started by the agent and approved by the customer: the request on *385#
//! that holds the money, "My approvals" on *384#, decline, expiry by the sweeper, and
//! each hold resolved exactly once while approvals, duplicates and the sweeper race.

use crate::common::*;
use axum::http::StatusCode;
use sqlx::PgPool;
use ussd_gateway::money::{DEMO_PIN, seed_demo_agent};

const JAMES: &str = "+254700000010";
const AMINA: &str = "+254700000001";

async fn agent_hop(app: &TestApp, session: &str, text: &str) -> String {
    let r = app.post_raw(at_form(session, "*385#", JAMES, text)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

/// Balance and held of `msisdn`'s wallet.
async fn wallet(pool: &PgPool, msisdn: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT a.balance, a.held FROM accounts a JOIN customers c ON c.id = a.customer_id
          WHERE c.msisdn = $1 AND a.kind = 'wallet'",
    )
    .bind(msisdn)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn float(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT balance FROM accounts WHERE kind = 'agent_float'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The agent's request straight through the ledger function: its outcome and transfer.
async fn request(pool: &PgPool, key: &str, customer: &str, amount: i64) -> (String, i64) {
    sqlx::query_as(
        "SELECT outcome, transfer_id FROM agent_cash_out_request($1, '\\x01', $2, '1001', $3, $4, 300, '*384*7#')",
    )
    .bind(key)
    .bind(JAMES)
    .bind(customer)
    .bind(amount)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn decide(pool: &PgPool, transfer: i64, approve: bool) -> String {
    sqlx::query_scalar("SELECT outcome FROM cash_out_decide($1, $2, $3)")
        .bind(transfer)
        .bind(AMINA)
        .bind(approve)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn templates_to(pool: &PgPool, msisdn: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT template FROM outbox WHERE msisdn = $1 AND transfer_id IS NOT NULL ORDER BY id",
    )
    .bind(msisdn)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_agent_asks_and_the_customer_approves_with_their_pin(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    seed_demo_agent(&pool).await.unwrap();
    let float_before = float(&pool).await;

    let s = unique_session();
    assert!(agent_hop(&app, &s, "").await.ends_with("5. Withdrawal for a customer"));
    assert_eq!(agent_hop(&app, &s, "5").await, "CON Customer's phone number");
    assert_eq!(agent_hop(&app, &s, "5*0700000001").await, "CON Amount to withdraw");
    assert_eq!(agent_hop(&app, &s, "5*0700000001*500").await, "CON Your store number");
    assert_eq!(
        agent_hop(&app, &s, "5*0700000001*500*9999").await,
        "CON That is not one of your stores.\nYour store number"
    );
    assert_eq!(
        agent_hop(&app, &s, "5*0700000001*500*9999*1001").await,
        "CON Ask Amina Otieno +254700***001 to approve withdrawing KES 500.00? Fee KES 29.00.\n1. Yes\n2. No\n0. Back"
    );
    assert_eq!(
        agent_hop(&app, &s, "5*0700000001*500*9999*1001*1").await,
        "CON Enter your PIN to send the request"
    );
    let sent = agent_hop(&app, &s, &format!("5*0700000001*500*9999*1001*1*{DEMO_PIN}")).await;
    assert!(
        sent.starts_with(
            "END Request sent. Amina Otieno approves on *384*7# within 5 min. Pay out cash only after the SMS confirming it. Ref TX"
        ),
        "{sent}"
    );
    // Held, not moved: the balance stays, what she can spend shrinks by amount and fee.
    assert_eq!(wallet(&pool, AMINA).await, (1_000_00, 529_00));
    assert_eq!(templates_to(&pool, AMINA).await, ["cash_out_request"]);
    let short = app.journey(AMINA, &format!("1*0700000002*500*1*{DEMO_PIN}")).await;
    assert!(short.starts_with("END Not enough money"), "the hold is not spendable: {short}");

    let s = unique_session();
    assert_eq!(
        app.at_hop(&s, AMINA, "7").await,
        "CON Duka la Demo, Demo Street asks to pay you KES 500.00 in cash. Fee KES 29.00.\n1. Approve\n2. Decline\n0. Back"
    );
    assert_eq!(app.at_hop(&s, AMINA, "7*1").await, "CON Enter PIN to withdraw KES 500.00");
    assert_eq!(app.at_hop(&s, AMINA, "7*1*9999").await, "CON Wrong PIN.\nEnter PIN to withdraw KES 500.00");
    let done = app.at_hop(&s, AMINA, &format!("7*1*9999*{DEMO_PIN}")).await;
    assert!(done.starts_with("END Approved. Take KES 500.00 in cash from the agent. Ref TX"), "{done}");
    assert!(done.ends_with("Balance KES 471.00."), "{done}");

    assert_eq!(wallet(&pool, AMINA).await, (471_00, 0));
    assert_eq!(float(&pool).await, float_before + 500_00);
    let commission: i64 = sqlx::query_scalar("SELECT balance FROM accounts WHERE kind = 'agent_commission'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(commission, 11_60);
    assert_eq!(templates_to(&pool, AMINA).await, ["cash_out_request", "cash_out_withdrawn"]);
    assert_eq!(templates_to(&pool, JAMES).await, ["cash_out_paid"]);
    assert_ledger_invariants(&pool).await;

    // Nothing waits any more; approving again answers what happened, once.
    assert_eq!(app.at_hop(&unique_session(), AMINA, "7").await, "END Nothing is waiting for your approval.");
    let id: i64 = sqlx::query_scalar("SELECT transfer_id FROM holds").fetch_one(&pool).await.unwrap();
    assert_eq!(decide(&pool, id, true).await, "ok");
    assert_eq!(decide(&pool, id, false).await, "ok", "a posted request is not declined afterwards");
    assert_eq!(wallet(&pool, AMINA).await, (471_00, 0));
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn declined_and_expired_requests_give_the_money_back(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    seed_demo_agent(&pool).await.unwrap();
    let (first, a) = request(&pool, "a", AMINA, 100_00).await;
    let (second, b) = request(&pool, "b", AMINA, 200_00).await;
    assert_eq!((first.as_str(), second.as_str()), ("ok", "ok"));
    // Fees: KES 11 up to KES 100, KES 29 above.
    assert_eq!(wallet(&pool, AMINA).await, (1_000_00, 111_00 + 229_00));

    let s = unique_session();
    let shown = app.at_hop(&s, AMINA, "7").await;
    assert!(shown.contains("KES 100.00 in cash. Fee KES 11.00. (1 of 2)"), "{shown}");
    assert_eq!(app.at_hop(&s, AMINA, "7*2").await, "END Declined. No money was moved.");
    assert_eq!(wallet(&pool, AMINA).await, (1_000_00, 229_00));
    assert_eq!(templates_to(&pool, JAMES).await, ["cash_out_declined"]);

    // Unanswered past its time: the sweeper gives the money back and tells the agent.
    let sweep = || app.state.gateway.money().expire_holds();
    assert_eq!(sweep().await.unwrap(), 0, "not yet due");
    sqlx::query("UPDATE holds SET expires_at = now() - interval '1 second' WHERE transfer_id = $1")
        .bind(b)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(sweep().await.unwrap(), 1);
    assert_eq!(sweep().await.unwrap(), 0, "expired once");
    assert_eq!(wallet(&pool, AMINA).await, (1_000_00, 0));
    assert_eq!(templates_to(&pool, JAMES).await, ["cash_out_declined", "cash_out_expired"]);
    assert_eq!(app.at_hop(&unique_session(), AMINA, "7").await, "END Nothing is waiting for your approval.");
    assert_eq!(decide(&pool, b, true).await, "expired");
    assert_eq!(decide(&pool, a, true).await, "declined");

    // Due but not yet swept: the approval itself finds it expired, once.
    let (_, c) = request(&pool, "c", AMINA, 300_00).await;
    sqlx::query("UPDATE holds SET expires_at = now() WHERE transfer_id = $1")
        .bind(c)
        .execute(&pool)
        .await
        .unwrap();
    let late = app.at_hop(&unique_session(), AMINA, "7").await;
    assert_eq!(late, "END Nothing is waiting for your approval.");
    assert_eq!(decide(&pool, c, true).await, "expired");
    assert_eq!(sweep().await.unwrap(), 0);
    assert_eq!(wallet(&pool, AMINA).await, (1_000_00, 0));
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM transfers WHERE kind = 'cash_out' ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(statuses, ["voided", "expired", "expired"]);
    // Each hold is told to the event log: put aside, then given back or run out.
    let told: Vec<(String, String)> = sqlx::query_as(
        "SELECT e.type, event_id(e) FROM events e JOIN accounts a ON a.id = e.account_id
           JOIN customers c ON c.id = a.customer_id
          WHERE c.msisdn = $1 AND a.kind = 'wallet' AND e.type LIKE 'hold.%' ORDER BY e.sequence",
    )
    .bind(AMINA)
    .fetch_all(&pool)
    .await
    .unwrap();
    let kinds: Vec<&str> = told.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["hold.placed", "hold.placed", "hold.released", "hold.expired", "hold.placed", "hold.expired"]
    );
    assert!(told.iter().all(|(kind, id)| id.ends_with(".held") == (kind == "hold.placed")), "{told:?}");
    // Someone else's request is not Amina's to decide.
    let (_, d) = request(&pool, "d", "+254700000002", 100_00).await;
    assert_eq!(decide(&pool, d, true).await, "not_found");
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn concurrent_requests_never_hold_more_than_the_wallet_has(pool: PgPool) {
    let _app = spawn(pool.clone(), Store::Memory).await;
    seed_demo_agent(&pool).await.unwrap();
    // KES 300 plus KES 29 fee each: three fit in KES 1,000, twelve are asked at once.
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..12 {
        let pool = pool.clone();
        clients.spawn(async move { request(&pool, &format!("r{i}"), AMINA, 300_00).await.0 });
    }
    let outcomes = clients.join_all().await;
    assert_eq!(outcomes.iter().filter(|o| *o == "ok").count(), 3, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "insufficient_funds").count(), 9, "{outcomes:?}");
    assert_eq!(wallet(&pool, AMINA).await, (1_000_00, 3 * 329_00));
    // A replayed request is the same request, holding nothing more.
    let first: i64 = sqlx::query_scalar("SELECT min(transfer_id) FROM holds").fetch_one(&pool).await.unwrap();
    let key: String = sqlx::query_scalar("SELECT idempotency_key FROM transfers WHERE id = $1")
        .bind(first)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(request(&pool, &key, AMINA, 300_00).await, ("ok".to_owned(), first));
    // Held money is not spendable by other debits either.
    let p2p: String =
        sqlx::query_scalar("SELECT outcome FROM transfer_p2p('p', '\\x02', $1, '+254700000002', 2000)")
            .bind(AMINA)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(p2p, "insufficient_funds");
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn approvals_duplicates_and_the_sweeper_race_and_each_hold_resolves_once(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    seed_demo_agent(&pool).await.unwrap();
    sqlx::query("SELECT ledger_fund('rich', (SELECT a.id FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = $1 AND a.kind = 'wallet'), 10000000)")
        .bind(AMINA)
        .execute(&pool)
        .await
        .unwrap();
    const N: usize = 30;
    let mut ids = Vec::new();
    for i in 0..N {
        let (outcome, id) = request(&pool, &format!("race{i}"), AMINA, 100_00).await;
        assert_eq!(outcome, "ok");
        ids.push(id);
    }
    // They fall due a few milliseconds apart, while being approved (twice each, as a
    // duplicated hop would) and swept.
    sqlx::query(
        "UPDATE holds SET expires_at = now() + (transfer_id - (SELECT min(transfer_id) FROM holds)) * interval '2 milliseconds'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut racers = tokio::task::JoinSet::new();
    for &id in &ids {
        for _ in 0..2 {
            let pool = pool.clone();
            racers.spawn(async move { (id, decide(&pool, id, true).await) });
        }
    }
    let money = app.state.gateway.money().clone();
    let sweeper_pool = pool.clone();
    let sweeper = tokio::spawn(async move {
        // Until every hold is resolved; each is due within N × 2 ms.
        let mut swept = 0;
        loop {
            swept += money.expire_holds().await.unwrap();
            let open: i64 = sqlx::query_scalar("SELECT count(*) FROM holds WHERE resolution IS NULL")
                .fetch_one(&sweeper_pool)
                .await
                .unwrap();
            if open == 0 {
                return swept;
            }
            tokio::task::yield_now().await;
        }
    });
    let answers = racers.join_all().await;
    sweeper.await.unwrap();

    let resolutions: Vec<(i64, String)> =
        sqlx::query_as("SELECT transfer_id, resolution FROM holds ORDER BY transfer_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(resolutions.len(), N);
    let posted: Vec<i64> = resolutions.iter().filter(|(_, r)| r == "posted").map(|(id, _)| *id).collect();
    for (id, resolution) in &resolutions {
        assert!(resolution == "posted" || resolution == "expired", "{id}: {resolution}");
        // Both copies of the approval agree with what happened.
        let said: Vec<&str> = answers.iter().filter(|(a, _)| a == id).map(|(_, o)| o.as_str()).collect();
        let expected = if resolution == "posted" { "ok" } else { "expired" };
        assert_eq!(said, [expected, expected], "hold {id}");
    }
    let n = i64::try_from(posted.len()).unwrap();
    assert_eq!(wallet(&pool, AMINA).await, (1_000_00 + 100_000_00 - n * 111_00, 0));
    let outcomes: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE template = 'cash_out_expired'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(outcomes, i64::try_from(N).unwrap() - n, "one notice per expired request");
    assert_ledger_invariants(&pool).await;
}

/// A promise on `op` under `key`, made as a hop would when it cannot learn the outcome.
async fn promise(app: &TestApp, op: ussd_gateway::ops::Op, key: &str, dialler: &str, request: Option<i64>) {
    let msisdn =
        ussd_gateway::domain::Msisdn::parse(dialler, ussd_gateway::domain::Region::parse("KE").unwrap())
            .unwrap();
    let promise = ussd_gateway::money::Promise {
        op: op.name(),
        movement: op.spec().movement.expect("a movement"),
        op_key: key,
        request,
        msisdn: &msisdn,
        language: "en",
        due_in: std::time::Duration::ZERO,
    };
    app.state.gateway.money().promise(&promise).await.unwrap();
}

async fn notices(pool: &PgPool, key: &str) -> Vec<(String, String, serde_json::Value)> {
    sqlx::query_as("SELECT msisdn, template, data FROM outbox WHERE op_key = $1")
        .bind(key)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn promises_on_requests_and_approvals_are_kept_by_what_became_of_the_hold(pool: PgPool) {
    use ussd_gateway::money::Kept;
    use ussd_gateway::ops::{self, Op};
    let app = spawn(pool.clone(), Store::Memory).await;
    seed_demo_agent(&pool).await.unwrap();
    let money = app.state.gateway.money();

    // The agent's request went through, but only the customer hears of it: the agent's
    // promised SMS says it was sent.
    let (outcome, transfer) = request(&pool, "req-1", AMINA, 100_00).await;
    assert_eq!(outcome, "ok");
    let held = wallet(&pool, AMINA).await.1;
    assert!(held > 100_00, "amount and fee held");
    promise(&app, Op::of::<ops::AgentCashOutRequest>(), "req-1", JAMES, None).await;
    assert_eq!(money.keep_promise("req-1", None).await.unwrap(), Kept::Notice);
    let told = notices(&pool, "req-1").await;
    assert_eq!(told.len(), 1);
    assert_eq!((told[0].0.as_str(), told[0].1.as_str()), (JAMES, "completed"));
    assert_eq!(told[0].2["ref"], serde_json::json!(format!("TX{transfer:08X}")));

    // An approval that never arrived: the keeper fences its key, and the approval
    // arriving after it moves nothing; the hold still waits for a real decision.
    promise(&app, Op::of::<ops::CashOutApprove>(), "approve-1", AMINA, Some(transfer)).await;
    assert_eq!(money.keep_promise("approve-1", None).await.unwrap(), Kept::Notice);
    assert_eq!(notices(&pool, "approve-1").await[0].2, serde_json::json!({ "outcome": "not_arrived" }));
    let late: String =
        sqlx::query_scalar("SELECT outcome FROM cash_out_decide_keyed('approve-1', $1, $2, true)")
            .bind(transfer)
            .bind(AMINA)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(late, "not_arrived");
    assert_eq!(wallet(&pool, AMINA).await.1, held, "still held");

    // An approval that did arrive: its withdrawal receipt keeps the promise.
    assert_eq!(decide(&pool, transfer, true).await, "ok");
    promise(&app, Op::of::<ops::CashOutApprove>(), "approve-2", AMINA, Some(transfer)).await;
    assert_eq!(money.keep_promise("approve-2", None).await.unwrap(), Kept::Receipt);
    assert!(notices(&pool, "approve-2").await.is_empty());
    assert_ledger_invariants(&pool).await;
}
