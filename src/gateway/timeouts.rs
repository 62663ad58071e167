//! Where sessions were left: screens that timed out (swept from what this process
//! answered), sessions an aggregator says were closed, counted per screen.

use tokio::time::Instant;
use tracing::warn;

use super::Gateway;
use super::waiting::Waiting;
use crate::channel::Closed;
use crate::session::{Loaded, Session, SessionKey};

/// Due sessions the timeout sweep reads back from the store in one round trip.
const SWEEP_BATCH: usize = 500;

impl Gateway {
    /// Counts, per screen, the sessions left waiting for longer than the session lifetime
    /// as of `now` (`ussd_screen_timeouts_total`), and forgets them. A session another
    /// process answered since is left to that process. Returns how many timed out.
    pub async fn sweep_timeouts(&self, now: Instant) -> usize {
        let due = {
            let mut waiting = self.waiting();
            let due = waiting.due(now, self.config.session_ttl);
            metrics::gauge!("ussd_sessions_waiting").set(waiting.len() as f64);
            due
        };
        let mut timed_out = 0;
        for batch in due.chunks(SWEEP_BATCH) {
            let keys: Vec<&SessionKey> = batch.iter().map(|(key, _)| key).collect();
            // The store is down, or a record unreadable: count nothing rather than guess.
            let Ok(stored) = self.store.load_many(&keys).await else { continue };
            for ((_, wait), stored) in batch.iter().zip(stored) {
                let answered_elsewhere = stored.is_some_and(|l| l.session.hops != wait.hops);
                if !answered_elsewhere {
                    timed_out += 1;
                    metrics::counter!(
                        "ussd_screen_timeouts_total",
                        "menu" => wait.menu.to_string(),
                        "screen" => wait.screen.to_string()
                    )
                    .increment(1);
                }
            }
        }
        timed_out
    }

    /// Notes where a session waits after a reply of this process, or that it ended.
    pub(super) fn track(&self, key: &SessionKey, session: &Session, ended: bool) {
        let mut waiting = self.waiting();
        if ended {
            waiting.ended(key);
        } else if !waiting.answered(
            key,
            &session.service,
            &session.journey.screen,
            session.hops,
            Instant::now(),
        ) {
            metrics::counter!("ussd_screen_untracked_total").increment(1);
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An aggregator's notice that a session is over: counted as an abort or a timeout
    /// on the screen it was left on. The record stays, so a resumable journey can still
    /// be offered back on the next dial.
    pub async fn close(&self, closed: &Closed) {
        let key = SessionKey::new(&closed.channel, closed.msisdn.as_e164(), &closed.session_id);
        // The notice replaces this process's own timeout count for the session.
        self.waiting().ended(&key);
        let session = match self.store.load(&key).await {
            Ok(Some(Loaded { session, .. })) => session,
            Ok(None) => return,
            Err(e) => {
                warn!(channel = %closed.channel, error = %e, "could not read a closed session");
                return;
            }
        };
        if session.journey.done || session.reply.as_ref().is_some_and(|r| r.end) {
            return;
        }
        crate::telemetry::record_close(&session.service, &session.journey.screen, closed.reason.as_str());
    }
}
