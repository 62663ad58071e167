//! Traces: a hop's spans reach an OTLP collector (a local one here) in the trace the
//! aggregator's `traceparent` began, and the biller it calls is handed that trace.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::routing::post;
use serde_json::{Value, json};
use sqlx::PgPool;
use tracing_subscriber::layer::SubscriberExt;
use ussd_gateway::telemetry::trace::{self, Export};

use crate::common::{Store, at_form, register_biller, spawn, unique_session, until};

const AMINA: &str = "+254700000001";

/// What a collector and a biller on loopback were sent.
#[derive(Clone, Default)]
struct Seen {
    /// Every OTLP export body.
    exports: Arc<Mutex<Vec<Value>>>,
    /// The `traceparent` of each call the biller took, by path.
    biller: Arc<Mutex<Vec<Call>>>,
}

/// A call the biller took: its path and the `traceparent` it carried.
type Call = (String, Option<String>);

impl Seen {
    /// Every span exported so far: (trace id, span id, parent span id, name, attributes).
    fn spans(&self) -> Vec<Span> {
        let exports = self.exports.lock().unwrap();
        let mut spans = Vec::new();
        for export in exports.iter() {
            for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                let service = resource["resource"]["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["key"] == "service.name")
                    .and_then(|a| a["value"]["stringValue"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for s in scope["spans"].as_array().into_iter().flatten() {
                        let text = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
                        let attributes = s["attributes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|a| {
                                let value = &a["value"];
                                let value = value["stringValue"]
                                    .as_str()
                                    .map_or_else(|| value.to_string(), str::to_owned);
                                (a["key"].as_str().unwrap_or_default().to_owned(), value)
                            })
                            .collect();
                        spans.push(Span {
                            trace: text("traceId"),
                            id: text("spanId"),
                            parent: text("parentSpanId"),
                            name: text("name"),
                            attributes,
                            service: service.clone(),
                        });
                    }
                }
            }
        }
        spans
    }
}

#[derive(Clone, Debug)]
struct Span {
    trace: String,
    id: String,
    parent: String,
    name: String,
    attributes: Vec<(String, String)>,
    service: String,
}

impl Span {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

async fn collect(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> StatusCode {
    assert_eq!(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("application/json"));
    seen.exports.lock().unwrap().push(serde_json::from_slice(&body).expect("an OTLP JSON export"));
    StatusCode::OK
}

async fn biller_call(
    State(seen): State<Seen>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let parent = headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
    seen.biller.lock().unwrap().push((uri.path().to_owned(), parent));
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let answer = match uri.path() {
        "/validate" => json!({ "name": "JOHN KAMAU" }),
        _ => {
            json!({ "status": "paid", "receipt": format!("KP-{}", body["reference"].as_str().unwrap_or_default()) })
        }
    };
    (StatusCode::OK, axum::Json(answer))
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, router).into_future());
    url
}

/// One Africa's Talking hop, with the aggregator's `traceparent` when given.
async fn hop(app: &crate::common::TestApp, session: &str, text: &str, parent: Option<&str>) -> String {
    dial(app, session, "*384#", text, parent).await
}

async fn dial(
    app: &crate::common::TestApp,
    session: &str,
    code: &str,
    text: &str,
    parent: Option<&str>,
) -> String {
    let mut request = Request::post("/ussd/africastalking")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(parent) = parent {
        request = request.header("traceparent", parent);
    }
    let response = app.send(request.body(Body::from(at_form(session, code, AMINA, text))).unwrap()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body
}

/// `sqlx::test` runs on one thread: the subscriber set for it reaches every task the
/// test, the gateway and the loopback servers run.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_paid_bill_is_one_trace_from_the_aggregator_to_the_biller(pool: PgPool) {
    let seen = Seen::default();
    let collector = serve(Router::new().route("/v1/traces", post(collect)).with_state(seen.clone())).await;
    let biller = serve(Router::new().fallback(biller_call).with_state(seen.clone())).await;
    register_biller(&pool, "TRACE", &biller, 2_000).await;
    let export = Export {
        endpoint: collector,
        service: "gateway-under-test".into(),
        delay: Duration::from_millis(50),
    };
    let (layer, exporting) = trace::layer(&export).expect("the exporter builds");
    crate::common::consulted_callsites();
    let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let app = spawn(pool.clone(), Store::Memory).await;

    let s = unique_session();
    hop(&app, &s, "", None).await;
    hop(&app, &s, "8", None).await;
    hop(&app, &s, "8*1", None).await;
    hop(&app, &s, "8*1*12345678901", None).await;
    let confirm = hop(&app, &s, "8*1*12345678901*500", None).await;
    assert!(confirm.starts_with("CON Pay KES 500.00 to Power TRACE"), "{confirm}");
    hop(&app, &s, "8*1*12345678901*500*1", None).await;
    // The aggregator's own trace and span, in the W3C form.
    let (trace_id, aggregator) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let parent = format!("00-{trace_id}-{aggregator}-01");
    let paid = hop(&app, &s, "8*1*12345678901*500*1*1234", Some(&parent)).await;
    assert!(paid.starts_with("END Paid KES 500.00 to Power TRACE"), "{paid}");
    // A dial that jumps ahead carries a recipient's number in the code.
    let jumped = "11111111111111111111111111111111";
    let (jumper, parent) = (unique_session(), format!("00-{jumped}-{aggregator}-01"));
    let to = dial(&app, &jumper, "*384*1*0700000002#", "", Some(&parent)).await;
    assert_eq!(to, "CON Enter amount");

    until("the paid hop's spans reach the collector", || {
        let spans = seen.spans();
        // The request's span is the last to end, after the hop's and the op's.
        let ended = |trace: &str, name: &str| spans.iter().any(|s| s.trace == trace && s.name == name);
        let done = ["biller.pay", "op", "hop", "request"].into_iter().all(|name| ended(trace_id, name))
            && ended(jumped, "request");
        async move { done }
    })
    .await;
    let spans: Vec<Span> = seen.spans().into_iter().filter(|s| s.trace == trace_id).collect();
    let named = |name: &str| {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no `{name}` span in {spans:#?}"))
    };
    let request = named("request");
    assert_eq!(request.parent, aggregator, "the request continues the aggregator's span");
    assert_eq!(request.service, "gateway-under-test");
    let hop_span = named("hop");
    assert_eq!(hop_span.parent, request.id);
    assert_eq!(hop_span.attribute("channel"), Some("africastalking"));
    assert_eq!(hop_span.attribute("kind"), Some("End"));
    assert_eq!(hop_span.attribute("menu"), Some("wallet"));
    assert!(spans.iter().any(|s| s.name == "session.load" && s.parent == hop_span.id), "{spans:#?}");
    assert!(spans.iter().any(|s| s.name == "session.save" && s.parent == hop_span.id), "{spans:#?}");
    let op = spans
        .iter()
        .find(|s| s.name == "op" && s.attribute("op") == Some("bill.pay"))
        .unwrap_or_else(|| panic!("no bill.pay op span in {spans:#?}"));
    assert_eq!(op.parent, hop_span.id);
    // The call to the biller is the op's, and the biller was handed it as its parent.
    let pay = named("biller.pay");
    let mut ancestor = pay.parent.clone();
    while ancestor != op.id {
        ancestor = spans
            .iter()
            .find(|s| s.id == ancestor)
            .map(|s| s.parent.clone())
            .unwrap_or_else(|| panic!("biller.pay is not under the op: {spans:#?}"));
    }
    let calls = seen.biller.lock().unwrap().clone();
    let (_, handed) = calls.iter().find(|(path, _)| path == "/pay").expect("the biller was paid");
    assert_eq!(handed.as_deref(), Some(format!("00-{trace_id}-{}-01", pay.id).as_str()));
    // The earlier hops were traces of their own: the validation call carried its own.
    let (_, validated) = calls.iter().find(|(path, _)| path == "/validate").expect("the account was checked");
    assert!(validated.as_deref().is_some_and(|p| !p.contains(trace_id)), "{validated:?}");

    // No number, masked or not, nor a typed PIN leaves in a span.
    let exported = serde_json::to_string(&*seen.exports.lock().unwrap()).unwrap();
    for secret in ["254700000001", "0700000002", "254700000002", "***", "*1234"] {
        assert!(!exported.contains(secret), "{secret} in {exported}");
    }
    // The last spans are sent as the pipeline stops, which waits for the collector
    // this thread serves: stopped elsewhere.
    tokio::task::spawn_blocking(move || drop(exporting)).await.unwrap();
}

/// Without a collector no span is made, and a biller is handed no `traceparent`.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn without_a_collector_the_biller_is_handed_no_trace(pool: PgPool) {
    let seen = Seen::default();
    let biller = serve(Router::new().fallback(biller_call).with_state(seen.clone())).await;
    register_biller(&pool, "TRACE", &biller, 2_000).await;
    let app = spawn(pool.clone(), Store::Memory).await;
    let s = unique_session();
    for text in ["", "8", "8*1", "8*1*12345678901", "8*1*12345678901*500"] {
        hop(&app, &s, text, Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).await;
    }
    let calls = seen.biller.lock().unwrap().clone();
    assert_eq!(calls, [("/validate".to_owned(), None)]);
}
