//! The Africa's Talking endpoint end to end: real router, real Postgres, both stores.

use crate::common;
use crate::common::{Store, TestApp, at_form, main_menu, spawn, unique_session};
use axum::http::StatusCode;
use sqlx::{Connection, PgPool};
use ussd_gateway::session::SessionKey;

const AMINA: &str = "+254700000001";

async fn walk_balance(app: &TestApp) {
    let s = unique_session();
    assert_eq!(app.at_hop(&s, AMINA, "").await, main_menu("Amina"));
    assert_eq!(app.at_hop(&s, AMINA, "2").await, "CON Enter your PIN to see your balance");
    assert_eq!(app.at_hop(&s, AMINA, "2*1234").await, "END Your balance is KES 1,000.00.");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn balance_journey_with_memory_sessions(pool: PgPool) {
    walk_balance(&spawn(pool, Store::Memory).await).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn balance_journey_with_redis_sessions(pool: PgPool) {
    walk_balance(&spawn(pool, Store::Redis).await).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_balance_is_read_from_the_ledger(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    sqlx::query("UPDATE accounts SET balance = 123456, held = 23456 FROM customers c WHERE c.id = customer_id AND c.msisdn = $1")
        .bind("+254700000007")
        .execute(&pool)
        .await
        .unwrap();
    let s = unique_session();
    app.at_hop(&s, "+254700000007", "").await;
    app.at_hop(&s, "+254700000007", "2").await;
    // Held funds are not available.
    assert_eq!(app.at_hop(&s, "+254700000007", "2*1234").await, "END Your balance is KES 1,000.00.");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn wrong_pin_reshows_the_pin_screen_with_an_error(pool: PgPool) {
    let app = spawn(pool, Store::Redis).await;
    let s = unique_session();
    app.at_hop(&s, AMINA, "").await;
    app.at_hop(&s, AMINA, "2").await;
    assert_eq!(app.at_hop(&s, AMINA, "2*9999").await, "CON Wrong PIN.\nEnter your PIN to see your balance");
    assert_eq!(
        app.at_hop(&s, AMINA, "2*9999*12").await,
        "CON PIN must be 4 digits.\nEnter your PIN to see your balance"
    );
    // A `*` typed inside the PIN is part of the input, not a separator.
    assert_eq!(
        app.at_hop(&s, AMINA, "2*9999*12*1*34").await,
        "CON PIN must be 4 digits.\nEnter your PIN to see your balance"
    );
    assert_eq!(app.at_hop(&s, AMINA, "2*9999*12*1*34*1234").await, "END Your balance is KES 1,000.00.");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn invalid_menu_choice_reshows_the_menu_then_gives_up(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    let s = unique_session();
    app.at_hop(&s, AMINA, "").await;
    // With the error line the menu no longer fits one screen: the rest is one More away.
    let page = main_menu("Amina")
        .replace("CON ", "CON Invalid choice.\n")
        .replace("8. Pay bill\n9. Pay shop\n98. More", "98. More");
    assert_eq!(app.at_hop(&s, AMINA, "42").await, page);
    assert!(app.at_hop(&s, AMINA, "42*x").await.starts_with("CON Invalid choice."));
    assert_eq!(app.at_hop(&s, AMINA, "42*x*").await, "END Too many invalid attempts. Please dial again.");
    // The session is over: a further hop is refused politely.
    assert_eq!(app.at_hop(&s, AMINA, "42*x**1").await, "END This session has ended. Please dial again.");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn an_unregistered_number_is_offered_registration(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    let body = app.at_hop(&unique_session(), "+254711000111", "").await;
    assert_eq!(body, "CON This number has no mobile money account.\n1. Register\n2. Exit");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn jump_ahead_dialling_enters_the_flow_with_the_extra_segments(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    // `*384*2#` arrives with the extra segment either in the code or in the first text.
    let s = unique_session();
    let r = app.post_raw(at_form(&s, "*384*2#", AMINA, "")).await;
    assert_eq!(r.body, "CON Enter your PIN to see your balance");
    assert_eq!(
        app.post_raw(at_form(&s, "*384*2#", AMINA, "1234")).await.body,
        "END Your balance is KES 1,000.00."
    );
    let s = unique_session();
    assert_eq!(app.at_hop(&s, AMINA, "2").await, "CON Enter your PIN to see your balance");
    assert_eq!(app.at_hop(&s, AMINA, "2*1234").await, "END Your balance is KES 1,000.00.");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn an_unknown_service_code_ends_politely(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    let r = app.post_raw(at_form(&unique_session(), "*999#", AMINA, "")).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "END This service is not available."));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn malformed_requests_get_a_400_with_the_reason(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    let r = app.post_raw("serviceCode=*384%23&phoneNumber=%2B254700000001&text=").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("`sessionId` is missing"), "{}", r.body);

    let r = app.post_raw(at_form("s1", "*384#", "not-a-number", "")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("`phoneNumber` is not a valid phone number"), "{}", r.body);

    let r = app.post_raw(at_form("", "*384#", AMINA, "")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("`sessionId` is missing, empty"), "{}", r.body);

    let r = app.post_raw(at_form("s1", "*384#", AMINA, &"1".repeat(5000))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = app.post_raw(vec![b'a'; 64 * 1024]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_pin_never_reaches_the_session_record(pool: PgPool) {
    let app = spawn(pool, Store::Redis).await;
    let s = unique_session();
    app.at_hop(&s, AMINA, "").await;
    app.at_hop(&s, AMINA, "2").await;
    app.at_hop(&s, AMINA, "2*4821").await;
    let key = SessionKey::new("africastalking", AMINA, &s);
    let loaded =
        app.state.gateway.store().load(&key).await.unwrap().expect("the session is kept for replays");
    let record = serde_json::to_string(&loaded.session).unwrap();
    assert!(!record.contains("2*4821") && !record.contains("\"4821\""), "{record}");
    assert_eq!(loaded.session.reply.unwrap().text, "Wrong PIN.\nEnter your PIN to see your balance");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn health_readiness_and_metrics(pool: PgPool) {
    let app = spawn(pool, Store::Redis).await;
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert!(ready.body.contains("\"store\":\"redis\""), "{}", ready.body);
    app.at_hop(&unique_session(), AMINA, "").await;
    // A funnel: the language screen is viewed, refuses an input, and Back leaves it.
    let s = unique_session();
    for text in ["", "5", "5*7", "5*7*0", "5*7*0*2", "5*7*0*2*1234"] {
        app.at_hop(&s, AMINA, text).await;
    }
    let metrics = app.get("/metrics").await;
    for line in [
        "ussd_screen_views_total{menu=\"wallet\",screen=\"language\"} 2",
        "ussd_screen_invalid_total{menu=\"wallet\",screen=\"language\"} 1",
        "ussd_screen_exits_total{menu=\"wallet\",screen=\"balance_show\"}",
    ] {
        assert!(metrics.body.contains(line), "no {line} in\n{}", metrics.body);
    }
    assert!(
        metrics.body.contains("ussd_hops_total{channel=\"africastalking\",outcome=\"continue\"}"),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("ussd_hop_duration_seconds_bucket{channel=\"africastalking\""),
        "{}",
        metrics.body
    );
    assert_eq!(app.get("/nowhere").await.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn readiness_fails_and_hops_end_politely_when_postgres_turns_the_gateway_away(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    // The database takes no new connections and ends the ones it has.
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect_with(&(*pool.connect_options()).clone().database("postgres"))
        .await
        .unwrap();
    sqlx::query(&format!("ALTER DATABASE \"{db}\" WITH ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&db)
        .execute(&mut admin)
        .await
        .unwrap();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.body);
    assert_eq!(app.at_hop(&unique_session(), AMINA, "").await, "END Service unavailable, please try again");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn sessions_left_waiting_past_their_lifetime_count_as_timeouts_once(pool: PgPool) {
    use std::time::Duration;
    use tokio::time::Instant;

    let app = spawn(pool.clone(), Store::Redis).await;
    let gateway = &app.state.gateway;
    // One session waits on the current-PIN screen; another finishes.
    let waiting = unique_session();
    app.at_hop(&waiting, AMINA, "").await;
    app.at_hop(&waiting, AMINA, "4").await;
    let finished = unique_session();
    for text in ["", "2", "2*1234"] {
        app.at_hop(&finished, AMINA, text).await;
    }
    // A third moves on to a second process sharing the store: that process owns it now.
    let other = ussd_gateway::app::build_state(
        pool,
        gateway.store().clone(),
        ussd_gateway::app::load_menus(&app.config).unwrap(),
        &app.config,
    );
    let moved = unique_session();
    app.at_hop(&moved, AMINA, "").await;
    let hop = ussd_gateway::channel::Hop {
        provider: "africastalking",
        channel: "africastalking".into(),
        session_id: moved.clone(),
        msisdn: ussd_gateway::domain::Msisdn::parse(
            AMINA,
            ussd_gateway::domain::Region::parse("KE").unwrap(),
        )
        .unwrap(),
        service_code: "*384#".into(),
        input: ussd_gateway::channel::Input::Cumulative("5".into()),
    };
    assert!(other.gateway.handle(&hop).await.0.text.starts_with("Choose a language"));

    assert_eq!(gateway.sweep_timeouts(Instant::now()).await, 0, "nothing is late yet");
    let later = Instant::now() + app.config.session_ttl + Duration::from_secs(1);
    assert_eq!(gateway.sweep_timeouts(later).await, 1, "only the session left on pin_old");
    assert_eq!(gateway.sweep_timeouts(later).await, 0, "counted once");
    assert_eq!(other.gateway.sweep_timeouts(later).await, 1, "the other process counts its own");
    let metrics = app.get("/metrics").await.body;
    assert!(
        metrics.contains("ussd_screen_timeouts_total{menu=\"wallet\",screen=\"pin_old\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ussd_screen_timeouts_total{menu=\"wallet\",screen=\"language\"} 1"),
        "{metrics}"
    );
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_channel_budget_from_the_configuration_pages_screens(pool: PgPool) {
    let settings = ussd_gateway::config::Settings {
        screen_budgets: "africastalking=60/30".into(),
        ..common::settings()
    };
    let app = common::spawn_with(pool, Store::Memory, settings).await;
    let s = unique_session();
    let first = app.at_hop(&s, AMINA, "").await;
    assert!(
        first.starts_with("CON Welcome Amina\n1. Send money") && first.ends_with("\n98. More"),
        "{first}"
    );
    assert!(first.len() - "CON ".len() <= 60, "{first}");
    let second = app.at_hop(&s, AMINA, "98").await;
    assert!(second.starts_with("CON 3. Mini statement") && second.ends_with("98. More\n0. Back"), "{second}");
    // Option numbers run on across pages: 2 is still "My balance".
    assert_eq!(app.at_hop(&s, AMINA, "98*2").await, "CON Enter your PIN to see your balance");
    let s = unique_session();
    app.at_hop(&s, AMINA, "").await;
    app.at_hop(&s, AMINA, "98").await;
    let third = app.at_hop(&s, AMINA, "98*98").await;
    assert!(third.contains("5. Language / Lugha\n6. Withdraw cash") && third.ends_with("0. Back"), "{third}");

    let bad =
        ussd_gateway::config::Settings { screen_budgets: "africastalking=10".into(), ..common::settings() }
            .validate(None, true)
            .unwrap_err();
    assert!(bad.to_string().contains("SCREEN_BUDGETS"), "{bad}");
}
