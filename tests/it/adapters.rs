//! Every USSD adapter through the real router: real-shaped requests in each provider's
//! wire format, the exact wire reply, a full journey per adapter, close notices,
//! duplicate storms for per-hop providers, and malformed requests.

use crate::common::{Store, TestApp, spawn};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures_util::future::join_all;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;
use ussd_gateway::channel::ussd::Provider;
use ussd_gateway::ops::{self, Op};

/// Amina, a demo subscriber, as aggregators write her number (no plus sign).
const AMINA: &str = "254700000001";
const MAIN: &str = "Welcome Amina\n1. Send money\n2. My balance\n3. Mini statement\n4. Change PIN\n5. Language / Lugha\n6. Withdraw cash\n7. My approvals\n8. Pay bill\n9. Pay shop\n98. More";
const PIN_SCREEN: &str = "Enter your PIN to see your balance";
const BALANCE: &str = "Your balance is KES 1,000.00.";

/// The wire formats under test: every provider the gateway speaks.
type Wire = Provider;
const ALL: [Wire; 10] = Provider::ALL;

/// What a subscriber does on one hop.
#[derive(Clone, Copy)]
enum Step<'a> {
    /// Dials the code (`*384#`, or with jump-ahead segments).
    Dial(&'a str),
    Type(&'a str),
}

/// One subscriber's session on one wire: builds each request as the provider would.
struct Line {
    wire: Wire,
    session: String,
    /// Inputs so far, for the cumulative providers.
    typed: Vec<String>,
    dialled: String,
    /// The provider's hop counter.
    seq: u32,
}

impl Line {
    fn new(wire: Wire) -> Self {
        Line {
            wire,
            session: format!("s{:016x}", rand::random::<u64>()),
            typed: Vec::new(),
            dialled: String::new(),
            seq: 0,
        }
    }

    /// The request for `step`; the same step built twice is the same request (a retry).
    fn request(&mut self, step: Step<'_>) -> Request<Body> {
        let (first, input) = match step {
            Step::Dial(code) => {
                self.dialled = code.to_owned();
                self.typed.clear();
                self.seq = 1;
                (true, String::new())
            }
            Step::Type(input) => {
                self.typed.push(input.to_owned());
                self.seq += 1;
                (false, input.to_owned())
            }
        };
        let cumulative = self.typed.join("*");
        // `*384*2#` with everything typed since, as Airtel sends it.
        let dial_string = {
            let body = self.dialled.trim_end_matches('#');
            if cumulative.is_empty() { format!("{body}#") } else { format!("{body}*{cumulative}#") }
        };
        let s = self.session.as_str();
        match self.wire {
            Wire::AfricasTalking => form(
                "/ussd/africastalking",
                &[
                    ("sessionId", s),
                    ("serviceCode", &self.dialled),
                    ("phoneNumber", &format!("+{AMINA}")),
                    ("networkCode", "63902"),
                    ("text", &cumulative),
                ],
            ),
            Wire::Hubtel | Wire::HubtelProgrammable => {
                let (path, kind) = match (self.wire, first) {
                    (Wire::Hubtel, true) => ("/ussd/hubtel", "Initiation"),
                    (Wire::Hubtel, false) => ("/ussd/hubtel", "Response"),
                    (_, true) => ("/ussd/hubtel-programmable", "initiation"),
                    (_, false) => ("/ussd/hubtel-programmable", "response"),
                };
                let message = if first { self.dialled.clone() } else { input };
                post_json(
                    path,
                    json!({
                        "Mobile": AMINA, "SessionId": s, "ServiceCode": "384", "Type": kind,
                        "Message": message, "Operator": "Safaricom", "Sequence": self.seq, "ClientState": "",
                    }),
                )
            }
            Wire::Nalo => post_json(
                "/ussd/nalo",
                json!({
                    "USERID": "NALOTest", "MSISDN": AMINA,
                    "USERDATA": if first { self.dialled.clone() } else { input },
                    "MSGTYPE": first, "NETWORK": "MTN", "SESSIONID": s,
                }),
            ),
            Wire::Arkesel => post_json(
                "/ussd/arkesel",
                json!({
                    "sessionID": s, "userID": "arkesel-user", "newSession": first, "msisdn": AMINA,
                    "userData": if first { self.dialled.clone() } else { input }, "network": "MTN",
                }),
            ),
            Wire::Infobip => {
                let event = if first { "start" } else { "response" };
                post_json(
                    &format!("/ussd/infobip/{s}/{event}"),
                    json!({
                        "msisdn": AMINA, "imsi": "639020000000001",
                        "text": if first { self.dialled.clone() } else { input },
                        "shortCode": "*384#", "language": "en",
                    }),
                )
            }
            Wire::Cellulant => get(
                "/ussd/cellulant",
                &[
                    ("MSISDN", AMINA),
                    ("sessionID", s),
                    ("opCode", if first { "BEG" } else { "CON" }),
                    ("INPUT", &if first { self.dialled.clone() } else { input }),
                    ("ABORT", "0"),
                ],
            ),
            Wire::Safaricom => get(
                "/ussd/safaricom",
                &[
                    ("ORIG", AMINA),
                    ("DEST", "384"),
                    ("SESSION_ID", s),
                    ("USSD_PARAMS", &if first { dial_string } else { cumulative }),
                ],
            ),
            Wire::Airtel => get(
                "/ussd/airtel",
                &[("SessionID", s), ("MSISDN", AMINA), ("MSC", "254733000000"), ("input", &dial_string)],
            ),
            Wire::Generic => {
                let mut body =
                    json!({ "session_id": s, "msisdn": format!("+{AMINA}"), "sequence": self.seq });
                if first {
                    body["event"] = json!("start");
                    body["service_code"] = json!(self.dialled);
                } else {
                    body["event"] = json!("input");
                    body["input"] = json!(input);
                }
                post_json("/ussd/generic", body)
            }
        }
    }

    /// The close notice this provider sends when the subscriber cancels, if it has one.
    fn abort(&self) -> Option<Request<Body>> {
        let s = self.session.as_str();
        Some(match self.wire {
            Wire::AfricasTalking => form(
                "/ussd/africastalking",
                &[
                    ("sessionId", s),
                    ("serviceCode", "*384#"),
                    ("phoneNumber", &format!("+{AMINA}")),
                    ("networkCode", "63902"),
                    ("status", "Incomplete"),
                    ("durationInMillis", "5250"),
                    ("hopsCount", "2"),
                ],
            ),
            Wire::Hubtel => post_json(
                "/ussd/hubtel",
                json!({
                    "Mobile": AMINA, "SessionId": s, "ServiceCode": "384", "Type": "Release",
                    "Message": "", "Operator": "Safaricom", "Sequence": self.seq + 1, "ClientState": "",
                }),
            ),
            Wire::Cellulant => get(
                "/ussd/cellulant",
                &[("MSISDN", AMINA), ("sessionID", s), ("opCode", "ABO"), ("INPUT", ""), ("ABORT", "1")],
            ),
            Wire::Generic => post_json(
                "/ussd/generic",
                json!({
                    "session_id": s, "msisdn": AMINA, "event": "close", "reason": "aborted",
                }),
            ),
            _ => return None,
        })
    }

    /// The close notice this provider sends when the network times the session out.
    fn timeout(&self) -> Option<Request<Body>> {
        let s = self.session.as_str();
        Some(match self.wire {
            Wire::Hubtel => post_json(
                "/ussd/hubtel",
                json!({
                    "Mobile": AMINA, "SessionId": s, "ServiceCode": "384", "Type": "Timeout",
                    "Message": "", "Operator": "Safaricom", "Sequence": self.seq + 1, "ClientState": "",
                }),
            ),
            Wire::HubtelProgrammable => post_json(
                "/ussd/hubtel-programmable",
                json!({
                    "Mobile": AMINA, "SessionId": s, "ServiceCode": "384", "Type": "timeout",
                    "Message": "", "Operator": "Safaricom", "Sequence": self.seq + 1, "ClientState": "",
                }),
            ),
            Wire::Infobip => {
                post_json(&format!("/ussd/infobip/{s}/end"), json!({ "msisdn": AMINA, "reason": "TIMEOUT" }))
            }
            Wire::Cellulant => get(
                "/ussd/cellulant",
                &[("MSISDN", AMINA), ("sessionID", s), ("opCode", "TMO"), ("INPUT", ""), ("ABORT", "0")],
            ),
            Wire::Generic => post_json(
                "/ussd/generic",
                json!({
                    "session_id": s, "msisdn": AMINA, "event": "close", "reason": "timeout",
                }),
            ),
            _ => return None,
        })
    }
}

fn form(path: &str, fields: &[(&str, &str)]) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(serde_urlencoded::to_string(fields).unwrap()))
        .unwrap()
}

fn post_json(path: &str, body: Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(path: &str, query: &[(&str, &str)]) -> Request<Body> {
    Request::get(format!("{path}?{}", serde_urlencoded::to_string(query).unwrap()))
        .body(Body::empty())
        .unwrap()
}

/// A reply as it came off the wire.
#[derive(Debug)]
struct Wired {
    status: StatusCode,
    content_type: String,
    freeflow: Option<String>,
    body: String,
}

async fn send(app: &TestApp, request: Request<Body>) -> Wired {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (status, content_type, freeflow) = (response.status(), header("content-type"), header("freeflow"));
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Wired {
        status,
        content_type: content_type.unwrap_or_default(),
        freeflow,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// Reads (end, screen) out of a reply in this wire format, checking its shape.
fn read(wire: Wire, w: &Wired) -> (bool, String) {
    assert_eq!(w.status, StatusCode::OK, "{wire:?}: {}", w.body);
    let json = || -> Value {
        assert_eq!(w.content_type, "application/json", "{wire:?}");
        serde_json::from_str(&w.body).unwrap()
    };
    match wire {
        Wire::AfricasTalking | Wire::Safaricom => {
            assert_eq!(w.content_type, "text/plain; charset=utf-8");
            match w.body.split_once(' ') {
                Some(("CON", text)) => (false, text.to_owned()),
                Some(("END", text)) => (true, text.to_owned()),
                _ => panic!("{wire:?}: neither CON nor END: {}", w.body),
            }
        }
        Wire::Hubtel => {
            let v = json();
            let end = match v["Type"].as_str() {
                Some("Response") => false,
                Some("Release") => true,
                other => panic!("Type {other:?}"),
            };
            (end, v["Message"].as_str().unwrap().to_owned())
        }
        Wire::HubtelProgrammable => {
            let v = json();
            let end = match (v["Type"].as_str(), v["DataType"].as_str()) {
                (Some("response"), Some("input")) => false,
                (Some("release"), Some("display")) => true,
                other => panic!("Type/DataType {other:?}"),
            };
            for field in ["SessionId", "Label", "FieldType", "ClientState"] {
                assert!(v[field].is_string(), "Programmable Services needs {field}: {v}");
            }
            (end, v["Message"].as_str().unwrap().to_owned())
        }
        Wire::Nalo => {
            let v = json();
            (!v["MSGTYPE"].as_bool().unwrap(), v["MSG"].as_str().unwrap().to_owned())
        }
        Wire::Arkesel => {
            let v = json();
            (!v["continueSession"].as_bool().unwrap(), v["message"].as_str().unwrap().to_owned())
        }
        Wire::Infobip => {
            let v = json();
            assert_eq!(v["responseExitCode"], 200);
            (v["shouldClose"].as_bool().unwrap(), v["ussdMenu"].as_str().unwrap().to_owned())
        }
        Wire::Cellulant => {
            let fields: Vec<&str> = w.body.split('|').collect();
            assert_eq!(fields.len(), 6, "nextLevel|text|valueOfSelection|serviceId|status|extra: {}", w.body);
            let end = match fields[4] {
                "continue" => false,
                "end" => true,
                other => panic!("status {other}"),
            };
            (end, fields[1].to_owned())
        }
        Wire::Airtel => {
            let end = match w.freeflow.as_deref() {
                Some("FC") => false,
                Some("FB") => true,
                other => panic!("Freeflow {other:?}"),
            };
            (end, w.body.clone())
        }
        Wire::Generic => {
            let v = json();
            (v["end"].as_bool().unwrap(), v["message"].as_str().unwrap().to_owned())
        }
    }
}

async fn hop(app: &TestApp, line: &mut Line, step: Step<'_>) -> (bool, String) {
    let request = line.request(step);
    read(line.wire, &send(app, request).await)
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn every_adapter_walks_the_balance_journey(pool: PgPool) {
    let app = spawn(pool, Store::Redis).await;
    for wire in ALL {
        let mut line = Line::new(wire);
        assert_eq!(hop(&app, &mut line, Step::Dial("*384#")).await, (false, MAIN.to_owned()), "{wire:?}");
        assert_eq!(hop(&app, &mut line, Step::Type("2")).await, (false, PIN_SCREEN.to_owned()), "{wire:?}");
        assert_eq!(
            hop(&app, &mut line, Step::Type("9999")).await,
            (false, format!("Wrong PIN.\n{PIN_SCREEN}"))
        );
        assert_eq!(hop(&app, &mut line, Step::Type("1234")).await, (true, BALANCE.to_owned()), "{wire:?}");
    }
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn every_adapter_dials_ahead(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    for wire in ALL {
        let mut line = Line::new(wire);
        assert_eq!(
            hop(&app, &mut line, Step::Dial("*384*2#")).await,
            (false, PIN_SCREEN.to_owned()),
            "{wire:?}"
        );
        assert_eq!(hop(&app, &mut line, Step::Type("1234")).await, (true, BALANCE.to_owned()), "{wire:?}");
    }
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn exact_wire_replies(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    let mut replies = Vec::new();
    for wire in ALL {
        let mut line = Line::new(wire);
        let session = line.session.clone();
        let dial = send(&app, line.request(Step::Dial("*384#"))).await;
        let pin = send(&app, line.request(Step::Type("2"))).await;
        replies.push((wire, session, dial, pin));
    }
    for (wire, session, dial, pin) in replies {
        match wire {
            Wire::AfricasTalking | Wire::Safaricom => {
                assert_eq!(dial.body, format!("CON {MAIN}"));
                assert_eq!(pin.body, format!("CON {PIN_SCREEN}"));
            }
            Wire::Hubtel => {
                let v: Value = serde_json::from_str(&dial.body).unwrap();
                let want = json!({"Type": "Response", "Message": MAIN, "ClientState": "", "Mask": false, "MaskNextRoute": false});
                assert_eq!(v, want);
                let v: Value = serde_json::from_str(&pin.body).unwrap();
                assert_eq!(v["MaskNextRoute"], true, "the PIN screen asks Hubtel to mask the answer: {v}");
            }
            Wire::HubtelProgrammable => {
                let v: Value = serde_json::from_str(&dial.body).unwrap();
                let want = json!({
                    "SessionId": session, "Type": "response", "Message": MAIN, "Label": "Welcome Amina",
                    "DataType": "input", "FieldType": "text", "ClientState": "",
                });
                assert_eq!(v, want);
            }
            Wire::Nalo => {
                let v: Value = serde_json::from_str(&dial.body).unwrap();
                assert_eq!(v, json!({"USERID": "NALOTest", "MSISDN": AMINA, "MSG": MAIN, "MSGTYPE": true}));
            }
            Wire::Arkesel => {
                let v: Value = serde_json::from_str(&dial.body).unwrap();
                let want = json!({
                    "sessionID": session, "userID": "arkesel-user", "msisdn": AMINA,
                    "message": MAIN, "continueSession": true,
                });
                assert_eq!(v, want);
            }
            Wire::Infobip => {
                let v: Value = serde_json::from_str(&dial.body).unwrap();
                assert_eq!(v, json!({"ussdMenu": MAIN, "shouldClose": false, "responseExitCode": 200}));
            }
            Wire::Cellulant => {
                assert_eq!(dial.body, format!("|{MAIN}|||continue|"));
                assert_eq!(dial.content_type, "text/plain; charset=utf-8");
            }
            Wire::Airtel => {
                assert_eq!((dial.body.as_str(), dial.freeflow.as_deref()), (MAIN, Some("FC")));
            }
            Wire::Generic => {
                let v: Value = serde_json::from_str(&dial.body).unwrap();
                assert_eq!(v, json!({"session_id": session, "message": MAIN, "end": false, "secret": false}));
                let v: Value = serde_json::from_str(&pin.body).unwrap();
                assert_eq!(v["secret"], true, "{v}");
            }
        }
    }
}

/// Builds a provider's close notice for a line, if the provider sends one.
type Notice = fn(&Line) -> Option<Request<Body>>;

/// The value of one counter line in `/metrics`, 0 when absent.
async fn counter(app: &TestApp, line: &str) -> f64 {
    let metrics = app.get("/metrics").await.body;
    metrics.lines().find_map(|l| l.strip_prefix(line)).map_or(0.0, |v| v.trim().parse().unwrap())
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn close_notices_count_where_the_subscriber_was_left(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    let (mut timeouts, mut aborts) = (0.0, 0.0);
    for wire in ALL {
        let notices: [(Notice, bool); 2] = [(Line::timeout, true), (Line::abort, false)];
        for (notice, is_timeout) in notices {
            let mut line = Line::new(wire);
            hop(&app, &mut line, Step::Dial("*384#")).await;
            hop(&app, &mut line, Step::Type("2")).await;
            let Some(request) = notice(&line) else { continue };
            let r = send(&app, request).await;
            assert_eq!(r.status, StatusCode::OK, "{wire:?}: {}", r.body);
            if is_timeout {
                timeouts += 1.0;
            } else {
                aborts += 1.0;
            }
        }
        // A notice after the session's END changes nothing.
        let mut line = Line::new(wire);
        hop(&app, &mut line, Step::Dial("*384*2#")).await;
        assert!(hop(&app, &mut line, Step::Type("1234")).await.0);
        if let Some(request) = line.abort().or_else(|| line.timeout()) {
            assert_eq!(send(&app, request).await.status, StatusCode::OK);
        }
    }
    let at = |reason: &str| {
        format!("ussd_screen_closed_total{{menu=\"wallet\",screen=\"balance_pin\",reason=\"{reason}\"}}")
    };
    assert_eq!((timeouts, aborts), (5.0, 4.0), "the notices this test knows");
    assert_eq!(counter(&app, &at("timed_out")).await, timeouts);
    assert_eq!(counter(&app, &at("aborted")).await, aborts);
    let ended = "ussd_screen_closed_total{menu=\"wallet\",screen=\"balance_show\"";
    assert!(!app.get("/metrics").await.body.contains(ended), "a notice after END is not counted");
}

/// A send-money journey in which every hop is sent twice in a row and the PIN hop
/// eight times at once: one transfer, the same reply to every copy.
async fn send_money_with_retries(app: &TestApp, wire: Wire) {
    let mut line = Line::new(wire);
    for step in
        [Step::Dial("*384#"), Step::Type("1"), Step::Type("0700000002"), Step::Type("50"), Step::Type("1")]
    {
        let first = line.request(step);
        let again = {
            // Rebuilding the same step must not advance the line: undo, then redo.
            match step {
                Step::Dial(_) => line.request(step),
                Step::Type(_) => {
                    line.typed.pop();
                    line.seq -= 1;
                    line.request(step)
                }
            }
        };
        let a = read(wire, &send(app, first).await);
        let b = read(wire, &send(app, again).await);
        assert_eq!(a, b, "{wire:?}: a retry got another screen");
    }
    let copies: Vec<Request<Body>> = (0..8)
        .map(|i| {
            if i > 0 {
                line.typed.pop();
                line.seq -= 1;
            }
            line.request(Step::Type("1234"))
        })
        .collect();
    let replies = join_all(copies.into_iter().map(|request| {
        let router = app.router.clone();
        tokio::spawn(async move { router.oneshot(request).await.unwrap() })
    }))
    .await;
    let mut sent = 0;
    for reply in replies {
        let response = reply.unwrap();
        let freeflow = response.headers().get("freeflow").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let content_type = response.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let w = Wired { status, content_type, freeflow, body: String::from_utf8(bytes.to_vec()).unwrap() };
        let (end, text) = read(wire, &w);
        assert!(end, "{wire:?}: {text}");
        if text.starts_with("Sent KES 50.00 to Brian Kamau") {
            sent += 1;
        } else {
            assert!(text.starts_with("We are processing your request"), "{wire:?}: a copy got {text}");
        }
    }
    assert!(sent >= 1, "{wire:?}: no copy saw the receipt");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn retried_hops_move_money_once_on_every_adapter(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Redis).await;
    for wire in ALL {
        send_money_with_retries(&app, wire).await;
    }
    assert_eq!(app.state.gateway.ops().runs(Op::of::<ops::TransferP2p>()), ALL.len() as u64);
    let transfers: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers WHERE kind = 'p2p'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(transfers, ALL.len() as i64, "one transfer per journey");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_same_answer_on_the_next_screen_is_not_a_retry(pool: PgPool) {
    // Nalo sends no hop counter: a repeated input is a retry only while the reply is
    // fresh. Age the session's last answer, then type the same "1" again.
    let app = spawn(pool, Store::Redis).await;
    let mut line = Line::new(Wire::Nalo);
    hop(&app, &mut line, Step::Dial("*384#")).await;
    assert_eq!(hop(&app, &mut line, Step::Type("1")).await, (false, "Enter phone number".to_owned()));
    let store = app.state.gateway.store();
    let key = ussd_gateway::session::SessionKey::new("nalo", &format!("+{AMINA}"), &line.session);
    let loaded = store.load(&key).await.unwrap().unwrap();
    let mut session = loaded.session;
    session.answered_ms -= 10_000;
    store.save(&key, loaded.version, &session, std::time::Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(
        hop(&app, &mut line, Step::Type("1")).await,
        (false, "Invalid phone number.\nEnter phone number".to_owned())
    );
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn malformed_requests_get_a_400_with_the_reason(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    let cases: Vec<(Request<Body>, &str)> = vec![
        (
            post_json(
                "/ussd/hubtel",
                json!({"Mobile": AMINA, "SessionId": "a", "Type": "Dance", "Message": ""}),
            ),
            "`Type` has an unknown value",
        ),
        (
            post_json("/ussd/hubtel", json!({"Mobile": "nope", "SessionId": "a", "Type": "Response"})),
            "`Mobile` is not a valid phone number",
        ),
        (
            post_json("/ussd/nalo", json!({"MSISDN": AMINA, "USERDATA": "1", "MSGTYPE": false})),
            "`SESSIONID` is missing",
        ),
        (
            post_json(
                "/ussd/nalo",
                json!({"MSISDN": AMINA, "SESSIONID": "x", "USERDATA": "1", "MSGTYPE": "maybe"}),
            ),
            "not a boolean",
        ),
        (post_json("/ussd/arkesel", Value::String("not an object".into())), "malformed body"),
        (post_json("/ussd/infobip/abc", json!({"msisdn": AMINA})), "expected {sessionId}/start"),
        (post_json("/ussd/infobip/abc/dance", json!({"msisdn": AMINA})), "expected start, response or end"),
        (
            get("/ussd/cellulant", &[("MSISDN", AMINA), ("sessionID", "x"), ("opCode", "XYZ")]),
            "`opCode` has an unknown value",
        ),
        (get("/ussd/safaricom", &[("ORIG", AMINA), ("SESSION_ID", "x")]), "`DEST` is missing"),
        (get("/ussd/airtel", &[("MSISDN", AMINA), ("input", "*384#")]), "`SessionID` is missing"),
        (
            post_json(
                "/ussd/generic",
                json!({"session_id": "x", "msisdn": AMINA, "event": "start", "extra": 1}),
            ),
            "unknown field `extra`",
        ),
        (
            post_json(
                "/ussd/generic",
                json!({"session_id": "x", "msisdn": AMINA, "event": "start", "service_code": "*".repeat(100)}),
            ),
            "`service_code` is missing, empty or longer than 64 bytes",
        ),
    ];
    for (request, reason) in cases {
        let path = request.uri().to_string();
        let r = send(&app, request).await;
        let want =
            if reason.starts_with("expected") { StatusCode::NOT_FOUND } else { StatusCode::BAD_REQUEST };
        assert_eq!(r.status, want, "{path}: {}", r.body);
        assert!(r.body.contains(reason), "{path}: {} lacks {reason}", r.body);
    }
    // The wrong method for a provider is refused, not processed.
    let r = send(&app, Request::get("/ussd/nalo").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_examples_in_the_channel_reference_get_exact_replies(pool: PgPool) {
    // The request bodies of ../shared/channels.md, verbatim. The shipped menu serves
    // *384#, so the Ghanaian codes there are politely refused, each in its own format.
    let app = spawn(pool, Store::Memory).await;
    let at = Request::post("/ussd/africastalking")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(
            "sessionId=ATUid_9f2e&serviceCode=*384%23&phoneNumber=%2B254711000111&networkCode=63902&text=1*2*500",
        ))
        .unwrap();
    let r = send(&app, at).await;
    // An unregistered number that dials ahead walks into registration, where `2` and
    // `500` are not names.
    let want = "CON Enter a name in letters only.\nEnter your first name";
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, want));

    let hubtel = r#"{"Mobile":"233244567890","SessionId":"a3d7","ServiceCode":"714*5","Type":"Initiation","Message":"*714*5*3#","Operator":"MTN","Sequence":1,"ClientState":""}"#;
    let r = send(&app, Request::post("/ussd/hubtel").body(Body::from(hubtel)).unwrap()).await;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let want = json!({"Type": "Release", "Message": "This service is not available.", "ClientState": "", "Mask": false, "MaskNextRoute": false});
    assert_eq!(v, want);

    let nalo = r#"{"USERID":"NALOTest","MSISDN":"233265542141","USERDATA":"*920#","MSGTYPE":true,"NETWORK":"MTN","SESSIONID":"16590115252429751"}"#;
    let r = send(&app, Request::post("/ussd/nalo").body(Body::from(nalo)).unwrap()).await;
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let want = json!({"USERID": "NALOTest", "MSISDN": "233265542141", "MSG": "This service is not available.", "MSGTYPE": false});
    assert_eq!(v, want);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_reused_session_id_opens_a_new_session_and_a_stray_answer_is_told_to_dial(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    // Nalo integrators may key sessions on the number: the same SESSIONID comes back.
    let mut line = Line::new(Wire::Nalo);
    assert_eq!(hop(&app, &mut line, Step::Dial("*384#")).await, (false, MAIN.to_owned()));
    assert_eq!(hop(&app, &mut line, Step::Type("2")).await, (false, PIN_SCREEN.to_owned()));
    assert_eq!(hop(&app, &mut line, Step::Dial("*384#")).await, (false, MAIN.to_owned()), "a fresh start");
    assert_eq!(hop(&app, &mut line, Step::Type("2")).await, (false, PIN_SCREEN.to_owned()));

    // An answer under a session id the gateway does not know (expired, or never was).
    let mut stray = Line::new(Wire::Arkesel);
    stray.dialled = "*384#".into();
    let reply = hop(&app, &mut stray, Step::Type("2")).await;
    assert_eq!(reply, (true, "This session has ended. Please dial again.".to_owned()));
}
