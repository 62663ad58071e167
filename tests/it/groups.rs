//! Group posting: sends gathered into one transaction keep their own outcomes, keys,
//! receipts and PIN checks, and a group Postgres refuses is posted send by send.

use std::time::Duration;

use crate::common::{
    Store, assert_events, assert_ledger_invariants, customer, lock_waiters, settings, spawn_with, until,
};
use futures_util::future::join_all;
use sqlx::PgPool;
use ussd_gateway::domain::{Amount, Msisdn, Pin, Region};
use ussd_gateway::money::group::Grouper;
use ussd_gateway::money::{
    Auth, Caller, DEMO_PIN, GroupOptions, Lane, LaneOptions, P2p, PinPolicy, demo_subscribers,
};
use ussd_gateway::outcome::Outcome;

fn m(s: &str) -> Msisdn {
    Msisdn::parse(s, Region::parse("KE").unwrap()).unwrap()
}

fn kes(major: i64) -> Amount {
    Amount::from_minor(major * 100).unwrap()
}

/// A gatherer whose window is long enough for every send a test starts at once to join
/// one group.
fn grouper(pool: &PgPool) -> Grouper {
    let lane = Lane::new(
        (*pool.connect_options()).clone(),
        LaneOptions { max_connections: 4, ..Default::default() },
    );
    let options = GroupOptions { window: Duration::from_millis(300), max: 64, in_flight: 2 };
    Grouper::start(lane, options, PinPolicy { max_attempts: 3, lock: Duration::from_secs(3_600) })
}

/// How many transactions wrote the transfers under `keys`.
async fn transactions(pool: &PgPool, keys: &[&str]) -> i64 {
    sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM transfers WHERE idempotency_key = ANY ($1)")
        .bind(keys)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_group_is_one_transaction_and_each_send_keeps_its_own_outcome(pool: PgPool) {
    customer(&pool, "+254711000001", 2, 1_000_00).await;
    customer(&pool, "+254711000002", 2, 0).await;
    customer(&pool, "+254711000003", 2, 10_00).await;
    let blocked = customer(&pool, "+254711000004", 2, 0).await;
    sqlx::query("UPDATE accounts SET status = 'blocked' WHERE id = $1")
        .bind(blocked)
        .execute(&pool)
        .await
        .unwrap();
    let (rich, payee, poor, frozen) =
        (m("+254711000001"), m("+254711000002"), m("+254711000003"), m("+254711000004"));
    let stranger = m("+254711000099");
    let grouper = grouper(&pool);
    let sends = [
        ("ok-1", &rich, &payee, kes(100), Outcome::Ok),
        ("poor", &poor, &payee, kes(100), Outcome::InsufficientFunds),
        ("stranger", &rich, &stranger, kes(100), Outcome::RecipientUnknown),
        ("self", &rich, &rich, kes(100), Outcome::SameAccount),
        ("frozen", &rich, &frozen, kes(100), Outcome::AccountBlocked),
        ("huge", &rich, &payee, kes(10_000_000), Outcome::LimitExceeded),
        ("ok-2", &rich, &payee, kes(200), Outcome::Ok),
        // The same send again under the same key: one transfer, answered alike.
        ("ok-2", &rich, &payee, kes(200), Outcome::Ok),
        // The same key for another request.
        ("ok-1", &rich, &payee, kes(300), Outcome::Conflict),
    ];
    let answers =
        join_all(sends.iter().map(|(key, from, to, amount, _)| grouper.transfer_p2p(key, from, to, *amount)))
            .await;
    let answers: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
    let outcomes: Vec<Outcome> = answers.iter().map(|t| t.outcome).collect();
    assert_eq!(outcomes, sends.iter().map(|s| s.4).collect::<Vec<_>>());
    assert_eq!(answers[6], answers[7], "a replay in the same group answers as the send did");
    assert_eq!((answers[0].fee, answers[6].fee), (0, 7_00));
    assert_eq!(answers[6].payer_balance, Some(1_000_00 - 100_00 - 200_00 - 7_00));
    let keys = ["ok-1", "poor", "stranger", "self", "frozen", "huge", "ok-2"];
    assert_eq!(transactions(&pool, &keys).await, 1, "one transaction posted the group");
    assert_eq!(grouper.groups(), (1, 0));
    let receipts: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&pool).await.unwrap();
    assert_eq!(receipts, 4, "two receipts for each send that moved");
    assert_ledger_invariants(&pool).await;
    assert_events(&pool).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_group_postgres_refuses_is_posted_send_by_send(pool: PgPool) {
    customer(&pool, "+254711000001", 2, 1_000_00).await;
    customer(&pool, "+254711000002", 2, 0).await;
    // One send the database cannot take: it raises, and with it the whole group's
    // transaction.
    sqlx::query(
        "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.idempotency_key = 'boom' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON transfers FOR EACH ROW EXECUTE FUNCTION refuse_boom()",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (a, b) = (m("+254711000001"), m("+254711000002"));
    let grouper = grouper(&pool);
    let (first, boom, last) = tokio::join!(
        grouper.transfer_p2p("first", &a, &b, kes(100)),
        grouper.transfer_p2p("boom", &a, &b, kes(100)),
        grouper.transfer_p2p("last", &a, &b, kes(100)),
    );
    assert_eq!((first.unwrap().outcome, last.unwrap().outcome), (Outcome::Ok, Outcome::Ok));
    let boom = boom.expect_err("the refused send fails");
    assert!(!boom.may_have_moved(), "Postgres refused it: nothing moved ({boom})");
    assert_eq!(transactions(&pool, &["first", "last"]).await, 2, "each was posted alone");
    assert_eq!(grouper.groups(), (0, 1), "the group failed as a whole");
    assert_ledger_invariants(&pool).await;
}

/// Sends checking their PINs in one group: each check counts for its own number, and a
/// lockout's event names the channel of the hop that caused it.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn pins_checked_in_one_group_lock_out_each_with_its_own_channel(pool: PgPool) {
    let app = spawn_with(
        pool.clone(),
        Store::Memory,
        ussd_gateway::config::Settings { pin_max_attempts: 1, group_posting_window_ms: 20, ..settings() },
    )
    .await;
    let money = app.state.gateway.money();
    let people: Vec<Msisdn> = demo_subscribers(3).iter().map(|s| m(&s.msisdn)).collect();
    let (right, wrong) = (Pin::parse(DEMO_PIN).unwrap(), Pin::parse("9876").unwrap());
    let send = |from: usize, key: &'static str, pin: &'static Pin, channel: &'static str| {
        let (money, people) = (money.clone(), people.clone());
        async move {
            let p2p = P2p { key, from: &people[from], to: &people[2], amount: kes(10) };
            money.send_p2p(p2p, Caller { msisdn: &people[from], channel, auth: Auth::Pin }, Some(pin)).await
        }
    };
    let (right, wrong): (&'static Pin, &'static Pin) =
        (Box::leak(Box::new(right)), Box::leak(Box::new(wrong)));
    // The first send of each checks the PIN the long way and learns its salt.
    for (from, key) in [(0, "learn-0"), (1, "learn-1")] {
        assert_eq!(send(from, key, right, "hubtel-gh").await.unwrap().outcome, Outcome::Ok);
    }
    assert!(people[0].as_e164() < people[1].as_e164(), "the group checks PINs in the order of the numbers");
    let (a, b) = tokio::join!(send(0, "a", wrong, "channel-a"), send(1, "b", wrong, "channel-b"));
    assert_eq!((a.unwrap().outcome, b.unwrap().outcome), (Outcome::PinLocked, Outcome::PinLocked));
    let checked: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM customers WHERE msisdn IN ($1, $2)")
            .bind(people[0].as_e164())
            .bind(people[1].as_e164())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(checked, 1, "both PINs were checked in one group's transaction");
    let channels: Vec<String> =
        sqlx::query_scalar("SELECT data->>'channel' FROM events WHERE type = 'pin.locked' ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(channels, ["channel-a", "channel-b"]);
    assert_events(&pool).await;
    assert_ledger_invariants(&pool).await;
}

/// A send refused before it locks anything (no fee band for its amount) still numbers
/// its refusal's event on the payer's wallet at the commit; a group locks that wallet
/// in order with the rest, before anything moves, not last. Here a movement holds the
/// refused send's payer (the lowest id), the group waits for it, and the movement goes
/// on to take an account of the group's other send: both finish, the group in one piece.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_refused_send_locks_its_payer_in_order_with_the_group(pool: PgPool) {
    let payer = customer(&pool, "+254711000001", 2, 100_00).await;
    customer(&pool, "+254711000002", 2, 0).await;
    customer(&pool, "+254711000003", 2, 1_000_00).await;
    let other_payee = customer(&pool, "+254711000004", 2, 0).await;
    let mut movement = pool.begin().await.unwrap();
    sqlx::query("SELECT ledger_lock($1, $1)").bind(payer).execute(&mut *movement).await.unwrap();
    let grouper = grouper(&pool);
    let group = tokio::spawn({
        let grouper = grouper.clone();
        async move {
            let (p, q, s, t) =
                (m("+254711000001"), m("+254711000002"), m("+254711000003"), m("+254711000004"));
            tokio::join!(
                grouper.transfer_p2p("huge", &p, &q, kes(10_000_000)),
                grouper.transfer_p2p("small", &s, &t, kes(100)),
            )
        }
    });
    until("the group waiting for the movement", || async { lock_waiters(&pool).await > 0 }).await;
    let took = sqlx::query("SELECT ledger_lock($1, $1)").bind(other_payee).execute(&mut *movement).await;
    assert!(took.is_ok(), "the movement goes on: {took:?}");
    movement.commit().await.unwrap();
    let (huge, small) = group.await.unwrap();
    assert_eq!((huge.unwrap().outcome, small.unwrap().outcome), (Outcome::LimitExceeded, Outcome::Ok));
    assert_eq!(grouper.groups(), (1, 0), "posted as one group, nothing to redo");
    assert_ledger_invariants(&pool).await;
    assert_events(&pool).await;
}
