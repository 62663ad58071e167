//! The whole application as `serve` runs it: built on a fresh database, its workers
//! running (the event relay and the webhook worker among them), on ports of its own;
//! stopped by its token.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use ussd_gateway::app::Application;
use ussd_gateway::config::Settings;
use ussd_gateway::money::DEMO_PIN;

use crate::common::{database_url, nats_url, redis_url, settings, until};

const ROOT: &str = "application-test-root-token-0123456789";

/// A partner's endpoint: the deliveries it got, as (webhook-id, body), as they come.
async fn partner() -> (tokio::sync::watch::Receiver<Vec<(String, String)>>, String) {
    let (got, seen) = tokio::sync::watch::channel(Vec::new());
    let got = Arc::new(got);
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            got.send_modify(|all| all.push((id, body)));
            std::future::ready(axum::http::StatusCode::NO_CONTENT)
        }),
    );
    (seen, format!("{}/hook", crate::common::sms::serve(router).await))
}

async fn hop(client: &reqwest::Client, base: &str, session: &str, text: &str) -> String {
    let form =
        [("sessionId", session), ("serviceCode", "*384#"), ("phoneNumber", "+254700000001"), ("text", text)];
    let r = client
        .post(format!("{base}/ussd/africastalking"))
        .form(&form)
        .send()
        .await
        .expect("the gateway answers");
    assert!(r.status().is_success(), "{}", r.status());
    r.text().await.unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_application_serves_with_its_workers_and_stops_on_its_token(pool: PgPool) {
    let prefix = format!("test:{:016x}:", rand::random::<u64>());
    let tag = format!("{:012x}", rand::random::<u64>() >> 16);
    let (nats_stream, nats_subjects) = (format!("TEST_{tag}"), format!("test.{tag}.events"));
    let settings = Settings {
        database_url: database_url(&pool).into(),
        listen_addr: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        redis_url: Some(redis_url().into()),
        redis_key_prefix: prefix.clone(),
        nats_url: Some(nats_url().into()),
        nats_stream: nats_stream.clone(),
        nats_subjects: nats_subjects.clone(),
        admin_token: Some(ROOT.into()),
        ..settings()
    };
    let config = settings.validate(None, true).expect("a demo configuration");
    let app = Application::build(config).await.expect("the application builds");
    let (addr, admin) = (app.addr(), app.admin_addr());
    assert_ne!(addr.port(), 0, "bound before it runs, so a caller learns the port");
    let (stop, state) = (app.stop_token(), app.state().clone());
    let running = tokio::spawn(app.run_until_stopped());

    let client = reqwest::Client::new();
    // A partner subscribes to transfers.
    let (mut partner, hook) = partner().await;
    let subscribed = client
        .post(format!("http://{admin}/admin/webhooks"))
        .bearer_auth(ROOT)
        .header("content-type", "application/json")
        .body(serde_json::json!({ "url": hook, "types": ["transfer.*"] }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), 201);
    let base = format!("http://{addr}");
    let session = format!("app-{:x}", rand::random::<u64>());
    let sent = ["1", "1*0700000002", "1*0700000002*500", "1*0700000002*500*1"];
    for text in ["", sent[0], sent[1], sent[2], sent[3]] {
        assert!(hop(&client, &base, &session, text).await.starts_with("CON "));
    }
    let done = hop(&client, &base, &session, &format!("1*0700000002*500*1*{DEMO_PIN}")).await;
    assert!(done.starts_with("END Sent KES 500.00 to Brian"), "{done}");

    // The outbox worker runs: Brian's receipt reaches the demo sink.
    let sink = state.sms.as_ref().and_then(|sms| sms.sink()).expect("--demo sends to its sink").clone();
    let sms = tokio::time::timeout(Duration::from_secs(15), sink.arrived(Some("+254700000002")))
        .await
        .expect("a receipt within 15 s");
    assert!(sms.iter().any(|m| m.text.contains("KES 500.00")), "{sms:?}");
    // The relay runs: the transfer's two events reach the stream.
    let redis = ussd_gateway::events::redis::connect(&redis_url(), Duration::from_secs(2)).await.unwrap();
    let stream = ussd_gateway::events::redis::stream(&prefix, "transfer", false);
    // The relay may publish the two in two batches: read until both are there.
    let read = |mut redis: ussd_gateway::events::redis::RedisLink| {
        let stream = stream.clone();
        async move {
            let reply: redis::streams::StreamRangeReply =
                redis::cmd("XRANGE").arg(&stream).arg("-").arg("+").query_async(&mut redis).await.unwrap();
            reply.ids
        }
    };
    until("the transfer's two events on the stream", || async { read(redis.clone()).await.len() >= 2 }).await;
    let published: Vec<(String, String)> = read(redis.clone())
        .await
        .iter()
        .map(|e| (e.get::<String>("type").unwrap(), e.get::<String>("event").unwrap()))
        .collect();
    assert_eq!(published.len(), 2, "{published:?}");
    assert!(
        published.iter().all(|(kind, event)| kind == "transfer.posted" && event.contains("50000")),
        "{published:?}"
    );
    let _: () = redis::cmd("DEL").arg(&stream).query_async(&mut redis.clone()).await.unwrap();
    // And to NATS JetStream, on the transfer family's subject.
    let jetstream = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    let on_nats = jetstream.get_stream(&nats_stream).await.expect("the gateway made its stream");
    let transfers = format!("{nats_subjects}.transfer");
    let second = || async {
        let first = on_nats.get_first_raw_message_by_subject(&transfers, 1).await.ok()?;
        on_nats
            .get_first_raw_message_by_subject(&transfers, first.sequence + 1)
            .await
            .ok()
            .map(|m| (first, m))
    };
    until("the transfer's two events on NATS", || async { second().await.is_some() }).await;
    let (first, second) = second().await.unwrap();
    for m in [first, second] {
        assert!(std::str::from_utf8(&m.payload).unwrap().contains("\"transfer.posted\""));
    }
    jetstream.delete_stream(&nats_stream).await.unwrap();
    // The webhook worker runs: the partner gets both events.
    let delivered = tokio::time::timeout(Duration::from_secs(5), partner.wait_for(|got| got.len() >= 2))
        .await
        .map(|got| got.expect("the partner is still listening").clone())
        .expect("the partner's two deliveries within 5 s");
    assert!(
        delivered.iter().all(|(id, body)| body.contains(id.as_str()) && body.contains("transfer.posted")),
        "{delivered:?}"
    );
    // The admin listener is apart, with the metrics.
    let metrics = client.get(format!("http://{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("ussd_hops_total"), "{metrics}");
    drop(client);

    // Every loop stops on the token: a loop that ignored it would hold the shutdown
    // for its 10 s of patience.
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(8), running)
        .await
        .expect("the application stops within 8 s of its token")
        .expect("it did not panic")
        .expect("it stopped cleanly");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "nothing listens once it stopped");
    assert!(tokio::net::TcpStream::connect(admin).await.is_err());
}

/// A server that answers but refuses the role is not "down": its operator is told to
/// fix the user, not to start PostgreSQL.
#[tokio::test]
async fn a_missing_database_role_is_named_not_answered_start_it() {
    let url = "postgres://no_such_role_here@127.0.0.1:5432/ussd_no_such_role";
    let err = ussd_gateway::app::connect_database(url, 1).await.unwrap_err().to_string();
    assert!(err.contains("is running but refused us") && err.contains("createuser"), "{err}");
    assert!(err.contains("no_such_role_here"), "the reason names the role: {err}");
    assert!(!err.contains("Start it"), "{err}");
}
