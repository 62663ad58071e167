//! Distributed tracing: the gateway's spans (a hop, its session reads and writes, its
//! op, the calls it makes) sent over OTLP/HTTP when a collector is configured, and the
//! W3C `traceparent` that carries a trace into the partners it calls and out of the
//! aggregator that called it.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing::{Metadata, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::registry::LookupSpan;

/// How long one send to the collector may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Where spans go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// The collector's base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`); spans are posted as
    /// OTLP JSON to `{endpoint}/v1/traces`.
    pub endpoint: String,
    /// `service.name` on every span (`OTEL_SERVICE_NAME`).
    pub service: String,
    /// How long a finished span may wait to be sent with others.
    pub delay: Duration,
}

/// The pipeline sending spans; dropped, it sends those still waiting (a process that
/// stops keeps its last hops' spans). Drop it outside the async runtime, or on a
/// blocking thread: it waits for the last send.
pub struct Exporting {
    provider: SdkTracerProvider,
}

impl Drop for Exporting {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// The layer that turns this crate's spans into OTLP spans, and the pipeline behind it.
/// Other crates' spans stay out (a trace shows the gateway's work, not sqlx's
/// statements), and so do log lines: they name a masked number, which stays in the
/// logs rather than travel to a collector.
pub fn layer<S>(export: &Export) -> Result<(impl Layer<S> + Send + Sync + use<S>, Exporting), String>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(format!("{}/v1/traces", export.endpoint.trim_end_matches('/')))
        .with_timeout(SEND_TIMEOUT)
        .with_http_client(Blocking::default())
        .build()
        .map_err(|e| format!("cannot send traces to {}: {e}", super::redact_url(&export.endpoint)))?;
    let batch = BatchSpanProcessor::builder(exporter)
        .with_batch_config(BatchConfigBuilder::default().with_scheduled_delay(export.delay).build())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batch)
        .with_resource(Resource::builder().with_service_name(export.service.clone()).build())
        .build();
    let tracer = provider.tracer("ussd-gateway");
    let ours = FilterFn::new(|m: &Metadata<'_>| m.is_span() && m.target().starts_with("ussd_gateway"));
    let layer = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(ours);
    Ok((layer, Exporting { provider }))
}

/// Makes `span` a child of the caller's trace when the request carries a
/// `traceparent` (an aggregator that traces its own side).
pub fn continue_from(span: &Span, headers: &axum::http::HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    // Without the layer (tracing off) there is nothing to continue.
    let _ = span.set_parent(parent);
}

/// The `traceparent` header of the current span, for a call to a partner; `None` when
/// no trace is being recorded.
pub fn traceparent() -> Option<(&'static str, String)> {
    let context = Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent").map(|value| ("traceparent", value))
}

/// `request` with the current span's `traceparent`, when there is one.
pub fn propagate(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match traceparent() {
        Some((name, value)) => request.header(name, value),
        None => request,
    }
}

/// The exporter's HTTP client. The SDK sends from a thread of its own, outside the
/// async runtime, and waits there for each send: a blocking client suits it, and keeps
/// the sends off the threads that answer hops. Made on that thread at its first send.
#[derive(Debug, Default)]
struct Blocking(OnceLock<reqwest::blocking::Client>);

#[async_trait::async_trait]
impl HttpClient for Blocking {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.0.get_or_init(|| {
            let timeout = reqwest::blocking::Client::builder().timeout(SEND_TIMEOUT);
            timeout.build().unwrap_or_else(|_| reqwest::blocking::Client::new())
        });
        let (parts, body) = request.into_parts();
        let sent = client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body.to_vec())
            .send()?;
        let status = sent.status();
        let body = sent.bytes()?;
        Ok(Response::builder().status(status).body(body)?)
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn a_call_carries_the_current_span_only_while_spans_are_recorded() {
        let span = tracing::debug_span!("outside");
        assert_eq!(span.in_scope(traceparent), None, "no subscriber records it");
        // A collector nobody listens at: the spans are dropped, the ids are made.
        let export = Export {
            endpoint: "http://127.0.0.1:9".into(),
            service: "t".into(),
            delay: Duration::from_secs(60),
        };
        let (layer, exporting) = layer(&export).unwrap();
        let (header, inbound) =
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
                let root = tracing::debug_span!("call");
                let header = root.in_scope(traceparent);
                let mut headers = axum::http::HeaderMap::new();
                headers.insert(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap(),
                );
                let continued = tracing::debug_span!("request");
                continue_from(&continued, &headers);
                (header, continued.in_scope(traceparent))
            });
        drop(exporting);
        let (name, value) = header.expect("a traceparent");
        assert_eq!(name, "traceparent");
        let parts: Vec<&str> = value.split('-').collect();
        assert_eq!((parts[0], parts[1].len(), parts[2].len(), parts[3]), ("00", 32, 16, "01"), "{value}");
        let inbound = inbound.expect("a traceparent").1;
        assert!(inbound.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{inbound}");
        assert!(!inbound.contains("00f067aa0ba902b7"), "its own span, the caller's as parent: {inbound}");
    }
}
