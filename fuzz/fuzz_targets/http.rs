//! The whole HTTP surface, in-process through the real routers: any method, path,
//! headers and body, on the aggregators' listener or the operators'. Dependencies are
//! unreachable (no database, sessions in memory), so requests get answered with a
//! refusal or "unavailable" - never a panic (which the router would turn into a 500)
//! and never a 5xx other than 503.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use sqlx::postgres::PgPoolOptions;
use tower::ServiceExt;
use ussd_gateway::config::Settings;
use ussd_gateway::session::{MemoryStore, SessionStore};

struct Surface {
    runtime: tokio::runtime::Runtime,
    routers: [Router; 2],
}

fn surface() -> &'static Surface {
    static SURFACE: OnceLock<Surface> = OnceLock::new();
    SURFACE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let routers = runtime.block_on(async {
            let menus_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../menus");
            let settings = Settings {
                menus_dir,
                admin_token: Some("fuzz-root-token-0123456789".into()),
                ..Settings::default()
            };
            let config = settings.validate(None, true).expect("the demo settings are valid");
            // Nothing listens on port 1: every statement fails at once.
            let pool = PgPoolOptions::new()
                .acquire_timeout(Duration::from_millis(10))
                .connect_lazy("postgres://postgres@127.0.0.1:1/fuzz")
                .expect("a lazy pool");
            let menus = ussd_gateway::app::load_menus(&config).expect("the shipped menus compile");
            let store = SessionStore::Memory(MemoryStore::new());
            let state = ussd_gateway::app::build_state(pool, store, menus, &config);
            [ussd_gateway::http::router(state.clone()), ussd_gateway::http::admin_router(state)]
        });
        Surface { runtime, routers }
    })
}

const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// Paths the routers know, so that inputs reach the handlers and not only the fallback.
const PATHS: [&str; 12] = [
    "/ussd/africastalking",
    "/ussd/hubtel",
    "/ussd/infobip/",
    "/ussd/safaricom",
    "/sms/africastalking/inbound",
    "/sms/twilio/inbound",
    "/sms/infobip/status",
    "/admin/agents",
    "/admin/customers/",
    "/admin/billers",
    "/admin/transfers/",
    "/",
];

fuzz_target!(|data: &[u8]| {
    // [router+method, path, content type, authorization] then `path tail \0 body`.
    let Some((&[pick, path, kind, auth], rest)) = data.split_first_chunk::<4>() else { return };
    let (tail, body) = match rest.iter().position(|b| *b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let tail: String = String::from_utf8_lossy(tail).chars().filter(|c| !c.is_whitespace()).collect();
    let uri = format!("{}{}", PATHS[usize::from(path) % PATHS.len()], tail);
    let method = METHODS[usize::from(pick >> 1) % METHODS.len()].clone();
    let mut request = Request::builder().method(method).uri(uri);
    request = request.header(
        "content-type",
        ["application/x-www-form-urlencoded", "application/json", "text/plain"][usize::from(kind) % 3],
    );
    if auth % 2 == 1 {
        request = request.header("authorization", "Bearer fuzz-root-token-0123456789");
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else { return };
    let s = surface();
    let router = s.routers[usize::from(pick & 1)].clone();
    let status =
        s.runtime.block_on(async { router.oneshot(request).await.expect("routers are infallible").status() });
    assert!(
        !status.is_server_error() || status.as_u16() == 503,
        "answered {status}: a handler panicked or failed without a reason"
    );
});
