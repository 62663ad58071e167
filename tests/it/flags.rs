//! Feature flags end to end: the admin API, a menu option switched off and on, an op
//! stopped under a session already on its way to it, a rollout that splits subscribers
//! stably, and a change that reaches another replica within seconds.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sqlx::PgPool;
use ussd_gateway::admin;
use ussd_gateway::app::Application;
use ussd_gateway::config::Settings;
use ussd_gateway::flags::bucket;
use ussd_gateway::money::{PinHasher, seed_demo};

use crate::common::*;

const AMINA: &str = "+254700000001";
const PAY_BILL: &str = "8. Pay bill";

async fn flags_call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    let body = (!body.is_null()).then(|| body.to_string());
    app.admin(method, path, Some(token), None, body).await
}

/// Reads the flags again, as every replica's loop does each second.
async fn refreshed(app: &TestApp) {
    app.state.gateway.flags().refresh(&app.pool).await.expect("the flags are read");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn flags_are_created_changed_and_listed_with_the_menus_that_use_them(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let token = admin::create(&pool, "risk", &["flags".into()]).await.unwrap();
    let other = admin::create(&pool, "support", &["customers:read".into()]).await.unwrap();

    let (status, listed) = flags_call(&app, "GET", "/admin/flags", &token, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["flags"], json!([]));
    let unset: Vec<&str> =
        listed["unset"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(
        unset,
        ["bill_pay", "merchant_pay", "upgrade_account"],
        "the wallet's flags, their defaults holding"
    );
    assert_eq!(listed["unset"][0]["menus"], json!(["wallet"]));

    let (status, _) = flags_call(&app, "GET", "/admin/flags", &other, Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the `flags` scope is needed");

    let new = json!({ "name": "bill_pay", "enabled": true, "rollout": 10, "numbers_in": ["0700000002"],
                      "channels_out": ["hubtel-gh"], "description": "KPLC outage switch" });
    let (status, made) = flags_call(&app, "POST", "/admin/flags", &token, new.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["numbers_in"], json!(["+254700000002"]), "numbers are kept in E.164");
    assert_eq!(made["rollout"], 10);
    let (status, taken) = flags_call(&app, "POST", "/admin/flags", &token, new).await;
    assert_eq!(status, StatusCode::CONFLICT, "{taken}");

    for (body, want) in [
        (json!({ "name": "Bill Pay", "enabled": true }), StatusCode::BAD_REQUEST),
        (json!({ "name": "x", "enabled": true, "rollout": 101 }), StatusCode::BAD_REQUEST),
        (
            json!({ "name": "x", "enabled": true, "numbers_in": ["12345678"] }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({ "name": "x", "enabled": true, "channels_in": ["no spaces"] }), StatusCode::BAD_REQUEST),
        // What breaks the document is said first, whatever the order of the fields.
        (
            json!({ "name": "x", "enabled": true, "numbers_in": ["12345678"], "channels_out": ["no spaces"] }),
            StatusCode::BAD_REQUEST,
        ),
        (json!({ "name": "x", "enabled": true, "colour": "red" }), StatusCode::BAD_REQUEST),
    ] {
        let (status, said) = flags_call(&app, "POST", "/admin/flags", &token, body.clone()).await;
        assert_eq!(status, want, "{body} → {said}");
    }

    let (status, changed) = flags_call(
        &app,
        "PATCH",
        "/admin/flags/bill_pay",
        &token,
        json!({ "rollout": null, "enabled": false }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!((changed["rollout"].clone(), changed["enabled"].clone()), (Value::Null, json!(false)));
    assert_eq!(changed["numbers_in"], json!(["+254700000002"]), "what was not sent stays");
    assert!(changed["revision"].as_i64() > made["revision"].as_i64(), "a change takes a new revision");
    let (status, _) =
        flags_call(&app, "PATCH", "/admin/flags/bill_pay", &token, json!({ "enabled": null })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "`enabled` is true or false");
    let (status, _) =
        flags_call(&app, "PATCH", "/admin/flags/nothing_here", &token, json!({ "enabled": true })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, listed) = flags_call(&app, "GET", "/admin/flags", &token, Value::Null).await;
    assert_eq!(listed["flags"][0]["name"], "bill_pay");
    assert_eq!(listed["flags"][0]["menus"], json!(["wallet"]));
    assert_eq!(listed["unset"].as_array().unwrap().len(), 2, "{listed}");
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM admin_audit WHERE route LIKE '/admin/flags%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(audited >= 10, "every call is in the audit trail, refusals included ({audited})");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn an_option_switched_off_leaves_its_number_and_its_op_stops_under_a_running_session(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let token = admin::create(&pool, "risk", &["flags".into()]).await.unwrap();
    let main = app.journey(AMINA, "").await;
    assert!(main.contains(PAY_BILL), "on by the menu's default: {main}");

    // A session that was shown "8. Pay bill" before the switch.
    let session = unique_session();
    assert!(app.at_hop(&session, AMINA, "").await.contains(PAY_BILL));
    let (status, _) =
        flags_call(&app, "POST", "/admin/flags", &token, json!({ "name": "bill_pay", "enabled": false }))
            .await;
    assert_eq!(status, StatusCode::CREATED);
    refreshed(&app).await;

    let main = app.journey(AMINA, "").await;
    assert!(!main.contains(PAY_BILL) && main.contains("9. Pay shop"), "others keep their numbers: {main}");
    assert!(app.journey(AMINA, "8").await.starts_with("CON Invalid choice."));
    // The running session still shows its menu, but the op behind it does not run.
    let stopped = app.at_hop(&session, AMINA, "8").await;
    assert_eq!(stopped, "END Pay bill is not available right now. Please try again later.");

    let (status, _) =
        flags_call(&app, "PATCH", "/admin/flags/bill_pay", &token, json!({ "enabled": true })).await;
    assert_eq!(status, StatusCode::OK);
    refreshed(&app).await;
    assert!(app.journey(AMINA, "").await.contains(PAY_BILL), "and back on");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_ten_percent_rollout_splits_subscribers_stably(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let pins = PinHasher::new(app.config.money.pin_pepper.expose_secret().as_bytes());
    seed_demo(&pool, &pins, "KES", 200).await.expect("200 subscribers");
    let token = admin::create(&pool, "risk", &["flags".into()]).await.unwrap();
    let (status, _) = flags_call(
        &app,
        "POST",
        "/admin/flags",
        &token,
        json!({ "name": "merchant_pay", "enabled": true, "rollout": 10, "numbers_in": ["+254700000007"] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    refreshed(&app).await;

    let mut shown = Vec::new();
    for n in 1..=200u32 {
        let number = format!("+2547{n:08}");
        // Option 9 may be on the main menu's second page for a long name: it is taken
        // where it is offered.
        let nine = app.journey(&number, "9").await;
        let has = nine.starts_with("CON Lipa / Pay");
        assert!(has || nine.starts_with("CON Invalid choice."), "{number}: {nine}");
        let predicted = number == "+254700000007" || bucket("merchant_pay", &number) < 10;
        assert_eq!(has, predicted, "{number} is on the side its bucket puts it");
        if has {
            shown.push(number);
        }
    }
    assert!((8..=40).contains(&shown.len()), "about a tenth of 200: {}", shown.len());
    for number in &shown {
        assert!(app.journey(number, "9").await.starts_with("CON Lipa / Pay"), "{number} keeps their side");
    }
}

/// One replica as `serve` runs it, on `pool`'s database, with its loops.
async fn replica(pool: &PgPool, root: &str) -> (Application, String, String) {
    let settings = Settings {
        database_url: database_url(pool).into(),
        listen_addr: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        admin_token: Some(root.into()),
        ..settings()
    };
    let app = Application::build(settings.validate(None, true).unwrap()).await.expect("the replica builds");
    let (addr, admin) = (format!("http://{}", app.addr()), format!("http://{}", app.admin_addr()));
    (app, addr, admin)
}

async fn main_menu(client: &reqwest::Client, base: &str) -> String {
    let form = [
        ("sessionId", unique_session()),
        ("serviceCode", "*384#".into()),
        ("phoneNumber", AMINA.into()),
        ("text", String::new()),
    ];
    let r = client
        .post(format!("{base}/ussd/africastalking"))
        .form(&form)
        .send()
        .await
        .expect("the replica answers");
    assert!(r.status().is_success(), "{}", r.status());
    r.text().await.unwrap()
}

/// How long after `changed` replica `base` takes to show (`shown`) the option or not.
async fn seen_within(client: &reqwest::Client, base: &str, shown: bool) -> Duration {
    let changed = Instant::now();
    until("the other replica sees the change", || async {
        main_menu(client, base).await.contains(PAY_BILL) == shown
    })
    .await;
    changed.elapsed()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_flag_changed_on_one_replica_switches_the_option_on_another_within_seconds(pool: PgPool) {
    let root = "flags-replicas-root-token-0123456789";
    let (one, _, one_admin) = replica(&pool, root).await;
    let (two, two_addr, _) = replica(&pool, root).await;
    let (stops, runs): (Vec<_>, Vec<_>) =
        [one, two].into_iter().map(|app| (app.stop_token(), tokio::spawn(app.run_until_stopped()))).unzip();
    let client = reqwest::Client::new();
    assert!(main_menu(&client, &two_addr).await.contains(PAY_BILL));

    let admin = |method: reqwest::Method, path: &str, body: Value| {
        client
            .request(method, format!("{one_admin}{path}"))
            .bearer_auth(root)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let made = admin(reqwest::Method::POST, "/admin/flags", json!({ "name": "bill_pay", "enabled": false }))
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let off = seen_within(&client, &two_addr, false).await;
    let back =
        admin(reqwest::Method::PATCH, "/admin/flags/bill_pay", json!({ "enabled": true })).await.unwrap();
    assert_eq!(back.status(), 200);
    let on = seen_within(&client, &two_addr, true).await;
    // Each replica reads the flags every second.
    assert!(
        off < Duration::from_secs(3) && on < Duration::from_secs(3),
        "off after {off:?}, on after {on:?}"
    );

    for stop in stops {
        stop.cancel();
    }
    for run in runs {
        run.await.unwrap().expect("the replica stops cleanly");
    }
}
