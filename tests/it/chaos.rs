//! The fault test: concurrent send-money journeys against two gateway processes on one
//! database and one Redis, while a process is killed (SIGKILL) mid-journey and started
//! again, and PostgreSQL and Redis are cut away through TCP proxies and brought back.
//! Then: money is conserved, nothing moved twice, one receipt per party, every journey
//! told "unavailable" moved nothing, and every journey told "processing" got exactly one
//! SMS saying what happened.
//!
//! The same run drives Redis Cluster and Sentinel failovers instead (`topologies`).
//!
//! Short by default (CI); `CHAOS_SECS=600 cargo test --test it chaos:: --nocapture` is
//! the long form. Loopback only, bounded in time.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::proxy::Proxy;
use crate::common::topology::{Cluster, Failover, Sentinels};
use crate::common::{assert_ledger_invariants, database_url};
use sqlx::PgPool;

/// Subscribers sending at once, each from a number of its own, to each other: the
/// money goes round.
const SENDERS: u32 = 16;
/// Each gateway answers a hop within this.
const DEADLINE_MS: u64 = 2_000;

/// One gateway process: started, killed, started again on the same port.
struct Replica {
    addr: SocketAddr,
    env: Vec<(&'static str, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Replica {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_ussd-gateway"));
        command
            .args(["serve", "--demo", "--listen", &self.addr.to_string()])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(command.spawn().expect("the gateway binary starts"));
    }

    /// SIGKILL: no drain, no goodbye.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            let url = format!("http://{}/healthz", self.addr);
            if client.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the gateway on {} did not come up; see {}", self.addr, self.log.display());
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// What one journey's subscriber was last told, and under which session.
#[derive(Debug)]
struct Journey {
    msisdn: String,
    session: String,
    /// The text of the hop whose reply this was.
    at: String,
    told: Told,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Told {
    Sent,
    Processing,
    Unavailable,
    CannotConfirm,
    /// A refusal from the ledger (not enough money, …): nothing moved.
    Refused(String),
    /// Every try of some hop failed on the network: the subscriber saw nothing.
    Nothing,
}

fn told(body: &str) -> Told {
    if body.starts_with("END Sent ") {
        Told::Sent
    } else if body == "END We are processing your request; you will receive an SMS." {
        Told::Processing
    } else if body == "END Service unavailable, please try again" {
        Told::Unavailable
    } else if body.starts_with("END We cannot confirm your request") {
        Told::CannotConfirm
    } else {
        Told::Refused(body.to_owned())
    }
}

/// One hop as an aggregator sends it, retried on the other replica when the connection
/// fails (a replica killed mid-hop); `None` when every try failed.
async fn hop(
    client: &reqwest::Client,
    replicas: &[SocketAddr],
    session: &str,
    msisdn: &str,
    text: &str,
) -> Option<String> {
    let first = rand::random_range(0..replicas.len());
    for attempt in 0..8 {
        let addr = replicas[(first + attempt) % replicas.len()];
        let form = [
            ("sessionId", session),
            ("serviceCode", "*384#"),
            ("phoneNumber", msisdn),
            ("networkCode", "63902"),
            ("text", text),
        ];
        let sent = client.post(format!("http://{addr}/ussd/africastalking")).form(&form).send().await;
        if let Ok(response) = sent
            && response.status().is_success()
            && let Ok(body) = response.text().await
        {
            return Some(body);
        }
        tokio::time::sleep(Duration::from_millis(100 * (attempt as u64 + 1))).await;
    }
    None
}

/// Send-money journeys from `payer` until `stop`, each to a random subscriber.
async fn sender(payer: u32, replicas: Vec<SocketAddr>, stop: Arc<AtomicBool>, out: Arc<Mutex<Vec<Journey>>>) {
    let client = reqwest::Client::builder().timeout(Duration::from_millis(DEADLINE_MS * 3)).build().unwrap();
    let msisdn = format!("+2547{payer:08}");
    while !stop.load(Ordering::Relaxed) {
        let payee = loop {
            let n = rand::random_range(1..=SENDERS);
            if n != payer {
                break n;
            }
        };
        let session = format!("chaos-{:016x}", rand::random::<u64>());
        let to = format!("07{payee:08}");
        let amount = rand::random_range(10..=90).to_string();
        let inputs = ["1".to_owned(), to, amount, "1".into(), "1234".into()];
        // The cumulative texts after the dial; a journey dropped within two minutes is
        // offered back first, and the subscriber starts again ("2").
        let mut typed = Vec::new();
        let mut last = Told::Nothing;
        let mut at;
        let mut next = inputs.iter();
        loop {
            at = typed.join("*");
            match hop(&client, &replicas, &session, &msisdn, &at).await {
                Some(body) if body.starts_with("END") => {
                    last = told(&body);
                    break;
                }
                Some(body) if typed.is_empty() && body.starts_with("CON Your last session was cut off") => {
                    typed.push("2".to_owned());
                }
                Some(body) => match next.next() {
                    Some(input) => typed.push(input.clone()),
                    None => {
                        last = Told::Refused(body);
                        break;
                    }
                },
                None => break,
            }
        }
        // A subscriber who was told to try again does, after a moment.
        if last != Told::Sent {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        out.lock().unwrap().push(Journey { msisdn: msisdn.clone(), session, at, told: last });
    }
}

/// What goes wrong during a run.
pub enum Faults {
    /// Replicas killed and started again; Postgres and Redis (one server) cut away
    /// through TCP proxies and brought back.
    Outages { pg: Arc<Proxy>, redis: Arc<Proxy> },
    /// A Redis Cluster's masters handed over to their replicas, by agreement and by
    /// being killed (and started again, to rejoin as replicas).
    Cluster(Cluster),
    /// The same for a Sentinel set's master.
    Sentinels(Sentinels),
}

impl Faults {
    fn redis_url(&self) -> String {
        match self {
            Faults::Outages { redis, .. } => format!("redis://{}", redis.addr),
            Faults::Cluster(cluster) => cluster.url(),
            Faults::Sentinels(set) => set.url(),
        }
    }

    /// One server has no replica; on the others a session write counts once a replica
    /// has it, so no failover loses one (REDIS_WAIT_REPLICAS).
    fn wait_replicas(&self) -> &'static str {
        if matches!(self, Faults::Outages { .. }) { "0" } else { "1" }
    }

    fn database_url(&self, pool: &PgPool) -> String {
        match self {
            Faults::Outages { pg, .. } => pg.database_url(pool),
            _ => database_url(pool),
        }
    }
}

/// A pause between faults, and how long an outage lasts.
fn pause() -> Duration {
    Duration::from_millis(rand::random_range(1_000..3_000))
}

/// Hands masters over until `stop`, by agreement or by killing one (started again to
/// rejoin); counts each under its label in `labels` (agreed, killed).
fn fail_over<T: Failover>(
    mut topology: T,
    stop: &AtomicBool,
    labels: (&'static str, &'static str),
) -> (BTreeMap<&'static str, u32>, T) {
    let mut done = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(pause());
        if rand::random() {
            topology.failover();
            *done.entry(labels.0).or_default() += 1;
        } else {
            let dead = topology.kill_master();
            topology.restart(dead);
            *done.entry(labels.1).or_default() += 1;
        }
    }
    (done, topology)
}

/// Injects `faults` until `stop`; what was done, and the faults back (their servers
/// must outlive the run's checks).
async fn chaos(
    replicas: Arc<tokio::sync::Mutex<Vec<Replica>>>,
    faults: Faults,
    stop: Arc<AtomicBool>,
) -> (BTreeMap<&'static str, u32>, Faults) {
    let mut done = BTreeMap::new();
    let (pg, redis) = match faults {
        Faults::Outages { pg, redis } => (pg, redis),
        // Failovers are blocking work (redis-cli, waits for the topology to settle).
        Faults::Cluster(cluster) => {
            let failovers = ("cluster failover", "cluster master killed");
            let (done, cluster) =
                tokio::task::spawn_blocking(move || fail_over(cluster, &stop, failovers)).await.unwrap();
            return (done, Faults::Cluster(cluster));
        }
        Faults::Sentinels(set) => {
            let failovers = ("sentinel failover", "sentinel master killed");
            let (done, set) =
                tokio::task::spawn_blocking(move || fail_over(set, &stop, failovers)).await.unwrap();
            return (done, Faults::Sentinels(set));
        }
    };
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(pause()).await;
        let outage = Duration::from_millis(rand::random_range(300..1_500));
        match rand::random_range(0..3) {
            0 => {
                let which = rand::random_range(0..2);
                replicas.lock().await[which].kill();
                tokio::time::sleep(outage).await;
                let mut all = replicas.lock().await;
                all[which].start();
                all[which].ready().await;
                *done.entry("replica killed").or_default() += 1;
            }
            1 => {
                pg.cut();
                tokio::time::sleep(outage).await;
                pg.restore();
                *done.entry("postgres cut").or_default() += 1;
            }
            _ => {
                redis.cut();
                tokio::time::sleep(outage).await;
                redis.restore();
                *done.entry("redis cut").or_default() += 1;
            }
        }
    }
    (done, Faults::Outages { pg, redis })
}

async fn scalar(pool: &PgPool, sql: &str, bind: &str) -> i64 {
    sqlx::query_scalar(sql).bind(bind).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn what_subscribers_are_told_stays_true_through_crashes_and_outages(pool: PgPool) {
    let seconds: u64 = std::env::var("CHAOS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let faults = Faults::Outages { pg: Proxy::postgres(&pool).await, redis: Proxy::redis().await };
    run(&pool, faults, seconds).await;
}

/// Send-money journeys from [`SENDERS`] subscribers through two gateway processes for
/// `seconds` while `faults` happen, then every check of what they were told.
pub async fn run(pool: &PgPool, faults: Faults, seconds: u64) {
    let prefix = format!("chaos:{:016x}:", rand::random::<u64>());
    let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("chaos-{}", &prefix[6..22]));
    std::fs::create_dir_all(&logs).unwrap();
    let env = vec![
        ("DATABASE_URL", faults.database_url(pool)),
        ("DATABASE_MAX_CONNECTIONS", "8".into()),
        ("REDIS_URL", faults.redis_url()),
        ("REDIS_KEY_PREFIX", prefix),
        ("REDIS_WAIT_REPLICAS", faults.wait_replicas().into()),
        ("MENUS_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/menus").into()),
        ("HOP_DEADLINE_MS", DEADLINE_MS.to_string()),
        ("DEMO_SUBSCRIBERS", SENDERS.to_string()),
        ("RATE_PER_MSISDN_PER_MINUTE", "100000".into()),
        ("ADMIN_LISTEN", "127.0.0.1:0".into()),
    ];
    let mut replicas = Vec::new();
    for n in 0..2 {
        let log = logs.join(format!("replica-{n}.log"));
        let _ = std::fs::remove_file(&log);
        let mut replica = Replica { addr: free_port(), env: env.clone(), log, child: None };
        replica.start();
        replica.ready().await;
        replicas.push(replica);
    }
    let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
    let replicas = Arc::new(tokio::sync::Mutex::new(replicas));

    let stop = Arc::new(AtomicBool::new(false));
    let journeys = Arc::new(Mutex::new(Vec::new()));
    let senders: Vec<_> = (1..=SENDERS)
        .map(|payer| tokio::spawn(sender(payer, addrs.clone(), Arc::clone(&stop), Arc::clone(&journeys))))
        .collect();
    let stop_chaos = Arc::new(AtomicBool::new(false));
    let chaos = tokio::spawn(chaos(Arc::clone(&replicas), faults, Arc::clone(&stop_chaos)));
    let started = Instant::now();
    let mut report = started + Duration::from_secs(30);
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if Instant::now() >= report {
            report += Duration::from_secs(30);
            let done = journeys.lock().unwrap().len();
            eprintln!("chaos: {} of {seconds} s, {done} journeys", started.elapsed().as_secs());
        }
    }
    stop_chaos.store(true, Ordering::Relaxed);
    let (done, faults) = chaos.await.unwrap();
    if let Faults::Outages { pg, redis } = &faults {
        pg.restore();
        redis.restore();
    }
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }

    // Every promise is kept by a replica's sweeper, however its maker died.
    let settled = Instant::now();
    loop {
        let open =
            scalar(pool, "SELECT count(*) FROM op_promises WHERE kept_at IS NULL AND $1 = $1", "").await;
        let busy = scalar(
            pool,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active'
                AND query NOT LIKE '%pg_stat_activity%' AND $1 = $1",
            "",
        )
        .await;
        if open == 0 && busy == 0 {
            break;
        }
        assert!(settled.elapsed() < Duration::from_secs(120), "{open} promises still open after 120 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    replicas.lock().await.iter_mut().for_each(Replica::kill);

    let journeys = std::mem::take(&mut *journeys.lock().unwrap());
    // What became of every journey's ops, by journey (`channel:msisdn:session`).
    let facts: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT j, sum(posted)::bigint, sum(receipts)::bigint, sum(notices)::bigint FROM (
             SELECT regexp_replace(t.idempotency_key, ':[0-9]+$', '') AS j,
                    (t.status = 'posted')::int AS posted,
                    (SELECT count(*) FROM outbox o WHERE o.transfer_id = t.id AND o.role = 'payer') AS receipts,
                    0 AS notices
               FROM transfers t WHERE t.idempotency_key LIKE 'africastalking:%'
             UNION ALL
             SELECT regexp_replace(o.op_key, ':[0-9]+$', ''), 0, 0, 1 FROM outbox o WHERE o.op_key IS NOT NULL
         ) x GROUP BY j",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let facts: BTreeMap<String, (i64, i64, i64)> =
        facts.into_iter().map(|(j, posted, receipts, notices)| (j, (posted, receipts, notices))).collect();
    let mut tally: BTreeMap<String, u32> = BTreeMap::new();
    let mut refusals: BTreeMap<String, u32> = BTreeMap::new();
    for j in &journeys {
        let kind = match &j.told {
            Told::Refused(why) => {
                // The only refusal a journey of these can meet: any other answer is
                // a screen the subscriber should not have seen.
                assert!(why.starts_with("END Not enough money"), "answered wrongly at {:?}: {why}", j.at);
                let why: String = why.chars().filter(|c| !c.is_ascii_digit()).collect();
                *refusals.entry(why).or_default() += 1;
                "refused".to_owned()
            }
            other => format!("{other:?}").to_lowercase(),
        };
        *tally.entry(kind).or_default() += 1;
        let (posted, receipts, notices) =
            facts.get(&format!("africastalking:{}:{}", j.msisdn, j.session)).copied().unwrap_or_default();
        assert!(posted <= 1, "{j:?} moved money {posted} times");
        match &j.told {
            Told::Sent => assert_eq!(posted, 1, "{j:?} was told it was sent"),
            Told::Unavailable => assert_eq!(posted, 0, "{j:?} was told \"unavailable\" after money moved"),
            Told::Refused(why) => assert_eq!(posted, 0, "{j:?} was refused ({why}) and money moved"),
            Told::Processing => {
                assert_eq!(
                    receipts + notices,
                    1,
                    "{j:?} was promised one SMS: {receipts} receipts, {notices} notices"
                );
                assert_eq!(receipts, posted, "{j:?}: the SMS must say what happened");
            }
            Told::CannotConfirm | Told::Nothing => {}
        }
        assert!(notices <= 1, "{j:?} got {notices} notices");
    }
    // Every promise, whoever made it, was kept by exactly one message.
    let broken = scalar(
        pool,
        "SELECT count(*) FROM op_promises p
          WHERE (SELECT count(*) FROM outbox o WHERE o.op_key = p.op_key)
              + (SELECT count(*) FROM outbox o JOIN transfers t ON t.id = o.transfer_id
                  WHERE t.idempotency_key = p.op_key AND o.role = 'payer') <> 1 AND $1 = $1",
        "",
    )
    .await;
    assert_eq!(broken, 0, "a promise kept by other than exactly one SMS");
    assert_ledger_invariants(pool).await;
    let posted = scalar(
        pool,
        "SELECT count(*) FROM transfers WHERE kind = 'p2p' AND status = 'posted' AND $1 = $1",
        "",
    )
    .await;
    eprintln!(
        "chaos: {seconds} s, {} journeys, {posted} transfers posted; told {tally:?}; faults {done:?}; refusals {refusals:?}",
        journeys.len()
    );
    assert!(posted > 0, "no journey got through: the test drove nothing");
    assert!(!done.is_empty(), "no fault was injected");
    drop(faults);
}
