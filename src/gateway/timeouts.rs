//! Where sessions were left: screens that timed out (swept from what this process
//! answered), sessions an aggregator says were closed, counted per screen.

use std::collections::HashMap;
use std::sync::Arc;

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
    /// as of `now` (`ussd_screen_timeouts_total`), and forgets them. A session written
    /// since by another process (answered, taken over, claimed) is left to that process.
    /// Returns how many timed out.
    ///
    /// A burst of abandoned sessions falls due at once (100,000 after a flood): they are
    /// taken a batch at a time, since every hop's reply takes the same lock; only their
    /// versions are read back; and each screen's count is added once.
    pub async fn sweep_timeouts(&self, now: Instant) -> usize {
        let mut counts: HashMap<(Arc<str>, Arc<str>), u64> = HashMap::new();
        let mut timed_out = 0;
        loop {
            let batch = self.waiting().due(now, self.config.session_ttl, SWEEP_BATCH);
            let keys: Vec<&SessionKey> = batch.iter().map(|(key, _)| key).collect();
            // The store is down: count nothing rather than guess.
            if let Ok(stored) = self.store.versions(&keys).await {
                for ((_, wait), stored) in batch.iter().zip(stored) {
                    let answered_elsewhere = stored.is_some_and(|version| version != wait.version);
                    if !answered_elsewhere {
                        timed_out += 1;
                        *counts.entry((Arc::clone(&wait.menu), Arc::clone(&wait.screen))).or_default() += 1;
                    }
                }
            }
            if batch.len() < SWEEP_BATCH {
                break;
            }
        }
        for ((menu, screen), n) in counts {
            metrics::counter!("ussd_screen_timeouts_total", "menu" => menu.to_string(), "screen" => screen.to_string())
                .increment(n);
        }
        metrics::gauge!("ussd_sessions_waiting").set(self.waiting().len() as f64);
        timed_out
    }

    /// Notes where a session waits after a reply of this process (written as `version`),
    /// or that it ended.
    pub(super) fn track(&self, key: &SessionKey, session: &Session, version: u64, ended: bool) {
        let mut waiting = self.waiting();
        if ended {
            waiting.ended(key);
        } else if !waiting.answered(key, &session.service, &session.journey.screen, version, Instant::now()) {
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
