//! Test harness: the real router over a fresh database (from `#[sqlx::test]`) with
//! either session store, driven in-process through `tower::ServiceExt::oneshot`.

pub mod proxy;
pub mod replica;
pub mod sms;
pub mod topology;

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tower::ServiceExt;
use ussd_gateway::app;
use ussd_gateway::config::{Config, Settings};
use ussd_gateway::http::{AppState, admin_router, router};
use ussd_gateway::money::{PinHasher, seed_demo};
use ussd_gateway::session::{MemoryStore, RedisStore, SessionStore};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    Memory,
    Redis,
}

pub struct TestApp {
    /// What aggregators and SMS providers reach.
    pub router: Router,
    /// What operators reach: the admin API and `/metrics`.
    pub admin_router: Router,
    pub state: AppState,
    pub config: Config,
    pub pool: PgPool,
}

/// Defaults with the shipped menus, as `serve --demo` would run, but with every token
/// acting alone: the tests of what a call does make it once; `four_eyes.rs` turns four
/// eyes on.
pub fn settings() -> Settings {
    Settings {
        menus_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("menus"),
        four_eyes: false,
        ..Settings::default()
    }
}

/// Keeps every span and log callsite asking the subscriber each time, for the tests
/// that set one of their own on their thread (`set_default`). Without a global
/// subscriber, a callsite first reached on another thread while such a test sets its
/// own can be remembered as wanted by no one (tracing-core caches that, racing with the
/// scoped subscriber's registration), and that test then misses its spans. Called by
/// every app a test spawns, and by those tests before they set theirs.
pub fn consulted_callsites() {
    use tracing::subscriber::Interest;
    use tracing::{Metadata, Subscriber};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    struct Consulted;
    impl<S: Subscriber> Layer<S> for Consulted {
        fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
            Interest::sometimes()
        }
        fn enabled(&self, _: &Metadata<'_>, _: Context<'_, S>) -> bool {
            false
        }
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Consulted));
    });
}

/// Copies the shipped `menus/texts/` into a menu folder of a test's own: the wallet
/// speaks French, whose built-in lines are there.
pub fn copy_texts(dir: &std::path::Path) {
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("menus/texts");
    std::fs::create_dir_all(dir.join("texts")).unwrap();
    for entry in std::fs::read_dir(shipped).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join("texts").join(path.file_name().unwrap())).unwrap();
    }
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A Redis store under a key prefix no other test uses.
pub async fn redis_store() -> SessionStore {
    let prefix = format!("test:{:016x}:", rand::random::<u64>());
    let store = RedisStore::connect(&redis_url(), &prefix, Duration::from_secs(2))
        .await
        .expect("these tests need Redis on 127.0.0.1:6379 (or REDIS_URL): `redis-server --daemonize yes`");
    SessionStore::Redis(store)
}

/// The shipped menus and demo subscribers on a fresh database.
pub async fn spawn(pool: PgPool, store: Store) -> TestApp {
    spawn_with(pool, store, settings()).await
}

pub async fn spawn_with(pool: PgPool, store: Store, settings: Settings) -> TestApp {
    let store = match store {
        Store::Memory => SessionStore::Memory(MemoryStore::new()),
        Store::Redis => redis_store().await,
    };
    spawn_over(pool, store, settings).await
}

/// The shipped menus and demo subscribers, with sessions in the Redis `url` names (a
/// Cluster, a Sentinel set) under a key prefix of their own.
pub async fn spawn_on(pool: PgPool, url: &str, settings: Settings) -> TestApp {
    let prefix = format!("test:{:016x}:", rand::random::<u64>());
    let store =
        RedisStore::connect(url, &prefix, Duration::from_secs(2)).await.expect("the test's Redis answers");
    let store = SessionStore::Redis(store.waiting_for(settings.redis_wait_replicas));
    spawn_over(pool, store, Settings { redis_url: Some(url.into()), ..settings }).await
}

async fn spawn_over(pool: PgPool, store: SessionStore, settings: Settings) -> TestApp {
    consulted_callsites();
    let config = settings.validate(None, true).expect("the test configuration is valid");
    seed_demo(&pool, &PinHasher::new(config.money.pin_pepper.expose_secret().as_bytes()), "KES", 10)
        .await
        .expect("demo seed");
    let menus = app::load_menus(&config).expect("the shipped menus compile");
    let state = app::build_state(pool.clone(), store, menus, &config);
    TestApp::new(state, config, pool)
}

pub struct Response {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: String,
}

impl TestApp {
    pub fn new(state: AppState, config: Config, pool: PgPool) -> Self {
        TestApp {
            router: router(state.clone()),
            admin_router: admin_router(state.clone()),
            state,
            config,
            pool,
        }
    }

    /// One admin API call with a bearer token, a JSON body and an Idempotency-Key
    /// when given; the status and the JSON answer (a string if it is not JSON).
    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json)
            }
            None => Body::empty(),
        };
        let r = self.send(request.body(body).expect("request")).await;
        (r.status, serde_json::from_str(&r.body).unwrap_or(serde_json::Value::String(r.body)))
    }

    /// One request, to the admin listener's router for `/admin` and `/metrics`, to the
    /// aggregators' otherwise.
    pub async fn send(&self, request: Request<Body>) -> Response {
        let path = request.uri().path();
        let router =
            if path.starts_with("/admin") || path == "/metrics" { &self.admin_router } else { &self.router };
        let response = router.clone().oneshot(request).await.expect("the router is infallible");
        let status = response.status();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        Response { status, content_type, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    /// Posts a raw body to the Africa's Talking endpoint.
    pub async fn post_raw(&self, body: impl Into<Body>) -> Response {
        let request = Request::post("/ussd/africastalking")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.into())
            .expect("request");
        self.send(request).await
    }

    /// One Africa's Talking hop; returns the `CON …`/`END …` body after checking it is a 200.
    pub async fn at_hop(&self, session: &str, phone: &str, text: &str) -> String {
        let response = self.post_raw(at_form(session, "*384#", phone, text)).await;
        assert_eq!(response.status, StatusCode::OK, "body: {}", response.body);
        assert_eq!(response.content_type.as_deref(), Some("text/plain; charset=utf-8"));
        response.body
    }

    /// Answers every SMS waiting, as the answerer in `serve` would, until none is due;
    /// returns how many tries it made (a failed one is tried again at once, until it is
    /// dead-lettered).
    pub async fn answer_sms(&self) -> usize {
        let answerer = self.answerer();
        let mut answered = 0;
        for _ in 0..100 {
            match answerer.tick().await.expect("the answerer claims messages") {
                0 => return answered,
                n => answered += n,
            }
        }
        panic!("the SMS answerer kept finding messages to answer");
    }

    /// The SMS answerer over this app's gateway, trying a failed message again at once.
    pub fn answerer(&self) -> ussd_gateway::sms::answer::Answerer {
        use ussd_gateway::sms::answer::{Answerer, Policy};
        let policy = Policy { retry_base: Duration::ZERO, retry_cap: Duration::ZERO, ..Policy::default() };
        Answerer::new(
            self.state.gateway.clone(),
            self.config.sms_channels.clone().into(),
            self.config.region,
            policy,
        )
    }

    /// Dials `code` on a new session and types `text`'s inputs one hop at a time, as a
    /// subscriber does (a PIN or a yes on its own screen); the last reply.
    pub async fn walk(&self, code: &str, phone: &str, text: &str) -> String {
        let session = unique_session();
        let mut typed = String::new();
        let mut reply = String::new();
        for input in std::iter::once("").chain(text.split('*').filter(|_| !text.is_empty())) {
            if !input.is_empty() || !typed.is_empty() {
                if !typed.is_empty() {
                    typed.push('*');
                }
                typed.push_str(input);
            }
            let response = self.post_raw(at_form(&session, code, phone, &typed)).await;
            assert_eq!(response.status, StatusCode::OK, "body: {}", response.body);
            reply = response.body;
        }
        reply
    }

    /// [`Self::walk`] on the wallet, `*384#`.
    pub async fn journey(&self, phone: &str, text: &str) -> String {
        self.walk("*384#", phone, text).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(Request::get(path).body(Body::empty()).expect("request")).await
    }
}

/// A form body exactly as Africa's Talking sends it.
pub fn at_form(session: &str, code: &str, phone: &str, text: &str) -> String {
    serde_urlencoded::to_string([
        ("sessionId", session),
        ("serviceCode", code),
        ("phoneNumber", phone),
        ("networkCode", "63902"),
        ("text", text),
    ])
    .expect("form")
}

pub fn unique_session() -> String {
    format!("ATUid_{:016x}", rand::random::<u64>())
}

/// The wallet's main menu as `name` sees it in English.
pub fn main_menu(name: &str) -> String {
    format!(
        "CON Welcome {name}\n1. Send money\n2. My balance\n3. Mini statement\n4. Change PIN\n5. Language / Lugha\n6. Withdraw cash\n7. My approvals\n8. Pay bill\n9. Pay shop\n98. More"
    )
}

/// A customer at `tier` with a wallet funded with `funds` (minor units) through the
/// ledger. Returns the wallet's account id.
pub async fn customer(pool: &PgPool, msisdn: &str, tier: i16, funds: i64) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO customers (msisdn, first_name, last_name, pin_salt, pin_hash, kyc_tier)
         VALUES ($1, 'Test', 'Customer', $2, $3, $4) RETURNING id",
    )
    .bind(msisdn)
    .bind(vec![0u8; 16])
    .bind(vec![0u8; 32])
    .bind(tier)
    .fetch_one(pool)
    .await
    .expect("insert customer");
    let account: i64 = sqlx::query_scalar(
        "INSERT INTO accounts (customer_id, kind, currency) VALUES ($1, 'wallet', 'KES') RETURNING id",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("insert wallet");
    if funds > 0 {
        sqlx::query("SELECT ledger_fund($1, $2, $3)")
            .bind(format!("test-funding:{msisdn}"))
            .bind(account)
            .bind(funds)
            .execute(pool)
            .await
            .expect("fund wallet");
    }
    account
}

pub async fn balance_of(pool: &PgPool, account: i64) -> i64 {
    sqlx::query_scalar("SELECT balance FROM accounts WHERE id = $1")
        .bind(account)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Checks every ledger invariant on a quiet database: money neither made nor lost,
/// every transfer balanced, every balance the sum of its entries, none below zero that
/// may not be, and one receipt per party of every movement but deposits.
pub async fn assert_ledger_invariants(pool: &PgPool) {
    let total: i64 =
        sqlx::query_scalar("SELECT sum(balance)::bigint FROM accounts").fetch_one(pool).await.unwrap();
    assert_eq!(total, 0, "money was created or destroyed");
    let unbalanced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT transfer_id FROM entries GROUP BY transfer_id HAVING sum(amount) <> 0) x",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(unbalanced, 0, "a transfer's entries do not sum to zero");
    let drifted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM accounts a
          WHERE a.balance <> coalesce((SELECT sum(e.amount) FROM entries e WHERE e.account_id = a.id), 0)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(drifted, 0, "a balance differs from the sum of its entries");
    let negative: i64 =
        sqlx::query_scalar("SELECT count(*) FROM accounts WHERE balance < 0 AND NOT allow_negative")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(negative, 0, "an account went below zero");
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM transfers t WHERE t.status = 'posted'
            AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.transfer_id = t.id)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0, "a posted transfer has no entries");
    let misheld: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM accounts a
          WHERE a.held <> coalesce((SELECT sum(h.amount) FROM holds h
                                     WHERE h.account_id = a.id AND h.resolution IS NULL), 0)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(misheld, 0, "an account's held differs from the sum of its open holds");
    let held_posted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM holds h JOIN transfers t ON t.id = h.transfer_id
          WHERE (h.resolution IS NULL) <> (t.status = 'held')
             OR (h.resolution = 'posted') <> (t.status = 'posted')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(held_posted, 0, "a hold and its transfer disagree on what became of it");
    let receipts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM transfers t WHERE t.kind <> 'funding' AND t.status = 'posted'
            AND (SELECT count(*) FROM outbox o WHERE o.transfer_id = t.id AND o.role IN ('payer', 'payee'))
                <> CASE WHEN t.kind IN ('bill', 'merchant_withdrawal') THEN 1
                        -- A reversal tells the parties that have a phone (a biller has none).
                        WHEN t.kind = 'reversal'
                        THEN (SELECT count(*) FROM (VALUES (t.debit_account_id), (t.credit_account_id)) v(id)
                               WHERE (account_party(v.id)).msisdn IS NOT NULL)
                        ELSE 2 END",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        receipts, 0,
        "a movement lacks exactly one receipt per party (a bill's payee is no phone, a withdrawal's payer is the payee's own)"
    );
    assert_events(pool).await;
}

/// The event log agrees with the ledger: each party account's events are numbered
/// 1..n without gaps, every posted movement has an event per party account and every
/// refused one for its payer, and every event is valid against its type's schema.
pub async fn assert_events(pool: &PgPool) {
    let misnumbered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM accounts a
          WHERE a.event_seq <> (SELECT count(*) FROM events e WHERE e.account_id = a.id)
             OR a.event_seq <> coalesce((SELECT max(e.sequence) FROM events e WHERE e.account_id = a.id), 0)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(misnumbered, 0, "an account's events are not numbered 1..n");
    let unannounced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM transfers t
           JOIN accounts a ON a.kind IN ('wallet', 'agent_float', 'biller_settlement', 'merchant_settlement')
                          AND (a.id = t.debit_account_id OR (t.status = 'posted' AND a.id = t.credit_account_id))
          WHERE t.status IN ('posted', 'rejected')
            AND (SELECT count(*) FROM events e WHERE e.account_id = a.id AND e.subject = transfer_ref(t.id)
                                                 AND e.type NOT IN ('hold.placed', 'bill.pending')) <> 1",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(unannounced, 0, "a movement lacks exactly one event per party account");
    // Every party account a posted movement's entries touch has its event (a withdrawal
    // takes from several settlement shards; each has one).
    let untold: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM transfers t
           JOIN (SELECT DISTINCT e.transfer_id, e.account_id FROM entries e) x ON x.transfer_id = t.id
           JOIN accounts a ON a.id = x.account_id
                          AND a.kind IN ('wallet', 'agent_float', 'biller_settlement', 'merchant_settlement')
          WHERE t.status = 'posted'
            AND (SELECT count(*) FROM events e WHERE e.account_id = a.id AND e.subject = transfer_ref(t.id)
                                                 AND e.type NOT IN ('hold.placed', 'bill.pending')) <> 1",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(untold, 0, "an account a movement's entries touch lacks exactly one event of it");
    if let Err(broken) = ussd_gateway::admin::chain::verify(pool, |_| {}).await.unwrap() {
        panic!("the hash chains do not match their rows: {broken}");
    }
    let mut validators = std::collections::HashMap::new();
    let mut position = 0;
    loop {
        let page = ussd_gateway::money::events::after(pool, position, 1_000).await.unwrap();
        let Some(last) = page.last() else { break };
        position = last.position;
        for event in &page {
            let validator =
                validators.entry(event.kind().to_owned()).or_insert_with(|| event_schema(event.kind()));
            let errors: Vec<String> = validator.iter_errors(&event.envelope).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", event.envelope);
        }
    }
}

/// The JSON Schema `schemas/events/` ships for events of type `kind`.
pub fn event_schema(kind: &str) -> jsonschema::Validator {
    let path = format!("{}/schemas/events/{kind}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("no schema for `{kind}` at {path}"));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::options().should_validate_formats(true).build(&schema).unwrap()
}

/// The URL of `pool`'s database, for a child process (the command line).
pub fn database_url(pool: &PgPool) -> String {
    let options = pool.connect_options();
    let database = options.get_database().expect("a test pool names its database");
    format!("postgres://{}@{}:{}/{database}", options.get_username(), options.get_host(), options.get_port())
}

/// Registers biller `code` (11-digit meter numbers, the customer pays the fee) at `url`,
/// with a settlement account.
pub async fn register_biller(pool: &PgPool, code: &str, url: &str, timeout_ms: i32) {
    sqlx::query(
        "WITH a AS (INSERT INTO accounts (kind, currency, name) VALUES ('biller_settlement', 'KES', $1) RETURNING id)
         INSERT INTO billers (code, name, account_pattern, account_label, fee_payer, settlement_account_id, base_url, timeout_ms)
         SELECT $1, 'Power ' || $1, '[0-9]{11}', 'meter number', 'customer', a.id, $2, $3 FROM a",
    )
    .bind(code)
    .bind(url)
    .bind(timeout_ms)
    .execute(pool)
    .await
    .unwrap();
}

/// Waits for `check` to hold, for at most 10 s: for a state the gateway reaches on its
/// own after an answer (a statement queueing at the server), never for a result.
pub async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..1000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 10 s");
}

/// Statements waiting for a lock in this test's database only: `pg_locks` spans the
/// cluster, where another stuck-op test may be waiting at the same moment.
pub async fn lock_waiters(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}
