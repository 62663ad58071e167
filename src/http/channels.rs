//! The guard in front of every adapter: a channel's secret path token, address
//! allowlist and Basic credentials, its rate limits, service codes and hop deadline.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::bytes::same_secret;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use base64::Engine;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::ExposeSecret;
use tracing::warn;

use super::{AppState, MAX_BODY};
use crate::channel::Callers;
use crate::channel::ChannelSpec;
use crate::channel::ussd::{Context, Inbound, Request as WireRequest};
use crate::domain::Msisdn;
use crate::gateway::HopRules;
use crate::menu::Reply;

/// What a subscriber over the per-number limit is told.
pub const TOO_MANY_HOPS: &str = "You are making requests too quickly. Please wait a minute and dial again.";
/// What every subscriber is told while the channel is over its own limit.
pub const CHANNEL_BUSY: &str = "The service is busy. Please try again in a few minutes.";
/// The fallback's answer, which a wrong token must not be told apart from.
pub const NO_SUCH_ENDPOINT: &str = "no such endpoint: see README.md for the routes\n";

/// How many hops pass between two clean-ups of the per-number limiter's memory.
const FORGET_EVERY: u64 = 4096;

/// One declared channel with its limiters.
pub struct Channel {
    spec: ChannelSpec,
    per_msisdn: DefaultKeyedRateLimiter<Msisdn>,
    per_channel: Option<DefaultDirectRateLimiter>,
    hops: AtomicU64,
}

impl Channel {
    pub fn new(spec: ChannelSpec) -> Self {
        let per_minute = NonZeroU32::new(spec.per_msisdn_per_minute).unwrap_or(NonZeroU32::MIN);
        let per_channel =
            spec.per_second.and_then(NonZeroU32::new).map(|n| RateLimiter::direct(Quota::per_second(n)));
        Channel {
            per_msisdn: RateLimiter::keyed(Quota::per_minute(per_minute)),
            per_channel,
            hops: AtomicU64::new(0),
            spec,
        }
    }
}

/// The routes of every channel: `<path>` and everything below it (Infobip's
/// `{sessionId}/start`, or the secret token).
pub fn routes(specs: &[ChannelSpec]) -> Router<AppState> {
    let mut router = Router::new();
    for spec in specs {
        let methods = if spec.provider.uses_get() { MethodFilter::GET } else { MethodFilter::POST };
        let channel = Arc::new(Channel::new(spec.clone()));
        let handler = move |State(state): State<AppState>, request: Request| {
            let channel = Arc::clone(&channel);
            async move { callback(&channel, state, request).await }
        };
        router = router
            .route(&spec.callers.path, on(methods, handler.clone()))
            .route(&format!("{}/{{*rest}}", spec.callers.path), on(methods, handler));
    }
    router
}

/// Why a call was refused before it reached an adapter.
#[derive(Clone, Copy, Debug)]
pub(super) enum Refusal {
    Address,
    Token,
    /// Something below a path that has nothing below it.
    Path,
    Credentials,
    TooLarge,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::Address => "address",
            Refusal::Token => "token",
            Refusal::Path => "path",
            Refusal::Credentials => "credentials",
            Refusal::TooLarge => "too_large",
        }
    }
}

/// A refusal and the address it was made to.
pub(super) struct Refused(pub Refusal, pub Option<std::net::IpAddr>);

/// A channel's callers and where its refusals are counted: shared by USSD and SMS.
pub(super) struct Gate<'a> {
    pub name: &'a str,
    /// The counter refusals go to (`ussd_rejected_total`).
    pub metric: &'static str,
    pub callers: &'a Callers,
}

impl Gate<'_> {
    pub(super) fn refuse(&self, why: Refusal, peer: Option<std::net::IpAddr>) -> Response {
        metrics::counter!(self.metric, "channel" => self.name.to_owned(), "reason" => why.as_str())
            .increment(1);
        warn!(channel = %self.name, reason = why.as_str(), peer = ?peer, "refused a provider's call");
        match why {
            // A wrong token looks like a path that does not exist.
            Refusal::Token | Refusal::Path => (StatusCode::NOT_FOUND, NO_SUCH_ENDPOINT).into_response(),
            Refusal::Address => {
                (StatusCode::FORBIDDEN, "this address may not call this channel\n").into_response()
            }
            Refusal::Credentials => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"ussd-gateway\""))],
                "credentials required\n",
            )
                .into_response(),
            Refusal::TooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "the body is larger than any provider callback\n")
                    .into_response()
            }
        }
    }

    /// Checks the caller's address, the secret token and the credentials; returns what
    /// follows the token in the path, or the refusal to answer with.
    pub(super) fn admit<'p>(&self, parts: &'p Parts) -> Result<&'p str, Refused> {
        let callers = self.callers;
        // A dual-stack listener sees IPv4 callers as `::ffff:a.b.c.d`: compared as IPv4.
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_canonical());
        if !callers.allow.is_empty()
            && !peer.is_some_and(|ip| callers.allow.iter().any(|net| net.contains(&ip)))
        {
            return Err(Refused(Refusal::Address, peer));
        }
        let below =
            parts.uri.path().strip_prefix(callers.path.as_str()).unwrap_or_default().trim_start_matches('/');
        let tail = match &callers.token {
            Some(token) => {
                let (given, rest) = below.split_once('/').unwrap_or((below, ""));
                if !same_secret(given.as_bytes(), token.expose_secret().as_bytes()) {
                    return Err(Refused(Refusal::Token, peer));
                }
                rest
            }
            None => below,
        };
        if let Some(expected) = &callers.basic {
            let given = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().split_once(' '))
                // The scheme is case-insensitive (RFC 7235): `basic` is Basic.
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Basic"))
                .and_then(|(_, b64)| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
                .unwrap_or_default();
            if !same_secret(&given, expected.expose_secret().as_bytes()) {
                return Err(Refused(Refusal::Credentials, peer));
            }
        }
        Ok(tail)
    }
}

async fn callback(channel: &Channel, state: AppState, request: Request) -> Response {
    let started = std::time::Instant::now();
    let spec = &channel.spec;
    let gate = Gate { name: &spec.name, metric: "ussd_rejected_total", callers: &spec.callers };
    let (parts, body) = request.into_parts();
    let tail = match gate.admit(&parts) {
        Ok(tail) => tail,
        Err(Refused(why, peer)) => return gate.refuse(why, peer),
    };
    let peer = || parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if !tail.is_empty() && !spec.provider.uses_path_tail() {
        return gate.refuse(Refusal::Path, peer());
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return gate.refuse(Refusal::TooLarge, peer());
    };
    let provider = spec.provider;
    let wire = WireRequest { query: parts.uri.query().unwrap_or_default(), body: &body, tail };
    let ctx = Context { channel: &spec.name, region: state.default_region };
    let parsed = match provider.parse(&wire, &ctx) {
        Ok(parsed) => parsed,
        Err(e) => {
            metrics::counter!("ussd_rejected_total", "channel" => spec.name.clone(), "reason" => "malformed")
                .increment(1);
            return e.into_response_for(provider);
        }
    };
    let hop = match parsed.inbound {
        Inbound::Hop(hop) => hop,
        Inbound::Closed(closed) => {
            Box::pin(state.gateway.close(&closed)).await;
            return provider.acknowledge(&parsed.echo);
        }
    };
    let polite_end = |text: &str, reason: &'static str| {
        metrics::counter!("ussd_rejected_total", "channel" => spec.name.clone(), "reason" => reason)
            .increment(1);
        provider.render(&Reply::end(text), &parsed.echo)
    };
    if channel.hops.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
        channel.per_msisdn.retain_recent();
    }
    // The number first: a passing check takes a cell, so one flooding subscriber must
    // be stopped before they use up the channel's allowance for everyone else.
    if channel.per_msisdn.check_key(&hop.msisdn).is_err() {
        warn!(channel = %spec.name, msisdn = %hop.msisdn, "subscriber over the hop rate limit");
        return polite_end(TOO_MANY_HOPS, "msisdn_rate");
    }
    if channel.per_channel.as_ref().is_some_and(|limiter| limiter.check().is_err()) {
        return polite_end(CHANNEL_BUSY, "channel_rate");
    }
    let rules = HopRules {
        deadline: spec.deadline,
        codes: &spec.codes,
        repeat_window: spec.repeat_window,
        conversation: None,
    };
    // Boxed: axum moves the handler's future into a box of its own on every request,
    // and with the hop inline that future was 15 KB, copied each time.
    let (reply, kind) = Box::pin(state.gateway.handle_with(&hop, rules)).await;
    crate::telemetry::record_hop(&spec.name, kind.as_str(), started.elapsed());
    provider.render(&reply, &parsed.echo)
}
