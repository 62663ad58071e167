//! Test harness: the real router over a fresh database (from `#[sqlx::test]`) with
//! either session store, driven in-process through `tower::ServiceExt::oneshot`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use sqlx::PgPool;
use tower::ServiceExt;
use ussd_gateway::app;
use ussd_gateway::config::{Config, Settings};
use ussd_gateway::http::{AppState, router};
use ussd_gateway::menu::Bundle;
use ussd_gateway::money::{PinHasher, seed_demo};
use ussd_gateway::session::{MemoryStore, RedisStore, SessionStore};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    Memory,
    Redis,
}

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub config: Config,
    pub pool: PgPool,
}

pub fn config() -> Config {
    let settings = Settings {
        menus_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("menus"),
        ..Settings::default()
    };
    settings.validate(None, true).expect("the test configuration is valid")
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A Redis store under a key prefix no other test uses.
pub async fn redis_store() -> SessionStore {
    let prefix = format!("test:{:016x}:", rand::random::<u64>());
    let store = RedisStore::connect(&redis_url(), &prefix, Duration::from_secs(2))
        .await
        .expect("these tests need Redis on 127.0.0.1:6379 (or REDIS_URL): `redis-server --daemonize yes`");
    SessionStore::Redis(store)
}

/// The shipped menus and demo subscribers on a fresh database.
pub async fn spawn(pool: PgPool, store: Store) -> TestApp {
    let config = config();
    let store = match store {
        Store::Memory => SessionStore::Memory(MemoryStore::new()),
        Store::Redis => redis_store().await,
    };
    seed_demo(&pool, &PinHasher::new(config.pin_pepper.as_bytes()), "KES").await.expect("demo seed");
    let menus = app::load_menus(&config).expect("the shipped menus compile");
    let state = app::build_state(pool.clone(), store, menus, &config);
    TestApp { router: router(state.clone()), state, config, pool }
}

/// The same, with menus given inline.
pub async fn spawn_with_menus(pool: PgPool, menus: Bundle) -> TestApp {
    let config = config();
    seed_demo(&pool, &PinHasher::new(config.pin_pepper.as_bytes()), "KES").await.expect("demo seed");
    let state = app::build_state(pool.clone(), SessionStore::Memory(MemoryStore::new()), menus, &config);
    TestApp { router: router(state.clone()), state, config, pool }
}

pub struct Response {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: String,
}

impl TestApp {
    pub async fn send(&self, request: Request<Body>) -> Response {
        let response = self.router.clone().oneshot(request).await.expect("the router is infallible");
        let status = response.status();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        Response { status, content_type, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    /// Posts a raw body to the Africa's Talking endpoint.
    pub async fn post_raw(&self, body: impl Into<Body>) -> Response {
        let request = Request::post("/ussd/africastalking")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.into())
            .expect("request");
        self.send(request).await
    }

    /// One Africa's Talking hop; returns the `CON …`/`END …` body after checking it is a 200.
    pub async fn at_hop(&self, session: &str, phone: &str, text: &str) -> String {
        let response = self.post_raw(at_form(session, "*384#", phone, text)).await;
        assert_eq!(response.status, StatusCode::OK, "body: {}", response.body);
        assert_eq!(response.content_type.as_deref(), Some("text/plain; charset=utf-8"));
        response.body
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(Request::get(path).body(Body::empty()).expect("request")).await
    }
}

/// A form body exactly as Africa's Talking sends it.
pub fn at_form(session: &str, code: &str, phone: &str, text: &str) -> String {
    serde_urlencoded::to_string([
        ("sessionId", session),
        ("serviceCode", code),
        ("phoneNumber", phone),
        ("networkCode", "63902"),
        ("text", text),
    ])
    .expect("form")
}

pub fn unique_session() -> String {
    format!("ATUid_{:016x}", rand::random::<u64>())
}
