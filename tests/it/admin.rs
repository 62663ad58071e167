//! The admin API: scoped tokens kept as hashes, every call in the audit trail, customer
//! lookup, PIN unlock and transfer reversal (once, under concurrency, never more than
//! the payee has), bad requests answered with a reason, and its OpenAPI document.

use crate::common;
use crate::common::*;
use axum::http::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use ussd_gateway::admin::{self, TokenError};
use ussd_gateway::domain::shape;
use ussd_gateway::money::DEMO_PIN;

const AMINA: &str = "+254700000001";

async fn call(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    app.admin(method, path, token, None, None).await
}

/// The trail, oldest first: (token, method, route, target, status).
async fn trail(pool: &PgPool) -> Vec<(Option<String>, String, String, Option<String>, i16)> {
    sqlx::query_as("SELECT token_name, method, route, target, status FROM admin_audit ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn tokens_are_kept_as_hashes_with_their_scopes(pool: PgPool) {
    let token =
        admin::create(&pool, "support-desk", &["customers:read,customers:write".into()]).await.unwrap();
    assert!(token.starts_with("uga_") && token.len() > 40, "{token}");
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT token_hash FROM admin_tokens WHERE name = 'support-desk'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_ne!(stored, token.as_bytes(), "only a hash is stored");
    let who = admin::authenticate(&pool, None, &token).await.unwrap().expect("the token checks out");
    assert_eq!(who.name, "support-desk");
    assert!(who.allows(admin::Scope::CustomersRead) && !who.allows(admin::Scope::Menus));

    let refused = |r: Result<String, TokenError>| r.unwrap_err().to_string();
    assert!(
        refused(admin::create(&pool, "support-desk", &["menus".into()]).await).contains("exists already")
    );
    assert!(
        refused(admin::create(&pool, "Bad Name", &["menus".into()]).await).contains("is not a token name")
    );
    assert!(refused(admin::create(&pool, "ops", &["menus".into(), "payroll".into()]).await).contains(
        "`payroll` is not a scope; scopes are menus, customers:read, customers:write, transfers:reverse, agents, float"
    ));
    assert!(refused(admin::create(&pool, "ops", &[" , ".into()]).await).contains("at least one scope"));

    assert!(admin::revoke(&pool, "support-desk").await.unwrap());
    assert!(!admin::revoke(&pool, "support-desk").await.unwrap(), "revoked once");
    assert!(admin::authenticate(&pool, None, &token).await.unwrap().is_none());
    let listed = admin::list(&pool).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].starts_with("support-desk\tcustomers:read,customers:write\tcreated ")
            && listed[0].contains("revoked")
    );
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn scopes_are_enforced_and_every_call_is_audited(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let reader = admin::create(&pool, "reader", &["customers:read".into()]).await.unwrap();
    let path = format!("/admin/customers/{AMINA}");

    let (status, body) = call(&app, "GET", &path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("admin token create"), "{body}");
    assert_eq!(call(&app, "GET", &path, Some("uga_not-a-token")).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&app, "POST", &format!("{path}/pin/unlock"), Some(&reader)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "token `reader` does not have the scope `customers:write`");
    assert_eq!(call(&app, "POST", "/admin/menus/reload", Some(&reader)).await.0, StatusCode::FORBIDDEN);

    let (status, body) = call(&app, "GET", &path, Some(&reader)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["first_name"], "Amina");
    assert_eq!(body["wallet"]["balance"], 100_000);

    // Bad requests get their reason, and are audited like the rest.
    let (status, body) = call(&app, "GET", "/admin/customers/07x", Some(&reader)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().starts_with("`07x` is not written as a phone number"), "{body}");
    // Written as a number, but one no numbering plan has: nobody's.
    let (status, body) = call(&app, "GET", "/admin/customers/0000000", Some(&reader)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().starts_with("no customer has `0000000`"), "{body}");
    let (status, body) = call(&app, "GET", "/admin/customers/+254711000111", Some(&reader)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("no customer has this number"))
    );
    let (status, body) = call(&app, "GET", &format!("{path}?limit=500"), Some(&reader)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "`limit` must be between 1 and 100 (got 500)");
    assert_eq!(
        call(&app, "GET", &format!("{path}?limit=ten"), Some(&reader)).await.0,
        StatusCode::BAD_REQUEST
    );

    let customer = "/admin/customers/{msisdn}".to_owned();
    let row = |token: Option<&str>, method: &str, route: &str, target: Option<&str>, status: u16| {
        (
            token.map(str::to_owned),
            method.to_owned(),
            route.to_owned(),
            target.map(str::to_owned),
            status as i16,
        )
    };
    assert_eq!(
        trail(&pool).await,
        [
            row(None, "GET", &customer, None, 401),
            row(None, "GET", &customer, None, 401),
            row(Some("reader"), "POST", "/admin/customers/{msisdn}/pin/unlock", None, 403),
            row(Some("reader"), "POST", "/admin/menus/reload", None, 403),
            row(Some("reader"), "GET", &customer, Some(AMINA), 200),
            row(Some("reader"), "GET", &customer, None, 400),
            row(Some("reader"), "GET", &customer, None, 404),
            row(Some("reader"), "GET", &customer, Some("+254711000111"), 404),
            row(Some("reader"), "GET", &customer, Some(AMINA), 400),
            // A query that does not parse is answered once the caller is known.
            row(Some("reader"), "GET", &customer, Some(AMINA), 400),
        ]
    );
    // The trail is append-only.
    let err = sqlx::query("DELETE FROM admin_audit").execute(&pool).await.unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_locked_pin_is_unlocked_and_the_lookup_shows_transfers(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let desk =
        admin::create(&pool, "desk", &["customers:read".into(), "customers:write".into()]).await.unwrap();
    // Amina sends Brian money, then locks her PIN with three wrong ones.
    let pin = DEMO_PIN;
    let sent = app.journey(AMINA, &format!("1*0700000002*250*1*{pin}")).await;
    assert!(sent.starts_with("END Sent KES 250.00"), "{sent}");
    let wrong = if pin == "0000" { "1111" } else { "0000" };
    for _ in 0..3 {
        app.journey(AMINA, &format!("2*{wrong}")).await;
    }
    let locked = app.journey(AMINA, &format!("2*{pin}")).await;
    assert!(locked.contains("locked"), "{locked}");

    let (status, body) = call(&app, "GET", "/admin/customers/0700000001?limit=5", Some(&desk)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["pin"]["locked_until"].is_string(), "{body}");
    assert_eq!(body["pin"]["failures"], 3);
    let transfers = body["transfers"].as_array().unwrap();
    assert_eq!(transfers[0]["direction"], "out");
    assert_eq!(transfers[0]["amount"], 25_000);
    assert_eq!(transfers[0]["counterparty"], "+254700000002");
    assert_eq!(transfers[1]["kind"], "funding", "the demo's opening deposit");

    let (status, body) = call(&app, "POST", "/admin/customers/0700000001/pin/unlock", Some(&desk)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["was_locked"], true);
    let balance = app.journey(AMINA, &format!("2*{pin}")).await;
    assert!(balance.starts_with("END Your balance is KES 743.00"), "{balance}");
    let detail: Value =
        sqlx::query_scalar("SELECT detail FROM admin_audit WHERE route LIKE '%unlock' AND status = 200")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(detail["was_locked"], true);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_api_describes_itself(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    let (status, spec) = call(&app, "GET", "/admin/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(spec["openapi"], "3.1.0");
    for (path, method, scope) in [
        ("/admin/menus/reload", "post", "menus"),
        ("/admin/customers/{msisdn}", "get", "customers:read"),
        ("/admin/customers/{msisdn}/pin/unlock", "post", "customers:write"),
        ("/admin/transfers/{reference}/reverse", "post", "transfers:reverse"),
    ] {
        assert_eq!(spec["paths"][path][method]["x-scope"], scope, "{path}");
        assert!(spec["paths"][path][method]["responses"]["401"].is_object(), "{path}");
        let too_large = &spec["paths"][path][method]["responses"]["413"]["description"];
        assert_eq!(
            too_large,
            &format!("the body is larger than {} bytes", ussd_gateway::http::MAX_ADMIN_BODY)
        );
    }
    // The constraints are the very patterns and limits the handlers check.
    let schemas = &spec["components"]["schemas"];
    assert_eq!(schemas["Onboard"]["properties"]["msisdn"]["pattern"], shape::MSISDN.pattern);
    assert_eq!(schemas["Onboard"]["properties"]["stores"]["maxItems"], 20);
    assert_eq!(schemas["Onboard"]["additionalProperties"], false);
    assert_eq!(schemas["TopUp"]["properties"]["amount"]["maximum"], 10_000_000_00_i64);
    assert_eq!(schemas["ApiKey"]["properties"]["value"]["pattern"], shape::API_KEY.pattern);
    let float = &spec["paths"]["/admin/agents/{agent_number}/float"]["post"]["parameters"];
    assert_eq!(float[1]["name"], "Idempotency-Key");
    assert_eq!(float[1]["schema"]["pattern"], shape::IDEMPOTENCY_KEY.pattern);
}

/// Each operation the document describes is guarded by the scope it names: a token with
/// every other scope is refused, one with that scope alone is let through.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn every_operation_needs_the_scope_its_document_names(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let (_, spec) = call(&app, "GET", "/admin/openapi.json", None).await;
    let mut operations = 0;
    for (path, methods) in spec["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            let scope =
                operation["x-scope"].as_str().unwrap_or_else(|| panic!("{method} {path} names no scope"));
            assert!(admin::Scope::parse(scope).is_some(), "{method} {path}: `{scope}`");
            let mut uri = path.clone();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] == "path" {
                    let name = parameter["name"].as_str().unwrap();
                    uri = uri.replace(&format!("{{{name}}}"), parameter["example"].as_str().unwrap());
                }
            }
            operations += 1;
            let others: Vec<String> = admin::Scope::ALL
                .iter()
                .map(|s| s.name())
                .filter(|s| *s != scope)
                .map(str::to_owned)
                .collect();
            let without =
                admin::create(&pool, &format!("without-{operations}"), &[others.join(",")]).await.unwrap();
            let with =
                admin::create(&pool, &format!("with-{operations}"), &[scope.to_owned()]).await.unwrap();
            let method = method.to_uppercase();
            let (status, body) = app.admin(&method, &uri, Some(&without), None, Some("{}".into())).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {body}");
            assert!(body["error"].as_str().unwrap().ends_with(&format!("the scope `{scope}`")), "{body}");
            let (status, body) = app.admin(&method, &uri, Some(&with), None, Some("{}".into())).await;
            assert!(
                ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&status),
                "{method} {uri}: {body}"
            );
        }
    }
    assert_eq!(operations, 41, "every route the admin API serves is described");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_command_line_makes_lists_and_revokes_tokens(pool: PgPool) {
    let url = database_url(&pool);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
            .args(["admin", "token"])
            .args(args)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, token, said) = cli(&["create", "ops", "--scope", "menus"]);
    assert!(ok && token.starts_with("uga_"), "{said}");
    assert!(said.contains("shown only now"), "{said}");
    assert!(
        admin::authenticate(&pool, None, &token)
            .await
            .unwrap()
            .is_some_and(|w| w.allows(admin::Scope::Menus))
    );
    let (ok, _, said) = cli(&["create", "ops2", "--scope", "everything"]);
    assert!(!ok && said.contains("`everything` is not a scope"), "{said}");
    let (ok, listed, _) = cli(&["list"]);
    assert!(ok && listed.starts_with("ops\tmenus\tcreated ") && listed.ends_with("live"), "{listed}");
    assert!(cli(&["revoke", "ops"]).0);
    let (ok, _, said) = cli(&["revoke", "ops"]);
    assert!(!ok && said.contains("no live token named `ops`"), "{said}");
    assert!(admin::authenticate(&pool, None, &token).await.unwrap().is_none());
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_configured_root_token_has_every_scope_and_is_audited_by_name(pool: PgPool) {
    let root = "root-token-0123456789abcdef";
    let settings = ussd_gateway::config::Settings { admin_token: Some(root.into()), ..settings() };
    let app = spawn_with(pool.clone(), Store::Memory, settings).await;
    assert_eq!(call(&app, "GET", &format!("/admin/customers/{AMINA}"), Some(root)).await.0, StatusCode::OK);
    assert_eq!(
        call(&app, "POST", &format!("/admin/customers/{AMINA}/pin/unlock"), Some(root)).await.0,
        StatusCode::OK
    );
    let names: Vec<Option<String>> = trail(&pool).await.into_iter().map(|r| r.0).collect();
    assert_eq!(names, [Some("ADMIN_TOKEN".to_owned()), Some("ADMIN_TOKEN".to_owned())]);
}

async fn send(pool: &PgPool, key: &str, from: u32, to: u32, minor: i64) -> ussd_gateway::money::Transfer {
    let t = ussd_gateway::money::transfer_p2p(
        pool,
        key,
        &common::sms::msisdn(from),
        &common::sms::msisdn(to),
        ussd_gateway::domain::Amount::from_minor(minor).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(t.outcome, ussd_gateway::outcome::Outcome::Ok);
    t
}

async fn balance(pool: &PgPool, n: u32) -> i64 {
    sqlx::query_scalar(
        "SELECT a.balance FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = $1",
    )
    .bind(common::sms::msisdn(n).as_e164())
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn post_json(app: &TestApp, path: &str, token: &str, body: &str) -> (StatusCode, Value) {
    app.admin("POST", path, Some(token), None, Some(body.to_owned())).await
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_transfer_is_reversed_once_however_often_it_is_asked(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let ops = admin::create(&pool, "ops", &["transfers:reverse".into()]).await.unwrap();
    let (amina, brian) = (balance(&pool, 1).await, balance(&pool, 2).await);
    let sent = send(&pool, "r1", 1, 2, 500_00).await;
    let fee = sent.fee;
    assert!(fee > 0);
    let path = format!("/admin/transfers/{}/reverse", sent.reference());
    let why = r#"{"reason": "sent to the wrong number"}"#;

    // Malformed asks get their reason and move nothing.
    for (body, says) in [
        ("{}", "missing field `reason`"),
        (r#"{"reason": "x"}"#, "`reason` must say why"),
        (r#"{"reason": "wrong number", "refund": true}"#, "unknown field `refund`"),
        ("reason=wrong", "the body must be"),
    ] {
        let (status, answer) = post_json(&app, &path, &ops, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{body}: {answer}");
    }
    let (status, answer) = post_json(&app, "/admin/transfers/TXZZ/reverse", &ops, why).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        post_json(&app, "/admin/transfers/TX0000FFFF/reverse", &ops, why).await.0,
        StatusCode::NOT_FOUND
    );

    // Eight operators press the button at once: one reversal.
    let asks: Vec<_> = (0..8).map(|_| post_json(&app, &path, &ops, why)).collect();
    let answers = futures_util::future::join_all(asks).await;
    let done: Vec<_> = answers.iter().filter(|(s, _)| *s == StatusCode::OK).collect();
    assert_eq!(done.len(), 1, "{answers:?}");
    let reversal = done[0].1["reversal"].as_str().unwrap().to_owned();
    assert_eq!(done[0].1["amount"], 500_00);
    assert_eq!(done[0].1["fee_refunded"], 0);
    for (status, answer) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::CONFLICT);
        assert_eq!(answer["reversal"], reversal.as_str());
    }
    assert_eq!(balance(&pool, 1).await, amina - fee, "the amount is back, the fee kept");
    assert_eq!(balance(&pool, 2).await, brian);
    assert_ledger_invariants(&pool).await;
    // A receipt to each party, in the outbox with the reversal.
    let receipts: Vec<(String, String)> = sqlx::query_as(
        "SELECT o.msisdn, o.template FROM outbox o WHERE o.transfer_id = (SELECT id FROM transfers WHERE kind = 'reversal') ORDER BY o.template DESC",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        receipts,
        [
            ("+254700000002".to_owned(), "reversal_debited".to_owned()),
            ("+254700000001".to_owned(), "reversal_credited".to_owned())
        ]
    );
    // A reversal, and a deposit, are not reversed.
    let (status, answer) = post_json(&app, &format!("/admin/transfers/{reversal}/reverse"), &ops, why).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let deposit: i64 = sqlx::query_scalar("SELECT min(id) FROM transfers WHERE kind = 'funding'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        post_json(&app, &format!("/admin/transfers/{deposit}/reverse"), &ops, why).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let trail: Vec<(i16, Option<Value>)> =
        sqlx::query_as("SELECT status, detail FROM admin_audit WHERE status = 200")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].1.as_ref().unwrap()["reason"], "sent to the wrong number");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_spent_transfer_is_not_reversed_and_a_fee_comes_back_when_asked(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let ops = admin::create(&pool, "ops", &["transfers:reverse".into()]).await.unwrap();
    // Brian passes on nearly all he has: the first transfer cannot come back.
    let first = send(&pool, "s1", 1, 2, 800_00).await;
    send(&pool, "s2", 2, 3, balance(&pool, 2).await - 700_00).await;
    assert!(balance(&pool, 2).await < 800_00);
    let before = (balance(&pool, 1).await, balance(&pool, 2).await);
    let path = format!("/admin/transfers/{}/reverse", first.reference());
    let (status, answer) = post_json(&app, &path, &ops, r#"{"reason": "disputed"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer["error"], "the payee no longer has the amount; nothing was moved");
    assert_eq!((balance(&pool, 1).await, balance(&pool, 2).await), before);
    assert_ledger_invariants(&pool).await;

    // With the fee: the payer gets amount and fee, fee revenue gives the fee back.
    let fees = || async {
        sqlx::query_scalar::<_, i64>("SELECT sum(balance)::bigint FROM accounts WHERE kind = 'fee_revenue'")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let second = send(&pool, "s3", 4, 5, 200_00).await;
    let (payer, fee_revenue) = (balance(&pool, 4).await, fees().await);
    let path = format!("/admin/transfers/{}/reverse", second.reference().to_lowercase());
    let (status, answer) =
        post_json(&app, &path, &ops, r#"{"reason": "agent error", "refund_fee": true}"#).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["fee_refunded"], second.fee);
    assert_eq!(balance(&pool, 4).await, payer + 200_00 + second.fee);
    assert_eq!(fees().await, fee_revenue - second.fee);
    // Asked again, the answer still tells the fee it refunded.
    let (status, answer) =
        post_json(&app, &path, &ops, r#"{"reason": "agent error", "refund_fee": true}"#).await;
    assert_eq!((status, answer["fee_refunded"].as_i64()), (StatusCode::CONFLICT, Some(second.fee)));
}
