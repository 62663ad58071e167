//! What a subscriber is told when a movement's outcome is unknown: an SMS is promised
//! only once the promise is written down; the process that runs the op keeps it as
//! soon as the op ends, and any replica's sweeper keeps it otherwise.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{Gateway, HopKind, SAVE_MARGIN, op_key};
use crate::channel::Hop;
use crate::menu::Message;
use crate::money::{Money, MoneyError, Promise};
use crate::ops::Op;
use crate::outcome::OpResult;
use crate::session::SessionKey;

/// Time kept back from a money op's budget to write its promise if it overruns.
pub(super) const PROMISE_MARGIN: Duration = Duration::from_millis(250);

/// How long the process running an op that overran has to keep its promise before any
/// sweeper does (it keeps it itself the moment the op ends).
pub(super) const LEFT_TO_RUNNER: Duration = Duration::from_secs(30);

/// How long a claimant still at its op has before a sweeper keeps a promise made by a
/// hop that found its claim.
pub(super) const LEFT_TO_CLAIMANT: Duration = Duration::from_secs(5);

/// How long before a sweeper looks up an op that failed with its outcome unknown: time
/// for a statement still running on the server to finish.
pub(super) const LEFT_TO_SERVER: Duration = Duration::from_secs(2);

/// A money op whose outcome this hop could not learn.
pub(super) struct Unknown {
    pub op: Op,
    /// The journey's op counter: the op's idempotency key ends with it.
    pub seq: u32,
    /// For a decision on a hold: the transfer it decides.
    pub request: Option<i64>,
    /// The op still running: its task, so that its end keeps the promise at once.
    pub running: Option<JoinHandle<Result<OpResult, MoneyError>>>,
    /// How long before any sweeper keeps the promise.
    pub due_in: Duration,
}

impl Gateway {
    /// Promises the dialler an SMS about `unknown`, writing the promise down before the
    /// hop answers (retrying until the deadline): "processing" once it is written,
    /// "cannot confirm" when it could not be — never a promise nobody keeps.
    pub(super) async fn promise_on(
        &self,
        hop: &Hop,
        key: &SessionKey,
        language: &str,
        unknown: Unknown,
        deadline: Instant,
    ) -> (Message, HopKind) {
        let op_key = op_key(key, unknown.seq);
        let until = deadline.checked_sub(SAVE_MARGIN).unwrap_or(deadline);
        // Only a movement is ever unknown; an op that moves nothing has no promise to make.
        let written = match unknown.op.spec().movement {
            Some(movement) => {
                let promise = Promise {
                    op: unknown.op.name(),
                    movement,
                    op_key: &op_key,
                    request: unknown.request,
                    msisdn: &hop.msisdn,
                    language,
                    due_in: unknown.due_in,
                };
                write(self.ops.money(), &promise, until).await
            }
            None => false,
        };
        if !written {
            warn!(op = unknown.op.name(), channel = %hop.channel, session = %hop.session_id, "a movement's outcome is unknown and no SMS could be promised; the subscriber is told to check their balance");
            metrics::counter!("ussd_ops_unconfirmed_total", "op" => unknown.op.name()).increment(1);
            return (Message::Unconfirmed, HopKind::Failed);
        }
        metrics::counter!("ussd_promises_total", "op" => unknown.op.name()).increment(1);
        if let Some(task) = unknown.running {
            self.tasks.spawn(keep_when_done(self.ops.money().clone(), task, op_key));
        }
        (Message::Processing, HopKind::Promised)
    }
}

/// Writes `promise`, trying again while the database does not answer, until `until`.
async fn write(money: &Money, promise: &Promise<'_>, until: Instant) -> bool {
    let pause = Duration::from_millis(100);
    loop {
        match tokio::time::timeout_at(until, money.promise(promise)).await {
            Ok(Ok(())) => return true,
            Ok(Err(e)) if Instant::now() + pause < until => {
                debug!(error = %e, "could not write a promise yet");
                tokio::time::sleep(pause).await;
            }
            _ => return false,
        }
    }
}

/// Waits for an op that overran its hop and keeps its promise: a refusal the op
/// reports names its reason; whatever else happened is looked up by its key.
async fn keep_when_done(money: Money, task: JoinHandle<Result<OpResult, MoneyError>>, op_key: String) {
    let hint = match task.await {
        Ok(Ok(result)) => Some(result.outcome),
        _ => None,
    };
    if let Err(e) = money.keep_promise(&op_key, hint).await {
        debug!(error = %e, "an overran op's promise is left to the sweeper");
    }
}
