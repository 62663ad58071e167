//! The shipped wallet menu end to end over HTTP: registration, lockout, send money,
//! statement, PIN change and language, against the real ledger.

use crate::common;
use crate::common::topology::Lone;
use crate::common::{Store, TestApp, main_menu, spawn, unique_session};
use sqlx::PgPool;
use ussd_gateway::money::Place;

const AMINA: &str = "+254700000001";
const BRIAN: &str = "+254700000002";

/// Walks one session, feeding each input in turn as Africa's Talking would (cumulative
/// text), and returns every reply.
async fn walk(app: &TestApp, phone: &str, inputs: &[&str]) -> Vec<String> {
    let s = unique_session();
    let mut replies = vec![app.at_hop(&s, phone, "").await];
    let mut text = String::new();
    for input in inputs {
        text = if text.is_empty() && replies.len() == 1 {
            (*input).to_owned()
        } else {
            format!("{text}*{input}")
        };
        replies.push(app.at_hop(&s, phone, &text).await);
    }
    replies
}

async fn last(app: &TestApp, phone: &str, inputs: &[&str]) -> String {
    walk(app, phone, inputs).await.pop().unwrap()
}

async fn wallet_balance(pool: &PgPool, phone: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT a.balance FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = $1",
    )
    .bind(phone)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn registration_creates_a_basic_customer_with_an_encrypted_id(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Redis).await;
    let new = "+254711000111";
    let replies =
        walk(&app, new, &["1", "amina", "WANJIKU", "12345678", "1234", "4821", "4822", "4821", "4821"]).await;
    assert_eq!(
        replies,
        [
            "CON This number has no mobile money account.\n1. Register\n2. Exit",
            "CON Enter your first name",
            "CON Enter your last name",
            "CON Enter your national ID number",
            "CON Choose a new 4-digit PIN",
            "CON Too easy to guess.\nChoose a new 4-digit PIN",
            "CON Enter the PIN again to confirm",
            "CON The PINs did not match.\nChoose a new 4-digit PIN",
            "CON Enter the PIN again to confirm",
            "END Welcome Amina! Your wallet is ready. Dial *384# to use it.",
        ]
    );
    let (first, last_name, tier, enc): (String, String, i16, Vec<u8>) = sqlx::query_as(
        "SELECT first_name, last_name, kyc_tier, national_id_enc FROM customers WHERE msisdn = $1",
    )
    .bind(new)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((first.as_str(), last_name.as_str(), tier), ("Amina", "Wanjiku", 1));
    assert!(!enc.windows(8).any(|w| w == b"12345678"), "the ID is stored encrypted");
    let vault = app.state.gateway.money().vault();
    let place = Place { table: "customers", column: "national_id_enc", row: new };
    assert_eq!(vault.open(place, &enc).await.unwrap(), "12345678");
    // Sealed for this customer's row: under another number it does not open.
    let elsewhere = Place { row: "+254700000001", ..place };
    assert!(vault.open(elsewhere, &enc).await.is_err());

    // The new customer uses the wallet with the PIN they chose.
    assert_eq!(last(&app, new, &["2", "4821"]).await, "END Your balance is KES 0.00.");

    // The same ID cannot open a second wallet: refused as soon as it is typed.
    let other = last(&app, "+254711000222", &["1", "John", "Doe", "12345678"]).await;
    assert_eq!(other, "END This ID number is already registered. Visit an agent for help.");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn three_wrong_pins_lock_money_operations_across_sessions_and_restarts(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let replies = walk(&app, AMINA, &["2", "0000", "1111", "2222"]).await;
    assert_eq!(replies[2], "CON Wrong PIN.\nEnter your PIN to see your balance");
    assert_eq!(replies[3], "CON Wrong PIN.\nEnter your PIN to see your balance");
    let locked = "END Too many wrong PINs. Your PIN is locked; try again later or call 100.";
    assert_eq!(replies[4], locked);

    // The right PIN does not help while locked, in a new session of a restarted gateway.
    let restarted = spawn(pool.clone(), Store::Memory).await;
    assert_eq!(last(&restarted, AMINA, &["2", "1234"]).await, locked);
    assert_eq!(last(&restarted, AMINA, &["1", "0700000002", "10", "1", "1234"]).await, locked);

    // Once the lock has expired, the right PIN works and clears the count.
    sqlx::query("UPDATE customers SET pin_locked_until = now() - interval '1 second' WHERE msisdn = $1")
        .bind(AMINA)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(last(&restarted, AMINA, &["2", "1234"]).await, "END Your balance is KES 1,000.00.");
    let failures: i32 = sqlx::query_scalar("SELECT pin_failures FROM customers WHERE msisdn = $1")
        .bind(AMINA)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(failures, 0);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_correct_pin_resets_the_count_of_wrong_ones(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    walk(&app, AMINA, &["2", "0000", "1111"]).await;
    assert_eq!(last(&app, AMINA, &["2", "1234"]).await, "END Your balance is KES 1,000.00.");
    // Two more wrong PINs do not lock: the count started again.
    let replies = walk(&app, AMINA, &["2", "0000", "1111", "1234"]).await;
    assert_eq!(replies[4], "END Your balance is KES 1,000.00.");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn send_money_confirms_the_recipient_by_name_and_moves_money_once(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Redis).await;
    let replies = walk(&app, AMINA, &["1", "0700000002", "500", "1", "1234"]).await;
    assert_eq!(replies[1], "CON Enter phone number");
    assert_eq!(replies[2], "CON Enter amount");
    assert_eq!(
        replies[3],
        "CON Send KES 500.00 to Brian Kamau +254700***002? Fee KES 7.00.\n1. Yes\n2. No\n0. Back"
    );
    assert_eq!(replies[4], "CON Enter PIN to send KES 500.00");
    let reference: String =
        sqlx::query_scalar("SELECT transfer_ref(max(id)) FROM transfers WHERE kind = 'p2p'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        replies[5],
        format!("END Sent KES 500.00 to Brian Kamau. Ref {reference}. Balance KES 493.00.")
    );
    assert_eq!(wallet_balance(&pool, AMINA).await, 493_00);
    assert_eq!(wallet_balance(&pool, BRIAN).await, 2_500_00);
    let receipts: Vec<(String, String)> =
        sqlx::query_as("SELECT role, msisdn FROM outbox ORDER BY role").fetch_all(&pool).await.unwrap();
    assert_eq!(receipts, [("payee".into(), BRIAN.into()), ("payer".into(), AMINA.into())]);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn send_money_explains_every_refusal(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let r =
        walk(&app, AMINA, &["1", "0711999999", "500", "0700000001", "500", "0700000002", "300000", "5000"])
            .await;
    assert_eq!(r[2], "CON Enter amount");
    assert_eq!(r[3], "CON That number is not registered.\nEnter phone number");
    assert_eq!(r[5], "CON You cannot send to yourself.\nEnter phone number");
    assert_eq!(r[6], "CON Enter amount");
    assert_eq!(r[7], "CON Enter KES 1 to 250,000.\nEnter amount");
    assert!(r[8].starts_with("CON Send KES 5,000.00 to Brian Kamau"), "{}", r[8]);
    // The walk stopped at the confirmation: a new dial offers to continue from there.
    let s = unique_session();
    let offer = "CON Your last session was cut off.\n1. Continue where I left off\n2. Start again";
    assert_eq!(app.at_hop(&s, AMINA, "").await, offer);
    assert!(app.at_hop(&s, AMINA, "1").await.starts_with("CON Send KES 5,000.00 to Brian Kamau"));
    assert_eq!(app.at_hop(&s, AMINA, "1*1").await, "CON Enter PIN to send KES 5,000.00");
    assert_eq!(
        app.at_hop(&s, AMINA, "1*1*1234").await,
        "END Not enough money. You need KES 5,057.00 including the fee."
    );
    assert_eq!(wallet_balance(&pool, AMINA).await, 1_000_00);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_statement_lists_the_latest_movements(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    for (from, to, amount) in [(AMINA, "0700000002", "500"), ("+254700000003", "0700000001", "20")] {
        let sent = last(&app, from, &["1", to, amount, "1", "1234"]).await;
        assert!(sent.starts_with("END Sent"), "{sent}");
    }
    let today: String = sqlx::query_scalar("SELECT to_char(now() AT TIME ZONE 'Africa/Nairobi', 'DD/MM')")
        .fetch_one(&pool)
        .await
        .unwrap();
    let statement = last(&app, AMINA, &["3", "1234"]).await;
    assert_eq!(
        statement,
        format!(
            "CON Last transactions\n1. {today} 20.00 Cynthia W.\n2. {today} -507.00 Brian K.\n3. {today} 1,000.00 Deposit\n0. Back"
        )
    );
    // Choosing a line shows its reference.
    let reference: String = sqlx::query_scalar(
        "SELECT transfer_ref(max(id)) FROM transfers WHERE kind = 'p2p' AND amount = 50000",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        last(&app, AMINA, &["3", "1234", "2"]).await,
        format!("END {today} KES -507.00 Brian K.\nRef {reference}")
    );
    let fresh = spawn(pool, Store::Memory).await;
    assert!(last(&fresh, "+254700000009", &["3", "1234"]).await.contains("Deposit"));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn pin_change_replaces_the_pin(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    let replies = walk(&app, AMINA, &["4", "9999", "1234", "5555", "1357", "1358", "1357", "1357"]).await;
    assert_eq!(
        &replies[1..],
        [
            "CON Enter your current PIN",
            "CON Wrong PIN.\nEnter your current PIN",
            "CON Choose a new 4-digit PIN",
            "CON Too easy to guess.\nChoose a new 4-digit PIN",
            "CON Enter the new PIN again",
            "CON The PINs did not match.\nChoose a new 4-digit PIN",
            "CON Enter the new PIN again",
            "END Your PIN has been changed.",
        ]
    );
    assert_eq!(last(&app, AMINA, &["2", "1234"]).await, "CON Wrong PIN.\nEnter your PIN to see your balance");
    assert_eq!(last(&app, AMINA, &["2", "1357"]).await, "END Your balance is KES 1,000.00.");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_pin_changed_through_another_gateway_holds_for_transfers_here(pool: PgPool) {
    let here = spawn(pool.clone(), Store::Memory).await;
    let elsewhere = spawn(pool.clone(), Store::Memory).await;
    let send = |pin: &'static str| ["1", "0700000002", "10", "1", pin];
    let failures = || async {
        let n: i32 = sqlx::query_scalar("SELECT pin_failures FROM customers WHERE msisdn = $1")
            .bind(AMINA)
            .fetch_one(&pool)
            .await
            .unwrap();
        n
    };
    // Two sends here: the second checks the PIN in the transfer's own round trip.
    for _ in 0..2 {
        assert!(last(&here, AMINA, &send("1234")).await.starts_with("END Sent KES 10.00"));
    }
    let pinned = || here.state.gateway.money().pinned_transfers();
    assert_eq!(pinned(), 1, "the first send read the salt");
    let changed = last(&elsewhere, AMINA, &["4", "1234", "1357", "1357"]).await;
    assert_eq!(changed, "END Your PIN has been changed.");

    // The old PIN is a wrong PIN here now, and counts as one; the new one sends.
    let s = unique_session();
    let hop = |text: &'static str| here.at_hop(&s, AMINA, text);
    for text in ["", "1", "1*0700000002", "1*0700000002*10", "1*0700000002*10*1"] {
        hop(text).await;
    }
    let old = hop("1*0700000002*10*1*1234").await;
    assert!(old.starts_with("CON Wrong PIN."), "{old}");
    assert_eq!(pinned(), 1, "a stale salt is checked the long way");
    assert_eq!(failures().await, 1);
    let new = hop("1*0700000002*10*1*1234*1357").await;
    assert!(new.starts_with("END Sent KES 10.00"), "{new}");
    assert_eq!(failures().await, 0);
    assert_eq!(wallet_balance(&pool, AMINA).await, 1_000_00 - 3 * 10_00);

    // Wrong PINs checked with the transfer still lock, and nothing moves.
    let replies = walk(&here, AMINA, &["1", "0700000002", "10", "1", "0000", "1111", "2222"]).await;
    assert_eq!(replies[7], "END Too many wrong PINs. Your PIN is locked; try again later or call 100.");
    assert_eq!(last(&here, AMINA, &send("1357")).await, replies[7]);
    assert_eq!(wallet_balance(&pool, AMINA).await, 1_000_00 - 3 * 10_00);
    let posted: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transfers WHERE kind = 'p2p' AND status = 'posted'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(posted, 3);
    assert_eq!(pinned(), 6, "the new PIN, three wrong ones and the locked send: one round trip each");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_language_choice_is_remembered(pool: PgPool) {
    let app = spawn(pool, Store::Redis).await;
    let replies = walk(&app, AMINA, &["5", "2"]).await;
    assert_eq!(replies[1], "CON Choose a language\n1. English\n2. Kiswahili\n3. Francais\n0. Back");
    let swahili_menu = "CON Karibu Amina\n1. Tuma pesa\n2. Salio langu\n3. Taarifa fupi\n4. Badilisha PIN\n5. Language / Lugha\n6. Toa pesa\n7. Idhini zangu\n8. Lipa bili\n9. Lipa duka\n98. Zaidi";
    assert_eq!(replies[2], swahili_menu);
    // A new session starts in Swahili, built-in lines included.
    let replies = walk(&app, AMINA, &["2", "12"]).await;
    assert_eq!(replies[0], swahili_menu);
    assert_eq!(replies[2], "CON PIN ni tarakimu 4.\nWeka PIN yako kuona salio");
    assert_eq!(last(&app, AMINA, &["5", "1"]).await, main_menu("Amina"));
    assert_eq!(walk(&app, AMINA, &[]).await[0], main_menu("Amina"));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_dropped_form_is_offered_back_until_finished_or_declined(pool: PgPool) {
    offered_back_until_finished_or_declined(spawn(pool, Store::Redis).await).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_dropped_form_is_offered_back_with_memory_sessions_too(pool: PgPool) {
    offered_back_until_finished_or_declined(spawn(pool, Store::Memory).await).await;
}

/// A start screen that runs no op: the resume pointer is read before it is shown.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_start_screen_without_an_op_still_offers_a_dropped_form(pool: PgPool) {
    let dir = std::env::temp_dir().join(format!("menus-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let wallet =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("menus/wallet.yaml"))
            .unwrap();
    let hello = "screens:\n  hello:\n    menu:\n      text: { en: Hello, sw: Habari, fr: Bonjour }\n      options:\n        - { label: { en: Go on, sw: Endelea, fr: Continuer }, next: welcome }\n";
    let edited = wallet.replacen("start: welcome", "start: hello", 1).replacen("screens:\n", hello, 1);
    std::fs::write(dir.join("wallet.yaml"), edited).unwrap();
    common::copy_texts(&dir);
    let settings = ussd_gateway::config::Settings { menus_dir: dir.clone(), ..common::settings() };
    let app = common::spawn_with(pool, Store::Redis, settings).await;

    assert_eq!(walk(&app, AMINA, &[]).await[0], "CON Hello\n1. Go on");
    // Dropped on the amount (a screen `resume` lists): offered back on the next dial.
    let dropped = walk(&app, AMINA, &["1", "1", "0700000002"]).await;
    assert_eq!(dropped[3], "CON Enter amount");
    let replies = walk(&app, AMINA, &["1"]).await;
    assert_eq!(
        replies[0],
        "CON Your last session was cut off.\n1. Continue where I left off\n2. Start again"
    );
    assert_eq!(replies[1], "CON Enter amount");
    std::fs::remove_dir_all(dir).unwrap();
}

/// What a browse journey costs Redis, counted on a server of the test's own: the dial
/// writes once (its start screen's read takes no claim, and the write reads the resume
/// pointer), the answer reads once and writes once.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_browse_journey_costs_redis_two_writes_and_a_read(pool: PgPool) {
    let lone = Lone::start();
    let app = common::spawn_on(pool, &lone.url(), common::settings()).await;
    let commands = || {
        let stats = lone.cli(&["INFO", "commandstats"]);
        let mut counted = std::collections::BTreeMap::new();
        for line in stats.lines() {
            let Some((name, rest)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else {
                continue;
            };
            let calls = rest.split(',').find_map(|f| f.strip_prefix("calls=")).unwrap();
            if name != "info" {
                counted.insert(name.to_owned(), calls.parse::<u64>().unwrap());
            }
        }
        counted
    };
    // The first write loads the scripts on this new server.
    walk(&app, BRIAN, &["2"]).await;
    let before = commands();
    let replies = walk(&app, AMINA, &["2"]).await;
    assert_eq!(replies[0], main_menu("Amina"));
    assert!(replies[1].starts_with("CON Enter your PIN"), "{}", replies[1]);
    let after = commands();
    let spent = |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    // A script's own commands count too: `hset` is a session record written.
    let spent = ["evalsha", "hset", "hmget"].map(|name| (name, spent(name)));
    assert_eq!(spent, [("evalsha", 2), ("hset", 2), ("hmget", 1)], "{after:?}");
}

pub async fn offered_back_until_finished_or_declined(app: TestApp) {
    let offer = "CON Your last session was cut off.\n1. Continue where I left off\n2. Start again";
    // Dropped on a screen the menu lists (the amount): offered back.
    walk(&app, AMINA, &["1", "0700000002"]).await;
    let replies = walk(&app, AMINA, &["1", "500"]).await;
    assert_eq!(replies[0], offer);
    assert_eq!(replies[1], "CON Enter amount");
    assert!(replies[2].starts_with("CON Send KES 500.00 to Brian Kamau"), "{}", replies[2]);
    // Declining forgets it: the next dial is the main menu.
    assert_eq!(walk(&app, AMINA, &["2"]).await[1], main_menu("Amina"));
    assert_eq!(walk(&app, AMINA, &[]).await[0], main_menu("Amina"));
    // Dropped on a screen it does not list (a menu): nothing to offer.
    walk(&app, AMINA, &["5"]).await;
    assert_eq!(walk(&app, AMINA, &[]).await[0], main_menu("Amina"));
    // A finished journey is not offered either, and another subscriber never sees it.
    walk(&app, AMINA, &["1", "0700000002"]).await;
    assert_eq!(walk(&app, BRIAN, &[]).await[0], main_menu("Brian"));
    let done = walk(&app, AMINA, &["1", "100", "1", "1234"]).await;
    assert_eq!(done[0], offer);
    assert!(done[4].starts_with("END Sent KES 100.00"), "{done:?}");
    assert_eq!(walk(&app, AMINA, &[]).await[0], main_menu("Amina"));
}
