//! Declared channels: secret path tokens, address allowlists and Basic credentials
//! (refused calls are counted and never processed), per-number and per-channel rate
//! limits with a polite END, service codes per channel, and configuration errors.

use std::net::SocketAddr;

use crate::common;
use crate::common::{Store, TestApp, at_form, main_menu, spawn_with, unique_session};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use sqlx::PgPool;
use ussd_gateway::channel::GateSettings;
use ussd_gateway::config::{ChannelSettings, Settings};
use ussd_gateway::ops::{self, Op};

const AMINA: &str = "+254700000001";
const TOKEN: &str = "0123456789abcdef0123";

fn with_channels(channels: Vec<ChannelSettings>) -> Settings {
    Settings { channels, ..common::settings() }
}

fn at(name: &str) -> ChannelSettings {
    ChannelSettings { name: name.into(), provider: "africastalking".into(), ..ChannelSettings::default() }
}

/// An Africa's Talking hop to `path`, from `peer`, with an optional Authorization header.
fn hop(path: &str, peer: Option<&str>, auth: Option<&str>, body: String) -> Request<Body> {
    let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(auth) = auth {
        request = request.header(header::AUTHORIZATION, auth);
    }
    let mut request = request.body(Body::from(body)).unwrap();
    if let Some(peer) = peer {
        let addr: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
    }
    request
}

fn dial(phone: &str) -> String {
    at_form(&unique_session(), "*384#", phone, "")
}

fn basic(user_password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_password))
}

async fn rejected(app: &TestApp, channel: &str, reason: &str) -> f64 {
    let metrics = app.get("/metrics").await.body;
    let line = format!("ussd_rejected_total{{channel=\"{channel}\",reason=\"{reason}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&line)).map_or(0.0, |v| v.parse().unwrap())
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn token_address_and_credentials_are_all_checked(pool: PgPool) {
    let guarded = ChannelSettings {
        gate: GateSettings {
            path: Some("/hooks/at".into()),
            token: Some(TOKEN.into()),
            allow: vec!["196.201.214.0/24".into(), "10.9.8.7".into()],
            basic_user: Some("aggregator".into()),
            basic_password: Some("correct horse battery".into()),
        },
        ..at("guarded")
    };
    let app = spawn_with(pool, Store::Memory, with_channels(vec![guarded])).await;
    let good_path = format!("/hooks/at/{TOKEN}");
    let good_auth = basic("aggregator:correct horse battery");
    let profiles = || app.state.gateway.ops().runs(Op::of::<ops::CustomerProfile>());

    let r = app.send(hop(&good_path, Some("196.201.214.77:5000"), Some(&good_auth), dial(AMINA))).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, main_menu("Amina").as_str()));
    let r = app.send(hop(&good_path, Some("10.9.8.7:5000"), Some(&good_auth), dial(AMINA))).await;
    assert_eq!(r.status, StatusCode::OK, "a single address is allowed too");
    // On a dual-stack listener (`[::]`) an IPv4 caller arrives IPv4-mapped.
    let r = app.send(hop(&good_path, Some("[::ffff:10.9.8.7]:5000"), Some(&good_auth), dial(AMINA))).await;
    assert_eq!(r.status, StatusCode::OK, "an IPv4-mapped address is the IPv4 address");
    // The scheme's name is case-insensitive.
    let lower = good_auth.replacen("Basic", "basic", 1);
    let r = app.send(hop(&good_path, Some("10.9.8.7:5000"), Some(&lower), dial(AMINA))).await;
    assert_eq!(r.status, StatusCode::OK, "`basic` is Basic");
    assert_eq!(profiles(), 4);

    let wrong_token = format!("/hooks/at/{}", TOKEN.replace('0', "1"));
    let refusals = [
        (
            hop(&wrong_token, Some("196.201.214.77:5000"), Some(&good_auth), dial(AMINA)),
            StatusCode::NOT_FOUND,
            "token",
        ),
        (
            hop("/hooks/at", Some("196.201.214.77:5000"), Some(&good_auth), dial(AMINA)),
            StatusCode::NOT_FOUND,
            "token",
        ),
        (
            hop(&good_path, Some("196.201.215.1:5000"), Some(&good_auth), dial(AMINA)),
            StatusCode::FORBIDDEN,
            "address",
        ),
        (hop(&good_path, None, Some(&good_auth), dial(AMINA)), StatusCode::FORBIDDEN, "address"),
        (
            hop(&good_path, Some("196.201.214.77:5000"), None, dial(AMINA)),
            StatusCode::UNAUTHORIZED,
            "credentials",
        ),
        (
            hop(&good_path, Some("196.201.214.77:5000"), Some(&basic("aggregator:wrong")), dial(AMINA)),
            StatusCode::UNAUTHORIZED,
            "credentials",
        ),
        (
            hop(&good_path, Some("196.201.214.77:5000"), Some("Basic !!not base64!!"), dial(AMINA)),
            StatusCode::UNAUTHORIZED,
            "credentials",
        ),
    ];
    for (request, status, _) in refusals {
        let r = app.send(request).await;
        assert_eq!(r.status, status, "{}", r.body);
    }
    assert_eq!(profiles(), 4, "a refused call runs nothing");
    assert_eq!(rejected(&app, "guarded", "token").await, 2.0);
    assert_eq!(rejected(&app, "guarded", "address").await, 2.0);
    assert_eq!(rejected(&app, "guarded", "credentials").await, 3.0);
    // The demo paths still answer beside the declared one; the wrong method does not.
    assert_eq!(app.post_raw(dial(AMINA)).await.status, StatusCode::OK);
    let r = app.send(Request::get(&good_path).body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_subscriber_over_the_rate_limit_gets_a_polite_end(pool: PgPool) {
    let limited = ChannelSettings { per_msisdn_per_minute: Some(3), ..at("limited") };
    let app = spawn_with(pool, Store::Memory, with_channels(vec![limited])).await;
    for _ in 0..3 {
        let r = app.send(hop("/ussd/limited", None, None, dial(AMINA))).await;
        assert_eq!(r.body, main_menu("Amina"));
    }
    let r = app.send(hop("/ussd/limited", None, None, dial(AMINA))).await;
    assert_eq!(r.status, StatusCode::OK, "the aggregator gets a screen, not an error");
    assert_eq!(r.body, format!("END {}", ussd_gateway::http::channels::TOO_MANY_HOPS));
    assert_eq!(
        app.state.gateway.ops().runs(Op::of::<ops::CustomerProfile>()),
        3,
        "the fourth dial ran nothing"
    );
    // Another subscriber, and the same subscriber on another channel, are not affected.
    let r = app.send(hop("/ussd/limited", None, None, dial("+254700000002"))).await;
    assert_eq!(r.body, main_menu("Brian"));
    assert_eq!(app.post_raw(dial(AMINA)).await.body, main_menu("Amina"));
    assert_eq!(rejected(&app, "limited", "msisdn_rate").await, 1.0);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_channel_opens_sessions_only_on_its_codes(pool: PgPool) {
    let ours = ChannelSettings { codes: vec!["*384#".into()], ..at("ours") };
    let other = ChannelSettings { codes: vec!["*385#".into()], ..at("other") };
    let app = spawn_with(pool, Store::Memory, with_channels(vec![ours, other])).await;
    let r = app.send(hop("/ussd/ours", None, None, dial(AMINA))).await;
    assert_eq!(r.body, main_menu("Amina"));
    // Not on the other channel: not by dialling, not by dialling ahead, not by
    // posting an answer under a session id it never opened.
    for (code, text) in [("*384#", ""), ("*384*2#", ""), ("*384#", "2"), ("*384#", "2*1234")] {
        let body = at_form(&unique_session(), code, AMINA, text);
        let r = app.send(hop("/ussd/other", None, None, body)).await;
        assert_eq!(r.body, "END This service is not available.", "{code} {text}");
    }
    assert_eq!(app.state.gateway.ops().runs(Op::of::<ops::CustomerProfile>()), 1);
    assert_eq!(app.state.gateway.ops().runs(Op::of::<ops::WalletBalance>()), 0);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_channel_over_its_own_rate_is_busy_for_everyone(pool: PgPool) {
    // Codes no menu serves, so that each call is answered without the database.
    let narrow = ChannelSettings { codes: vec!["*385#".into()], per_second: Some(1), ..at("narrow") };
    let app = spawn_with(pool, Store::Memory, with_channels(vec![narrow])).await;
    // Two calls back to back against a limit of one per second: the second is refused.
    let r = app.send(hop("/ussd/narrow", None, None, dial(AMINA))).await;
    assert_eq!(r.body, "END This service is not available.");
    let r = app.send(hop("/ussd/narrow", None, None, dial("+254700000002"))).await;
    assert_eq!(r.body, format!("END {}", ussd_gateway::http::channels::CHANNEL_BUSY));
    assert_eq!(rejected(&app, "narrow", "channel_rate").await, 1.0);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn sessions_are_kept_per_channel(pool: PgPool) {
    // Two channels of one provider, one subscriber, one session id: two sessions.
    let app = spawn_with(pool, Store::Memory, with_channels(vec![at("one"), at("two")])).await;
    let s = unique_session();
    let r = app.send(hop("/ussd/one", None, None, at_form(&s, "*384#", AMINA, ""))).await;
    assert_eq!(r.body, main_menu("Amina"));
    let r = app.send(hop("/ussd/one", None, None, at_form(&s, "*384#", AMINA, "2"))).await;
    assert_eq!(r.body, "CON Enter your PIN to see your balance");
    // The same session id on the other channel is a new session, not a replay.
    let r = app.send(hop("/ussd/two", None, None, at_form(&s, "*384#", AMINA, ""))).await;
    assert_eq!(r.body, main_menu("Amina"));
    assert_eq!(app.state.gateway.ops().runs(Op::of::<ops::CustomerProfile>()), 2);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn unknown_paths_below_a_channel_are_refused(pool: PgPool) {
    let app = spawn_with(pool, Store::Memory, with_channels(vec![at("plain")])).await;
    let r = app.send(hop("/ussd/plain/extra", None, None, dial(AMINA))).await;
    let fallback = app.get("/nowhere").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::NOT_FOUND, fallback.body.as_str()));
    assert_eq!(app.state.gateway.ops().runs(Op::of::<ops::CustomerProfile>()), 0);
}

#[test]
fn channel_mistakes_are_each_reported_with_what_to_do() {
    let settings = with_channels(vec![
        ChannelSettings { provider: "telegraph".into(), ..at("a") },
        ChannelSettings {
            gate: GateSettings {
                token: Some("short".into()),
                allow: vec!["10.0.0.0/33".into()],
                ..GateSettings::default()
            },
            ..at("b")
        },
        ChannelSettings {
            gate: GateSettings {
                path: Some("/ussd/b".into()),
                basic_user: Some("u".into()),
                ..GateSettings::default()
            },
            ..at("c")
        },
        ChannelSettings {
            gate: GateSettings { path: Some("/metrics".into()), ..GateSettings::default() },
            codes: vec!["384".into(), "*38x#".into()],
            ..at("d")
        },
        ChannelSettings { deadline_ms: Some(50), per_second: Some(0), ..at("bad name") },
        ChannelSettings {
            gate: GateSettings {
                path: Some("/hooks/:id".into()),
                token: Some("replace-with-a-secret".into()),
                ..GateSettings::default()
            },
            ..at("a")
        },
    ]);
    let err = settings.validate(None, false).unwrap_err().to_string();
    for expected in [
        "channel `a`: `provider` `telegraph` is not one of africastalking, hubtel",
        "channel `b`: `token` must be at least 16",
        "channel `b`: `allow` entry `10.0.0.0/33` is not an address or CIDR block",
        "channel `c`: `path` `/ussd/b` is used by another channel",
        "channel `c`: `basic_user` and `basic_password` go together",
        "channel `d`: `path` `/metrics` is taken",
        "channel `d`: `codes` entry `*38x#` is not a service code",
        "channel `bad name`: `name` must be set",
        "channel `bad name`: `deadline_ms` must be between 500 and 30000",
        "`per_msisdn_per_minute` and `per_second` must be at least 1",
        "`path` `/hooks/:id` must start with `/`",
        "another channel has this `name`",
        "is still the example's placeholder",
    ] {
        assert!(err.contains(expected), "no {expected:?} in\n{err}");
    }
    assert!(!err.contains("`384` is not a service code"), "384 is read as *384#");
}

#[test]
fn production_needs_a_declared_channel_and_the_demo_does_not() {
    let production = Settings {
        pin_pepper: Some("p".repeat(32).into()),
        data_key: Some("0f".repeat(32).into()),
        ..common::settings()
    };
    let err = production.clone().validate(None, false).unwrap_err().to_string();
    assert!(err.contains("no channels: declare each aggregator connection"), "{err}");
    let config = Settings { channels: vec![at("only")], ..production.clone() }.validate(None, false).unwrap();
    let paths: Vec<&str> = config.channels.iter().map(|c| c.callers.path.as_str()).collect();
    assert_eq!(paths, ["/ussd/only"], "outside the demo only declared channels answer");
    let demo = production.validate(None, true).unwrap();
    assert_eq!(demo.channels.len(), 10, "the demo answers every provider at /ussd/<provider>");
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let settings = with_channels(vec![ChannelSettings {
        gate: GateSettings {
            token: Some(TOKEN.into()),
            basic_user: Some("aggregator".into()),
            basic_password: Some("correct horse battery".into()),
            ..GateSettings::default()
        },
        ..at("s")
    }]);
    let config = settings.clone().validate(None, true).unwrap();
    for shown in [format!("{:?}", settings.channels), format!("{:?}", config.channels)] {
        assert!(!shown.contains(TOKEN) && !shown.contains("horse"), "{shown}");
    }
}

#[test]
fn the_example_configuration_is_valid_once_its_secrets_are_set() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/gateway.example.toml");
    let settings = Settings::load(Some(&path)).unwrap();
    let mut production = Settings {
        pin_pepper: Some("p".repeat(32).into()),
        data_key: Some("0f".repeat(32).into()),
        ..settings
    };
    let err = production.clone().validate(None, false).unwrap_err().to_string();
    assert_eq!(err.matches("is still the example's placeholder").count(), 5, "{err}");
    for c in &mut production.channels {
        c.gate.token = c.gate.token.as_ref().map(|_| format!("{:032x}", rand::random::<u128>()).into());
        c.gate.basic_password =
            c.gate.basic_password.as_ref().map(|_| format!("{:032x}", rand::random::<u128>()).into());
    }
    for c in &mut production.sms_channels {
        c.gate.token = Some(format!("{:032x}", rand::random::<u128>()).into());
    }
    if let Some(sms) = &mut production.sms {
        sms.secret = Some(format!("{:032x}", rand::random::<u128>()).into());
    }
    let config = production.validate(None, false).unwrap();
    let names: Vec<&str> = config.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["at-ke", "hubtel-gh", "partner"]);
    let sms = config.sms.expect("the example sends SMS");
    assert_eq!(sms.account.provider, ussd_gateway::channel::sms::Provider::AfricasTalking);
    assert_eq!(sms.account.base_url, "https://api.africastalking.com");
    assert_eq!(sms.policy.segments_per_second.get(), 10);
    let callbacks: Vec<&str> = config.sms_channels.iter().map(|c| c.callers.path.as_str()).collect();
    assert_eq!(callbacks, ["/sms/at-ke"]);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_channel_answers_within_its_own_deadline(pool: PgPool) {
    // The gateway-wide deadline is 10 s; this channel's is half a second.
    let quick = ChannelSettings { deadline_ms: Some(500), ..at("quick") };
    let settings = Settings { hop_deadline_ms: 10_000, ..with_channels(vec![quick]) };
    let app = spawn_with(pool.clone(), Store::Memory, settings).await;
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE").execute(&mut *blocker).await.unwrap();
    let started = std::time::Instant::now();
    let r = app.send(hop("/ussd/quick", None, None, dial(AMINA))).await;
    let elapsed = started.elapsed();
    assert_eq!(r.body, "END Service unavailable, please try again");
    // Generous slack over 0.5 s, far under the gateway-wide 10 s: not a benchmark.
    assert!(elapsed < std::time::Duration::from_secs(5), "answered after {elapsed:?}");
    blocker.rollback().await.unwrap();
}
