//! Four eyes: an agent's onboarding, a reversal, a PIN unlock and a large float top-up are
//! proposed by one token and carried out only when another approves with its one-time
//! password; the proposer cannot approve, a code is taken once, proposals expire.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use ussd_gateway::admin::{self, totp};
use ussd_gateway::config::Settings;
use ussd_gateway::domain::{Amount, Msisdn, Region};
use ussd_gateway::money::transfer_p2p;

use crate::common::*;

const AMINA: &str = "+254700000001";
const BRIAN: &str = "+254700000002";

async fn four_eyes(pool: PgPool) -> TestApp {
    spawn_with(pool, Store::Memory, Settings { four_eyes: true, ..settings() }).await
}

async fn call(app: &TestApp, method: &str, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    app.admin(method, path, Some(token), Some("topup-key-0001"), (!body.is_null()).then(|| body.to_string()))
        .await
}

/// An approver with its one-time password registered; its token and secret.
async fn approver(app: &TestApp, name: &str) -> (String, Vec<u8>) {
    let token = admin::create(&app.pool, name, &["approvals,proposals".into()]).await.unwrap();
    let (status, registered) = call(app, "POST", "/admin/approvals/totp", &token, Value::Null).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let secret = registered["secret"].as_str().unwrap();
    assert!(registered["otpauth"].as_str().unwrap().starts_with("otpauth://totp/"), "{registered}");
    let (again, _) = call(app, "POST", "/admin/approvals/totp", &token, Value::Null).await;
    assert_eq!(again, StatusCode::CONFLICT, "a secret is registered once");
    (token, totp::decode(secret))
}

/// The code an authenticator app shows `ahead` steps from now.
fn code(secret: &[u8], ahead: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    format!("{:06}", totp::code(secret, now / 30 + ahead))
}

fn proposal_of(answer: &Value) -> String {
    answer["proposal"]["id"].as_str().unwrap_or_else(|| panic!("no proposal in {answer}")).to_owned()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn an_agents_onboarding_needs_a_second_token_and_its_one_time_password(pool: PgPool) {
    let app = four_eyes(pool.clone()).await;
    let ops = admin::create(&pool, "ops", &["agents,approvals,proposals".into()]).await.unwrap();
    let (checker, secret) = approver(&app, "checker").await;

    let onboarding = json!({ "msisdn": BRIAN, "agent_number": "300001", "name": "Duka la Brian",
                             "stores": [{ "store_number": "301", "name": "Kibera" }] });
    let (status, proposed) = call(&app, "POST", "/admin/agents", &ops, onboarding).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{proposed}");
    let id = proposal_of(&proposed);
    assert_eq!(proposed["proposal"]["state"], "pending");
    let (status, _) = call(&app, "GET", "/admin/agents/300001", &ops, Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing is done on one token's word");

    // The proposer cannot approve, even with the scope; an approver needs its password.
    let approve = format!("/admin/proposals/{id}/approve");
    let (status, said) = call(&app, "POST", &approve, &ops, json!({ "totp": "123456" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{said}");
    assert!(said["error"].as_str().unwrap().contains("cannot approve it"), "{said}");
    let wrong = if code(&secret, 0) == "000000" { "111111" } else { "000000" };
    let (status, said) = call(&app, "POST", &approve, &checker, json!({ "totp": wrong })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{said}");
    let unregistered = admin::create(&pool, "lazy", &["approvals".into()]).await.unwrap();
    let (status, said) = call(&app, "POST", &approve, &unregistered, json!({ "totp": "123456" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{said}");
    assert!(said["error"].as_str().unwrap().contains("no one-time password"), "{said}");

    let (status, approved) =
        call(&app, "POST", &approve, &checker, json!({ "totp": code(&secret, 0) })).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], 201, "carried out as the proposer asked: {approved}");
    assert_eq!(approved["answer"]["agent_number"], "300001", "{approved}");
    assert_eq!(approved["proposal"]["state"], "approved");
    assert_eq!(approved["proposal"]["decided_by"], "checker");
    let (status, agent) = call(&app, "GET", "/admin/agents/300001", &ops, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{agent}");

    let (status, _) = call(&app, "POST", &approve, &checker, json!({ "totp": code(&secret, 1) })).await;
    assert_eq!(status, StatusCode::CONFLICT, "carried out once");
    let (status, shown) = call(&app, "GET", &format!("/admin/proposals/{id}"), &checker, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["outcome"]["status"], 201, "{shown}");

    // Every step is in the trail: the proposal, the refusals, the approval, and the call
    // carried out under the proposer's name.
    let steps: Vec<(Option<String>, String, i16)> = sqlx::query_as(
        "SELECT token_name, route, status FROM admin_audit WHERE route IN ('/admin/agents', '/admin/proposals/{id}/approve') ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let steps: Vec<(Option<&str>, &str, i16)> =
        steps.iter().map(|(t, r, s)| (t.as_deref(), r.as_str(), *s)).collect();
    assert!(steps.contains(&(Some("ops"), "/admin/agents", 202)), "{steps:?}");
    assert!(steps.contains(&(Some("ops"), "/admin/agents", 201)), "{steps:?}");
    assert!(steps.contains(&(Some("checker"), "/admin/proposals/{id}/approve", 200)), "{steps:?}");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_reversal_needs_two_tokens_and_a_code_is_taken_once(pool: PgPool) {
    let app = four_eyes(pool.clone()).await;
    let ke = Region::parse("KE").unwrap();
    let (amina, brian) = (Msisdn::parse(AMINA, ke).unwrap(), Msisdn::parse(BRIAN, ke).unwrap());
    let sent =
        transfer_p2p(&pool, "send-1", &amina, &brian, Amount::from_minor(30_000).unwrap()).await.unwrap();
    let reference = sent.reference();
    let balance = |who: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT a.balance FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = $1 AND a.kind = 'wallet'")
                .bind(who)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let before = (balance(AMINA).await, balance(BRIAN).await);

    let desk = admin::create(&pool, "desk", &["transfers:reverse".into()]).await.unwrap();
    let (checker, secret) = approver(&app, "checker").await;
    let path = format!("/admin/transfers/{reference}/reverse");
    let (status, proposed) =
        call(&app, "POST", &path, &desk, json!({ "reason": "sent to the wrong number" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{proposed}");
    assert_eq!((balance(AMINA).await, balance(BRIAN).await), before, "nothing moved on one token's word");

    let used = code(&secret, 0);
    let approve = format!("/admin/proposals/{}/approve", proposal_of(&proposed));
    let (status, approved) = call(&app, "POST", &approve, &checker, json!({ "totp": used })).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], 200, "{approved}");
    assert_eq!((balance(AMINA).await, balance(BRIAN).await), (before.0 + 30_000, before.1 - 30_000));

    // A call with nothing to act on is refused at once, not proposed.
    let (status, said) =
        call(&app, "POST", "/admin/transfers/TX7FFFFFFF/reverse", &desk, json!({ "reason": "typo" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{said}");
    let writer = admin::create(&pool, "writer", &["customers:write".into()]).await.unwrap();
    let (status, said) =
        call(&app, "POST", "/admin/customers/+254711000999/pin/unlock", &writer, Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{said}");

    // A second proposal, and the same code again: refused, and the proposal still waits.
    let unlock = format!("/admin/customers/{AMINA}/pin/unlock");
    let (status, proposed) = call(&app, "POST", &unlock, &writer, Value::Null).await;
    assert_eq!(status, StatusCode::ACCEPTED, "a PIN unlock too: {proposed}");
    let approve = format!("/admin/proposals/{}/approve", proposal_of(&proposed));
    let (status, said) = call(&app, "POST", &approve, &checker, json!({ "totp": used })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a code is taken once: {said}");
    let (status, approved) =
        call(&app, "POST", &approve, &checker, json!({ "totp": code(&secret, 1) })).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], 200, "{approved}");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn small_top_ups_go_alone_and_proposals_expire_or_are_rejected(pool: PgPool) {
    let app = four_eyes(pool.clone()).await;
    ussd_gateway::money::seed_demo_agent(&pool).await.unwrap();
    let agent: String =
        sqlx::query_scalar("SELECT agent_number FROM agents LIMIT 1").fetch_one(&pool).await.unwrap();
    let float = admin::create(&pool, "treasury", &["float".into()]).await.unwrap();
    let path = format!("/admin/agents/{agent}/float");
    let (status, done) = call(&app, "POST", &path, &float, json!({ "amount": 500_000 })).await;
    assert_eq!(status, StatusCode::OK, "at most FOUR_EYES_FLOAT_OVER goes alone: {done}");
    let (status, proposed) = app
        .admin(
            "POST",
            &path,
            Some(&float),
            Some("topup-key-0002"),
            Some(json!({ "amount": 5_000_000 }).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "over it, four eyes: {proposed}");
    assert_eq!(proposed["proposal"]["body"]["amount"], 5_000_000);
    // Sent again with its Idempotency-Key, it is the same proposal; the key with another
    // amount is refused.
    let again = |amount: i64| {
        app.admin(
            "POST",
            &path,
            Some(&float),
            Some("topup-key-0002"),
            Some(json!({ "amount": amount }).to_string()),
        )
    };
    let (status, repeated) = again(5_000_000).await;
    assert_eq!(
        (status, proposal_of(&repeated)),
        (StatusCode::ACCEPTED, proposal_of(&proposed)),
        "{repeated}"
    );
    let (status, reused) = again(6_000_000).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reused}");
    let proposals: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_proposals WHERE path = $1")
        .bind(&path)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(proposals, 1);

    let (checker, secret) = approver(&app, "checker").await;
    let id = proposal_of(&proposed);
    sqlx::query("UPDATE admin_proposals SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    let (status, said) = call(
        &app,
        "POST",
        &format!("/admin/proposals/{id}/approve"),
        &checker,
        json!({ "totp": code(&secret, 0) }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{said}");
    let (_, shown) = call(&app, "GET", &format!("/admin/proposals/{id}"), &checker, Value::Null).await;
    assert_eq!(shown["state"], "expired");

    let (_, proposed) = app
        .admin(
            "POST",
            &path,
            Some(&float),
            Some("topup-key-0003"),
            Some(json!({ "amount": 2_000_000 }).to_string()),
        )
        .await;
    let id = proposal_of(&proposed);
    let (status, listed) = call(&app, "GET", "/admin/proposals", &checker, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let waiting: Vec<&str> =
        listed["proposals"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(waiting, [id.as_str()], "the expired one waits no more");
    let (status, rejected) = call(
        &app,
        "POST",
        &format!("/admin/proposals/{id}/reject"),
        &checker,
        json!({ "note": "no bank slip" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(rejected["state"], "rejected");
    let (status, _) = call(
        &app,
        "POST",
        &format!("/admin/proposals/{id}/approve"),
        &checker,
        json!({ "totp": code(&secret, 1) }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "a rejected proposal is never carried out");
    let (_, shown) = call(&app, "GET", &format!("/admin/agents/{agent}"), &checker, Value::Null).await;
    assert_eq!(shown["error"].as_str().map(|e| e.contains("agents")), Some(true), "the checker may not look");
    let float = admin::create(&pool, "auditor", &["agents".into()]).await.unwrap();
    let (_, shown) = call(&app, "GET", &format!("/admin/agents/{agent}"), &float, Value::Null).await;
    assert_eq!(shown["float"]["balance"], done["float"], "only the small top-up was made: {shown}");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_sensitive_flag_and_a_billers_registration_wait_for_a_second_token(pool: PgPool) {
    let app = four_eyes(pool.clone()).await;
    let risk = admin::create(&pool, "risk", &["flags,billers".into()]).await.unwrap();
    let (checker, secret) = approver(&app, "checker").await;
    let enabled = |name: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>("SELECT enabled FROM flags WHERE name = $1")
                .bind(name)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };

    for (name, sensitive) in [("bill_pay", true), ("merchant_pay", false)] {
        let made = json!({ "name": name, "enabled": true, "sensitive": sensitive });
        let (status, said) = call(&app, "POST", "/admin/flags", &risk, made).await;
        assert_eq!(status, StatusCode::CREATED, "creating goes alone: {said}");
    }
    let (status, _) =
        call(&app, "PATCH", "/admin/flags/merchant_pay", &risk, json!({ "enabled": false })).await;
    assert_eq!(status, StatusCode::OK, "a flag not marked sensitive changes alone");
    assert!(!enabled("merchant_pay").await);
    let (status, proposed) =
        call(&app, "PATCH", "/admin/flags/bill_pay", &risk, json!({ "enabled": false })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{proposed}");
    assert!(enabled("bill_pay").await, "not before the approval");
    let approve = format!("/admin/proposals/{}/approve", proposal_of(&proposed));
    let (status, approved) =
        call(&app, "POST", &approve, &checker, json!({ "totp": code(&secret, 0) })).await;
    assert_eq!((status, approved["status"].clone()), (StatusCode::OK, json!(200)), "{approved}");
    assert!(!enabled("bill_pay").await);

    let biller = json!({ "code": "KPLC", "name": "Kenya Power", "account_pattern": "[0-9]{11}",
                         "account_label": "meter number", "fee_payer": "customer",
                         "base_url": "http://127.0.0.1:9/billers/KPLC" });
    let (status, proposed) = call(&app, "POST", "/admin/billers", &risk, biller).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{proposed}");
    let (status, refused) = call(&app, "POST", "/admin/billers", &risk, json!({ "code": "kplc" })).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "what breaks the document is refused, not proposed: {refused}"
    );
    let (_, listed) = call(&app, "GET", "/admin/billers", &risk, Value::Null).await;
    assert!(!listed.to_string().contains("KPLC"), "{listed}");
    let approve = format!("/admin/proposals/{}/approve", proposal_of(&proposed));
    let (status, approved) =
        call(&app, "POST", &approve, &checker, json!({ "totp": code(&secret, 1) })).await;
    assert_eq!((status, approved["status"].clone()), (StatusCode::OK, json!(201)), "{approved}");

    // Credentials are a secret body: sealed with the proposal, which shows only what is set.
    let credentials = json!({ "api_key": { "header": "X-Api-Key", "value": "kplc-live-key-0123456789" } });
    let path = "/admin/billers/KPLC/credentials";
    let (status, proposed) = call(&app, "PUT", path, &risk, credentials.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{proposed}");
    assert_eq!(proposed["proposal"]["body"]["credentials"]["api_key"], "X-Api-Key", "{proposed}");
    let kept: String = sqlx::query_scalar("SELECT row_to_json(p)::text FROM admin_proposals p WHERE id = $1")
        .bind(proposal_of(&proposed))
        .fetch_one(&pool)
        .await
        .unwrap();
    let audited: String =
        sqlx::query_scalar("SELECT coalesce(string_agg(detail::text, ' '), '') FROM admin_audit")
            .fetch_one(&pool)
            .await
            .unwrap();
    for (place, text) in
        [("the proposal", &kept), ("the trail", &audited), ("the answer", &proposed.to_string())]
    {
        assert!(!text.contains("kplc-live-key"), "{place} holds the key: {text}");
    }
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT credentials_sealed FROM billers WHERE code = 'KPLC'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(sealed.is_none(), "nothing set on one token's word");
    // Sent again under its key it is the same proposal; other values under it are refused.
    let (status, again) = call(&app, "PUT", path, &risk, credentials.clone()).await;
    assert_eq!((status, proposal_of(&again)), (StatusCode::ACCEPTED, proposal_of(&proposed)));
    let other = json!({ "api_key": { "header": "X-Api-Key", "value": "kplc-live-key-9876543210" } });
    let (status, reused) = call(&app, "PUT", path, &risk, other).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reused}");
    let (second, second_secret) = approver(&app, "checker-2").await;
    let approve = format!("/admin/proposals/{}/approve", proposal_of(&proposed));
    let (status, approved) =
        call(&app, "POST", &approve, &second, json!({ "totp": code(&second_secret, 0) })).await;
    assert_eq!((status, approved["status"].clone()), (StatusCode::OK, json!(200)), "{approved}");
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT credentials_sealed FROM billers WHERE code = 'KPLC'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(sealed.is_some(), "the approved call set the credentials the proposer sent");
    let kept: Option<Vec<u8>> = sqlx::query_scalar("SELECT body_sealed FROM admin_proposals WHERE id = $1")
        .bind(proposal_of(&proposed))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(kept.is_none(), "carried out, the proposal keeps the credentials no longer");
    let (status, _) = call(&app, "PUT", "/admin/billers/NOPE/credentials", &risk, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no biller: refused, not proposed");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn five_wrong_codes_in_a_row_lock_an_approver(pool: PgPool) {
    let app = four_eyes(pool.clone()).await;
    let writer = admin::create(&pool, "writer", &["customers:write".into()]).await.unwrap();
    let (checker, secret) = approver(&app, "checker").await;
    let (_, proposed) =
        call(&app, "POST", &format!("/admin/customers/{AMINA}/pin/unlock"), &writer, Value::Null).await;
    let approve = format!("/admin/proposals/{}/approve", proposal_of(&proposed));
    let right = code(&secret, 0);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 500_000) % 1_000_000);
    for _ in 0..5 {
        let (status, _) = call(&app, "POST", &approve, &checker, json!({ "totp": wrong })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (status, said) = call(&app, "POST", &approve, &checker, json!({ "totp": right })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{said}");
    assert!(said["error"].as_str().unwrap().contains("too many wrong"), "{said}");
    let (_, shown) =
        call(&app, "GET", &format!("/admin/proposals/{}", proposal_of(&proposed)), &checker, Value::Null)
            .await;
    assert_eq!(shown["state"], "pending", "nothing was carried out");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_lock_that_ended_gives_five_tries_again(pool: PgPool) {
    let app = four_eyes(pool.clone()).await;
    let writer = admin::create(&pool, "writer", &["customers:write".into()]).await.unwrap();
    let (checker, secret) = approver(&app, "checker").await;
    let (_, proposed) =
        call(&app, "POST", &format!("/admin/customers/{AMINA}/pin/unlock"), &writer, Value::Null).await;
    let approve = format!("/admin/proposals/{}/approve", proposal_of(&proposed));
    sqlx::query("UPDATE approver_totp SET failures = 5, locked_until = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    let right = code(&secret, 0);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 500_000) % 1_000_000);
    let (status, said) = call(&app, "POST", &approve, &checker, json!({ "totp": wrong })).await;
    assert!(
        said["error"].as_str().unwrap().contains("is wrong"),
        "one miss after a lock is one miss: {said}"
    );
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, approved) = call(&app, "POST", &approve, &checker, json!({ "totp": right })).await;
    assert_eq!((status, approved["status"].clone()), (StatusCode::OK, json!(200)), "{approved}");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_merchants_onboarding_and_change_need_a_second_token_and_its_secret_goes_to_the_approver_alone(
    pool: PgPool,
) {
    let app = four_eyes(pool.clone()).await;
    let ops = admin::create(&pool, "ops", &["merchants,proposals,webhooks".into()]).await.unwrap();
    let (checker, secret) = approver(&app, "checker").await;
    let mut paybill = json!({
        "kind": "paybill", "business_number": "888123", "legal_name": "Sacco Ltd", "display_name": "Sacco",
        "owner": AMINA, "notify_msisdn": AMINA, "fee_class": "standard", "fee_payer": "customer",
        "account_pattern": "[0-9]{4,8}", "account_label": "member number",
        "validation_url": "http://127.0.0.1:9/validate", "validation_default": "accept",
        "confirmation_url": "http://127.0.0.1:9/confirm",
    });
    // What breaks the document is refused, not proposed.
    let mut short = paybill.clone();
    short["business_number"] = json!("12");
    let (status, refused) = call(&app, "POST", "/admin/merchants", &ops, short).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (status, proposed) = call(&app, "POST", "/admin/merchants", &ops, paybill.take()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{proposed}");
    let (_, listed) = call(&app, "GET", "/admin/merchants", &ops, Value::Null).await;
    assert_eq!(listed["merchants"], json!([]), "nothing is onboarded on one token's word: {listed}");

    let id = proposal_of(&proposed);
    let approve = format!("/admin/proposals/{id}/approve");
    let (status, approved) =
        call(&app, "POST", &approve, &checker, json!({ "totp": code(&secret, 0) })).await;
    assert_eq!((status, approved["status"].clone()), (StatusCode::OK, json!(201)), "{approved}");
    let shown_once = approved["answer"]["validation"]["secret"].as_str().unwrap();
    assert!(shown_once.starts_with("whsec_"), "the approver is shown the secret: {approved}");
    let (_, kept) = call(&app, "GET", &format!("/admin/proposals/{id}"), &ops, Value::Null).await;
    assert_eq!(kept["outcome"]["answer"]["validation"]["secret"], admin::proposals::SHOWN_ONCE, "{kept}");
    assert!(!kept.to_string().contains(shown_once), "the proposal keeps no secret: {kept}");

    // A change is proposed too, and refused at once for a merchant that is not there.
    let merchant = approved["answer"]["merchant"].as_str().unwrap().to_owned();
    let suspend = json!({ "status": "suspended" });
    let (status, proposed) =
        call(&app, "PATCH", &format!("/admin/merchants/{merchant}"), &ops, suspend.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{proposed}");
    let (status, _) = call(&app, "PATCH", "/admin/merchants/MC0FFFFFFF", &ops, suspend).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Its confirmation endpoint is the merchant's too: redirected or re-keyed by two tokens.
    let webhook = approved["answer"]["confirmation"]["webhook"].as_str().unwrap().to_owned();
    let elsewhere = json!({ "url": "http://127.0.0.1:9/elsewhere" });
    let (status, proposed) =
        call(&app, "PATCH", &format!("/admin/webhooks/{webhook}"), &ops, elsewhere).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{proposed}");
    let (status, proposed) =
        call(&app, "POST", &format!("/admin/webhooks/{webhook}/rotate"), &ops, json!({ "grace_secs": 60 }))
            .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{proposed}");
    let url: String = sqlx::query_scalar("SELECT url FROM webhooks WHERE id = $1")
        .bind(&webhook)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(url, "http://127.0.0.1:9/confirm", "nothing changed on one token's word");
}
