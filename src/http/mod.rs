//! The HTTP edge: routes, shared state, and the layers every request goes through.

mod admin;
pub mod channels;
mod demo;
mod health;
mod identity;
mod phone;
mod sandbox;
pub mod serve;
pub mod settings;
mod sms;

pub use admin::FourEyes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::SecretString;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::channel::ChannelSpec;
use crate::domain::Region;
use crate::gateway::Gateway;

/// Aggregator callbacks are a few hundred bytes; anything much larger is not one.
pub const MAX_BODY: usize = 16 * 1024;

/// Operators send certificates (a partner's credentials); the admin API reads no body
/// before the caller's token is known.
pub const MAX_ADMIN_BODY: usize = 64 * 1024;

/// How long a request's body may take to arrive once its headers have.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct AppState {
    pub gateway: Arc<Gateway>,
    /// Region for numbers that arrive in national form.
    pub default_region: Region,
    pub metrics: PrometheusHandle,
    /// Budget for each readiness probe of a dependency.
    pub probe_timeout: Duration,
    /// The aggregator connections served, each at its own path.
    pub channels: Arc<[ChannelSpec]>,
    /// The admin API.
    pub admin: Admin,
    /// Where SMS providers call with delivery reports.
    pub sms_channels: Arc<[crate::sms::SmsChannelSpec]>,
    /// Where SMS receipts go out, when a provider is configured (`--demo`: the sink).
    pub sms: Option<crate::channel::sms::Outbound>,
    /// `--demo`: the sandbox billers answer at `/sandbox/billers/{code}`, the sandbox
    /// airtime provider at `/sandbox/airtime`, the web phone at `/phone`.
    pub demo: bool,
    /// `--simulator`: the web phone on the admin listener, at `/phone`.
    pub simulator: bool,
}

impl AppState {
    /// The ledger's ops and what stands beside them, for the admin API.
    pub fn money(&self) -> &crate::money::Money {
        self.gateway.money()
    }

    /// The database, for what no hop waits on: the admin API, SMS callbacks, workers.
    pub fn pool(&self) -> &sqlx::PgPool {
        self.gateway.money().pool()
    }

    /// Where the admin API's views read: the replica when it has caught up, else the
    /// primary.
    pub async fn reads(&self) -> &sqlx::PgPool {
        self.gateway.money().read_pool().await
    }
}

/// What the admin API needs.
#[derive(Clone)]
pub struct Admin {
    /// ADMIN_TOKEN: a token with every scope, from the configuration.
    pub root: Option<SecretString>,
    /// Where menu reloads read from.
    pub menus_dir: std::path::PathBuf,
    /// What needs two tokens; `None` when every token acts alone.
    pub four_eyes: Option<FourEyes>,
}

/// What aggregators and SMS providers call (`LISTEN_ADDR`): their channels, the identity
/// provider's callback when one is configured, the health probes, and with `--demo` the demo's own pages (the SMS sink, the sandbox partners,
/// the web phone at `/phone`).
pub fn router(state: AppState) -> Router {
    let routes = channels::routes(&state.channels).merge(sms::routes(&state.sms_channels));
    let routes = if state.money().identity().is_some() { routes.merge(identity::routes()) } else { routes };
    let routes = match state.sms.as_ref().and_then(|sms| sms.sink()) {
        Some(_) => routes.route("/demo/sms", get(demo::sms)),
        None => routes,
    };
    let routes = match (state.demo, phone::demo_routes(&state)) {
        (true, Some(phone)) => routes.merge(sandbox::routes(sandbox::Sandbox::default())).merge(phone),
        (true, None) => routes.merge(sandbox::routes(sandbox::Sandbox::default())),
        (false, _) => routes,
    };
    layered(routes, state, MAX_BODY)
}

/// What operators reach (`ADMIN_LISTEN`), never on the aggregators' port: the admin API,
/// `/metrics`, the health probes, and with `--simulator` the web phone at `/phone`.
pub fn admin_router(state: AppState) -> Router {
    let routes = admin::routes(&state).route("/metrics", get(health::metrics));
    let routes = if state.simulator { routes.merge(phone::admin_page()) } else { routes };
    layered(routes, state, MAX_ADMIN_BODY)
}

/// The probes and the layers every request goes through, on either listener.
fn layered(routes: Router<AppState>, state: AppState, max_body: usize) -> Router {
    routes
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(|| async { (StatusCode::NOT_FOUND, channels::NO_SUCH_ENDPOINT) })
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(CatchPanicLayer::new())
}

/// The span of one request: the method and the route it matched, never the URI, whose
/// path may hold a channel's secret token and whose query may hold a PIN (Cellulant,
/// Safaricom and Airtel send input as GET parameters); in the caller's trace when it
/// sends a `traceparent`. Probes and scrapes have none: a trace every few seconds per
/// replica would bury the hops.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request.extensions().get::<axum::extract::MatchedPath>().map_or("-", |p| p.as_str());
    if matches!(route, "/healthz" | "/readyz" | "/metrics") {
        return tracing::Span::none();
    }
    let span = tracing::debug_span!("request", method = %request.method(), route);
    crate::telemetry::trace::continue_from(&span, request.headers());
    span
}

/// The sandbox partners of `--demo` alone on a loopback port, for transcripts and the
/// simulator: their base URL (`http://127.0.0.1:{port}/sandbox`) and the server, which
/// stops when the handle is dropped.
pub async fn sandbox_server() -> std::io::Result<(String, tokio_util::task::AbortOnDropHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/sandbox", listener.local_addr()?);
    let app: axum::Router = sandbox::routes(sandbox::Sandbox::default());
    let server = tokio::spawn(async move {
        // A loopback server for a run's length: its failure shows as the partners not answering.
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, tokio_util::task::AbortOnDropHandle::new(server)))
}
