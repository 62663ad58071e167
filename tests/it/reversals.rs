//! A sender asks for a send back: the amount held on the recipient's wallet, reversed
//! when the dispute window passes undisputed; disputed or already spent, queued for an
//! operator who approves or rejects; racing the recipient's own spending.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use ussd_gateway::domain::{Amount, Msisdn, Region};
use ussd_gateway::money::reversals;
use ussd_gateway::money::transfer_p2p;
use ussd_gateway::outcome::Outcome;

const AMINA: &str = "+254700000001";
const BRIAN: &str = "+254700000002";
const CYNTHIA: &str = "+254700000003";

fn number(e164: &str) -> Msisdn {
    Msisdn::parse(e164, Region::parse("KE").unwrap()).unwrap()
}

async fn send(pool: &PgPool, from: &str, to: &str, minor: i64) -> (Outcome, String) {
    let key = format!("send:{:x}", rand::random::<u64>());
    let sent = transfer_p2p(pool, &key, &number(from), &number(to), Amount::from_minor(minor).unwrap())
        .await
        .unwrap();
    (sent.outcome, sent.reference())
}

/// A wallet's balance and what is held on it.
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

/// The SMS a number was sent about reversals, in order.
async fn told(pool: &PgPool, msisdn: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT template FROM outbox WHERE msisdn = $1 AND template LIKE 'reversal%' ORDER BY id",
    )
    .bind(msisdn)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Ends the dispute window of every held request now, as if it had passed.
async fn window_passes(pool: &PgPool) {
    sqlx::query(
        "UPDATE reversal_requests SET dispute_until = now() - interval '1 second' WHERE state = 'held'",
    )
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn an_undisputed_request_is_reversed_once_when_the_window_passes(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let (_, sent) = send(&pool, AMINA, BRIAN, 300_00).await;
    let (amina_after_send, _) = wallet(&pool, AMINA).await;

    // Through the menu: the send is listed, confirmed, and asked back with the PIN.
    let s = unique_session();
    app.at_hop(&s, AMINA, "").await;
    app.at_hop(&s, AMINA, "98").await;
    let list = app.at_hop(&s, AMINA, "98*11").await;
    assert!(list.starts_with("CON Which send?\n1. "), "{list}");
    assert!(list.contains(" KES 300.00 Brian K."), "{list}");
    let confirm = app.at_hop(&s, AMINA, "98*11*1").await;
    assert!(confirm.contains(&format!("Ask Brian K. to give back KES 300.00 ({sent})?")), "{confirm}");
    app.at_hop(&s, AMINA, "98*11*1*1").await;
    let asked = app.at_hop(&s, AMINA, "98*11*1*1*1234").await;
    assert_eq!(
        asked,
        "END Asked. KES 300.00 is held in Brian K.'s wallet and comes back in 24 hours unless they dispute it. You will get an SMS."
    );
    assert_eq!(wallet(&pool, BRIAN).await, (2_300_00, 300_00), "held on the recipient, not moved");
    assert_eq!(told(&pool, BRIAN).await, ["reversal_asked"]);
    assert_eq!(told(&pool, AMINA).await, ["reversal_held"]);
    // Asked again (a repeated hop, or a second try): the same request, nothing more held.
    let money = app.state.gateway.money();
    let again = reversals::request(
        money.pool(),
        &number(AMINA),
        ussd_gateway::money::parse_reference(&sent).unwrap(),
        std::time::Duration::from_secs(86_400),
        "*384*7#",
    )
    .await
    .unwrap();
    assert_eq!((again.outcome, &again.data["state"]), (Outcome::Ok, &json!("held")));
    assert_eq!(wallet(&pool, BRIAN).await, (2_300_00, 300_00));
    // The send is no longer offered.
    assert_eq!(
        app.journey(AMINA, "11").await,
        "END None of your sends of the last 24 hours can be asked back."
    );

    assert_eq!(money.sweep_reversals().await.unwrap(), 0, "not before the window passes");
    window_passes(&pool).await;
    assert_eq!(money.sweep_reversals().await.unwrap(), 1);
    assert_eq!(money.sweep_reversals().await.unwrap(), 0, "at most once");
    assert_eq!(wallet(&pool, BRIAN).await, (2_000_00, 0));
    assert_eq!(wallet(&pool, AMINA).await, (amina_after_send + 300_00, 0), "the amount back, not the fee");
    let receipts: Vec<String> = sqlx::query_scalar(
        "SELECT o.template FROM outbox o JOIN transfers t ON t.id = o.transfer_id WHERE t.kind = 'reversal' AND t.status = 'posted' ORDER BY o.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(receipts, ["reversal_debited", "reversal_credited"]);
    let released: Value =
        sqlx::query_scalar("SELECT data FROM events WHERE type = 'hold.released' ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(released["reason"], "reversed");
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_disputed_request_stays_held_until_an_operator_decides(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let desk = ussd_gateway::admin::create(&pool, "disputes", &["transfers:reverse".into()]).await.unwrap();
    let (_, first) = send(&pool, AMINA, BRIAN, 300_00).await;
    let (_, second) = send(&pool, AMINA, BRIAN, 200_00).await;
    app.journey(AMINA, "11*2*1*1234").await;
    app.journey(AMINA, "11*1*1*1234").await;
    assert_eq!(wallet(&pool, BRIAN).await, (2_500_00, 500_00));

    // Brian disputes the first from My approvals; the second he gives back himself.
    let shown = app.journey(BRIAN, "7").await;
    assert!(
        shown.starts_with(&format!(
            "CON Amina Otieno asks for the KES 300.00 sent to you ({first}) back. Held until "
        )),
        "{shown}"
    );
    assert_eq!(
        app.journey(BRIAN, "7*2").await,
        "END Disputed. The amount stays held while our team decides; you will get an SMS."
    );
    assert_eq!(told(&pool, AMINA).await, ["reversal_held", "reversal_held", "reversal_disputed"]);
    let given = app.journey(BRIAN, "7*1*1234").await;
    assert!(given.starts_with("END Given back: KES 200.00 to Amina Otieno. Ref TX"), "{given}");
    assert_eq!(wallet(&pool, BRIAN).await, (2_300_00, 300_00));
    assert_eq!(app.journey(BRIAN, "7").await, "END Nothing is waiting for your approval.");

    // The window passing changes nothing for a disputed request.
    window_passes(&pool).await;
    assert_eq!(app.state.gateway.money().sweep_reversals().await.unwrap(), 0);
    let (status, queue) = app.admin("GET", "/admin/reversal-requests", Some(&desk), None, None).await;
    assert_eq!(status, StatusCode::OK);
    let requests = queue["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{queue}");
    assert_eq!(
        (&requests[0]["send"], &requests[0]["state"], &requests[0]["because"]),
        (&json!(first), &json!("queued"), &json!("disputed"))
    );
    assert_eq!(requests[0]["recipient"]["msisdn"], BRIAN);

    let path = format!("/admin/reversal-requests/{first}/reject");
    let (status, _) =
        app.admin("POST", &path, Some(&desk), None, Some(json!({ "note": "x" }).to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a note says why");
    let note = json!({ "note": "Brian showed the goods were delivered" }).to_string();
    let (status, rejected) = app.admin("POST", &path, Some(&desk), None, Some(note.clone())).await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!((&rejected["state"], &rejected["decided_by"]), (&json!("rejected"), &json!("admin:disputes")));
    assert_eq!(wallet(&pool, BRIAN).await, (2_300_00, 0), "the hold released, nothing moved");
    assert_eq!(
        told(&pool, BRIAN).await,
        ["reversal_asked", "reversal_asked", "reversal_debited", "reversal_released"],
        "asked twice, gave one back (its receipt), told the other is his again"
    );
    assert_eq!(told(&pool, AMINA).await.last().unwrap(), "reversal_rejected");
    let approve = format!("/admin/reversal-requests/{first}/approve");
    let (status, _) = app.admin("POST", &approve, Some(&desk), None, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "decided once");
    let (status, _) = app
        .admin("POST", &format!("/admin/reversal-requests/{second}/approve"), Some(&desk), None, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "given back already");
    let (status, _) =
        app.admin("POST", "/admin/reversal-requests/TX7FFFFFFF/approve", Some(&desk), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_spent_send_goes_to_the_queue_and_comes_back_once_the_money_is_there(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let desk = ussd_gateway::admin::create(&pool, "disputes", &["transfers:reverse".into()]).await.unwrap();
    let (_, sent) = send(&pool, CYNTHIA, AMINA, 500_00).await;
    // Amina spends all but KES 100 before Cynthia asks.
    let (spent, _) = send(&pool, AMINA, BRIAN, 1_400_00).await;
    assert_eq!(spent, Outcome::Ok);
    assert_eq!(
        app.journey(CYNTHIA, "11*1*1*1234").await,
        "END Amina O. no longer has the money. Our team will look into your request; you will get an SMS."
    );
    assert_eq!(told(&pool, CYNTHIA).await, ["reversal_queued"]);
    assert_eq!(wallet(&pool, AMINA).await.1, 0, "nothing held");
    let approve = format!("/admin/reversal-requests/{sent}/approve");
    let (status, answer) = app.admin("POST", &approve, Some(&desk), None, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"], "the recipient no longer has the amount; nothing was moved");
    let (cynthia, _) = wallet(&pool, CYNTHIA).await;
    // Money comes in; the operator tries again.
    send(&pool, BRIAN, AMINA, 1_000_00).await;
    let (status, approved) = app.admin("POST", &approve, Some(&desk), None, None).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["state"], "reversed");
    assert_eq!(wallet(&pool, CYNTHIA).await, (cynthia + 500_00, 0));
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_request_racing_the_recipients_spending_either_holds_or_queues_never_both(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let money = app.state.gateway.money().clone();
    let mut outcomes = Vec::new();
    let amina = number(AMINA);
    for round in 0..8 {
        let (sent_ok, sent) = send(&pool, AMINA, BRIAN, 100_00).await;
        assert_eq!(sent_ok, Outcome::Ok, "round {round}");
        let original = ussd_gateway::money::parse_reference(&sent).unwrap();
        // Brian spends all but KES 50 as Amina asks: only one of them can have the KES 100.
        let (balance, held) = wallet(&pool, BRIAN).await;
        let spend = balance - held - 50_00;
        let ask =
            reversals::request(money.pool(), &amina, original, std::time::Duration::from_secs(60), "*384*7#");
        let (asked, (spent, _)) = tokio::join!(ask, send(&pool, BRIAN, CYNTHIA, spend));
        let asked = asked.unwrap();
        let state =
            asked.data["state"].as_str().unwrap_or_else(|| panic!("round {round}: {asked:?}")).to_owned();
        match state.as_str() {
            "held" => assert_ne!(spent, Outcome::Ok, "round {round}: held, so the spend could not be made"),
            "queued" => assert_eq!(spent, Outcome::Ok, "round {round}: queued only because it was spent"),
            other => panic!("round {round}: {other}"),
        }
        outcomes.push(state);
        let (balance, held) = wallet(&pool, BRIAN).await;
        assert!(balance >= held && held >= 0, "round {round}: {balance} {held}");
        // Cynthia gives it back to Brian for the next round.
        if spent == Outcome::Ok {
            send(&pool, CYNTHIA, BRIAN, spend).await;
        }
    }
    window_passes(&pool).await;
    let held = outcomes.iter().filter(|s| *s == "held").count() as u64;
    assert_eq!(money.sweep_reversals().await.unwrap(), held);
    assert_eq!(wallet(&pool, BRIAN).await.1, 0);
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_late_dispute_a_blocked_wallet_and_a_direct_reversal_are_each_answered_truly(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let desk = ussd_gateway::admin::create(&pool, "disputes", &["transfers:reverse".into()]).await.unwrap();
    let money = app.state.gateway.money().clone();
    let ask = |sent: String| {
        let money = money.clone();
        async move {
            let original = ussd_gateway::money::parse_reference(&sent).unwrap();
            reversals::request(
                money.pool(),
                &number(AMINA),
                original,
                std::time::Duration::from_secs(60),
                "*384*7#",
            )
            .await
            .unwrap()
        }
    };

    // Past the window, the recipient can no longer dispute: the reversal is due.
    let (_, late) = send(&pool, AMINA, BRIAN, 100_00).await;
    assert_eq!(ask(late.clone()).await.data["state"], "held");
    window_passes(&pool).await;
    assert_eq!(app.journey(BRIAN, "7").await, "END Nothing is waiting for your approval.");
    let original = ussd_gateway::money::parse_reference(&late).unwrap();
    assert_eq!(
        reversals::dispute(money.pool(), &number(BRIAN), original).await.unwrap().outcome,
        Outcome::Expired
    );
    assert_eq!(money.sweep_reversals().await.unwrap(), 1);

    // A disputed request asked about again says so, not that the money was spent.
    let (_, disputed) = send(&pool, AMINA, BRIAN, 100_00).await;
    app.journey(AMINA, "11*1*1*1234").await;
    app.journey(BRIAN, "7*2").await;
    let again = ask(disputed.clone()).await;
    assert_eq!((&again.data["state"], &again.data["because"]), (&json!("queued"), &json!("disputed")));
    // An operator's direct reversal of it is refused: the request decides.
    let reason = json!({ "reason": "wrong number" }).to_string();
    let (status, answer) = app
        .admin("POST", &format!("/admin/transfers/{disputed}/reverse"), Some(&desk), None, Some(reason))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("/admin/reversal-requests/"), "{answer}");

    // A blocked wallet: nothing is held for a new request, and a held one goes to the
    // queue when due rather than moving money out of it.
    let (_, held) = send(&pool, AMINA, BRIAN, 100_00).await;
    assert_eq!(ask(held.clone()).await.data["state"], "held");
    let (_, blocked) = send(&pool, AMINA, BRIAN, 100_00).await;
    sqlx::query("UPDATE accounts SET status = 'blocked' FROM customers c WHERE c.id = accounts.customer_id AND c.msisdn = $1")
        .bind(BRIAN)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(ask(blocked).await.outcome, Outcome::AccountBlocked);
    let (_, held_before) = wallet(&pool, BRIAN).await;
    assert_eq!(held_before, 200_00, "the disputed and the held request, nothing more");
    window_passes(&pool).await;
    assert_eq!(money.sweep_reversals().await.unwrap(), 0);
    let state: (String, Option<String>) =
        sqlx::query_as("SELECT state, queued_because FROM reversal_requests WHERE original_id = $1")
            .bind(ussd_gateway::money::parse_reference(&held).unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(state, ("queued".to_owned(), Some("blocked".to_owned())));
    // The operator's word moves it.
    let (status, approved) =
        app.admin("POST", &format!("/admin/reversal-requests/{held}/approve"), Some(&desk), None, None).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(wallet(&pool, BRIAN).await.1, 100_00, "only the disputed request's hold is left");
    assert_ledger_invariants(&pool).await;
}

/// The reference a screen names (`Ref TX…`).
fn reference_in(screen: &str) -> String {
    let at = screen.find("Ref TX").unwrap_or_else(|| panic!("no reference in {screen}"));
    screen[at + 4..at + 14].to_owned()
}

/// What a party holds: an account's balance, a merchant's over all its shards.
async fn balance_of(pool: &PgPool, account: i64) -> i64 {
    sqlx::query_scalar("SELECT party_balance($1)").bind(account).fetch_one(pool).await.unwrap()
}

/// The accounts a transfer moved money between, and its fee.
async fn parties(pool: &PgPool, reference: &str) -> (i64, i64, i64) {
    let id = ussd_gateway::money::parse_reference(reference).unwrap();
    sqlx::query_as("SELECT debit_account_id, credit_account_id, fee FROM transfers WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn an_operator_reverses_every_kind_of_movement_the_fee_kept_or_refunded(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let desk = ussd_gateway::admin::create(&pool, "disputes", &["transfers:reverse".into()]).await.unwrap();
    ussd_gateway::money::seed_demo_agent(&pool).await.unwrap();
    ussd_gateway::money::seed_demo_merchants(&pool, "KES").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(axum::serve(listener, app.router.clone()).into_future());
    ussd_gateway::money::seed_demo_billers(&pool, &format!("http://127.0.0.1:{port}/sandbox"), "KES")
        .await
        .unwrap();
    const JAMES: &str = "+254700000010";
    // The merchant pays its fee out of each payment: it needs more than one payment's
    // worth to give one back whole.
    app.journey(BRIAN, "9*1*512346*500*1*1234").await;

    let moves = [
        ("cash-out", app.journey(AMINA, "6*123456*1001*500*1*1234").await),
        ("cash-in", app.walk("*385#", JAMES, "1*0700000001*250*1*1234").await),
        ("till", app.journey(AMINA, "9*1*512345*150*1*1234").await),
        ("paybill", app.journey(AMINA, "9*2*888880*123456*200*1*1234").await),
        ("bill", app.journey(AMINA, "8*2*1234567*100*1*1234").await),
    ];
    for (refund_fee, (what, screen)) in moves.iter().enumerate().map(|(i, m)| (i % 2 == 1, m)) {
        let reference = reference_in(screen);
        let (payer, payee, fee) = parties(&pool, &reference).await;
        let (payer_before, payee_before) = (balance_of(&pool, payer).await, balance_of(&pool, payee).await);
        let amount: i64 = sqlx::query_scalar("SELECT amount FROM transfers WHERE id = $1")
            .bind(ussd_gateway::money::parse_reference(&reference).unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
        let body =
            json!({ "reason": format!("{what} reversed in a test"), "refund_fee": refund_fee }).to_string();
        let path = format!("/admin/transfers/{reference}/reverse");
        let (status, done) = app.admin("POST", &path, Some(&desk), None, Some(body.clone())).await;
        assert_eq!(status, StatusCode::OK, "{what}: {done}");
        let (payer_after, payee_after) = (balance_of(&pool, payer).await, balance_of(&pool, payee).await);
        if refund_fee {
            // Every account's share back: the payer gets its fee too, the payee gives back
            // what it kept, and the fee comes from revenue.
            let (gained, lost) = (payer_after - payer_before, payee_before - payee_after);
            assert!(gained >= amount && lost <= amount, "{what}: {gained} {lost}");
            assert_eq!(gained - lost, fee, "{what}: {done}");
        } else {
            assert_eq!((payer_after - payer_before, payee_before - payee_after), (amount, amount), "{what}");
        }
        let (status, _) = app.admin("POST", &path, Some(&desk), None, Some(body)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{what}: at most once");
    }
    // A merchant's withdrawal to its owner is no payment between parties.
    let withdrawn: Option<i64> =
        sqlx::query_scalar("SELECT max(id) FROM transfers WHERE kind = 'merchant_withdrawal'")
            .fetch_one(&pool)
            .await
            .unwrap();
    if let Some(id) = withdrawn {
        let path = format!("/admin/transfers/{}/reverse", ussd_gateway::money::reference(id));
        let (status, _) =
            app.admin("POST", &path, Some(&desk), None, Some(json!({ "reason": "no" }).to_string())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_ledger_invariants(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_merchant_payment_asked_back_waits_for_the_merchants_consent(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    ussd_gateway::money::seed_demo_merchants(&pool, "KES").await.unwrap();
    const IRENE: &str = "+254700000009";
    let settlement = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT sum(a.balance)::bigint FROM merchant_settlement_shards s JOIN accounts a ON a.id = s.account_id
               JOIN merchants m ON m.id = s.merchant_id WHERE m.display_name = 'Mama Mboga'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let first = reference_in(&app.journey(AMINA, "9*1*512345*150*1*1234").await);
    let second = reference_in(&app.journey(AMINA, "9*1*512345*200*1*1234").await);
    let (paid, taken) = (wallet(&pool, AMINA).await, settlement().await);

    let list = app.journey(AMINA, "11").await;
    assert!(list.contains("KES 200.00 Mama Mboga\n2. ") && list.contains("KES 150.00 Mama Mboga"), "{list}");
    assert_eq!(
        app.journey(AMINA, "11*2*1*1234").await,
        "END We asked Mama Mboga to refund KES 150.00. You will get an SMS when it is decided."
    );
    app.journey(AMINA, "11*1*1*1234").await;
    assert_eq!(
        (wallet(&pool, AMINA).await, settlement().await),
        (paid, taken),
        "nothing held, nothing moved"
    );
    let sms = |template: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox WHERE template = $1")
                .bind(template)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        (sms("refund_requested").await, sms("refund_asked").await),
        (2, 2),
        "each asked, the merchant too"
    );

    // The owner refunds the first from the merchant menu, and declines the second.
    let shown = app.walk("*386#", IRENE, "1*4").await;
    assert!(shown.starts_with("CON Amina O. asks for the KES 150.00 paid "), "{shown}");
    assert!(shown.contains(&format!("({first}) back. (1 of 2)")), "{shown}");
    // A stranger cannot decide for it.
    let merchant: i64 = sqlx::query_scalar("SELECT id FROM merchants WHERE display_name = 'Mama Mboga'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let money = app.state.gateway.money();
    let stranger = reversals::merchant_decides(
        money.pool(),
        &number(BRIAN),
        merchant,
        ussd_gateway::money::parse_reference(&first).unwrap(),
        true,
    )
    .await
    .unwrap();
    assert_eq!(stranger.outcome, Outcome::Expired);
    let refunded = app.walk("*386#", IRENE, "1*4*1*1234").await;
    assert!(refunded.starts_with("END Refunded KES 150.00 to Amina O. Ref TX"), "{refunded}");
    assert_eq!(wallet(&pool, AMINA).await, (paid.0 + 150_00, 0), "the whole amount back");
    assert_eq!(settlement().await, taken - 150_00, "the merchant bears its fee");
    // Suspended, the merchant cannot refund: its settlement stays where it is.
    let suspend = |status: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query("UPDATE merchants SET status = $1 WHERE display_name = 'Mama Mboga'")
                .bind(status)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    suspend("suspended").await;
    let second_id = ussd_gateway::money::parse_reference(&second).unwrap();
    let refused =
        reversals::merchant_decides(money.pool(), &number(IRENE), merchant, second_id, true).await.unwrap();
    assert_eq!(refused.outcome, Outcome::AccountBlocked);
    suspend("active").await;
    let asked_of: Vec<String> =
        sqlx::query_scalar("SELECT msisdn FROM outbox WHERE template = 'refund_asked'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(asked_of, [IRENE, IRENE], "the owner is asked: only the owner can refund");
    let declined = app.walk("*386#", IRENE, "1*4*2").await;
    assert_eq!(declined, "END Declined. Amina O. is told by SMS.");
    assert_eq!(app.walk("*386#", IRENE, "1*4").await, "END No refund is asked for.");
    let decided: Vec<(String, String)> =
        sqlx::query_as("SELECT state, decided_by FROM reversal_requests ORDER BY original_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        decided,
        [("reversed".to_owned(), "merchant".to_owned()), ("rejected".to_owned(), "merchant".to_owned())]
    );
    let declined_of: String = sqlx::query_scalar(
        "SELECT data->>'ref' FROM outbox WHERE msisdn = $1 AND template = 'reversal_rejected'",
    )
    .bind(AMINA)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(declined_of, second, "Amina is told the second was declined");
    assert_ledger_invariants(&pool).await;
}
