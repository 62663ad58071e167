//! Events on Redis Streams: one stream per family (`<prefix>events:transfer`, …; on a
//! Cluster `<prefix>{events}:transfer`),
//! each entry carrying the event id, type, account and sequence as fields beside the
//! envelope, trimmed to about `EVENT_STREAM_MAXLEN` entries.

use super::{Event, PublishError, Publisher, family};
pub use crate::redis_link::{RedisLink, connect};
use futures_util::future::BoxFuture;

/// Publishes to Redis Streams over a connection of its own, so that a large batch
/// never queues in front of a hop's session read.
#[derive(Clone)]
pub struct RedisStreams {
    conn: RedisLink,
    prefix: String,
    max_len: u64,
}

/// The stream a family's events go to. On a Cluster every stream shares the hash tag
/// `{events}`, so that one read covers them all (`XREADGROUP` takes one slot only).
pub fn stream(prefix: &str, family: &str, cluster: bool) -> String {
    if cluster { format!("{prefix}{{events}}:{family}") } else { format!("{prefix}events:{family}") }
}

impl RedisStreams {
    pub fn new(conn: RedisLink, prefix: &str, max_len: u64) -> Self {
        RedisStreams { conn, prefix: prefix.to_owned(), max_len }
    }
}

impl Publisher for RedisStreams {
    fn publish<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            for event in events {
                pipe.cmd("XADD")
                    .arg(stream(&self.prefix, family(event.kind()), self.conn.is_cluster()))
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(self.max_len)
                    .arg("*")
                    .arg("id")
                    .arg(event.id())
                    .arg("type")
                    .arg(event.kind())
                    .arg("account")
                    .arg(event.account())
                    .arg("sequence")
                    .arg(event.sequence())
                    .arg("event")
                    .arg(event.envelope.to_string())
                    .ignore();
            }
            let mut conn = self.conn.clone();
            pipe.query_async::<()>(&mut conn).await.map_err(|e| PublishError(e.to_string()))
        })
    }
}
