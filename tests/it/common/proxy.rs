//! A TCP proxy that cuts a dependency away (every connection dropped, new ones refused)
//! or silences it (connections kept open, nothing passed), and brings it back; and the
//! demo gateway reaching Postgres or Redis through one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use ussd_gateway::app;
use ussd_gateway::config::Settings;
use ussd_gateway::money::{PinHasher, seed_demo};
use ussd_gateway::session::{RedisStore, SessionStore};

use super::TestApp;

/// A TCP proxy to `upstream` that can be cut and restored.
pub struct Proxy {
    pub addr: SocketAddr,
    /// Whether new connections are let through, and how many cuts there have been:
    /// every connection ends at the first cut after it opened, however soon the proxy
    /// is restored.
    state: watch::Sender<(bool, u64)>,
    /// Whether bytes stop passing: a connection open then stays silent until a cut, as
    /// behind a firewall that drops packets.
    silent: watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Arc<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (state, _) = watch::channel((true, 0));
        let (silent, _) = watch::channel(false);
        let proxy = Arc::new(Proxy { addr: listener.local_addr().unwrap(), state, silent });
        let upstream = upstream.to_owned();
        let watcher = proxy.state.clone();
        let silencer = proxy.silent.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut state = watcher.subscribe();
                let mut silent = silencer.subscribe();
                let (open, cuts) = *state.borrow_and_update();
                if !open {
                    continue; // refused: dropping the socket closes it
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|(_, now)| *now != cuts) => return,
                        _ = silent.wait_for(|s| *s) => {}
                    }
                    // Silenced: both ends stay open, and nothing more passes.
                    let _ = state.wait_for(|(_, now)| *now != cuts).await;
                    drop((client, server));
                });
            }
        });
        proxy
    }

    /// A proxy to the Postgres server `pool` uses.
    pub async fn postgres(pool: &PgPool) -> Arc<Proxy> {
        let options = pool.connect_options();
        Proxy::start(&format!("{}:{}", options.get_host(), options.get_port())).await
    }

    /// The URL of `pool`'s database, reached through this proxy.
    pub fn database_url(&self, pool: &PgPool) -> String {
        let options = pool.connect_options();
        let database = options.get_database().expect("a test pool names its database");
        format!("postgres://{}@127.0.0.1:{}/{database}", options.get_username(), self.addr.port())
    }

    /// A proxy to the tests' Redis.
    pub async fn redis() -> Arc<Proxy> {
        Proxy::start(super::redis_url().trim_start_matches("redis://")).await
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.state.send_modify(|(open, cuts)| {
            *open = false;
            *cuts += 1;
        });
    }

    pub fn restore(&self) {
        self.state.send_modify(|(open, _)| *open = true);
    }

    /// Stops every byte on the connections open now and on new ones, keeping them
    /// open; [`Self::speak`] lets new ones through again.
    pub fn silence(&self) {
        self.silent.send_replace(true);
    }

    pub fn speak(&self) {
        self.silent.send_replace(false);
    }
}

/// The demo gateway whose Postgres pool or Redis store goes through a proxy, with its
/// sessions under a key prefix of its own.
pub async fn spawn_behind(
    pool: &PgPool,
    pg_proxy: Option<&Proxy>,
    redis_proxy: Option<&Proxy>,
    settings: Settings,
) -> TestApp {
    let prefix = format!("test:{:016x}:", rand::random::<u64>());
    spawn_replica(pool, pg_proxy, redis_proxy, settings, &prefix).await
}

/// [`spawn_behind`] with the session key prefix given: replicas of one gateway share it.
pub async fn spawn_replica(
    pool: &PgPool,
    pg_proxy: Option<&Proxy>,
    redis_proxy: Option<&Proxy>,
    settings: Settings,
    prefix: &str,
) -> TestApp {
    let config = settings.validate(None, true).unwrap();
    seed_demo(pool, &PinHasher::new(config.money.pin_pepper.expose_secret().as_bytes()), "KES", 10)
        .await
        .unwrap();
    // The gateway's own pool settings, through the proxy.
    let gateway_pool = match pg_proxy {
        Some(proxy) => app::connect_database(&proxy.database_url(pool), 4).await.unwrap(),
        None => pool.clone(),
    };
    let redis = match redis_proxy {
        Some(proxy) => format!("redis://{}", proxy.addr),
        None => super::redis_url(),
    };
    let store = RedisStore::connect(&redis, prefix, Duration::from_millis(500)).await.unwrap();
    let menus = app::load_menus(&config).unwrap();
    let state = app::build_state(gateway_pool.clone(), SessionStore::Redis(store), menus, &config);
    TestApp::new(state, config, gateway_pool)
}
