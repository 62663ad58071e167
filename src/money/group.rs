//! Group posting: sends from concurrent hops gathered and posted by one call, in one
//! transaction, so that the commit's flush is shared by the group.
//!
//! A send waits in a queue; a gatherer takes the first one waiting, then whatever else
//! arrives within the window (up to the most a group holds), and posts them with
//! `transfer_p2p_group` while it gathers the next group. Each send keeps its own key,
//! outcome and receipts; its hop is answered only after the group's commit. A group
//! Postgres refused as a whole changed nothing, and its sends are posted alone, so one
//! send's failure is never another's. A group whose answer was lost may have committed:
//! each of its sends is reported as perhaps moved, as a lone send whose answer was lost
//! is, and its outcome is found out the same way (the promise of an SMS). Posted again
//! at once, a send checked its PIN again first and could be told of a lockout its own
//! group caused after it moved the money.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use super::MoneyError;
use super::lane::Lane;
use super::ledger::{self, Pinned, Transfer};
use super::pin::{PinPolicy, PinProof};
use crate::domain::{Amount, Msisdn};

/// How sends are gathered into groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupOptions {
    /// How long the first send of a group waits for others to join it.
    pub window: Duration,
    /// The most sends in one group.
    pub max: usize,
    /// The most groups posting at once; sends wait in the queue while they all are.
    pub in_flight: usize,
}

/// One send as the group function takes it.
pub(super) struct Send {
    pub key: String,
    pub hash: Vec<u8>,
    pub from: String,
    pub to: String,
    pub amount: i64,
    /// The payer's PIN, checked in the group's transaction; `None` when it was checked
    /// already.
    pub pin: Option<PinProof>,
    /// The hop's channel, for the event of a lockout.
    pub channel: String,
}

impl Send {
    /// The send of `amount` between `parties` under `key`, hashed as the ledger binds it
    /// to its key.
    pub fn new(
        key: &str,
        (from, to): (&Msisdn, &Msisdn),
        amount: Amount,
        pin: Option<PinProof>,
        channel: &str,
    ) -> Self {
        Send {
            key: key.to_owned(),
            hash: ledger::request_hash("p2p", &[from.as_e164(), to.as_e164()], amount),
            from: from.as_e164().to_owned(),
            to: to.as_e164().to_owned(),
            amount: amount.minor(),
            pin,
            channel: channel.to_owned(),
        }
    }
}

struct Waiting {
    send: Send,
    answer: oneshot::Sender<Result<Pinned, MoneyError>>,
}

/// Posts sends in groups. Cheap to clone; the gatherer stops when the last clone goes.
#[derive(Clone)]
pub struct Grouper {
    queue: mpsc::UnboundedSender<Waiting>,
    lane: Lane,
    policy: PinPolicy,
    tally: Arc<Tally>,
}

/// Groups posted and failed, as the metrics count them, for this gatherer alone.
#[derive(Debug, Default)]
struct Tally {
    posted: AtomicU64,
    failed: AtomicU64,
}

impl Grouper {
    /// Starts the gatherer on the current runtime.
    pub fn start(lane: Lane, options: GroupOptions, policy: PinPolicy) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        let slots = Arc::new(Semaphore::new(options.in_flight.max(1)));
        let tally = Arc::<Tally>::default();
        tokio::spawn(gather(waiting, lane.clone(), options, policy, slots, Arc::clone(&tally)));
        Grouper { queue, lane, policy, tally }
    }

    /// Groups this gatherer posted, and groups that failed as a whole (refused, or their
    /// answer lost).
    pub fn groups(&self) -> (u64, u64) {
        (self.tally.posted.load(Ordering::Relaxed), self.tally.failed.load(Ordering::Relaxed))
    }

    /// Sends `amount` from `from` to `to` under `key` with the next group, as
    /// [`ledger::transfer_p2p`] does alone.
    pub async fn transfer_p2p(
        &self,
        key: &str,
        from: &Msisdn,
        to: &Msisdn,
        amount: Amount,
    ) -> Result<Transfer, MoneyError> {
        match self.post(Send::new(key, (from, to), amount, None, "")).await? {
            Pinned::Sent(transfer) => Ok(transfer),
            other => Err(MoneyError::Database(sqlx::Error::Protocol(format!(
                "a send without a PIN to check answered {other:?}"
            )))),
        }
    }

    /// Posts `send` with the next group; answers once that group committed.
    pub(super) async fn post(&self, send: Send) -> Result<Pinned, MoneyError> {
        let (answer, answered) = oneshot::channel();
        if let Err(back) = self.queue.send(Waiting { send, answer }) {
            // The gatherer is gone (the runtime is shutting down): alone, then.
            return alone(&self.lane, &back.0.send, self.policy).await.map_err(MoneyError::from);
        }
        answered.await.unwrap_or_else(|_| {
            Err(MoneyError::Unsettled(sqlx::Error::Protocol(
                "the group posting this send was dropped".into(),
            )))
        })
    }
}

async fn gather(
    mut waiting: mpsc::UnboundedReceiver<Waiting>,
    lane: Lane,
    options: GroupOptions,
    policy: PinPolicy,
    slots: Arc<Semaphore>,
    tally: Arc<Tally>,
) {
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let Some(first) = waiting.recv().await else { return };
        let mut group = vec![first];
        let until = Instant::now() + options.window;
        while group.len() < options.max {
            match waiting.try_recv() {
                Ok(next) => group.push(next),
                Err(_) if options.window.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(until, waiting.recv()).await {
                    Ok(Some(next)) => group.push(next),
                    Ok(None) | Err(_) => break,
                },
            }
        }
        tokio::spawn(post_group(lane.clone(), group, policy, Arc::clone(&tally), slot));
    }
}

async fn post_group(
    lane: Lane,
    group: Vec<Waiting>,
    policy: PinPolicy,
    tally: Arc<Tally>,
    _slot: OwnedSemaphorePermit,
) {
    let sends: Vec<&Send> = group.iter().map(|w| &w.send).collect();
    metrics::counter!("ussd_send_group_sends_total").increment(sends.len() as u64);
    let failed = match ledger::transfer_p2p_group(&lane, &sends, policy).await {
        Ok(answers) => {
            metrics::counter!("ussd_send_groups_total", "result" => "posted").increment(1);
            tally.posted.fetch_add(1, Ordering::Relaxed);
            for (waiting, answer) in group.into_iter().zip(answers) {
                // A hop that stopped waiting (its deadline passed) has its answer in the
                // ledger: the replay of its key finds it.
                let _ = waiting.answer.send(Ok(answer));
            }
            return;
        }
        Err(e) => e,
    };
    tally.failed.fetch_add(1, Ordering::Relaxed);
    let failed = MoneyError::Database(failed);
    if failed.may_have_moved() {
        metrics::counter!("ussd_send_groups_total", "result" => "lost").increment(1);
        tracing::warn!(error = %failed, sends = group.len(), "a group of sends lost its answer; each may have moved");
        for waiting in group {
            let lost =
                sqlx::Error::Protocol(format!("the answer of the group this send was in was lost: {failed}"));
            let _ = waiting.answer.send(Err(MoneyError::Unsettled(lost)));
        }
        return;
    }
    // Postgres refused the group, or no connection could be had: nothing of it moved.
    metrics::counter!("ussd_send_groups_total", "result" => "failed").increment(1);
    tracing::warn!(error = %failed, sends = group.len(), "a group of sends failed; posting them one by one");
    let alone_each = group.into_iter().map(|waiting| {
        let lane = lane.clone();
        async move {
            let answer = alone(&lane, &waiting.send, policy).await.map_err(MoneyError::Database);
            let _ = waiting.answer.send(answer);
        }
    });
    // A few at a time, so that a failed group does not take every connection hops wait on.
    futures_util::stream::iter(alone_each).buffer_unordered(ALONE_AT_ONCE).collect::<()>().await;
}

/// How many sends of a failed group are posted at once.
const ALONE_AT_ONCE: usize = 4;

/// `send` posted by itself, as it would be without groups.
async fn alone(lane: &Lane, send: &Send, policy: PinPolicy) -> Result<Pinned, sqlx::Error> {
    ledger::transfer_p2p_one(lane, send, policy).await
}
