//! The relay's NATS JetStream publisher against the real server (JetStream on
//! 127.0.0.1:4222, or NATS_URL): every event reaches its family's subject once, each
//! account's in order, while relays share the work; a batch published again is dropped
//! by the server (`Nats-Msg-Id`); a NATS that is not there is said so at once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_nats::jetstream::stream::Stream;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use ussd_gateway::domain::Amount;
use ussd_gateway::events::nats::{JetStream, NatsTarget, subject};
use ussd_gateway::events::{Publisher, Relay, family};
use ussd_gateway::money::events::{self, backlog};
use ussd_gateway::money::{PinHasher, seed_demo, transfer_p2p};

use crate::common::sms::msisdn;
use crate::common::{nats_url, until};

/// A stream and subjects no other test uses.
fn target() -> NatsTarget {
    let tag = format!("{:012x}", rand::random::<u64>() >> 16);
    NatsTarget {
        url: nats_url().into(),
        stream: format!("TEST_{tag}"),
        subjects: format!("test.{tag}.events"),
        max_len: 100_000,
    }
}

/// What the stream holds, in its order: (subject, Nats-Msg-Id, envelope).
async fn stored(stream: &mut Stream) -> Vec<(String, String, serde_json::Value)> {
    let count = stream.info().await.unwrap().state.messages;
    let mut messages = Vec::new();
    for sequence in 1..=count {
        let m = stream.get_raw_message(sequence).await.unwrap();
        let id = m.headers.get("Nats-Msg-Id").expect("every message names its event").as_str().to_owned();
        messages.push((m.subject.to_string(), id, serde_json::from_slice(&m.payload).unwrap()));
    }
    messages
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn jetstream_gets_every_event_once_each_accounts_in_order(pool: PgPool) {
    seed_demo(&pool, &PinHasher::new(b"pepper"), "KES", 10).await.unwrap();
    let target = target();
    let jetstream = Arc::new(
        JetStream::connect(&target)
            .await
            .expect("these tests need NATS with JetStream on 127.0.0.1:4222 (or NATS_URL): nats-server -js"),
    );
    // Two relays share the parts while eight senders move money.
    let stop = CancellationToken::new();
    let relays: Vec<_> = (0..2)
        .map(|_| tokio::spawn(Relay::new(pool.clone(), Some(jetstream.clone()), 7).run(stop.clone())))
        .collect();
    let senders: Vec<_> = (1..=8u32)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let (from, to) = ((task + i) % 10 + 1, (task + 3 * i + 1) % 10 + 1);
                    let amount = Amount::from_minor(i64::from(100 + i)).unwrap();
                    transfer_p2p(&pool, &format!("nats:{task}:{i}"), &msisdn(from), &msisdn(to), amount)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    until("the relays publish every event", || async { backlog(&pool).await.unwrap().0 == 0 }).await;
    stop.cancel();
    for r in relays {
        r.await.unwrap();
    }
    // A relay that died after publishing publishes its claim again: the server drops it.
    let log = events::after(&pool, 0, 1_000_000).await.unwrap();
    jetstream.publish(&log).await.unwrap();

    let mut stream = jetstream.context().get_stream(&target.stream).await.unwrap();
    let messages = stored(&mut stream).await;
    assert_eq!(messages.len(), log.len(), "each event once, the repeat dropped");
    let ids: HashSet<&str> = messages.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(ids, log.iter().map(|e| e.id()).collect::<HashSet<_>>());
    // One stream holds every family: an account's events are in their order across it.
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for (on, id, envelope) in &messages {
        assert_eq!(envelope["id"], id.as_str());
        let kind = envelope["type"].as_str().unwrap();
        assert_eq!(on, &subject(&target.subjects, family(kind)), "on its family's subject");
        let (account, sequence) =
            (envelope["account"].as_str().unwrap(), envelope["sequence"].as_i64().unwrap());
        let before = last.insert(account.to_owned(), sequence);
        assert!(before.is_none_or(|b| b < sequence), "{account}'s {sequence} after {before:?} on {on}");
    }
    jetstream.context().delete_stream(&target.stream).await.unwrap();
}

#[tokio::test]
async fn a_nats_that_is_not_there_is_said_so() {
    let target = NatsTarget { url: "nats://127.0.0.1:1".into(), ..target() };
    let failed = tokio::time::timeout(std::time::Duration::from_secs(10), JetStream::connect(&target))
        .await
        .expect("the connection gives up, it does not hang");
    assert!(failed.is_err());
}

#[tokio::test]
async fn a_stream_of_an_operators_that_does_not_take_the_subjects_is_refused() {
    let target = target();
    let client = async_nats::connect(nats_url()).await.unwrap();
    let context = async_nats::jetstream::new(client);
    let config = async_nats::jetstream::stream::Config {
        name: target.stream.clone(),
        subjects: vec![format!("{}.elsewhere.>", target.subjects)],
        ..Default::default()
    };
    context.create_stream(config).await.unwrap();
    let refused = JetStream::connect(&target).await.err().expect("refused at start, not at every publish");
    assert!(refused.to_string().contains("add that subject"), "{refused}");
    context.delete_stream(&target.stream).await.unwrap();
}
