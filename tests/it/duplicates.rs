//! Duplicate hops — aggregator retries, sequential or concurrent — get the cached reply
//! and never run twice an op that writes, moves money, checks a PIN or asks a partner.
//! (An op that only reads takes no claim: a copy may read again, and is still answered
//! the stored reply.)

use std::time::Duration;

use crate::common::{
    Store, TestApp, at_form, lock_waiters, main_menu, register_biller, spawn, unique_session, until,
};
use futures_util::future::join_all;
use sqlx::PgPool;
use ussd_gateway::channel::{Hop, Input};
use ussd_gateway::domain::{Msisdn, Region};
use ussd_gateway::gateway::HopRules;
use ussd_gateway::ops::{self, Op};

const BRIAN: &str = "+254700000002";

fn runs(app: &TestApp, op: Op) -> u64 {
    app.state.gateway.ops().runs(op)
}

/// Renames Brian, and waits until a new dial greets him so.
async fn rename(app: &TestApp, name: &str) {
    sqlx::query("UPDATE customers SET first_name = $1 WHERE msisdn = $2")
        .bind(name)
        .bind(BRIAN)
        .execute(&app.pool)
        .await
        .unwrap();
    until("the new name is greeted", || async {
        app.at_hop(&unique_session(), BRIAN, "").await == main_menu(name)
    })
    .await;
}

pub async fn sequential(app: TestApp) {
    let s = unique_session();
    let first = app.at_hop(&s, BRIAN, "").await;
    assert_eq!(first, main_menu("Brian"));
    // Renamed meanwhile, as a new dial shows: a copy of the first dial is still answered
    // what the first was.
    rename(&app, "Bruno").await;
    assert_eq!(app.at_hop(&s, BRIAN, "").await, first);
    rename(&app, "Brian").await;

    let pin = app.at_hop(&s, BRIAN, "2").await;
    assert_eq!(app.at_hop(&s, BRIAN, "2").await, pin);

    let balance = app.at_hop(&s, BRIAN, "2*1234").await;
    assert_eq!(balance, "END Your balance is KES 2,000.00.");
    assert_eq!(app.at_hop(&s, BRIAN, "2*1234").await, balance);
    assert_eq!(runs(&app, Op::of::<ops::WalletBalance>()), 1);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn repeated_hops_replay_the_cached_reply_memory(pool: PgPool) {
    sequential(spawn(pool, Store::Memory).await).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn repeated_hops_replay_the_cached_reply_redis(pool: PgPool) {
    sequential(spawn(pool, Store::Redis).await).await;
}

/// Sends `copies` identical hops at once and returns their bodies.
async fn storm(app: &TestApp, session: &str, text: &str, copies: usize) -> Vec<String> {
    let requests = (0..copies).map(|_| {
        let router = app.router.clone();
        let body = at_form(session, "*384#", BRIAN, text);
        tokio::spawn(async move {
            use tower::ServiceExt;
            let request = axum::http::Request::post("/ussd/africastalking")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(body))
                .unwrap();
            let response = router.oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
            String::from_utf8(bytes.to_vec()).unwrap()
        })
    });
    join_all(requests).await.into_iter().map(|r| r.expect("no request panics")).collect()
}

pub async fn concurrent(app: TestApp) {
    let s = unique_session();

    let replies = storm(&app, &s, "", 16).await;
    assert!(replies.iter().all(|r| *r == main_menu("Brian")), "{replies:?}");

    let replies = storm(&app, &s, "2", 16).await;
    assert!(replies.iter().all(|r| *r == "CON Enter your PIN to see your balance"), "{replies:?}");

    let replies = storm(&app, &s, "2*1234", 16).await;
    assert!(replies.iter().all(|r| *r == "END Your balance is KES 2,000.00."), "{replies:?}");
    assert_eq!(runs(&app, Op::of::<ops::WalletBalance>()), 1, "the balance op ran more than once");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn concurrent_duplicates_run_the_op_once_memory(pool: PgPool) {
    concurrent(spawn(pool, Store::Memory).await).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn concurrent_duplicates_run_the_op_once_redis(pool: PgPool) {
    concurrent(spawn(pool, Store::Redis).await).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn sessions_are_keyed_by_number_as_well_as_session_id(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    // Two subscribers whose aggregator reused one session id never share a session.
    assert_eq!(app.at_hop("same", BRIAN, "").await, main_menu("Brian"));
    // Cynthia's longer name leaves no room for Pay shop on the first page.
    let cynthia = main_menu("Cynthia").replace("\n9. Pay shop", "");
    assert_eq!(app.at_hop("same", "+254700000003", "").await, cynthia);
}

/// A second gateway process on the same database and session store.
pub fn second_process(app: &TestApp) -> TestApp {
    let menus = ussd_gateway::app::load_menus(&app.config).unwrap();
    let store = app.state.gateway.store().clone();
    let state = ussd_gateway::app::build_state(app.pool.clone(), store, menus, &app.config);
    TestApp::new(state, app.config.clone(), app.pool.clone())
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_session_whose_hops_alternate_between_processes_moves_money_once(pool: PgPool) {
    const AMINA: &str = "+254700000001";
    let a = spawn(pool.clone(), Store::Redis).await;
    let b = second_process(&a);
    let s = unique_session();
    assert_eq!(a.at_hop(&s, AMINA, "").await, main_menu("Amina"));
    assert_eq!(a.at_hop(&s, AMINA, "1").await, "CON Enter phone number");
    assert_eq!(b.at_hop(&s, AMINA, "1*0700000002").await, "CON Enter amount");
    let confirm = a.at_hop(&s, AMINA, "1*0700000002*100").await;
    assert!(confirm.starts_with("CON Send KES 100.00 to Brian Kamau"), "{confirm}");
    assert_eq!(b.at_hop(&s, AMINA, "1*0700000002*100*1").await, "CON Enter PIN to send KES 100.00");
    let sent = a.at_hop(&s, AMINA, "1*0700000002*100*1*1234").await;
    assert!(sent.starts_with("END Sent KES 100.00"), "{sent}");
    // The retry lands on the other process: it replays, it does not send again.
    assert_eq!(b.at_hop(&s, AMINA, "1*0700000002*100*1*1234").await, sent);
    assert_eq!(runs(&a, Op::of::<ops::TransferP2p>()) + runs(&b, Op::of::<ops::TransferP2p>()), 1);
    let transfers: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers WHERE kind = 'p2p'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(transfers, 1);
}

/// A hop of Brian's from Nalo, a provider that numbers no hop.
fn brian_on_nalo(session: &str, first: bool, text: &str) -> Hop {
    Hop {
        provider: "nalo",
        channel: "nalo".into(),
        session_id: session.to_owned(),
        msisdn: Msisdn::parse(BRIAN, Region::parse("KE").unwrap()).unwrap(),
        service_code: "*384#".into(),
        input: Input::PerHop { text: text.into(), first, seq: None },
    }
}

/// Rules under which only a hop's arrival can tell a copy from a next input.
fn no_repeat_window(deadline: Duration) -> HopRules<'static> {
    HopRules { deadline, codes: &[], repeat_window: Duration::ZERO, conversation: None }
}

/// Two copies of a hop from a provider that numbers no hop, on a screen whose op only
/// reads (so nothing claims the session): whichever writes second finds the session
/// answered, after it arrived, for a hop of its own identity, and replays that answer
/// rather than taking the input again on the next screen, however long the read took
/// (here the repeat window is nothing at all).
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_copy_behind_a_read_replays_past_the_repeat_window(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Redis).await;
    register_biller(&pool, "KPLC", "http://127.0.0.1:9", 1000).await;
    let gateway = &app.state.gateway;
    let rules = no_repeat_window(Duration::from_secs(10));
    let session = unique_session();
    let hop = |first, text: &str| brian_on_nalo(&session, first, text);
    assert_eq!(gateway.handle_with(&hop(true, ""), rules).await.0.text, main_menu("Brian")[4..]);

    // Both copies of "Pay bill" wait on the billers table, then read it one after the other.
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE billers IN ACCESS EXCLUSIVE MODE").execute(&mut *blocker).await.unwrap();
    let (pay, copy) = (hop(false, "8"), hop(false, "8"));
    let both =
        futures_util::future::join(gateway.handle_with(&pay, rules), gateway.handle_with(&copy, rules));
    let waiting = async {
        until("both copies waiting for the billers", || async { lock_waiters(&pool).await == 2 }).await;
        blocker.rollback().await.unwrap();
    };
    let (((first, _), (second, _)), ()) = futures_util::future::join(both, waiting).await;
    assert!(first.text.starts_with("Pay bill\n1. Power KPLC"), "{}", first.text);
    assert_eq!(second.text, first.text);
}

/// A copy of a hop whose op only reads but calls a partner (`bill.validate` asks the
/// biller) waits for the original rather than calling again: in a biller's outage each
/// call would count against its breaker.
#[sqlx::test(migrations = "./migrations")]
async fn a_copy_of_a_hop_that_asks_a_biller_does_not_ask_again(pool: PgPool) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    let app = spawn(pool.clone(), Store::Redis).await;
    // A biller that counts its checks and holds each answer until the test lets it go.
    let asked = Arc::new(AtomicU32::new(0));
    let (open, opened) = tokio::sync::watch::channel(false);
    let check = {
        let asked = Arc::clone(&asked);
        move || {
            asked.fetch_add(1, Ordering::SeqCst);
            let mut opened = opened.clone();
            async move {
                let _ = opened.wait_for(|open| *open).await;
                axum::Json(serde_json::json!({ "name": "JOHN KAMAU" }))
            }
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let biller = axum::Router::new().route("/validate", axum::routing::post(check));
    tokio::spawn(axum::serve(listener, biller).into_future());
    register_biller(&pool, "KPLC", &url, 10_000).await;

    let gateway = &app.state.gateway;
    let session = unique_session();
    let hop = |first, text: &str| brian_on_nalo(&session, first, text);
    let long = Duration::from_secs(10);
    for (first, text) in [(true, ""), (false, "8"), (false, "1"), (false, "12345678901")] {
        gateway.handle_with(&hop(first, text), no_repeat_window(long)).await;
    }

    let amount = hop(false, "500");
    let original = gateway.handle_with(&amount, no_repeat_window(long));
    let copy_then_open = async {
        until("the biller asked once", || async { asked.load(Ordering::SeqCst) == 1 }).await;
        // The copy gives up at its own deadline whichever way it went.
        gateway.handle_with(&amount, no_repeat_window(Duration::from_secs(1))).await;
        let asked_while_held = asked.load(Ordering::SeqCst);
        open.send_replace(true);
        asked_while_held
    };
    let ((reply, _), asked_while_held) = futures_util::future::join(original, copy_then_open).await;
    assert_eq!(asked_while_held, 1, "the copy asked the biller again");
    assert!(reply.text.starts_with("Pay KES 500.00 to"), "{}", reply.text);
}
