//! Wiring: database, session store, menus, ops and the HTTP server, with start-up
//! errors that say what to do and a graceful shutdown.

mod demo;
mod loops;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::channel::sms::Outbound;
use crate::config::Config;
use crate::events::anomalies::detect::Detector;
use crate::events::nats::JetStream;
use crate::events::webhooks::deliver::{Deliverer, Policy};
use crate::events::{self, Fanout, Publisher, Relay, redis::RedisStreams};
use crate::gateway::{Gateway, GatewayConfig};
use crate::http::{self, AppState};
use crate::menu::Bundle;
use crate::money::kek::ConfiguredKeys;
use crate::money::{self, DataVault, Lane, LaneOptions, Money, MoneySettings, PinHasher, Replica};
use crate::session::{MemoryStore, RedisStore, SessionStore, TextKey};
use crate::sms::answer::{self, Answerer};
use crate::sms::outbox::Worker;
use crate::telemetry::redact_url;
#[cfg(unix)]
pub use loops::reload_on_hangup;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Why the gateway could not start, phrased for the person starting it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot reach PostgreSQL at {url}: {reason}\n\
         Start it (Debian: `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`; \
         Docker: `docker compose -f deploy/compose.yaml up -d postgres` with \
         DATABASE_URL=postgres://postgres:postgres@127.0.0.1:55432/ussd_gateway) or point DATABASE_URL at a running server."
    )]
    Postgres { url: String, reason: String },
    #[error(
        "PostgreSQL at {url} is running but refused us: {reason}\n\
         Check the user, password and database in DATABASE_URL; a missing role is made with \
         `createuser --createdb NAME` (as the postgres user), and the role needs CREATEDB \
         while the database does not exist yet."
    )]
    PostgresRefused { url: String, reason: String },
    #[error("cannot migrate the database at {url}: {reason}")]
    Migrate { url: String, reason: String },
    #[error(
        "cannot reach Redis at {url}: {reason}\n\
         Start it (`redis-server --daemonize yes`, or `docker compose -f deploy/compose.yaml up -d redis` with \
         REDIS_URL=redis://127.0.0.1:56379), \
         or unset REDIS_URL to keep sessions in process memory."
    )]
    Redis { url: String, reason: String },
    #[error(
        "cannot publish events to NATS at {url}: {reason}\n\
         Start it with JetStream (`nats-server -js`), or unset NATS_URL to publish to Redis only."
    )]
    Nats { url: String, reason: String },
    #[error("the menus in {dir} do not compile:\n{report}")]
    Menus { dir: String, report: String },
    #[error(
        "cannot listen on {addr}: {reason} (is another process using the port? try --listen 127.0.0.1:9090)"
    )]
    Listen { addr: String, reason: String },
    #[error(
        "cannot listen on {addr} for the admin API and /metrics: {reason} (is another process using the port? set ADMIN_LISTEN, e.g. 127.0.0.1:9091)"
    )]
    AdminListen { addr: String, reason: String },
    #[error("cannot seed demo data: {0}")]
    Demo(String),
    #[error(
        "cannot seal personal data: {0}\n\
         DATA_KEYS must hold the key-encryption key the newest data key is wrapped with (`ussd-gateway keys list` shows which)."
    )]
    Keys(String),
}

/// Connections the admin listener serves at once: operators and a metrics scraper.
const ADMIN_CONNECTIONS: usize = 256;

/// How long a pooled connection may sit unused before it is checked on acquire.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// Creates the database if it is missing, connects a pool and runs the migrations.
pub async fn connect_database(url: &str, max_connections: u32) -> Result<PgPool, StartError> {
    let shown = redact_url(url);
    let unreachable =
        |e: &dyn std::fmt::Display| StartError::Postgres { url: shown.clone(), reason: e.to_string() };
    // A server that answered with an error (no such role, a wrong password, no right to
    // create the database, no maintenance database) is up: telling its operator to start
    // it would mislead. One starting up, shutting down or out of room (57P0x, class 53)
    // is not there yet, as good as unreachable.
    let failed = |e: sqlx::Error| match e.as_database_error() {
        Some(refused) if !refused.code().is_some_and(|c| c.starts_with("57P0") || c.starts_with("53")) => {
            StartError::PostgresRefused { url: shown.clone(), reason: refused.to_string() }
        }
        _ => unreachable(&e),
    };
    let options = PgConnectOptions::from_str(url).map_err(|e| unreachable(&e))?;
    let exists = tokio::time::timeout(Duration::from_secs(5), Postgres::database_exists(url))
        .await
        .map_err(|_| unreachable(&"no answer within 5 s"))?
        .map_err(failed)?;
    if !exists {
        Postgres::create_database(url).await.map_err(failed)?;
        info!(database = %shown, "created the database");
    }
    // sqlx pings every connection on release; pinging again on acquire doubles the
    // round trips of a busy pool, so only a connection that sat idle is checked.
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(2))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_BEFORE_PING {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(failed)?;
    MIGRATOR.run(&pool).await.map_err(|e| StartError::Migrate { url: shown, reason: e.to_string() })?;
    Ok(pool)
}

/// Redis when a URL is configured, process memory otherwise.
pub async fn connect_store(config: &Config) -> Result<SessionStore, StartError> {
    match config.settings.redis_url.as_ref().map(ExposeSecret::expose_secret) {
        Some(url) => RedisStore::connect(url, &config.settings.redis_key_prefix, Duration::from_secs(2))
            .await
            .map(|store| SessionStore::Redis(store.waiting_for(config.settings.redis_wait_replicas)))
            .map_err(|e| StartError::Redis { url: redact_url(url), reason: e.to_string() }),
        None => {
            Ok(SessionStore::Memory(MemoryStore::with_capacity(config.settings.memory_sessions_max as usize)))
        }
    }
}

pub fn load_menus(config: &Config) -> Result<Bundle, StartError> {
    Bundle::load_dir(&config.settings.menus_dir).map_err(|diagnostics| StartError::Menus {
        dir: config.settings.menus_dir.display().to_string(),
        report: crate::menu::report(&diagnostics),
    })
}

/// A pool on the read replica, connected as reads need it: a replica away at the start
/// only sends its reads to the primary.
pub fn connect_replica(url: &str, max_connections: u32) -> Result<Replica, StartError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StartError::Postgres { url: redact_url(url), reason: e.to_string() })?;
    // A replica that does not answer costs a read little before the primary serves it.
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_millis(250))
        .connect_lazy_with(options);
    Ok(Replica::new(pool))
}

/// The shared state of the HTTP server, from already-connected parts.
pub fn build_state(pool: PgPool, store: SessionStore, menus: Bundle, config: &Config) -> AppState {
    build_state_with(pool, None, store, menus, config)
}

/// [`build_state`], with the reads that may lag served by `replica` when it has caught up.
pub fn build_state_with(
    pool: PgPool,
    replica: Option<Replica>,
    store: SessionStore,
    menus: Bundle,
    config: &Config,
) -> AppState {
    let pepper = config.money.pin_pepper.expose_secret().as_bytes();
    let lane = LaneOptions {
        max_connections: config.settings.database_max_connections,
        acquire_timeout: Duration::from_secs(2),
        ping_after_idle: IDLE_BEFORE_PING,
        ..LaneOptions::default()
    };
    let lane = Lane::new((*pool.connect_options()).clone(), lane);
    let vault = vault(pool.clone(), config);
    let money = Money::with_lane(
        pool,
        lane,
        MoneySettings {
            pins: PinHasher::new(pepper),
            pin_policy: config.money.pin_policy,
            approval_ttl: config.money.approval_ttl,
            reversal_dispute: config.money.reversal_dispute,
            vault,
            currency: config.settings.currency.clone(),
        },
    );
    let money = match replica {
        Some(replica) => money.reading_from(replica),
        None => money,
    };
    let money = if config.demo { money.allowing_private_networks() } else { money };
    let money = match config.money.group_posting {
        Some(options) => money.posting_in_groups(options),
        None => money,
    };
    let money = match config.money.profile_cache {
        Some(options) => money.caching_profiles(options),
        None => money,
    };
    let money = match &config.identity {
        Some(provider) => money.verifying_identity(provider.clone()),
        None => money,
    };
    let gateway = Gateway::new(
        menus,
        store,
        money,
        TextKey::new(&derive_key(pepper, b"session-text-mark")),
        GatewayConfig {
            session_ttl: config.session_ttl,
            hop_deadline: config.hop_deadline,
            longest_deadline: config.channels.iter().map(|c| c.deadline).max().unwrap_or(config.hop_deadline),
            budgets: config.screen_budgets.clone(),
        },
    );
    AppState {
        gateway: Arc::new(gateway),
        default_region: config.region,
        metrics: crate::telemetry::metrics(),
        probe_timeout: Duration::from_secs(1),
        channels: config.channels.clone().into(),
        sms_channels: config.sms_channels.clone().into(),
        sms: config.sms.as_ref().map(|spec| Outbound::new(spec.account.clone(), spec.timeout)),
        demo: config.demo,
        simulator: config.simulator,
        admin: http::Admin {
            root: config.settings.admin_token.as_ref().map(|token| token.expose_secret().trim().into()),
            menus_dir: config.settings.menus_dir.clone(),
            four_eyes: config.four_eyes,
        },
    }
}

/// The vault of personal data, its key-encryption keys from configuration.
pub fn vault(pool: PgPool, config: &Config) -> DataVault {
    let keys = &config.money.data_keys;
    let first = keys.first().expect("validated: at least one data key").1.expose_secret();
    let index = match &config.money.blind_index_key {
        Some(key) => *key.expose_secret(),
        None => money::crypto::derive(first, b"blind-index"),
    };
    DataVault::new(pool, Arc::new(ConfiguredKeys::configured(keys)), &index, first)
}

/// A sub-key for one purpose, so one configured secret can key several hashes.
fn derive_key(secret: &[u8], purpose: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(purpose);
    mac.finalize().into_bytes().to_vec()
}

/// `serve`: the application, answering until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let app = Application::build(config).await?;
    let stop = app.stop_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        stop.cancel();
    });
    app.run_until_stopped().await
}

/// The gateway as one process: connected, migrated, seeded (`--demo`) and bound by
/// [`Application::build`]; [`Application::run_until_stopped`] serves both listeners and
/// runs every background loop until its stop token is cancelled, then stops each part
/// in order, each on a token of its own: no more hops (the servers drain), the SMS
/// answerer's batch, the ops still running, the loops (the promise keeper and the
/// reconciler settle what those ops left), and last the outbox, so that every receipt
/// written goes out.
pub struct Application {
    state: AppState,
    config: Config,
    listener: TcpListener,
    admin_listener: TcpListener,
    relay: Relay,
    detector: Option<Detector>,
    stop: CancellationToken,
}

impl Application {
    pub async fn build(mut config: Config) -> Result<Self, StartError> {
        // Hops' statements go through the money lane (DATABASE_MAX_CONNECTIONS); the
        // pool serves what no hop waits on: workers, the admin API, SMS callbacks.
        let background = (config.settings.database_max_connections / 2).max(2);
        let database_url = config.settings.database_url.expose_secret();
        let pool = connect_database(database_url, background).await?;
        info!(database = %redact_url(database_url), "PostgreSQL connected and migrated");
        let shards = config.money.fee_shards;
        crate::money::ledger::set_fee_shards(&pool, shards)
            .await
            .map_err(|e| StartError::Migrate { url: redact_url(database_url), reason: e.to_string() })?;
        info!(fee_shards = shards, "fees are spread over this many revenue accounts");
        let shards = config.money.settlement_shards;
        crate::money::ledger::set_settlement_shards(&pool, shards)
            .await
            .map_err(|e| StartError::Migrate { url: redact_url(database_url), reason: e.to_string() })?;
        info!(
            settlement_shards = shards,
            "each biller's settlement, and funding, are spread over this many accounts"
        );
        let store = connect_store(&config).await?;
        match store {
            SessionStore::Memory(_) => warn!(
                "REDIS_URL is not set: sessions are kept in process memory (lost on restart, not shared between replicas)"
            ),
            SessionStore::Redis(_) => info!("sessions are kept in Redis"),
        }
        let menus = load_menus(&config)?;
        announce_menus(&menus, &config);
        let (listen, admin_listen) = (config.server.listen, config.server.admin_listen);
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| StartError::Listen { addr: listen.to_string(), reason: e.to_string() })?;
        let admin_listener = TcpListener::bind(admin_listen)
            .await
            .map_err(|e| StartError::AdminListen { addr: admin_listen.to_string(), reason: e.to_string() })?;
        if config.demo {
            let port = listener.local_addr().map_or(listen.port(), |a| a.port());
            demo::seed(&pool, &config, port).await?;
            if config.identity.is_none() {
                config.identity = Some(crate::money::identity::settings::demo(port));
            }
        }
        if let Some(provider) = &config.identity {
            info!(provider = %redact_url(&provider.base_url), "registrations and upgrades are checked by the identity provider");
        }
        let replica = match config.settings.database_read_url.as_ref().map(ExposeSecret::expose_secret) {
            Some(url) => {
                info!(replica = %redact_url(url), "reads that may lag go to the replica once it has caught up");
                Some(connect_replica(url, background)?)
            }
            None => None,
        };
        let state = build_state_with(pool, replica, store, menus, &config);
        // The first hop decides by the flags as they are, not by the menus' defaults.
        let url = redact_url(config.settings.database_url.expose_secret());
        let unread =
            |e: sqlx::Error| StartError::Postgres { url, reason: format!("reading the feature flags: {e}") };
        state.gateway.flags().refresh(state.gateway.money().pool()).await.map_err(unread)?;
        let vault = state.gateway.money().vault();
        vault.refresh().await.map_err(|e| StartError::Keys(e.to_string()))?;
        match vault.sealing_with() {
            Some(key) => info!(data_key = key, "personal data is sealed with data key"),
            None => return Err(StartError::Keys("no data key here can be unwrapped".into())),
        }
        let (relay, detector) = event_workers(&state, &config).await?;
        Ok(Application {
            state,
            config,
            listener,
            admin_listener,
            relay,
            detector,
            stop: CancellationToken::new(),
        })
    }

    /// Where aggregators and SMS providers call.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.server.listen)
    }

    /// Where the admin API and `/metrics` answer.
    pub fn admin_addr(&self) -> std::net::SocketAddr {
        self.admin_listener.local_addr().unwrap_or(self.config.server.admin_listen)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancelling it begins the shutdown.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    pub async fn run_until_stopped(self) -> Result<(), StartError> {
        let Application { state, config, listener, admin_listener, relay, detector, stop } = self;
        let gateway = Arc::clone(&state.gateway);
        let addr = listener.local_addr().map_err(|e| StartError::Listen {
            addr: config.server.listen.to_string(),
            reason: e.to_string(),
        })?;
        info!(%addr, "listening");
        if let Ok(admin) = admin_listener.local_addr() {
            info!(%admin, "the admin API and /metrics listen here");
        }
        if config.demo {
            let menus = gateway.menus();
            println!("{}", demo::banner(addr, demo::wallet_code(&menus), &config.settings.currency));
        }
        let (loops, loops_stop) = (TaskTracker::new(), CancellationToken::new());
        loops::start_loops(&loops, &state, &config, &loops_stop);
        // The relay and the webhook worker stop with the loops, after the ops still
        // running wrote their events.
        loops.spawn(relay.run(loops_stop.clone()));
        // A demo's partners are on this machine; a deployment's never are.
        let policy = Policy { private_networks: config.demo, ..Policy::default() };
        let deliverer = Deliverer::new(state.pool().clone(), gateway.money().vault().clone(), policy);
        loops.spawn(deliverer.run(loops_stop.clone()));
        if let Some(detector) = detector {
            loops.spawn(detector.run(loops_stop.clone()));
        }
        let answering_stop = CancellationToken::new();
        // Subscribers' messages are answered here, not in their provider's callback.
        let answerer = (!config.sms_channels.is_empty()).then(|| {
            let answerer = Answerer::new(
                Arc::clone(&gateway),
                config.sms_channels.clone().into(),
                config.region,
                answer::Policy::default(),
            );
            tokio::spawn(answerer.run(answering_stop.clone()))
        });
        // The outbox stops last, once the ops still running have written their receipts.
        let outbox_stop = CancellationToken::new();
        let outbox = match (&state.sms, &config.sms) {
            (Some(outbound), Some(spec)) => {
                info!(provider = %outbound.provider(), "SMS receipts go out through the outbox worker");
                let menus = Some(state.gateway.menus_handle());
                let worker =
                    Worker::worded(state.pool().clone(), outbound.clone(), spec.policy.clone(), menus);
                Some(tokio::spawn(worker.run(outbox_stop.clone())))
            }
            _ => {
                warn!("no [sms] provider is configured: receipts wait in the outbox until one is");
                None
            }
        };
        let limits = |max_connections| http::serve::Limits {
            max_connections,
            header_timeout: config.server.header_timeout,
            drain: Duration::from_secs(30),
        };
        let server = http::serve::Server::new(limits(config.server.max_connections));
        let admin_server = http::serve::Server::new(limits(ADMIN_CONNECTIONS));
        tokio::join!(
            server.serve(listener, http::router(state.clone()), stop.clone().cancelled_owned()),
            admin_server.serve(admin_listener, http::admin_router(state), stop.clone().cancelled_owned()),
        );
        info!("no more hops; waiting for ops that are still running");
        answering_stop.cancel();
        if let Some(answerer) = answerer
            && tokio::time::timeout(Duration::from_secs(35), answerer).await.is_err()
        {
            warn!(
                "the SMS answerer did not finish its batch in time; those messages are answered after a restart"
            );
        }
        gateway.drain().await;
        loops_stop.cancel();
        loops.close();
        if tokio::time::timeout(LOOPS_PATIENCE, loops.wait()).await.is_err() {
            warn!(
                "a background loop did not finish its pass in time; another replica or a restart takes it up"
            );
        }
        if let Some(outbox) = outbox {
            outbox_stop.cancel();
            let patience = config.sms.as_ref().map_or(Duration::ZERO, |s| s.timeout * 2);
            if tokio::time::timeout(patience, outbox).await.is_err() {
                warn!(
                    "the SMS worker did not finish its batch in time; unsent receipts go out after a restart"
                );
            }
        }
        info!("stopped");
        Ok(())
    }
}

/// The event relay — to Redis Streams when there is a Redis, to NATS JetStream when
/// there is a NATS, to the webhooks always — and, with a Redis, the anomaly detector
/// reading the streams.
async fn event_workers(state: &AppState, config: &Config) -> Result<(Relay, Option<Detector>), StartError> {
    // JetStream first: the server drops what it was given before, so a batch published
    // again after a later publisher failed repeats nothing there. Redis streams keep
    // every repeat.
    let mut publishers: Vec<Arc<dyn Publisher>> = Vec::new();
    if let Some(target) = &config.events.nats {
        let jetstream = JetStream::connect(target).await.map_err(|e| StartError::Nats {
            url: redact_url(target.url.expose_secret()),
            reason: e.to_string(),
        })?;
        info!(stream = %target.stream, subjects = %events::nats::subject(&target.subjects, "<family>"), "events are published to NATS JetStream");
        publishers.push(Arc::new(jetstream));
    }
    let mut detector = None;
    if let Some(url) = config.settings.redis_url.as_ref() {
        let url = url.expose_secret();
        // A batch of XADDs takes longer than a hop's GET: the relay's commands get 10 s.
        let connect = || async {
            events::redis::connect(url, Duration::from_secs(10))
                .await
                .map_err(|e| StartError::Redis { url: redact_url(url), reason: e.to_string() })
        };
        // Each its own connection: the detector's blocking reads would hold up the
        // relay's writes queued behind them on a shared one.
        let (conn, detector_conn) = (connect().await?, connect().await?);
        let prefix = &config.settings.redis_key_prefix;
        let streams = events::redis::stream(prefix, "<family>", conn.is_cluster());
        publishers.push(Arc::new(RedisStreams::new(conn, prefix, config.events.stream_max_len)));
        info!(%streams, rules = config.events.anomaly_rules.len(), "events are published to Redis Streams and checked against the anomaly rules");
        let rules = config.events.anomaly_rules.clone();
        detector = Some(Detector::new(detector_conn, state.pool().clone(), prefix, rules));
    } else {
        warn!(
            "REDIS_URL is not set: events are not published to Redis Streams (webhooks still get theirs), and no anomaly rules run"
        );
    }
    let publisher: Option<Arc<dyn Publisher>> = match publishers.len() {
        0 => None,
        1 => publishers.pop(),
        _ => Some(Arc::new(Fanout(publishers))),
    };
    Ok((Relay::new(state.pool().clone(), publisher, config.events.batch), detector))
}

/// How long a background loop may take to finish its pass once the shutdown began.
const LOOPS_PATIENCE: Duration = Duration::from_secs(10);

/// Logs the menus served, and warns of channels whose screens hold less than a menu's
/// budget.
fn announce_menus(menus: &Bundle, config: &Config) {
    for m in menus.menus() {
        info!(service = %m.service, codes = ?m.codes, version = %m.version, screens = m.screen_count(), "menu loaded");
    }
    for (provider, budget) in &config.screen_budgets {
        for m in menus.menus().iter().filter(|m| budget.min(m.budget) != m.budget) {
            warn!(
                channel = %provider, service = %m.service,
                "this channel's screens hold less than the menu's budget, which `menus check` proves prompts against; set the menu's `budget` to {}/{} so that no prompt is split",
                budget.gsm7, budget.ucs2
            );
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    info!("shutting down: finishing in-flight hops");
}
