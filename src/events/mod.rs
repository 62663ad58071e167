//! The event log leaves the database: the relay publishes waiting events through a
//! [`Publisher`] (Redis Streams, one stream per family; NATS JetStream, one subject per
//! family) and hands them to partners' webhooks; the anomaly detector and `events tail`
//! read the Redis streams as consumer groups do.

pub mod anomalies;
pub mod nats;
pub mod redis;
pub mod relay;
pub mod settings;
pub mod tail;
pub mod webhooks;

use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use crate::money::events::Event;
pub use relay::Relay;
pub use settings::EventsSpec;

/// The families events are published under, one stream each: an event's type up to
/// its first dot (`transfer.posted` → `transfer`).
pub const FAMILIES: &[&str] = &[
    "transfer", "cash_in", "cash_out", "float", "bill", "hold", "account", "customer", "agent", "anomaly",
    "pin", "otp", "biller", "merchant",
];

/// The family of an event type.
pub fn family(kind: &str) -> &str {
    kind.split_once('.').map_or(kind, |(family, _)| family)
}

/// Where the relay puts events. A batch is published in order; on an error some of
/// it may have gone out, and all of it is published again later (consumers drop
/// repeats by event id, or by account and sequence).
pub trait Publisher: Send + Sync {
    fn publish<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), PublishError>>;
}

#[derive(Debug, thiserror::Error)]
#[error("cannot publish events: {0}")]
pub struct PublishError(pub String);

/// Several publishers, each handed every batch in turn: the claim waits until all took
/// it, so one that fails gets the batch again (and those before it a repeat).
pub struct Fanout(pub Vec<Arc<dyn Publisher>>);

impl Publisher for Fanout {
    fn publish<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            for publisher in &self.0 {
                publisher.publish(events).await?;
            }
            Ok(())
        })
    }
}
