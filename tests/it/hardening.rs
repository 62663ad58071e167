//! Holes found by probing the running gateway from outside, each kept closed by a test:
//! concurrent guesses cannot get round the PIN lockout, and a PIN or a yes typed into
//! the dial string moves nothing.

use crate::common;
use crate::common::{Store, TestApp, settings, spawn_with, unique_session};
use futures_util::future::join_all;
use sqlx::PgPool;
use ussd_gateway::config::Settings;
use ussd_gateway::money::DEMO_PIN;

const AMINA: &str = "+254700000001";
const GUESSES: usize = 40;

fn unlimited() -> Settings {
    Settings { rate_per_msisdn_per_minute: 100_000, ..settings() }
}

/// `GUESSES` sessions of Amina's, each waiting at the balance's PIN screen.
async fn at_the_pin_screen(app: &TestApp) -> Vec<String> {
    let mut sessions = Vec::new();
    for _ in 0..GUESSES {
        let s = unique_session();
        app.at_hop(&s, AMINA, "").await;
        assert_eq!(app.at_hop(&s, AMINA, "2").await, "CON Enter your PIN to see your balance");
        sessions.push(s);
    }
    sessions
}

/// Every session answers its PIN screen at the same moment; the replies.
async fn guess_at_once(app: &TestApp, sessions: &[String], guesses: &[String]) -> Vec<String> {
    let hops = sessions.iter().zip(guesses).map(|(s, pin)| async move {
        let text = format!("2*{pin}");
        app.at_hop(s, AMINA, &text).await
    });
    join_all(hops).await
}

async fn failures(pool: &PgPool) -> (i32, bool) {
    sqlx::query_as("SELECT pin_failures, pin_locked_until > now() FROM customers WHERE msisdn = $1")
        .bind(AMINA)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn wrong(n: usize) -> String {
    let pin = format!("{:04}", 5000 + n);
    assert_ne!(pin, DEMO_PIN);
    pin
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn forty_guesses_at_once_get_no_more_tries_than_the_lockout_allows(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Redis, unlimited()).await;
    let max = app.config.money.pin_policy.max_attempts;

    // Forty wrong guesses released together: only the first `max` are compared.
    let sessions = at_the_pin_screen(&app).await;
    let guesses: Vec<String> = (0..GUESSES).map(wrong).collect();
    let replies = guess_at_once(&app, &sessions, &guesses).await;
    let compared = replies.iter().filter(|r| r.contains("Wrong PIN")).count();
    assert_eq!(compared, max as usize - 1, "wrong PINs answered as such (the last one locks): {replies:#?}");
    assert_eq!(failures(&pool).await, (i32::try_from(max).unwrap(), true));
    assert!(replies.iter().all(|r| r.contains("Wrong PIN") || r.contains("locked")), "{replies:#?}");

    // Locked, the right PIN among forty guesses gets nothing, and counts nothing.
    let sessions = at_the_pin_screen(&app).await;
    let mut guesses: Vec<String> = (0..GUESSES - 1).map(wrong).collect();
    guesses.push(DEMO_PIN.to_owned());
    let replies = guess_at_once(&app, &sessions, &guesses).await;
    assert!(replies.iter().all(|r| r.contains("locked")), "{replies:#?}");
    assert_eq!(failures(&pool).await, (i32::try_from(max).unwrap(), true));
}

/// What one hop with the whole journey in its dial string (or in an opening hop's text)
/// does, and how many transfers it made.
async fn sends_in_one_request(app: &TestApp, code: &str, text: &str) -> (String, i64) {
    let r = app.post_raw(common::at_form(&unique_session(), code, AMINA, text)).await;
    let moved: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers WHERE kind = 'p2p'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    (r.body, moved)
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_pin_in_the_dial_string_moves_nothing_and_the_pin_is_asked_on_its_own_screen(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Redis, unlimited()).await;
    let confirm = "CON Send KES 7.00 to Brian Kamau +254700***002? Fee KES 0.00.\n1. Yes\n2. No\n0. Back";
    let dialled = format!("*384*1*0700000002*7*1*{DEMO_PIN}#");
    // Replayed under new session ids, as an attacker holding the dial string would.
    for _ in 0..3 {
        assert_eq!(sends_in_one_request(&app, &dialled, "").await, (confirm.to_owned(), 0));
    }
    let text = format!("1*0700000002*7*1*{DEMO_PIN}");
    assert_eq!(sends_in_one_request(&app, "*384#", &text).await, (confirm.to_owned(), 0));
    // Dialled up to the PIN screen: it stops there, whatever follows.
    assert_eq!(
        sends_in_one_request(&app, &format!("*384*2*{DEMO_PIN}#"), "").await,
        ("CON Enter your PIN to see your balance".to_owned(), 0)
    );

    // The subscriber goes on from the confirmation, one screen at a time.
    let s = unique_session();
    assert_eq!(app.post_raw(common::at_form(&s, &dialled, AMINA, "")).await.body, confirm);
    assert_eq!(
        app.post_raw(common::at_form(&s, &dialled, AMINA, "1")).await.body,
        "CON Enter PIN to send KES 7.00"
    );
    let sent = app.post_raw(common::at_form(&s, &dialled, AMINA, &format!("1*{DEMO_PIN}"))).await.body;
    assert!(sent.starts_with("END Sent KES 7.00 to Brian Kamau."), "{sent}");
    let moved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transfers WHERE kind = 'p2p' AND status = 'posted'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(moved, 1);
}

/// A biller that tries to draw on the subscriber's screen: a holder's name that is a
/// menu, a receipt and a token with line breaks and a right-to-left override.
async fn spoofing_biller(pool: &PgPool) {
    use axum::Json;
    use axum::routing::post;
    use serde_json::json;
    let app = axum::Router::new()
        .route("/validate", post(|| async { Json(json!({ "name": "JOHN\n1. Yes\n2. No\nEND" })) }))
        .route(
            "/pay",
            post(|| async {
                Json(json!({ "status": "paid", "receipt": "KP\u{202E}1\n2", "token": "1234\n1. Call us\u{0}" }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, app).into_future());
    sqlx::query(
        "WITH a AS (INSERT INTO accounts (kind, currency, name) VALUES ('biller_settlement', 'KES', 'SPOOF') RETURNING id)
         INSERT INTO billers (code, name, account_pattern, account_label, fee_payer, settlement_account_id, base_url, timeout_ms)
         SELECT 'SPOOF', 'Spoof Power', '[0-9]{4,20}', 'meter number', 'customer', a.id, $1, 1000 FROM a",
    )
    .bind(url)
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn what_a_biller_says_reaches_screens_and_sms_as_one_visible_line(pool: PgPool) {
    let app = spawn_with(pool.clone(), Store::Memory, unlimited()).await;
    spoofing_biller(&pool).await;
    let confirm = app.journey(AMINA, "8*1*12345678*200").await;
    let lines: Vec<&str> = confirm.lines().collect();
    assert_eq!(
        lines,
        [
            "CON Pay KES 200.00 to Spoof Power for JOHN 1. Yes 2. No END, 12345678? Fee KES 5.00.",
            "1. Yes",
            "2. No",
            "0. Back"
        ],
        "the biller's name for the holder stays on its line"
    );
    let paid = app.journey(AMINA, &format!("8*1*12345678*200*1*{DEMO_PIN}")).await;
    assert_eq!(paid.lines().count(), 1, "{paid}");
    assert!(paid.contains("Token 1234 1. Call us."), "{paid}");
    let receipt: serde_json::Value =
        sqlx::query_scalar("SELECT data FROM outbox WHERE template = 'bill_paid'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (receipt["biller_ref"].as_str(), receipt["token"].as_str()),
        (Some("KP1 2"), Some("1234 1. Call us"))
    );
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn names_operators_send_must_be_one_visible_line(pool: PgPool) {
    let root = "root-token-for-the-names-test";
    let app =
        spawn_with(pool.clone(), Store::Memory, Settings { admin_token: Some(root.into()), ..settings() })
            .await;
    let agent = |name: &str| {
        serde_json::json!({ "msisdn": "+254700000003", "agent_number": "77777", "name": name,
                            "stores": [{ "store_number": "7001", "name": "Duka" }] })
        .to_string()
    };
    for bad in ["Mama\nEND", "Duka\u{202E}lanigirO", "Zero\u{200B}width", "Tab\tbed"] {
        let (status, body) = app.admin("POST", "/admin/agents", Some(root), None, Some(agent(bad))).await;
        assert_eq!(status, axum::http::StatusCode::BAD_REQUEST, "{bad:?}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains("one line of visible characters")),
            "{body}"
        );
    }
    let biller = serde_json::json!({ "code": "KPLC2", "name": "Kenya\nPower", "account_pattern": "[0-9]{11}",
                                     "account_label": "meter", "fee_payer": "customer",
                                     "base_url": "http://127.0.0.1:9", "timeout_ms": 3000 });
    let (status, body) =
        app.admin("POST", "/admin/billers", Some(root), None, Some(biller.to_string())).await;
    assert_eq!(status, axum::http::StatusCode::BAD_REQUEST, "{body}");
    let (status, body) =
        app.admin("POST", "/admin/agents", Some(root), None, Some(agent(" Mama Mboga "))).await;
    assert_eq!(status, axum::http::StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "Mama Mboga");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_nul_byte_is_a_400_with_the_reason_and_admin_calls_carrying_one_are_audited(pool: PgPool) {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    let root = "root-token-for-the-nul-test";
    let app =
        spawn_with(pool.clone(), Store::Memory, Settings { admin_token: Some(root.into()), ..unlimited() })
            .await;
    let form = |path: &str, body: &str| {
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    // An SMS callback: the provider must not be told to retry for hours.
    let sms =
        app.send(form("/sms/africastalking/inbound", "from=%2B254700000001&to=22384&text=BAL&id=%00")).await;
    assert_eq!(sms.status, StatusCode::BAD_REQUEST, "{}", sms.body);
    assert!(sms.body.contains("control character"), "{}", sms.body);
    let sms = app
        .send(form("/sms/africastalking/inbound", "from=%2B254700000001&to=22384&text=B%00AL&id=n1"))
        .await;
    assert_eq!(sms.status, StatusCode::BAD_REQUEST, "{}", sms.body);
    // A USSD hop.
    let hop = app.post_raw("sessionId=ATUid_%00&serviceCode=*384%23&phoneNumber=%2B254700000001&text=").await;
    assert_eq!(hop.status, StatusCode::BAD_REQUEST, "{}", hop.body);
    assert!(hop.body.contains("`sessionId` holds a control character"), "{}", hop.body);

    // Admin calls: refused with the reason, and each is in the trail.
    let (status, body) = app.admin("GET", "/admin/agents/123456%00", Some(root), None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("control character")), "{body}");
    let reason = serde_json::json!({ "reason": "typo\u{0}", "refund_fee": false }).to_string();
    let (status, body) =
        app.admin("POST", "/admin/transfers/TX00000001/reverse", Some(root), None, Some(reason)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let trail: Vec<(String, i16)> =
        sqlx::query_as("SELECT route, status FROM admin_audit ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(
        trail,
        [
            ("/admin/agents/{agent_number}".to_owned(), 400),
            ("/admin/transfers/{reference}/reverse".to_owned(), 400)
        ]
    );
}

/// `router` on a real listener under `limits`; its address and the server.
async fn listening(
    router: &axum::Router,
    limits: ussd_gateway::http::serve::Limits,
) -> (std::net::SocketAddr, ussd_gateway::http::serve::Server) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ussd_gateway::http::serve::Server::new(limits);
    let serving = server.clone();
    let router = router.clone();
    tokio::spawn(async move { serving.serve(listener, router, std::future::pending()).await });
    (addr, server)
}

/// Reads until the server closes the connection (at most 10 s); what it sent.
async fn until_closed(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept the connection open: {}", String::from_utf8_lossy(&got));
    String::from_utf8_lossy(&got).into_owned()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn slow_and_idle_callers_lose_their_connection_and_never_hold_more_than_the_cap(pool: PgPool) {
    use tokio::io::AsyncWriteExt;
    let app = spawn_with(pool, Store::Memory, unlimited()).await;
    let limits = ussd_gateway::http::serve::Limits {
        max_connections: 2,
        header_timeout: std::time::Duration::from_millis(300),
        drain: std::time::Duration::from_secs(1),
    };
    let (addr, server) = listening(&app.router, limits).await;
    // Headers that never finish, as a slow-loris client sends them.
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        slow.push(s);
    }
    for s in &mut slow {
        until_closed(s).await;
        assert!(server.open() <= 2, "{} connections served at once", server.open());
    }
    // A kept-alive connection that asks nothing more is closed too.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let answered = until_closed(&mut idle).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_admin_api_refuses_a_caller_without_a_token_before_reading_their_body(pool: PgPool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_with(
        pool,
        Store::Memory,
        Settings { admin_token: Some("root-token-for-the-body-test".into()), ..unlimited() },
    )
    .await;
    let limits = ussd_gateway::http::serve::Limits {
        max_connections: 16,
        header_timeout: std::time::Duration::from_secs(5),
        drain: std::time::Duration::from_secs(1),
    };
    let (addr, _server) = listening(&app.admin_router, limits).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The body is announced and never sent.
    s.write_all(b"POST /admin/agents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_exact(&mut head)).await;
    assert!(read.is_ok(), "no answer until the body comes");
    assert_eq!(&head, b"HTTP/1.1 401");
    // An unknown token's query is not read either: 401 in JSON, not a query error.
    let (status, body) = app.admin("GET", "/admin/sms/dead?limit=abc", Some("wrong"), None, None).await;
    assert_eq!(status, axum::http::StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) =
        app.admin("GET", "/admin/sms/dead?limit=abc", Some("root-token-for-the-body-test"), None, None).await;
    assert_eq!(status, axum::http::StatusCode::BAD_REQUEST);
    assert!(body["error"].is_string(), "a JSON error like every refusal: {body}");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_late_copy_of_an_earlier_hop_is_not_taken_for_new_input(pool: PgPool) {
    use axum::body::Body;
    use axum::http::{Request, header};
    let app = spawn_with(pool, Store::Redis, unlimited()).await;
    let session = unique_session();
    let hubtel = |seq: u32, kind: &str, message: &str| {
        let body = serde_json::json!({
            "Mobile": "254700000001", "SessionId": session, "ServiceCode": "384", "Type": kind,
            "Message": message, "Operator": "Safaricom", "Sequence": seq, "ClientState": "",
        });
        Request::post("/ussd/hubtel")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let message = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap()["Message"].clone();
    app.send(hubtel(1, "Initiation", "*384#")).await;
    app.send(hubtel(2, "Response", "1")).await;
    let amount = message(&app.send(hubtel(3, "Response", "0700000002")).await.body);
    assert_eq!(amount, "Enter amount");
    // Hop 2 arrives again, late: its "1" is not an amount of KES 1.
    assert_eq!(message(&app.send(hubtel(2, "Response", "1")).await.body), amount);
    let confirm = message(&app.send(hubtel(4, "Response", "100")).await.body);
    assert!(confirm.as_str().is_some_and(|c| c.starts_with("Send KES 100.00 to Brian Kamau")), "{confirm}");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_admin_api_and_metrics_are_never_served_where_aggregators_call(pool: PgPool) {
    use tower::ServiceExt;
    let app = spawn_with(pool, Store::Memory, unlimited()).await;
    let get = |router: &axum::Router, path: &str| {
        let request = axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap();
        let router = router.clone();
        async move { router.oneshot(request).await.unwrap().status() }
    };
    for path in ["/metrics", "/admin/openapi.json", "/admin/billers"] {
        assert_eq!(get(&app.router, path).await, axum::http::StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(get(&app.admin_router, "/metrics").await, axum::http::StatusCode::OK);
    assert_eq!(get(&app.admin_router, "/admin/openapi.json").await, axum::http::StatusCode::OK);
    assert_eq!(get(&app.admin_router, "/admin/billers").await, axum::http::StatusCode::UNAUTHORIZED);
    assert_eq!(get(&app.router, "/healthz").await, axum::http::StatusCode::OK, "probes on both");
    assert_eq!(get(&app.admin_router, "/healthz").await, axum::http::StatusCode::OK);
}
