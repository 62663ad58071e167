//! Menu reload: through the admin endpoint and on SIGHUP, only when the new menus pass
//! every check; sessions already running finish on the edition they started on.

use std::path::{Path, PathBuf};

use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use sqlx::PgPool;

const TOKEN: &str = "test-admin-token-0123456789";
const AMINA: &str = "+254700000001";

/// A copy of the shipped menus that a test may edit, removed on drop.
struct MenusCopy(PathBuf);

impl MenusCopy {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("ussd-menus-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("menus/wallet.yaml");
        std::fs::copy(shipped, dir.join("wallet.yaml")).unwrap();
        copy_texts(&dir);
        MenusCopy(dir)
    }

    fn edit(&self, from: &str, to: &str) {
        let path = self.0.join("wallet.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from:?} is not in the menu");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }
}

impl Drop for MenusCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn app_on(pool: PgPool, menus: &MenusCopy, token: Option<&str>) -> TestApp {
    let settings = ussd_gateway::config::Settings {
        menus_dir: menus.0.clone(),
        admin_token: token.map(Into::into),
        ..settings()
    };
    spawn_with(pool, Store::Redis, settings).await
}

async fn reload(app: &TestApp, token: Option<&str>) -> Response {
    let mut request = Request::post("/admin/menus/reload");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_reload_serves_new_sessions_while_running_ones_finish_on_their_edition(pool: PgPool) {
    let menus = MenusCopy::new();
    let app = app_on(pool, &menus, Some(TOKEN)).await;
    let running = unique_session();
    assert_eq!(app.at_hop(&running, AMINA, "").await, main_menu("Amina"));

    menus.edit("en: \"Welcome {{ customer.first_name }}\"", "en: \"Hello {{ customer.first_name }}\"");
    menus.edit("en: \"Enter your PIN to see your balance\"", "en: \"Balance PIN?\"");
    let r = reload(&app, Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["menus"][0]["service"], "wallet");
    assert_eq!(body["retired"], 1, "the old edition is kept for its sessions");

    // The running session goes on with the edition it started on…
    assert_eq!(app.at_hop(&running, AMINA, "2").await, "CON Enter your PIN to see your balance");
    // …and a new one gets the new edition.
    let fresh = unique_session();
    assert!(app.at_hop(&fresh, AMINA, "").await.starts_with("CON Hello Amina\n"));
    assert_eq!(app.at_hop(&fresh, AMINA, "2").await, "CON Balance PIN?");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_broken_menu_is_refused_with_its_diagnostics_and_the_old_one_keeps_serving(pool: PgPool) {
    let menus = MenusCopy::new();
    let app = app_on(pool, &menus, Some(TOKEN)).await;
    menus.edit("next: send_amount\n", "next: send_amont\n");
    let r = reload(&app, Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let first = body["diagnostics"][0].as_str().unwrap();
    assert!(first.contains("wallet.yaml:") && first.contains("no screen named `send_amont`"), "{first}");
    assert!(first.contains("did you mean `send_amount`?"), "{first}");
    assert_eq!(app.at_hop(&unique_session(), AMINA, "").await, main_menu("Amina"));
    assert_eq!(app.state.gateway.menus().retired(), 0);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_admin_endpoint_wants_the_token(pool: PgPool) {
    let menus = MenusCopy::new();
    let app = app_on(pool.clone(), &menus, Some(TOKEN)).await;
    assert_eq!(reload(&app, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reload(&app, Some("test-admin-token-0123456780")).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reload(&app, Some("short")).await.status, StatusCode::UNAUTHORIZED);
    // Without ADMIN_TOKEN only tokens from `ussd-gateway admin token create` open it.
    let off = app_on(pool, &menus, None).await;
    let r = reload(&off, Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("the token is unknown or revoked"), "{}", r.body);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn sighup_reloads_the_menus(pool: PgPool) {
    let menus = MenusCopy::new();
    let app = app_on(pool, &menus, None).await;
    let before = app.state.gateway.menus().menus()[0].version.clone();
    let mut attempts = ussd_gateway::app::reload_on_hangup(
        app.state.gateway.clone(),
        menus.0.clone(),
        tokio_util::sync::CancellationToken::new(),
    )
    .expect("SIGHUP handler");
    menus.edit("en: \"Welcome {{ customer.first_name }}\"", "en: \"Hello {{ customer.first_name }}\"");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    tokio::time::timeout(std::time::Duration::from_secs(10), attempts.changed())
        .await
        .expect("a reload within 10 s")
        .unwrap();
    let after = app.state.gateway.menus().menus()[0].version.clone();
    assert_ne!(before, after);
    assert!(app.at_hop(&unique_session(), AMINA, "").await.starts_with("CON Hello Amina\n"));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_gateways_own_endings_use_the_menus_wording(pool: PgPool) {
    let menus = MenusCopy::new();
    menus.edit(
        "\nscreens:\n",
        "\nmessages:\n  session_over: \"All done here. Dial *384# again.\"\nscreens:\n",
    );
    let app = app_on(pool, &menus, None).await;
    let s = unique_session();
    app.at_hop(&s, AMINA, "").await;
    app.at_hop(&s, AMINA, "2").await;
    assert!(app.at_hop(&s, AMINA, "2*1234").await.starts_with("END Your balance is"));
    // A hop after the END of a session.
    assert_eq!(app.at_hop(&s, AMINA, "2*1234*1").await, "END All done here. Dial *384# again.");
}
