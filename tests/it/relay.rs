//! The event relay against the real Redis: every event reaches its family's stream,
//! one account's in order, with several relays sharing the work; a relay killed in the
//! middle of a batch loses nothing and reorders nothing (it may repeat); and
//! `events tail` reads the streams as a consumer group.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use ussd_gateway::domain::Amount;
use ussd_gateway::events::redis::RedisLink;
use ussd_gateway::events::redis::{RedisStreams, stream};
use ussd_gateway::events::tail::{Tail, tail};
use ussd_gateway::events::{Event, FAMILIES, PublishError, Publisher, Relay};
use ussd_gateway::money::events::{self, backlog};
use ussd_gateway::money::{PinHasher, seed_demo, transfer_p2p};

use crate::common::sms::msisdn;
use crate::common::{redis_url, until};

/// One stream entry as a consumer sees it.
#[derive(Debug)]
struct Entry {
    family: String,
    id: String,
    account: String,
    sequence: i64,
}

async fn redis() -> (RedisLink, String) {
    redis_at(&redis_url()).await
}

async fn redis_at(url: &str) -> (RedisLink, String) {
    let conn = ussd_gateway::events::redis::connect(url, std::time::Duration::from_secs(2))
        .await
        .expect("these tests need Redis on 127.0.0.1:6379 (or REDIS_URL)");
    (conn, format!("test:{:016x}:", rand::random::<u64>()))
}

fn streams(conn: &RedisLink, prefix: &str) -> Arc<RedisStreams> {
    Arc::new(RedisStreams::new(conn.clone(), prefix, 100_000))
}

/// Everything on the streams under `prefix`, each stream in its order.
async fn read_streams(conn: &mut RedisLink, prefix: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for family in FAMILIES {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(stream(prefix, family, conn.is_cluster()))
            .arg("-")
            .arg("+")
            .query_async(conn)
            .await
            .unwrap();
        for e in reply.ids {
            let event: String = e.get("event").unwrap();
            let envelope: serde_json::Value = serde_json::from_str(&event).unwrap();
            let id: String = e.get("id").unwrap();
            assert_eq!(envelope["id"], id.as_str(), "the id field is the envelope's");
            entries.push(Entry {
                family: family.to_string(),
                id,
                account: e.get("account").unwrap(),
                sequence: e.get("sequence").unwrap(),
            });
        }
    }
    entries
}

async fn drop_streams(conn: &mut RedisLink, prefix: &str) {
    for family in FAMILIES {
        let _: () =
            redis::cmd("DEL").arg(stream(prefix, family, conn.is_cluster())).query_async(conn).await.unwrap();
    }
}

/// What a consumer dropping repeats by event id makes of the streams: each account's
/// sequences, sorted. Panics on an entry that comes after a later one of its account on
/// the same stream (out of order); one account's events on different streams (its
/// transfers and its cash-ins) are ordered by their sequence only.
fn as_consumer(entries: &[Entry]) -> BTreeMap<String, Vec<i64>> {
    let mut last: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    let mut kept: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for e in entries {
        if !seen.insert(e.id.as_str()) {
            continue;
        }
        let before = last.insert((e.family.as_str(), e.account.as_str()), e.sequence);
        assert!(
            before.is_none_or(|before| before < e.sequence),
            "{} of {} came after {before:?} on {}",
            e.sequence,
            e.account,
            e.family
        );
        kept.entry(e.account.clone()).or_default().push(e.sequence);
    }
    kept.values_mut().for_each(|sequences| sequences.sort_unstable());
    kept
}

/// Every event of the log, per account, by sequence.
async fn the_log(pool: &PgPool) -> BTreeMap<String, Vec<i64>> {
    let mut log: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in events::after(pool, 0, 1_000_000).await.unwrap() {
        log.entry(e.account().to_owned()).or_default().push(e.sequence());
    }
    log
}

async fn drained(pool: &PgPool) -> bool {
    backlog(pool).await.unwrap().0 == 0
}

async fn seeded(pool: &PgPool) {
    seed_demo(pool, &PinHasher::new(b"pepper"), "KES", 10).await.unwrap();
}

/// `tasks` senders making `each` transfers among the ten demo wallets.
async fn transfers(pool: &PgPool, tag: &str, tasks: u32, each: u32) {
    let running: Vec<_> = (1..=tasks)
        .map(|task| {
            let (pool, tag) = (pool.clone(), tag.to_owned());
            tokio::spawn(async move {
                for i in 0..each {
                    let (from, to) = ((task + i) % 10 + 1, (task + 3 * i + 1) % 10 + 1);
                    let minor = if i % 5 == 0 { 50_000_000 } else { i64::from(100 + i) };
                    transfer_p2p(
                        &pool,
                        &format!("{tag}:{task}:{i}"),
                        &msisdn(from),
                        &msisdn(to),
                        Amount::from_minor(minor).unwrap(),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in running {
        t.await.unwrap();
    }
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn relays_publish_every_event_once_and_each_accounts_in_order(pool: PgPool) {
    relays_publish_every_event_once(pool, &redis_url()).await;
}

/// Three relays publishing to the Redis at `url` while sixteen senders move money.
pub async fn relays_publish_every_event_once(pool: PgPool, url: &str) {
    let (mut conn, prefix) = redis_at(url).await;
    seeded(&pool).await;
    // Three relays share the parts while sixteen senders move money.
    let stop = CancellationToken::new();
    let relays: Vec<_> = (0..3)
        .map(|_| tokio::spawn(Relay::new(pool.clone(), Some(streams(&conn, &prefix)), 7).run(stop.clone())))
        .collect();
    transfers(&pool, "rl", 16, 20).await;
    until("the relays publish every event", || drained(&pool)).await;
    stop.cancel();
    for r in relays {
        r.await.unwrap();
    }
    let entries = read_streams(&mut conn, &prefix).await;
    drop_streams(&mut conn, &prefix).await;
    let ids: HashSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), entries.len(), "no relay died, so no event went out twice");
    assert_eq!(as_consumer(&entries), the_log(&pool).await, "every event, each account's in order");
    assert!(entries.iter().any(|e| e.family == "transfer") && entries.iter().any(|e| e.family == "account"));
}

/// Publishes the first half of a claim, then hangs as a relay stuck on a dead peer would.
struct HalfThenHang(Arc<RedisStreams>);

impl Publisher for HalfThenHang {
    fn publish<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            self.0.publish(&events[..events.len().div_ceil(2)]).await?;
            std::future::pending().await
        })
    }
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_relay_killed_mid_batch_loses_nothing_and_orders_nothing_wrongly(pool: PgPool) {
    let (mut conn, prefix) = redis().await;
    seeded(&pool).await;
    transfers(&pool, "kill", 8, 10).await;
    let waiting = backlog(&pool).await.unwrap().0;
    let dying = Relay::new(pool.clone(), Some(Arc::new(HalfThenHang(streams(&conn, &prefix)))), 10_000);
    let killed = tokio::spawn(async move { dying.pass().await });
    let probe = conn.clone();
    let probe_prefix = prefix.clone();
    until("the dying relay publishes half its claim", move || {
        let (mut conn, prefix) = (probe.clone(), probe_prefix.clone());
        async move { !read_streams(&mut conn, &prefix).await.is_empty() }
    })
    .await;
    killed.abort();
    assert!(killed.await.unwrap_err().is_cancelled());
    let half = read_streams(&mut conn, &prefix).await.len();
    assert!(half > 0 && (half as i64) < waiting, "{half} of {waiting} went out before the kill");

    // Its claim comes back to the queue; the next relay publishes all of it again.
    // Its part is locked until the database has rolled the claim back.
    let relay = Relay::new(pool.clone(), Some(streams(&conn, &prefix)), 50);
    until("the next relay publishes the killed claim", || async {
        relay.pass().await.unwrap();
        drained(&pool).await
    })
    .await;
    let entries = read_streams(&mut conn, &prefix).await;
    drop_streams(&mut conn, &prefix).await;
    assert_eq!(entries.len() as i64, waiting + half as i64, "the killed half is repeated, nothing more");
    assert_eq!(as_consumer(&entries), the_log(&pool).await, "nothing lost, nothing out of order");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn tail_reads_the_streams_as_a_consumer_group_and_a_kept_group_resumes(pool: PgPool) {
    tail_reads_the_streams(pool, &redis_url()).await;
}

/// `events tail` over the Redis at `url`: a kept group, a pattern across families.
pub async fn tail_reads_the_streams(pool: PgPool, url: &str) {
    let (mut conn, prefix) = redis_at(url).await;
    seeded(&pool).await;
    transfers(&pool, "tail", 2, 5).await;
    let relay = Relay::new(pool.clone(), Some(streams(&conn, &prefix)), 500);
    while relay.pass().await.unwrap() > 0 {}
    let log = events::after(&pool, 0, 1_000).await.unwrap();
    let transfers: Vec<&Event> = log.iter().filter(|e| e.kind().starts_with("transfer.")).collect();
    assert!(transfers.len() > 4, "{}", transfers.len());

    let stop = CancellationToken::new();
    let group = Some(format!("g{:x}", rand::random::<u32>()));
    let mut seen = Vec::new();
    let first = Tail { types: "transfer.*".into(), from: "0".into(), group: group.clone(), count: Some(3) };
    let n = tail(conn.clone(), &prefix, &first, &stop, |e| seen.push(e.to_owned())).await.unwrap();
    assert_eq!(n, 3);
    // The same group takes up where it stopped: the rest, and no other family.
    let rest = Tail { count: Some(transfers.len() as u64 - 3), ..first };
    tail(conn.clone(), &prefix, &rest, &stop, |e| seen.push(e.to_owned())).await.unwrap();
    // Whole, each once; in the stream's order, which keeps each account's.
    let mut seen: Vec<serde_json::Value> = seen.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for e in &seen {
        let before = last.insert(e["account"].as_str().unwrap().to_owned(), e["sequence"].as_i64().unwrap());
        assert!(before < e["sequence"].as_i64(), "{e}");
    }
    let by_id = |a: &serde_json::Value, b: &serde_json::Value| a["id"].as_str().cmp(&b["id"].as_str());
    seen.sort_by(by_id);
    let mut expected: Vec<serde_json::Value> = transfers.iter().map(|e| e.envelope.clone()).collect();
    expected.sort_by(by_id);
    assert_eq!(seen, expected, "the transfer events, whole, each once");

    // A pattern across families: only the refusals.
    let refusals = log.iter().filter(|e| e.kind().ends_with(".rejected")).count() as u64;
    assert!(refusals > 0);
    let mut kinds = Vec::new();
    let any = Tail { types: "*.rejected".into(), from: "0".into(), group: None, count: Some(refusals) };
    tail(conn.clone(), &prefix, &any, &stop, |e| {
        kinds.push(serde_json::from_str::<serde_json::Value>(e).unwrap()["type"].clone())
    })
    .await
    .unwrap();
    assert!(
        kinds.len() as u64 == refusals && kinds.iter().all(|k| k.as_str().unwrap().ends_with(".rejected")),
        "{kinds:?}"
    );
    // The group made for that tail is gone; the kept one stays.
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream(&prefix, "transfer", conn.is_cluster()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    drop_streams(&mut conn, &prefix).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_movement_never_waits_for_a_relay_holding_its_part(pool: PgPool) {
    let (mut conn, prefix) = redis().await;
    seeded(&pool).await;
    let relay = Relay::new(pool.clone(), None, 500);
    while relay.pass().await.unwrap() > 0 {}
    // One payer's event waits; a relay claims its part and hangs mid-publish.
    let amount = Amount::from_minor(100).unwrap();
    transfer_p2p(&pool, "wait:1", &msisdn(2), &msisdn(2), amount).await.unwrap();
    let hanging = Relay::new(pool.clone(), Some(Arc::new(HalfThenHang(streams(&conn, &prefix)))), 500);
    let held = tokio::spawn(async move { hanging.pass().await });
    let probe = (conn.clone(), prefix.clone());
    until("the relay holds the part", move || {
        let (mut conn, prefix) = probe.clone();
        async move { !read_streams(&mut conn, &prefix).await.is_empty() }
    })
    .await;
    // The same payer moves money again: its commit writes into the held part.
    let moved = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        transfer_p2p(&pool, "wait:2", &msisdn(2), &msisdn(3), amount),
    )
    .await
    .expect("a movement does not wait for the relay's claim");
    assert!(moved.unwrap().reference().starts_with("TX"));
    held.abort();
    drop_streams(&mut conn, &prefix).await;
}
