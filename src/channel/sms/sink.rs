//! The `--demo` provider: keeps the latest messages in memory for `GET /demo/sms` and
//! logs each one, so a person can read the receipts a demo produces.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{Accepted, Message};
use crate::domain::msisdn_mask as mask;

/// How many messages the sink remembers.
const KEEP: usize = 200;

/// One message as the sink shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SinkMessage {
    pub id: String,
    pub to: String,
    pub text: String,
    pub segments: usize,
    pub encoding: &'static str,
    /// Seconds since the Unix epoch.
    pub at: u64,
}

#[derive(Clone, Default)]
pub struct Sink {
    inner: Arc<Mutex<Inner>>,
    /// Woken by every message, for whoever waits on one (`arrived`).
    arrivals: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    latest: VecDeque<SinkMessage>,
}

impl Sink {
    pub fn new() -> Self {
        Sink::default()
    }

    pub(super) fn push(&self, m: &Message<'_>) -> Accepted {
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.next += 1;
        let id = format!("sink-{}", inner.next);
        let encoding = match m.segments.encoding {
            crate::gsm::Encoding::Gsm7 => "gsm7",
            crate::gsm::Encoding::Ucs2 => "ucs2",
        };
        // The demo's point is to read the receipt; numbers stay masked as in every log,
        // the recipient's and those inside the text (a counterparty's), and a one-time
        // code is read at /demo/sms, never in the log.
        let text = if m.secret {
            "(a one-time code: see /demo/sms)".into()
        } else {
            numbers().replace_all(m.text, |n: &regex::Captures<'_>| mask(&n[0]))
        };
        tracing::info!(to = %mask(m.to), segments = m.segments.count(), %text, "SMS (demo sink)");
        let at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        inner.latest.push_front(SinkMessage {
            id: id.clone(),
            to: m.to.to_owned(),
            text: m.text.to_owned(),
            segments: m.segments.count(),
            encoding,
            at,
        });
        inner.latest.truncate(KEEP);
        drop(inner);
        self.arrivals.notify_waiters();
        Accepted { message_id: Some(id) }
    }

    /// The latest messages, newest first; only those to `to` when given.
    pub fn latest(&self, to: Option<&str>) -> Vec<SinkMessage> {
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.latest.iter().filter(|m| to.is_none_or(|to| m.to == to)).cloned().collect()
    }

    /// The latest messages to `to`, once there is at least one: waits for it.
    pub async fn arrived(&self, to: Option<&str>) -> Vec<SinkMessage> {
        loop {
            // Registered before looking, so that a message between the look and the
            // wait is not missed.
            let next = self.arrivals.notified();
            tokio::pin!(next);
            next.as_mut().enable();
            let found = self.latest(to);
            if !found.is_empty() {
                return found;
            }
            next.await;
        }
    }
}

/// Phone numbers as receipts write them (`+254712345678`, `0712345678`).
fn numbers() -> &'static regex::Regex {
    static NUMBERS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    NUMBERS.get_or_init(|| regex::Regex::new(r"\+?\d{9,15}").expect("a valid pattern"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_inside_a_logged_text_are_masked() {
        let text =
            "TX0000002F Confirmed. KES 5.00 sent to Brian Kamau +254700000002 on 05/12/26. Call 0712345678.";
        let logged = super::numbers().replace_all(text, |n: &regex::Captures<'_>| super::mask(&n[0]));
        assert_eq!(
            logged,
            "TX0000002F Confirmed. KES 5.00 sent to Brian Kamau +254700***002 on 05/12/26. Call 071***."
        );
    }
}
