//! Events on NATS JetStream: one subject per family (`ussd.events.transfer`, …) in one
//! stream, each message's `Nats-Msg-Id` the event id, so that the server drops a batch
//! published again after a relay died (within the stream's duplicate window), and
//! headers naming the type, account and sequence beside the envelope.

use std::time::Duration;

use async_nats::jetstream::{self, Context, stream};
use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};

use super::{Event, PublishError, Publisher, family};

/// How long a published batch may be repeated and still be dropped by the server: a
/// relay that dies holds its claim at most a minute (its idle timeout), then the next
/// one publishes the claim again.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Publishes to a JetStream stream over a connection of its own.
#[derive(Clone)]
pub struct JetStream {
    context: Context,
    subjects: String,
}

/// The subject a family's events go to.
pub fn subject(subjects: &str, family: &str) -> String {
    format!("{subjects}.{family}")
}

/// Where and what: the server (its URL may hold credentials), the stream and the
/// subjects' prefix.
#[derive(Clone, Debug)]
pub struct NatsTarget {
    pub url: SecretString,
    pub stream: String,
    pub subjects: String,
    /// About how many events the stream keeps of each family (the oldest go first).
    pub max_len: u64,
}

impl JetStream {
    /// Connects, and makes the stream for `target.subjects.>` unless it is there (an
    /// operator's own, configured as they like, is used as it is, if it takes the
    /// subjects).
    pub async fn connect(target: &NatsTarget) -> Result<JetStream, PublishError> {
        let client = async_nats::ConnectOptions::new()
            .name("ussd-gateway relay")
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(10)))
            .connect(target.url.expose_secret())
            .await
            .map_err(|e| PublishError(e.to_string()))?;
        let context = jetstream::new(client);
        let config = stream::Config {
            name: target.stream.clone(),
            subjects: vec![format!("{}.>", target.subjects)],
            max_messages_per_subject: i64::try_from(target.max_len).unwrap_or(i64::MAX),
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        let made = context.get_or_create_stream(config).await.map_err(|e| PublishError(e.to_string()))?;
        let taken = &made.cached_info().config.subjects;
        if !taken.iter().any(|s| covers(s, &target.subjects)) {
            return Err(PublishError(format!(
                "the stream {} takes {taken:?}, not {}.>: add that subject to it, or set NATS_STREAM or NATS_SUBJECTS to match",
                target.stream, target.subjects
            )));
        }
        Ok(JetStream { context, subjects: target.subjects.clone() })
    }

    /// The connection's JetStream, for a consumer in the same process (tests).
    pub fn context(&self) -> &Context {
        &self.context
    }
}

/// Whether a stream taking `subject` (a NATS subject, maybe with wildcards) takes every
/// subject under `prefix`.
fn covers(subject: &str, prefix: &str) -> bool {
    let mut wanted = prefix.split('.');
    for token in subject.split('.') {
        match (token, wanted.next()) {
            (">", _) => return true,
            ("*", Some(_)) => {}
            (token, Some(want)) if token == want => {}
            _ => return false,
        }
    }
    false
}

impl Publisher for JetStream {
    /// Sends the whole batch before waiting for the acknowledgements, in order on one
    /// connection, so one account's events are stored in their order. A batch that
    /// fails partway may have stored later events than one that failed; published again,
    /// the earlier one lands after them (and the repeats are dropped), so consumers
    /// order an account's events by their sequence.
    fn publish<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            let failed = |e: &dyn std::fmt::Display| PublishError(format!("NATS: {e}"));
            let mut acks = Vec::with_capacity(events.len());
            for event in events {
                let message = jetstream::message::PublishMessage::build()
                    .message_id(event.id())
                    .header("Ussd-Type", event.kind())
                    .header("Ussd-Account", event.account())
                    .header("Ussd-Sequence", event.sequence().to_string().as_str())
                    .payload(event.envelope.to_string().into());
                let subject = subject(&self.subjects, family(event.kind()));
                acks.push(self.context.send_publish(subject, message).await.map_err(|e| failed(&e))?);
            }
            for ack in acks {
                ack.await.map_err(|e| failed(&e))?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn a_stream_takes_the_prefix_only_when_its_subject_covers_every_family() {
        for subject in ["ussd.events.>", "ussd.>", ">", "ussd.*.>", "*.events.>"] {
            assert!(covers(subject, "ussd.events"), "{subject}");
        }
        for subject in ["ussd.events", "ussd.events.*", "other.>", "ussd.events.transfer", "ussd.other.>"] {
            assert!(!covers(subject, "ussd.events"), "{subject}");
        }
    }
}
