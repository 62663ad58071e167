//! SMS commands end to end through the real router, menus, session store and ledger:
//! balance and statement on the registered number alone, sending money confirmed by a
//! one-time code (right, wrong, expired, reused, retried) or handed to USSD by a dial
//! string, the SMS limit, and help.

use crate::common;
use crate::common::{Store, TestApp, spawn};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use sqlx::PgPool;
use ussd_gateway::session::SessionKey;

const AMINA: &str = "+254700000001";

async fn post(app: &TestApp, id: &str, from: &str, text: &str) -> StatusCode {
    let body =
        serde_urlencoded::to_string([("from", from), ("to", "22384"), ("text", text), ("id", id)]).unwrap();
    let request = Request::post("/sms/africastalking/inbound")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    app.send(request).await.status
}

/// Sends one message as Africa's Talking would, lets the answerer answer it, and
/// returns the reply.
async fn sms(app: &TestApp, id: &str, from: &str, text: &str) -> String {
    assert_eq!(post(app, id, from, text).await, StatusCode::OK);
    app.answer_sms().await;
    sqlx::query_scalar(
        "SELECT o.data->>'text' FROM outbox o JOIN sms_inbound i ON i.id = o.inbound_id WHERE i.message_id = $1",
    )
    .bind(id)
    .fetch_optional(&app.pool)
    .await
    .unwrap()
    .unwrap_or_else(|| panic!("message {id} got no reply (over the per-number limit?)"))
}

async fn last_reply(pool: &PgPool, to: &str) -> String {
    sqlx::query_scalar(
        "SELECT data->>'text' FROM outbox WHERE role = 'reply' AND msisdn = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(to)
    .fetch_optional(pool)
    .await
    .unwrap()
    .unwrap_or_default()
}

async fn transfers(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM transfers WHERE kind = 'p2p' AND status = 'posted'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The code in "Reply YES 123456 to send …".
fn code_in(prompt: &str) -> String {
    let after = prompt.split("YES ").nth(1).unwrap_or_else(|| panic!("no code in {prompt:?}"));
    let code: String = after.chars().take_while(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 6, "{prompt}");
    code
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn balance_and_statement_need_only_the_registered_number(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Redis).await;
    assert_eq!(sms(&app, "b1", AMINA, "BAL").await, "Your balance is KES 1,000.00.");
    // Any case, and the Swahili word.
    assert_eq!(sms(&app, "b2", AMINA, "salio").await, "Your balance is KES 1,000.00.");
    assert_eq!(
        sms(&app, "m1", AMINA, "mini").await,
        "Last transactions\n1. 22/11 1,000.00 Deposit\n0. Back".replace("22/11", &today())
    );
    // A number without a wallet learns nothing.
    assert_eq!(
        sms(&app, "b3", "+254711000111", "BAL").await,
        "This number has no mobile money account. Dial *384# to register."
    );
    // No PIN was asked, and none was counted as wrong.
    let failures: i32 = sqlx::query_scalar("SELECT pin_failures FROM customers WHERE msisdn = $1")
        .bind(AMINA)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(failures, 0);
}

fn today() -> String {
    // The ledger's day is in Africa/Nairobi (UTC+3).
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3 * 3600;
    let days = now / 86_400;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{d:02}/{m:02}")
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn send_moves_money_once_after_the_right_code(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Redis).await;
    let prompt = sms(&app, "s1", AMINA, "SEND 0700000002 500").await;
    let code = code_in(&prompt);
    assert_eq!(
        prompt,
        format!(
            "Reply YES {code} to send KES 500.00 to Brian Kamau +254700***002. Fee KES 7.00. \
             Or dial *384*9*{code}# to finish with your PIN."
        )
    );
    let wrong = if code == "0000" { "1111" } else { "0000" };
    assert_eq!(
        sms(&app, "s2", AMINA, &format!("YES {wrong}")).await,
        "That code is not right. Reply YES and the code we sent you."
    );
    assert_eq!(
        sms(&app, "s3", AMINA, &code).await,
        "That code is not right. Reply YES and the code we sent you.",
        "the code alone is not a yes"
    );
    assert_eq!(transfers(&pool).await, 0);

    // The provider delivers the confirmation several times at once, while answerers in
    // two replicas look for work: every copy is acknowledged, and there is one transfer.
    let yes = format!("yes {code}");
    let tries: Vec<_> = (0..6).map(|_| post(&app, "s4", AMINA, &yes)).collect();
    let (statuses, ..) =
        tokio::join!(futures_util::future::join_all(tries), app.answer_sms(), app.answer_sms());
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    assert_eq!(post(&app, "s4", AMINA, &yes).await, StatusCode::OK, "the retry after the answer");
    app.answer_sms().await;
    let done = last_reply(&pool, AMINA).await;
    assert!(done.starts_with("Sent KES 500.00 to Brian Kamau. Ref TX"), "{done}");
    assert_eq!(transfers(&pool).await, 1);
    // Both parties' receipts are in the outbox with the transfer.
    let receipts: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE transfer_id IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(receipts, 2);

    // The code is single use: the conversation is over and the same words move nothing.
    let again = sms(&app, "s5", AMINA, &format!("YES {code}")).await;
    assert!(again.contains("BAL - your balance") && again.contains("SEND <number> <amount>"), "{again}");
    assert_eq!(transfers(&pool).await, 1);
    assert_eq!(sms(&app, "s6", AMINA, "BAL").await, "Your balance is KES 493.00.");

    // A second SEND is a new conversation with its own idempotency keys: it moves money.
    let prompt = sms(&app, "s7", AMINA, "tuma 0700000002 100").await;
    let code = code_in(&prompt);
    assert!(sms(&app, "s8", AMINA, &format!("YES {code}")).await.starts_with("Sent KES 100.00"));
    assert_eq!(transfers(&pool).await, 2);
}

/// The app serving the shipped wallet as `edit` changes it, and the menus folder to
/// remove afterwards.
async fn with_wallet(pool: &PgPool, edit: impl FnOnce(&str) -> String) -> (TestApp, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("menus-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let wallet =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("menus/wallet.yaml"))
            .unwrap();
    let edited = edit(&wallet);
    assert_ne!(edited, wallet, "the edit changed nothing");
    std::fs::write(dir.join("wallet.yaml"), edited).unwrap();
    common::copy_texts(&dir);
    let settings = ussd_gateway::config::Settings { menus_dir: dir.clone(), ..common::settings() };
    (common::spawn_with(pool.clone(), Store::Memory, settings).await, dir)
}

/// Dials the hand-off string `*384*9*<code>#` from `from`, as Africa's Talking passes
/// a jump-ahead dial (the inputs in `text`); returns the reply.
async fn dial_handoff(app: &TestApp, session: &str, from: &str, code: &str) -> String {
    app.at_hop(session, from, &format!("9*{code}")).await
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_movement_started_by_sms_finishes_on_ussd_with_the_pin(pool: PgPool) {
    handed_from_sms_to_ussd(spawn(pool.clone(), Store::Redis).await, pool).await;
}

/// An SMS conversation's movement handed to a USSD dial by its code, on `app`'s store.
pub async fn handed_from_sms_to_ussd(app: TestApp, pool: PgPool) {
    let code = code_in(&sms(&app, "d1", AMINA, "SEND 0700000002 500").await);

    // Another phone cannot take it over.
    let brian = common::unique_session();
    assert_eq!(
        dial_handoff(&app, &brian, "+254700000002", &code).await,
        "END The code has expired and nothing was done. Send the command again."
    );
    // Amina's dial lands on the PIN screen of the same journey (payee, amount).
    let ussd = common::unique_session();
    assert_eq!(dial_handoff(&app, &ussd, AMINA, &code).await, "CON Enter PIN to send KES 500.00");
    // The SMS conversation is over: the code no longer confirms there.
    // It is told so in SMS words, not a USSD session's "dial again".
    let late = sms(&app, "d2", AMINA, &format!("YES {code}")).await;
    assert_eq!(late, "This conversation has ended. Send the command again.");
    assert_eq!(transfers(&pool).await, 0);
    // A wrong PIN is a wrong PIN, as on any USSD session; the right one moves the money.
    let wrong_pin = if ussd_gateway::money::DEMO_PIN == "0000" { "1111" } else { "0000" };
    let again = app.at_hop(&ussd, AMINA, &format!("9*{code}*{wrong_pin}")).await;
    assert!(again.starts_with("CON Wrong PIN."), "{again}");
    let done =
        app.at_hop(&ussd, AMINA, &format!("9*{code}*{wrong_pin}*{}", ussd_gateway::money::DEMO_PIN)).await;
    assert!(done.starts_with("END Sent KES 500.00 to Brian Kamau. Ref TX"), "{done}");
    assert_eq!(transfers(&pool).await, 1);
    // The code is used: dialling it again starts nothing.
    assert_eq!(
        dial_handoff(&app, &common::unique_session(), AMINA, &code).await,
        "END The code has expired and nothing was done. Send the command again."
    );
    // Nor can it be dialled once the SMS reply confirmed.
    let code = code_in(&sms(&app, "d3", AMINA, "SEND 0700000002 100").await);
    assert!(sms(&app, "d4", AMINA, &format!("YES {code}")).await.starts_with("Sent KES 100.00"));
    assert!(
        dial_handoff(&app, &common::unique_session(), AMINA, &code)
            .await
            .starts_with("END The code has expired")
    );
    assert_eq!(transfers(&pool).await, 2);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_reply_and_a_handoff_racing_move_the_money_once(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Redis).await;
    // Two messages a round: five rounds stay within the per-number limit of ten a minute.
    for round in 0..5 {
        let code = code_in(&sms(&app, &format!("r{round}"), AMINA, "SEND 0700000002 100").await);
        let ussd = common::unique_session();
        let yes = format!("YES {code}");
        let reply_id = format!("r{round}-yes");
        let by_answerer = async {
            let status = post(&app, &reply_id, AMINA, &yes).await;
            app.answer_sms().await;
            status
        };
        let (status, dialled) = tokio::join!(by_answerer, dial_handoff(&app, &ussd, AMINA, &code));
        assert_eq!(status, StatusCode::OK);
        let by_sms = last_reply(&pool, AMINA).await.starts_with("Sent KES 100.00");
        if dialled.starts_with("CON Enter PIN") {
            assert!(!by_sms, "round {round}: both the reply and the dial went on");
            let pin = ussd_gateway::money::DEMO_PIN;
            assert!(
                app.at_hop(&ussd, AMINA, &format!("9*{code}*{pin}")).await.starts_with("END Sent KES 100.00")
            );
        } else {
            assert!(by_sms, "round {round}: neither went on: {dialled}");
        }
        assert_eq!(transfers(&pool).await, round + 1, "round {round}");
    }
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_menu_may_finish_sms_movements_on_ussd_only(pool: PgPool) {
    let (app, dir) = with_wallet(&pool, |wallet| {
        wallet
            .replace("en: \"Reply YES {{ code }} to send", "en: \"To send")
            .replace("sw: \"Jibu NDIYO {{ code }} kutuma", "sw: \"Kutuma")
            .replace("fr: \"Répondez YES {{ code }} pour envoyer", "fr: \"Pour envoyer")
    })
    .await;

    let prompt = sms(&app, "o1", AMINA, "SEND 0700000002 500").await;
    assert!(prompt.starts_with("To send KES 500.00 to Brian Kamau") && !prompt.contains("YES"), "{prompt}");
    let code: String = prompt.split("*384*9*").nth(1).unwrap().chars().take(6).collect();
    // The code the text did not offer to reply with does not confirm by SMS.
    assert_eq!(
        sms(&app, "o2", AMINA, &format!("YES {code}")).await,
        "To finish, dial the code in our last message and enter your PIN."
    );
    assert_eq!(transfers(&pool).await, 0);
    let ussd = common::unique_session();
    assert_eq!(dial_handoff(&app, &ussd, AMINA, &code).await, "CON Enter PIN to send KES 500.00");
    let pin = ussd_gateway::money::DEMO_PIN;
    assert!(app.at_hop(&ussd, AMINA, &format!("9*{code}*{pin}")).await.starts_with("END Sent KES 500.00"));
    assert_eq!(transfers(&pool).await, 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn wrong_expired_and_over_limit_codes_move_nothing(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Redis).await;
    // Three wrong codes call the movement off.
    sms(&app, "w1", AMINA, "SEND 0700000002 500").await;
    sms(&app, "w2", AMINA, "YES 0").await;
    sms(&app, "w3", AMINA, "YES 1").await;
    assert_eq!(sms(&app, "w4", AMINA, "YES 2").await, "Too many invalid answers. Send the command again.");

    // An expired code: the session's code is aged in the store, as five minutes would.
    let prompt = sms(&app, "e1", AMINA, "SEND 0700000002 500").await;
    let session: String = sqlx::query_scalar("SELECT session_id FROM sms_conversations WHERE msisdn = $1")
        .bind(AMINA)
        .fetch_one(&pool)
        .await
        .unwrap();
    let store = app.state.gateway.store();
    let key = SessionKey::new("sms:africastalking", AMINA, &session);
    let mut loaded = store.load(&key).await.unwrap().expect("the conversation's session");
    loaded.session.code.as_mut().expect("a pending code").expires_ms = 1;
    store.save(&key, loaded.version, &loaded.session, std::time::Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        sms(&app, "e2", AMINA, &format!("YES {}", code_in(&prompt))).await,
        "The code has expired and nothing was done. Send the command again."
    );

    // Above the SMS channel's limit (KES 10,000), even with the right code.
    sqlx::query("SELECT ledger_fund('top-up', (SELECT a.id FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = $1), 2000000)")
        .bind(AMINA)
        .execute(&pool)
        .await
        .unwrap();
    let prompt = sms(&app, "l1", AMINA, "SEND 0700000002 15000").await;
    assert_eq!(
        sms(&app, "l2", AMINA, &format!("YES {}", code_in(&prompt))).await,
        "This would pass your daily or balance limit. Try a smaller amount."
    );
    assert_eq!(transfers(&pool).await, 0);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn wrong_codes_add_up_per_number_across_conversations(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Redis).await;
    let wrong = |code: &str| if code.starts_with('0') { "YES 111111" } else { "YES 000000" }.to_owned();
    // Three wrong in a first conversation end it …
    let code = code_in(&sms(&app, "c1", AMINA, "SEND 0700000002 500").await);
    for id in ["c2", "c3"] {
        assert!(sms(&app, id, AMINA, &wrong(&code)).await.starts_with("That code is not right."));
    }
    assert_eq!(
        sms(&app, "c4", AMINA, &wrong(&code)).await,
        "Too many invalid answers. Send the command again."
    );
    // … and the day's fifth, in the next, ends that one after two.
    let code = code_in(&sms(&app, "c5", AMINA, "SEND 0700000002 500").await);
    assert!(sms(&app, "c6", AMINA, &wrong(&code)).await.starts_with("That code is not right."));
    assert_eq!(
        sms(&app, "c7", AMINA, &wrong(&code)).await,
        "Too many invalid answers. Send the command again."
    );
    // No further code is sent today; reading by SMS and sending on USSD still work.
    assert_eq!(
        sms(&app, "c8", AMINA, "SEND 0700000002 500").await,
        "Too many wrong codes today. Please dial the USSD code and use your PIN."
    );
    assert_eq!(sms(&app, "c9", AMINA, "BAL").await, "Your balance is KES 1,000.00.");
    let pin = ussd_gateway::money::DEMO_PIN;
    let sent = app.journey(AMINA, &format!("1*0700000002*500*1*{pin}")).await;
    assert!(sent.starts_with("END Sent KES 500.00"), "{sent}");
    assert_eq!(transfers(&pool).await, 1);
    // The count is per number: Brian is unaffected.
    assert!(sms(&app, "b1", "+254700000002", "SEND 0700000001 100").await.starts_with("Reply YES "));
    // A day after the first wrong code, the count starts again.
    sqlx::query("UPDATE sms_code_failures SET since = since - interval '25 hours'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(sms(&app, "c10", AMINA, "SEND 0700000002 100").await.starts_with("Reply YES "));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn help_lists_the_commands_and_a_wrong_command_gets_it(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let help = sms(&app, "h1", AMINA, "HELP").await;
    assert_eq!(
        help,
        "BAL - your balance\nMINI - your last 5 transactions\nSEND <number> <amount> - send money\n\
         Dial *384# for your wallet. Never send your PIN by SMS. Reply STOP to stop promotional messages."
    );
    assert_eq!(sms(&app, "h2", AMINA, "SEND 0700000002").await, help, "a missing argument");
    assert_eq!(sms(&app, "h3", AMINA, "SEND 07*1# 5 0").await, help, "too many arguments");
    assert_eq!(sms(&app, "h4", AMINA, "hello").await, help);
    // Brian reads Swahili.
    sqlx::query("UPDATE customers SET language = 'sw' WHERE msisdn = '+254700000002'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(sms(&app, "h5", "+254700000002", "msaada").await.starts_with("SALIO - salio lako\nTAARIFA"));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_command_cannot_type_into_a_pin_screen(pool: PgPool) {
    // A menu author's command whose last argument would land on the PIN screen.
    let (app, dir) = with_wallet(&pool, |wallet| {
        wallet.replace(
            "  commands:\n",
            "  commands:\n    PAY:\n      dial: [\"1\", \"$1\", \"$2\", \"1\", \"$3\"]\n      args: [number, amount, pin]\n      help: \"PAY <number> <amount> <pin>\"\n",
        )
    })
    .await;
    let reply =
        sms(&app, "p1", AMINA, &format!("PAY 0700000002 500 {}", ussd_gateway::money::DEMO_PIN)).await;
    assert!(
        reply.starts_with("Reply YES "),
        "the conversation stops at the PIN screen and asks for a code: {reply}"
    );
    assert_eq!(transfers(&pool).await, 0);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Invalid replies end an SMS conversation as an SMS one: send the command again, never
/// "dial again".
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn too_many_invalid_replies_end_the_conversation_in_sms_words(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Redis).await;
    let mut said = vec![sms(&app, "i0", AMINA, "SEND 07000 500").await];
    for (n, junk) in ["x", "y", "z"].iter().enumerate() {
        if said.last().is_some_and(|s| s.starts_with("Too many")) {
            break;
        }
        said.push(sms(&app, &format!("i{}", n + 1), AMINA, junk).await);
    }
    assert_eq!(
        said.last().map(String::as_str),
        Some("Too many invalid answers. Send the command again."),
        "{said:?}"
    );
    assert!(said.iter().all(|s| !s.contains("dial again")), "{said:?}");
    assert_eq!(transfers(&pool).await, 0);
}
