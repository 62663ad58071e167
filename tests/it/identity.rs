//! Identity checks end to end: a registration over USSD checked by the sandbox identity
//! provider on a loopback port, the customer's tier and limits raised with an SMS; a
//! mismatch and a duplicate in the review queue, verified only with four eyes; a
//! provider that is down retried with backoff while the subscriber is answered at once;
//! the provider's signed callback; "Upgrade my account" from the wallet menu.

use std::future::IntoFuture;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use ussd_gateway::admin::{self, totp};
use ussd_gateway::config::Settings;
use ussd_gateway::domain::{Amount, Msisdn, Region};
use ussd_gateway::money::identity::settings::DEMO_WEBHOOK_SECRET;
use ussd_gateway::money::transfer_p2p;

use crate::common::*;

const PIN: &str = "4821";
const WANJIRU: &str = "+254711000111";

/// The app with the sandbox identity provider of `--demo` on a port of its own.
async fn with_provider(pool: PgPool, four_eyes: bool) -> (TestApp, tokio_util::task::AbortOnDropHandle<()>) {
    let (sandbox, server) = ussd_gateway::http::sandbox_server().await.expect("a loopback port");
    let app =
        spawn_with(pool, Store::Memory, provider_settings(&format!("{sandbox}/identity"), four_eyes)).await;
    (app, server)
}

fn provider_settings(url: &str, four_eyes: bool) -> Settings {
    Settings {
        identity_url: Some(url.into()),
        identity_webhook_secret: Some(DEMO_WEBHOOK_SECRET.into()),
        four_eyes,
        ..settings()
    }
}

/// Registers `msisdn` over USSD with `id`; the last screen.
async fn register(app: &TestApp, msisdn: &str, first: &str, id: &str) -> String {
    app.journey(msisdn, &format!("1*{first}*Otieno*{id}*{PIN}*{PIN}")).await
}

/// One pass of the identity worker, as every replica runs each second.
async fn work(app: &TestApp) -> u64 {
    let identity = app.state.gateway.money().identity().expect("a provider is configured");
    identity.run_due().await.expect("the worker runs")
}

async fn check_of(pool: &PgPool, msisdn: &str) -> Value {
    sqlx::query_scalar(
        "SELECT jsonb_build_object('id', c.id, 'state', c.state, 'reason', c.reason, 'attempts', c.attempts,
                'last_error', c.last_error, 'due_in', extract(epoch FROM c.next_attempt_at - now()))
           FROM identity_checks c JOIN customers cu ON cu.id = c.customer_id
          WHERE cu.msisdn = $1 ORDER BY c.created_at DESC LIMIT 1",
    )
    .bind(msisdn)
    .fetch_one(pool)
    .await
    .expect("a check for the customer")
}

async fn tier_of(pool: &PgPool, msisdn: &str) -> (i16, bool) {
    sqlx::query_as("SELECT kyc_tier, verified_at IS NOT NULL FROM customers WHERE msisdn = $1")
        .bind(msisdn)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The identity SMS queued for `msisdn`: (template, data).
async fn notices(pool: &PgPool, msisdn: &str) -> Vec<(String, Value)> {
    sqlx::query_as("SELECT template, data FROM outbox WHERE msisdn = $1 AND role = 'identity' ORDER BY id")
        .bind(msisdn)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_registration_over_ussd_is_verified_and_its_limits_rise(pool: PgPool) {
    let (app, _sandbox) = with_provider(pool.clone(), false).await;
    let done = register(&app, WANJIRU, "Wanjiru", "12345678").await;
    assert_eq!(
        done,
        "END Welcome Wanjiru! Your wallet is ready. We are checking your ID and will send you an SMS with the result."
    );
    assert_eq!(
        check_of(&pool, WANJIRU).await["state"],
        "queued",
        "written with the wallet, in its transaction"
    );
    assert_eq!(tier_of(&pool, WANJIRU).await, (1, false));

    // Over the basic tier's KES 70,000 a transfer: refused before the check.
    let wallet: i64 = sqlx::query_scalar(
        "SELECT a.id FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = $1",
    )
    .bind(WANJIRU)
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query("SELECT ledger_fund('test-funding:wanjiru', $1, 9000000)")
        .bind(wallet)
        .execute(&pool)
        .await
        .unwrap();
    let send = |key: &'static str| {
        let (from, to) = (
            Msisdn::parse(WANJIRU, Region::parse("KE").unwrap()).unwrap(),
            Msisdn::parse("+254700000002", Region::parse("KE").unwrap()).unwrap(),
        );
        let pool = pool.clone();
        async move {
            let amount = Amount::from_minor(8_000_000).unwrap();
            transfer_p2p(&pool, key, &from, &to, amount).await.unwrap()
        }
    };
    assert_eq!(send("over-basic-1").await.outcome.as_str(), "limit_exceeded");

    assert_eq!(work(&app).await, 1, "the sandbox matches the ID at once");
    assert_eq!(check_of(&pool, WANJIRU).await["state"], "verified");
    assert_eq!(tier_of(&pool, WANJIRU).await, (2, true));
    let sms = notices(&pool, WANJIRU).await;
    assert_eq!(sms.len(), 1, "{sms:?}");
    assert_eq!(sms[0].0, "identity_verified");
    assert_eq!(
        sms[0].1,
        json!({ "name": "Wanjiru", "amount": 50_000_000 }),
        "the verified tier's daily limit"
    );
    assert_eq!(send("over-basic-2").await.outcome.as_str(), "ok", "the verified tier's limits apply");

    // Settled once: the worker finds nothing more, and a late callback changes nothing.
    assert_eq!(work(&app).await, 0);
    let id = check_of(&pool, WANJIRU).await["id"].as_str().unwrap().to_owned();
    let (status, answer) = callback(&app, &json!({ "reference": id, "status": "mismatch" }), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["state"], "verified");
    assert_eq!(notices(&pool, WANJIRU).await.len(), 1);
    assert_ledger_invariants(&pool).await;
}

/// Posts a callback signed with the demo's secret (or `forged`'s signature instead).
async fn callback(app: &TestApp, body: &Value, forged: Option<&str>) -> (StatusCode, Value) {
    let body = body.to_string();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let secret = SecretString::from(DEMO_WEBHOOK_SECRET);
    let signed = ussd_gateway::signature::signature(&[&secret], "msg_1", now, body.as_bytes()).unwrap();
    let request = Request::post("/identity/callback")
        .header(header::CONTENT_TYPE, "application/json")
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", forged.unwrap_or(&signed))
        .body(Body::from(body))
        .unwrap();
    let r = app.send(request).await;
    (r.status, serde_json::from_str(&r.body).unwrap_or(Value::String(r.body)))
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_slow_answer_comes_by_the_signed_callback(pool: PgPool) {
    // The gateway's own listener, for the sandbox to call back; no worker runs but the
    // one pass below, so only the callback can settle the check.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback_url = format!("http://{}/identity/callback", listener.local_addr().unwrap());
    let (sandbox, _server) = ussd_gateway::http::sandbox_server().await.unwrap();
    let settings = Settings {
        identity_callback_url: Some(callback_url),
        ..provider_settings(&format!("{sandbox}/identity"), false)
    };
    let app = spawn_with(pool.clone(), Store::Memory, settings).await;
    let served = tokio::spawn(axum::serve(listener, app.router.clone()).into_future());

    // IDs beginning 77 are answered only after a while: pending first.
    register(&app, WANJIRU, "Wanjiru", "77123456").await;
    assert_eq!(work(&app).await, 0);
    let check = check_of(&pool, WANJIRU).await;
    assert_eq!(check["state"], "submitted", "{check}");
    assert!(check["due_in"].as_f64().unwrap() > 3.0, "polled later, not at once: {check}");
    until("the sandbox's signed callback verifies Wanjiru", || async {
        tier_of(&pool, WANJIRU).await == (2, true)
    })
    .await;
    assert_eq!(check_of(&pool, WANJIRU).await["attempts"], 1, "settled without a poll");
    served.abort();

    // A callback must be signed with IDENTITY_WEBHOOK_SECRET. Juma's check is still
    // queued: the provider's answer may overtake the record of its submission.
    let juma = "+254711000222";
    register(&app, juma, "Juma", "12121212").await;
    let id = check_of(&pool, juma).await["id"].as_str().unwrap().to_owned();
    let answer = json!({ "reference": id, "status": "match" });
    let (status, said) = callback(&app, &answer, Some("v1,AAAA")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{said}");
    let unknown = json!({ "reference": "idc_0000000000000000", "status": "match" });
    let (status, said) = callback(&app, &unknown, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{said}");
    let (status, said) =
        callback(&app, &json!({ "reference": "idc_0000000000000000", "status": "pending" }), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a pending word about no check: {said}");
    let (status, said) = callback(&app, &json!({ "reference": id, "status": "maybe" }), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{said}");
    let (status, said) = callback(&app, &json!({ "reference": id, "status": "pending" }), None).await;
    assert_eq!((status, &said["state"]), (StatusCode::OK, &json!("queued")), "{said}");
    assert_eq!(tier_of(&pool, juma).await, (1, false), "nothing changed on those callbacks");

    let (status, said) = callback(&app, &answer, None).await;
    assert_eq!((status, &said["state"]), (StatusCode::OK, &json!("verified")), "{said}");
    assert_eq!(tier_of(&pool, juma).await, (2, true));
    let (status, said) = callback(&app, &answer, None).await;
    assert_eq!(
        (status, &said["state"]),
        (StatusCode::OK, &json!("verified")),
        "a repeat is answered the same"
    );
    assert_eq!(notices(&pool, juma).await.len(), 1, "one SMS however many callbacks");
    assert_eq!(work(&app).await, 0, "the worker has nothing left of it");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_lost_callback_is_made_good_by_the_poll(pool: PgPool) {
    // No IDENTITY_CALLBACK_URL: the sandbox cannot call back.
    let (app, _sandbox) = with_provider(pool.clone(), false).await;
    register(&app, WANJIRU, "Wanjiru", "77123456").await;
    assert_eq!(work(&app).await, 0);
    assert_eq!(check_of(&pool, WANJIRU).await["state"], "submitted");
    until("the poll finds the sandbox's answer", || async {
        sqlx::query("UPDATE identity_checks SET next_attempt_at = now() WHERE state = 'submitted'")
            .execute(&pool)
            .await
            .unwrap();
        work(&app).await == 1
    })
    .await;
    assert_eq!(tier_of(&pool, WANJIRU).await, (2, true));
    assert_eq!(notices(&pool, WANJIRU).await[0].0, "identity_verified");
}

/// A provider that takes every check and never finishes one.
async fn forever_pending() -> String {
    let pending = || async { (StatusCode::ACCEPTED, axum::Json(json!({ "status": "pending" }))) };
    let router = axum::Router::new()
        .route("/verifications", axum::routing::post(pending))
        .route("/verifications/{reference}", axum::routing::get(pending));
    crate::common::sms::serve(router).await
}

/// Two days on with Wanjiru's check still open: the worker sends it to review as
/// `no_answer`, and the SMS promised at registration goes; the check.
async fn two_days_later(app: &TestApp, pool: &PgPool) -> Value {
    sqlx::query("UPDATE identity_checks SET created_at = now() - interval '3 days', next_attempt_at = now()")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(work(app).await, 1);
    let given_up = check_of(pool, WANJIRU).await;
    assert_eq!((&given_up["state"], &given_up["reason"]), (&json!("review"), &json!("no_answer")));
    assert_eq!(notices(pool, WANJIRU).await[0].0, "identity_review", "the promised SMS comes");
    given_up
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_check_the_provider_never_finishes_goes_to_review_and_a_late_answer_still_counts(pool: PgPool) {
    let url = forever_pending().await;
    let app = spawn_with(pool.clone(), Store::Memory, provider_settings(&url, false)).await;
    register(&app, WANJIRU, "Wanjiru", "12345678").await;
    assert_eq!(work(&app).await, 0);
    assert_eq!(check_of(&pool, WANJIRU).await["state"], "submitted");
    sqlx::query("UPDATE identity_checks SET next_attempt_at = now()").execute(&pool).await.unwrap();
    assert_eq!(work(&app).await, 0, "still pending: polled again later");
    assert_eq!(check_of(&pool, WANJIRU).await["state"], "submitted");

    let given_up = two_days_later(&app, &pool).await;

    // The provider answers at last: its match settles the check an operator had not.
    let id = given_up["id"].as_str().unwrap().to_owned();
    let (status, said) = callback(&app, &json!({ "reference": id, "status": "match" }), None).await;
    assert_eq!((status, &said["state"]), (StatusCode::OK, &json!("verified")), "{said}");
    assert_eq!(tier_of(&pool, WANJIRU).await, (2, true));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_provider_that_is_down_is_retried_with_backoff_and_never_holds_up_the_session(pool: PgPool) {
    // A port held, and never listened on, for the test's length: connections are refused.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = socket.local_addr().unwrap();
    let url = format!("http://{closed}/identity");
    let app = spawn_with(pool.clone(), Store::Memory, provider_settings(&url, false)).await;
    let done = tokio::time::timeout(Duration::from_secs(5), register(&app, WANJIRU, "Wanjiru", "12345678"))
        .await
        .expect("the registration is answered without the provider");
    assert!(done.starts_with("END Welcome Wanjiru! Your wallet is ready."), "{done}");

    assert_eq!(work(&app).await, 0);
    let first = check_of(&pool, WANJIRU).await;
    assert_eq!(
        (&first["state"], &first["attempts"], &first["last_error"]),
        (&json!("queued"), &json!(1), &json!("cannot connect"))
    );
    let wait = first["due_in"].as_f64().unwrap();
    assert!((3.5..6.5).contains(&wait), "the first retry about 5 s later: {first}");
    assert_eq!(work(&app).await, 0);
    assert_eq!(check_of(&pool, WANJIRU).await["attempts"], 1, "not asked again before it is due");

    sqlx::query("UPDATE identity_checks SET next_attempt_at = now()").execute(&pool).await.unwrap();
    work(&app).await;
    let second = check_of(&pool, WANJIRU).await;
    assert_eq!(second["attempts"], 2);
    assert!(second["due_in"].as_f64().unwrap() > wait + 1.0, "the wait doubles: {first} then {second}");

    // Two days without an answer: the check goes to review, and the customer is told.
    two_days_later(&app, &pool).await;
    assert_eq!(tier_of(&pool, WANJIRU).await, (1, false));
}

/// An approver with its one-time password registered: its token and secret.
async fn approver(app: &TestApp) -> (String, Vec<u8>) {
    let token = admin::create(&app.pool, "checker", &["approvals,proposals".into()]).await.unwrap();
    let (status, registered) = app.admin("POST", "/admin/approvals/totp", Some(&token), None, None).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    (token, totp::decode(registered["secret"].as_str().unwrap()))
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_mismatch_and_a_duplicate_wait_for_review_and_only_four_eyes_verify_them(pool: PgPool) {
    let (app, _sandbox) = with_provider(pool.clone(), true).await;
    let juma = "+254711000222";
    register(&app, WANJIRU, "Wanjiru", "99123456").await;
    register(&app, juma, "Juma", "88123456").await;
    assert_eq!(work(&app).await, 2);
    for (msisdn, reason) in [(WANJIRU, "mismatch"), (juma, "duplicate")] {
        let check = check_of(&pool, msisdn).await;
        assert_eq!((&check["state"], &check["reason"]), (&json!("review"), &json!(reason)), "{check}");
        assert_eq!(tier_of(&pool, msisdn).await, (1, false));
        assert_eq!(notices(&pool, msisdn).await[0].0, "identity_review");
    }

    let ops = admin::create(&pool, "ops", &["identity".into()]).await.unwrap();
    let (status, queue) = app.admin("GET", "/admin/identity/reviews", Some(&ops), None, None).await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    let listed: Vec<(&str, &str)> = queue["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["msisdn"].as_str().unwrap(), c["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [(WANJIRU, "mismatch"), (juma, "duplicate")]);
    assert!(!queue.to_string().contains("99123456"), "the ID number stays sealed: {queue}");
    let nobody = admin::create(&pool, "nobody", &["customers:read".into()]).await.unwrap();
    let (status, _) = app.admin("GET", "/admin/identity/reviews", Some(&nobody), None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Verifying against the provider's answer is proposed, and done on a second token.
    let wanjiru = check_of(&pool, WANJIRU).await["id"].as_str().unwrap().to_owned();
    let note = json!({ "note": "the customer showed the ID card at the branch" }).to_string();
    let verify = format!("/admin/identity/checks/{wanjiru}/verify");
    let (status, proposed) =
        app.admin("POST", &verify, Some(&ops), Some("verify-key-0001"), Some(note.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{proposed}");
    assert_eq!(tier_of(&pool, WANJIRU).await, (1, false), "nothing on one token's word");
    let (checker, secret) = approver(&app).await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let approve = format!("/admin/proposals/{}/approve", proposed["proposal"]["id"].as_str().unwrap());
    let code = json!({ "totp": format!("{:06}", totp::code(&secret, now / 30)) }).to_string();
    let (status, approved) = app.admin("POST", &approve, Some(&checker), None, Some(code)).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(tier_of(&pool, WANJIRU).await, (2, true));
    let (status, shown) =
        app.admin("GET", &format!("/admin/identity/checks/{wanjiru}"), Some(&ops), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&shown["state"], &shown["decided_by"], &shown["kyc_tier"]),
        (&json!("overridden"), &json!("admin:ops, approved by admin:checker"), &json!("verified"))
    );
    let sms = notices(&pool, WANJIRU).await;
    assert_eq!(
        sms.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        ["identity_review", "identity_verified"]
    );

    // A rejection needs one token; decided once.
    let juma_check = check_of(&pool, juma).await["id"].as_str().unwrap().to_owned();
    let reject = format!("/admin/identity/checks/{juma_check}/reject");
    let (status, rejected) = app.admin("POST", &reject, Some(&ops), None, Some(note.clone())).await;
    assert_eq!((status, &rejected["state"]), (StatusCode::OK, &json!("rejected")), "{rejected}");
    let (status, again) = app.admin("POST", &reject, Some(&ops), None, Some(note.clone())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (status, _) = app
        .admin(
            "POST",
            &format!("/admin/identity/checks/{juma_check}/verify"),
            Some(&ops),
            Some("verify-key-0002"),
            Some(note),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a decided check is not proposed");
    assert_eq!(notices(&pool, juma).await.last().unwrap().0, "identity_rejected");
    assert_eq!(tier_of(&pool, juma).await, (1, false));

    // Juma tries again with another ID: the provider's match alone does not change the
    // identity a wallet was registered with.
    let sent = app.journey(juma, &format!("12*Juma*Otieno*12121212*{PIN}")).await;
    assert!(sent.starts_with("END Thank you Juma."), "{sent}");
    assert_eq!(work(&app).await, 1);
    let changed = check_of(&pool, juma).await;
    assert_eq!(
        (&changed["state"], &changed["reason"]),
        (&json!("review"), &json!("id_changed")),
        "{changed}"
    );
    assert_eq!(tier_of(&pool, juma).await, (1, false));

    // With the provider gone, operators still decide what waits, and the SMS still goes.
    let without = spawn_with(pool.clone(), Store::Memory, settings()).await;
    let reject = format!("/admin/identity/checks/{}/reject", changed["id"].as_str().unwrap());
    let note = json!({ "note": "the ID card shown was not his" }).to_string();
    let (status, rejected) = without.admin("POST", &reject, Some(&ops), None, Some(note)).await;
    assert_eq!((status, &rejected["state"]), (StatusCode::OK, &json!("rejected")), "{rejected}");
    let decided: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT national_id_enc FROM identity_checks WHERE id = $1")
            .bind(changed["id"].as_str().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(decided.is_none(), "a decided check keeps no ID");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn upgrade_my_account_from_the_wallet_menu(pool: PgPool) {
    let (app, _sandbox) = with_provider(pool.clone(), false).await;
    let basic = "+254711000333";
    customer(&pool, basic, 1, 0).await;
    sqlx::query("UPDATE customers SET pin_salt = c.pin_salt, pin_hash = c.pin_hash FROM customers c WHERE c.msisdn = '+254700000001' AND customers.msisdn = $1")
        .bind(basic)
        .execute(&pool)
        .await
        .unwrap();
    let pin = ussd_gateway::money::DEMO_PIN;
    // Option 12, past More: the number holds whether or not the page shows it.
    let screens = [
        ("12", "CON Enter your first name as on your ID"),
        ("12*Zawadi", "CON Enter your last name as on your ID"),
        ("12*Zawadi*Mwangi", "CON Enter your national ID number"),
        ("12*Zawadi*Mwangi*12345678", "CON Enter your PIN to send your details for checking"),
        (
            "12*Zawadi*Mwangi*12345678*0000",
            "CON Wrong PIN.\nEnter your PIN to send your details for checking",
        ),
    ];
    for (typed, expected) in screens {
        assert_eq!(app.journey(basic, typed).await, expected, "after {typed}");
    }
    let sent = app.journey(basic, &format!("12*Zawadi*Mwangi*12345678*{pin}")).await;
    assert_eq!(
        sent,
        "END Thank you Zawadi. We are checking your ID and will send you an SMS with the result."
    );
    let again = app.journey(basic, &format!("12*Zawadi*Mwangi*12345678*{pin}")).await;
    assert_eq!(again, "END Your ID is already being checked. You will get an SMS with the result.");

    assert_eq!(work(&app).await, 1);
    assert_eq!(tier_of(&pool, basic).await, (2, true));
    let (first, last): (String, String) =
        sqlx::query_as("SELECT first_name, last_name FROM customers WHERE msisdn = $1")
            .bind(basic)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((first.as_str(), last.as_str()), ("Zawadi", "Mwangi"), "the names the register confirmed");
    // Told at once from the next dial on, once this replica heard of the change (its
    // profiles in memory are dropped on Postgres's notice).
    until("the wallet knows Zawadi is verified", || async {
        app.journey(basic, "12").await == "END Your account is already verified."
    })
    .await;
    // A customer in the verified tier is told so before typing anything.
    assert_eq!(app.journey("+254700000001", "12").await, "END Your account is already verified.");

    // One ID, one verified wallet: another customer cannot give the same ID.
    let other = "+254711000444";
    customer(&pool, other, 1, 0).await;
    let taken = app.journey(other, "12*Zawadi*Mwangi*12345678").await;
    assert_eq!(taken, "END This ID number is already registered. Visit an agent for help.");

    // A blocked wallet is not upgraded.
    sqlx::query("UPDATE customers SET pin_salt = c.pin_salt, pin_hash = c.pin_hash FROM customers c WHERE c.msisdn = '+254700000001' AND customers.msisdn = $1")
        .bind(other)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE accounts SET status = 'blocked' FROM customers c WHERE c.id = accounts.customer_id AND c.msisdn = $1")
        .bind(other)
        .execute(&pool)
        .await
        .unwrap();
    let blocked = app.journey(other, &format!("12*Zawadi*Mwangi*34343434*{pin}")).await;
    assert_eq!(blocked, "END Your account is blocked. Please call 100.");
    assert_eq!(work(&app).await, 0, "no check was written");

    // Without a provider the option says so at once.
    let without = spawn_with(pool.clone(), Store::Memory, settings()).await;
    customer(&pool, "+254711000555", 1, 0).await;
    assert_eq!(
        without.journey("+254711000555", "12").await,
        "END Upgrading your account is not available right now. Visit an agent with your ID card."
    );
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_demo_checks_a_registration_with_its_own_sandbox(pool: PgPool) {
    let settings = Settings {
        database_url: database_url(&pool).into(),
        listen_addr: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        ..settings()
    };
    let config = settings.validate(None, true).expect("a demo configuration");
    let app = ussd_gateway::app::Application::build(config).await.expect("the demo builds");
    let (addr, stop) = (app.addr(), app.stop_token());
    let running = tokio::spawn(app.run_until_stopped());

    // The sandbox answers an ID beginning 77 only after a while, by a signed callback to
    // this gateway's listener or on the status call its worker polls, whichever first.
    let client = reqwest::Client::new();
    let session = unique_session();
    let mut typed = String::new();
    let mut last = String::new();
    for input in ["", "1", "Wanjiru", "Otieno", "77123456", PIN, PIN] {
        if !input.is_empty() {
            typed = if typed.is_empty() { input.to_owned() } else { format!("{typed}*{input}") };
        }
        let form = at_form(&session, "*384#", WANJIRU, &typed);
        let answer = client
            .post(format!("http://{addr}/ussd/africastalking"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        last = answer.text().await.unwrap();
    }
    assert!(last.starts_with("END Welcome Wanjiru! Your wallet is ready. We are checking your ID"), "{last}");
    until("the sandbox's slow answer verifies Wanjiru", || async {
        tier_of(&pool, WANJIRU).await == (2, true)
    })
    .await;
    assert_eq!(notices(&pool, WANJIRU).await[0].0, "identity_verified");

    stop.cancel();
    running.await.expect("no panic").expect("a clean stop");
}
