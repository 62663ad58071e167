//! SMS providers' callbacks: messages from subscribers at `<path>[/<token>]/inbound`,
//! delivery reports at `<path>[/<token>]/status`, behind the same guard as USSD
//! channels and, where the provider signs, its signature.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::ExposeSecret;
use tracing::warn;

use super::channels::{Gate, Refusal, Refused};
use super::{AppState, MAX_BODY};
use crate::channel::sms::{BadCallback, Callback, Signed};
use crate::domain::Msisdn;
use crate::sms::SmsChannelSpec;
use crate::sms::inbound::{self, Context};

/// The routes of every SMS channel.
pub fn routes(specs: &[SmsChannelSpec]) -> Router<AppState> {
    let mut router = Router::new();
    for spec in specs {
        let path = format!("{}/{{*rest}}", spec.callers.path);
        let per_minute = NonZeroU32::new(spec.per_msisdn_per_minute).unwrap_or(NonZeroU32::MIN);
        let channel = Arc::new((spec.clone(), RateLimiter::keyed(Quota::per_minute(per_minute))));
        let handler = move |State(state): State<AppState>, request: Request| {
            let channel = Arc::clone(&channel);
            async move { callback(&channel.0, &channel.1, state, request).await }
        };
        router = router.route(&path, any(handler));
    }
    router
}

fn refuse(spec: &SmsChannelSpec, status: StatusCode, e: &BadCallback) -> Response {
    metrics::counter!("sms_rejected_total", "channel" => spec.name.clone(), "reason" => match e {
        BadCallback::Signature => "signature",
        BadCallback::Stale => "stale",
        _ => "malformed",
    })
    .increment(1);
    warn!(channel = %spec.name, reason = %e, "refused an SMS provider's callback");
    (status, format!("bad {} callback: {e}\n", spec.provider)).into_response()
}

async fn callback(
    spec: &SmsChannelSpec,
    limiter: &DefaultKeyedRateLimiter<Msisdn>,
    state: AppState,
    request: Request,
) -> Response {
    let gate = Gate { name: &spec.name, metric: "sms_rejected_total", callers: &spec.callers };
    let (parts, body) = request.into_parts();
    let tail = match gate.admit(&parts) {
        Ok(tail) => tail,
        Err(Refused(why, peer)) => return gate.refuse(why, peer),
    };
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let inbound = match tail {
        "status" => false,
        "inbound" => true,
        _ => return gate.refuse(Refusal::Path, peer),
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return gate.refuse(Refusal::TooLarge, peer);
    };
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let query = parts.uri.query().unwrap_or_default();
    let wire = Callback { query, body: &body, json };
    if let Some(secret) = &spec.signing_secret {
        let url = match (&spec.public_url, parts.uri.path_and_query()) {
            (Some(base), Some(pq)) => format!("{base}{pq}"),
            _ => String::new(),
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let header = parts.headers.get("x-twilio-signature").and_then(|v| v.to_str().ok());
        let signed = Signed { secret: secret.expose_secret(), url: &url, header, now };
        if let Err(e) = spec.provider.verify(&wire, &signed) {
            return refuse(spec, StatusCode::UNAUTHORIZED, &e);
        }
    }
    if inbound {
        return messages(spec, limiter, &state, &wire).await;
    }
    let reports = match spec.provider.reports(&wire) {
        Ok(reports) => reports,
        Err(e) => return refuse(spec, StatusCode::BAD_REQUEST, &e),
    };
    match crate::sms::delivery::record(state.pool(), spec.provider, &reports).await {
        Ok(_) => {
            metrics::counter!("sms_delivery_reports_total", "channel" => spec.name.clone())
                .increment(reports.len() as u64);
            StatusCode::OK.into_response()
        }
        // The provider retries a report that did not get a 2xx.
        Err(e) => {
            warn!(channel = %spec.name, error = %e, "cannot store delivery reports; the provider will retry");
            (StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; retry later\n").into_response()
        }
    }
}

/// Incoming messages: each stored once and acknowledged at once; a worker answers them
/// through the outbox. Their text is never logged (a subscriber may send a PIN by
/// mistake).
async fn messages(
    spec: &SmsChannelSpec,
    limiter: &DefaultKeyedRateLimiter<Msisdn>,
    state: &AppState,
    wire: &Callback<'_>,
) -> Response {
    let incoming = match spec.provider.messages(wire) {
        Ok(incoming) => incoming,
        Err(e) => return refuse(spec, StatusCode::BAD_REQUEST, &e),
    };
    let ctx = Context {
        channel: &spec.name,
        provider: spec.provider,
        region: state.default_region,
        vault: state.money().vault(),
        limiter,
    };
    // The limiter remembers every number it has seen; forget the quiet ones now and then.
    if limiter.len() > 10_000 {
        limiter.retain_recent();
    }
    for message in incoming {
        match inbound::receive(state.pool(), ctx, message).await {
            Ok(received) => {
                metrics::counter!("sms_inbound_total", "channel" => spec.name.clone(), "kind" => received.as_str())
                    .increment(1);
            }
            Err(e) => {
                warn!(channel = %spec.name, error = %e, "cannot store an incoming SMS; the provider will retry");
                return (StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; retry later\n")
                    .into_response();
            }
        }
    }
    let (content_type, body) = spec.provider.acknowledgement();
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}
