//! Dependencies going away mid-run and coming back: Redis and Postgres are reached
//! through a TCP proxy that the test cuts (dropping every connection and refusing new
//! ones) and restores. While cut, hops end politely within the deadline and `/readyz`
//! fails; once restored, the same process serves again without a restart.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::{TestApp, main_menu, settings, unique_session};
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use ussd_gateway::app;
use ussd_gateway::config::Settings;
use ussd_gateway::http::router;
use ussd_gateway::money::{PinHasher, seed_demo};
use ussd_gateway::session::{RedisStore, SessionStore};

const AMINA: &str = "+254700000001";
const UNAVAILABLE: &str = "END Service unavailable, please try again";

/// A TCP proxy to `upstream` that can be cut and restored.
struct Proxy {
    addr: SocketAddr,
    /// `true` while connections may flow; every connection watches it.
    open: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: &str) -> Arc<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (open, _) = watch::channel(true);
        let proxy = Arc::new(Proxy { addr: listener.local_addr().unwrap(), open });
        let upstream = upstream.to_owned();
        let watcher = proxy.open.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut open = watcher.subscribe();
                if !*open.borrow() {
                    continue; // refused: dropping the socket closes it
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = open.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        proxy
    }

    fn cut(&self) {
        self.open.send_replace(false);
    }

    fn restore(&self) {
        self.open.send_replace(true);
    }
}

/// The demo gateway whose Postgres pool or Redis store goes through a proxy.
async fn spawn_behind(pool: &PgPool, pg_proxy: Option<&Proxy>, redis_proxy: Option<&Proxy>) -> TestApp {
    let config = Settings { hop_deadline_ms: 1_000, ..settings() }.validate(None, true).unwrap();
    seed_demo(pool, &PinHasher::new(config.pin_pepper.as_bytes()), "KES", 10).await.unwrap();
    // The gateway's own pool settings, through the proxy.
    let gateway_pool = match pg_proxy {
        Some(proxy) => {
            let options = pool.connect_options();
            let url = format!(
                "postgres://{}@127.0.0.1:{}/{}",
                options.get_username(),
                proxy.addr.port(),
                options.get_database().unwrap()
            );
            app::connect_database(&url, 4).await.unwrap()
        }
        None => pool.clone(),
    };
    let redis = match redis_proxy {
        Some(proxy) => format!("redis://{}", proxy.addr),
        None => common::redis_url(),
    };
    let prefix = format!("test:{:016x}:", rand::random::<u64>());
    let store = RedisStore::connect(&redis, &prefix, Duration::from_millis(500)).await.unwrap();
    let menus = app::load_menus(&config).unwrap();
    let state = app::build_state(gateway_pool.clone(), SessionStore::Redis(store), menus, &config);
    TestApp { router: router(state.clone()), state, config, pool: gateway_pool }
}

/// Dials until the gateway serves the main menu again, a bounded number of times:
/// each pooled connection that died with the cut fails one hop and is dropped with it,
/// and a Redis request after a failure waits for the reconnection.
async fn serves_again(app: &TestApp) {
    for _ in 0..40 {
        if app.at_hop(&unique_session(), AMINA, "").await == main_menu("Amina") {
            return;
        }
    }
    panic!("the gateway did not recover after its dependency came back");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn redis_going_away_and_coming_back(pool: PgPool) {
    let proxy = Proxy::start(common::redis_url().trim_start_matches("redis://")).await;
    let app = spawn_behind(&pool, None, Some(&proxy)).await;
    let s = unique_session();
    assert_eq!(app.at_hop(&s, AMINA, "").await, main_menu("Amina"));

    proxy.cut();
    assert_eq!(app.at_hop(&unique_session(), AMINA, "").await, UNAVAILABLE);
    assert_eq!(app.at_hop(&s, AMINA, "2").await, UNAVAILABLE);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.body);

    proxy.restore();
    serves_again(&app).await;
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn postgres_going_away_and_coming_back(pool: PgPool) {
    let options = pool.connect_options();
    let proxy = Proxy::start(&format!("{}:{}", options.get_host(), options.get_port())).await;
    let app = spawn_behind(&pool, Some(&proxy), None).await;
    let s = unique_session();
    assert_eq!(app.at_hop(&s, AMINA, "").await, main_menu("Amina"));

    proxy.cut();
    // A menu hop needs only the session store: it goes on; the PIN check cannot.
    assert_eq!(app.at_hop(&s, AMINA, "2").await, "CON Enter your PIN to see your balance");
    assert_eq!(app.at_hop(&s, AMINA, "2*1234").await, UNAVAILABLE);
    assert_eq!(app.at_hop(&unique_session(), AMINA, "").await, UNAVAILABLE);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.body);

    proxy.restore();
    serves_again(&app).await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(app.at_hop(&unique_session(), AMINA, "2*1234").await, "END Your balance is KES 1,000.00.");
}
