//! The relay every replica runs: claims a part of the waiting events (one relay per
//! part at a time, so one account's events leave in order), publishes them, and only
//! then lets them stop waiting, handing each to the webhooks that want it. A relay that
//! dies mid-batch has published some of its claim at most; the next relay publishes all
//! of it again, never out of order.

use std::sync::Arc;
use std::time::Duration;

use metrics::counter;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Publisher, family};
use crate::money::events;

/// How often an idle relay looks for waiting events: an event is on the stream about
/// this long after its commit, at worst.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// How long a relay waits after a failure before it tries again.
const AFTER_FAILURE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("the event log cannot be read: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Publish(#[from] super::PublishError),
}

/// Publishes the event log. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    /// Where events go beside the webhooks; none without a Redis (or another stream).
    publisher: Option<Arc<dyn Publisher>>,
    batch: i64,
}

impl Relay {
    pub fn new(pool: PgPool, publisher: Option<Arc<dyn Publisher>>, batch: u32) -> Self {
        Relay { pool, publisher, batch: i64::from(batch) }
    }

    /// Publishes one claim; how many events went out (0: none was waiting that no
    /// other relay holds).
    pub async fn pass(&self) -> Result<usize, RelayError> {
        let Some(claim) = events::claim(&self.pool, self.batch).await? else {
            return Ok(0);
        };
        if let Some(publisher) = &self.publisher {
            publisher.publish(&claim.events).await?;
            for event in &claim.events {
                counter!("ussd_events_published_total", "family" => family(event.kind()).to_owned())
                    .increment(1);
            }
        }
        let published = claim.events.len();
        claim.published().await?;
        Ok(published)
    }

    /// Publishes until `stop` is cancelled; a claim under way is finished first, so a
    /// clean stop publishes nothing twice.
    pub async fn run(self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let rest = match self.pass().await {
                Ok(0) => IDLE_POLL,
                Ok(_) => continue,
                Err(e) => {
                    counter!("ussd_events_relay_failures_total").increment(1);
                    warn!(error = %e, "the event relay failed; the events wait and it tries again");
                    AFTER_FAILURE
                }
            };
            let _ = stop.run_until_cancelled(tokio::time::sleep(rest)).await;
        }
    }
}
