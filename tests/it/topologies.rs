//! Sessions on the distributed Redis that operators run: a real Cluster (three masters,
//! three replicas) and a real Sentinel set (a master, a replica, three Sentinels),
//! started on loopback for each test. The duplicate-hop and resume tests pass on them
//! as on one server; send-money journeys through two gateway processes stay true while
//! masters fail over, by agreement and by being killed.

use std::time::Duration;

use crate::chaos::{self, Faults};
use crate::common::topology::{Cluster, Lone, Sentinels, cli};
use crate::common::{TestApp, main_menu, settings, spawn_on, unique_session};
use crate::duplicates::{concurrent, second_process, sequential};
use crate::relay::{relays_publish_every_event_once, tail_reads_the_streams};
use crate::sms_commands::handed_from_sms_to_ussd;
use crate::wallet::offered_back_until_finished_or_declined;
use sqlx::PgPool;
use ussd_gateway::config::Settings;
use ussd_gateway::session::{RedisStore, ResumePointer, Session, SessionKey, SessionStore};

/// How long each failover run drives journeys (CHAOS_SECS for longer).
fn seconds() -> u64 {
    std::env::var("CHAOS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(25)
}

/// Another gateway over `app`'s database (seeded once), with sessions of its own at `url`.
async fn another(app: &TestApp, url: &str) -> TestApp {
    let prefix = format!("test:{:016x}:", rand::random::<u64>());
    let store =
        RedisStore::connect(url, &prefix, Duration::from_secs(2)).await.expect("the test's Redis answers");
    let menus = ussd_gateway::app::load_menus(&app.config).unwrap();
    let state =
        ussd_gateway::app::build_state(app.pool.clone(), SessionStore::Redis(store), menus, &app.config);
    TestApp::new(state, app.config.clone(), app.pool.clone())
}

async fn hops_on(pool: PgPool, url: &str) {
    let first = spawn_on(pool.clone(), url, settings()).await;
    sequential(another(&first, url).await).await;
    concurrent(another(&first, url).await).await;
    offered_back_until_finished_or_declined(another(&first, url).await).await;

    // A session whose hops alternate between two processes moves money once.
    const AMINA: &str = "+254700000001";
    let a = first;
    let b = second_process(&a);
    let s = unique_session();
    assert_eq!(a.at_hop(&s, AMINA, "").await, main_menu("Amina"));
    assert_eq!(b.at_hop(&s, AMINA, "1").await, "CON Enter phone number");
    assert_eq!(a.at_hop(&s, AMINA, "1*0700000002").await, "CON Enter amount");
    assert!(b.at_hop(&s, AMINA, "1*0700000002*100").await.starts_with("CON Send KES 100.00 to Brian"));
    assert_eq!(a.at_hop(&s, AMINA, "1*0700000002*100*1").await, "CON Enter PIN to send KES 100.00");
    let sent = b.at_hop(&s, AMINA, "1*0700000002*100*1*1234").await;
    assert!(sent.starts_with("END Sent KES 100.00"), "{sent}");
    assert_eq!(a.at_hop(&s, AMINA, "1*0700000002*100*1*1234").await, sent);
    let moved: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers WHERE idempotency_key LIKE $1")
        .bind(format!("africastalking:{AMINA}:{s}:%"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(moved, 1);
}

/// Sessions of many subscribers, each saved with its resume pointer in one script, then
/// their versions read back together.
async fn many_subscribers(store: &SessionStore) {
    let session = |n: u32| Session {
        service: "wallet".into(),
        menu_version: format!("v{n}"),
        journey: Default::default(),
        seen: Default::default(),
        reply: None,
        pending_since_ms: None,
        claim: None,
        last_seq: None,
        hops: 1,
        answered_ms: 0,
        code: None,
    };
    let ttl = Duration::from_secs(60);
    let keys: Vec<SessionKey> =
        (0..40).map(|n| SessionKey::new("africastalking", &format!("+2547{n:08}"), "s")).collect();
    for (n, key) in (0..).zip(&keys) {
        let pointer = ResumePointer::new(&format!("+2547{n:08}"), "wallet");
        let saved = store.save_pointing(key, 0, &session(n), ttl, &pointer, Some(ttl)).await.unwrap();
        assert_eq!(saved, Some(1));
        assert_eq!(store.recall(&pointer).await.unwrap().as_ref(), Some(key));
    }
    for (n, key) in (0..).zip(&keys).filter(|(n, _)| n % 2 == 1) {
        assert_eq!(store.save(key, 1, &session(n), ttl).await.unwrap(), Some(2));
    }
    let missing = SessionKey::new("africastalking", "+254799999999", "s");
    let asked: Vec<&SessionKey> = keys.iter().chain([&missing]).collect();
    let versions = store.versions(&asked).await.unwrap();
    let expected: Vec<_> = (0..40).map(|n| Some(1 + n % 2)).chain([None]).collect();
    assert_eq!(versions, expected, "each slot's version, in the order asked");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn sessions_and_duplicate_hops_on_a_redis_cluster(pool: PgPool) {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    hops_on(pool, &cluster.url()).await;

    let prefix = format!("test:{:016x}:", rand::random::<u64>());
    let redis = RedisStore::connect(&cluster.url(), &prefix, Duration::from_secs(2)).await.unwrap();
    // The subscriber is the hash tag: a session and its pointer share a slot, and
    // subscribers spread over the masters.
    let session = redis.key("africastalking:+254700000001:s");
    let pointer = redis.pointer("+254700000001:wallet");
    assert_eq!(session, format!("{prefix}s:africastalking:{{+254700000001}}:s"));
    let slot = |key: &str| cli(cluster.masters()[0], &["CLUSTER", "KEYSLOT", key]);
    assert_eq!(slot(&session), slot(&pointer));
    let store = SessionStore::Redis(redis);
    many_subscribers(&store).await;
    let holding = cluster.masters().into_iter().filter(|&m| cli(m, &["DBSIZE"]).trim() != "0").count();
    assert_eq!(holding, 3, "sessions of 40 subscribers land on every master");
}

/// An SMS conversation (its channel's name holds a colon) and the USSD dial that takes
/// it over by code: the conversation, its hand-off pointer and the new session meet in
/// the subscriber's slot.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn an_sms_movement_finishes_on_ussd_on_a_redis_cluster(pool: PgPool) {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    handed_from_sms_to_ussd(spawn_on(pool.clone(), &cluster.url(), settings()).await, pool).await;
}

/// The event streams share one slot on a Cluster: the relays' pipelined `XADD`s and
/// `events tail`'s `XREADGROUP` over several families work as on one server.
#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn relays_publish_to_a_redis_cluster(pool: PgPool) {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    relays_publish_every_event_once(pool, &cluster.url()).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn tail_reads_a_redis_cluster(pool: PgPool) {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    tail_reads_the_streams(pool, &cluster.url()).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn sessions_and_duplicate_hops_behind_sentinels(pool: PgPool) {
    let set = tokio::task::spawn_blocking(Sentinels::start).await.unwrap();
    hops_on(pool, &set.url()).await;
    let prefix = format!("test:{:016x}:", rand::random::<u64>());
    let store =
        SessionStore::Redis(RedisStore::connect(&set.url(), &prefix, Duration::from_secs(2)).await.unwrap());
    many_subscribers(&store).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn journeys_stay_true_while_cluster_masters_fail_over(pool: PgPool) {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    chaos::run(&pool, Faults::Cluster(cluster), seconds()).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn journeys_stay_true_while_the_sentinels_fail_the_master_over(pool: PgPool) {
    let set = tokio::task::spawn_blocking(Sentinels::start).await.unwrap();
    chaos::run(&pool, Faults::Sentinels(set), seconds()).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn scripts_are_loaded_again_where_the_server_lost_them(pool: PgPool) {
    const AMINA: &str = "+254700000001";
    let redis = tokio::task::spawn_blocking(Lone::start).await.unwrap();
    let app = spawn_on(pool, &redis.url(), settings()).await;
    let s = unique_session();
    assert_eq!(app.at_hop(&s, AMINA, "").await, main_menu("Amina"));
    // As a new master after a failover, or a restarted server, would be.
    assert!(redis.cli(&["SCRIPT", "FLUSH"]).contains("OK"));
    assert_eq!(app.at_hop(&s, AMINA, "1").await, "CON Enter phone number");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_write_no_replica_copied_fails_the_hop(pool: PgPool) {
    const AMINA: &str = "+254700000001";
    let redis = tokio::task::spawn_blocking(Lone::start).await.unwrap();
    let waiting = Settings { redis_wait_replicas: 1, ..settings() };
    let app = spawn_on(pool.clone(), &redis.url(), waiting).await;
    // A server with no replica: no write can count, so no screen is shown on one.
    let started = std::time::Instant::now();
    assert_eq!(app.at_hop(&unique_session(), AMINA, "").await, "END Service unavailable, please try again");
    assert!(started.elapsed() < Duration::from_secs(2), "the wait is bounded: {:?}", started.elapsed());
    // Without the wait, the same server serves.
    let app = spawn_on(pool, &redis.url(), settings()).await;
    assert_eq!(app.at_hop(&unique_session(), AMINA, "").await, main_menu("Amina"));
}
