//! The relay's settings — how long each stream may grow, how many events one claim
//! takes — checked here, where they are used.

use crate::problems::Problems;

/// The relay's settings, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventsSpec {
    /// EVENT_STREAM_MAXLEN: about how many events each stream keeps (`XADD MAXLEN ~`).
    pub stream_max_len: u64,
    /// EVENT_RELAY_BATCH: the most events one claim publishes.
    pub batch: u32,
}

impl Default for EventsSpec {
    fn default() -> Self {
        EventsSpec { stream_max_len: 1_000_000, batch: 500 }
    }
}

/// Checks the relay's settings.
pub fn validate(stream_max_len: u64, batch: u32, problems: &mut Problems) -> EventsSpec {
    if stream_max_len < 1_000 {
        problems.push(format!(
            "EVENT_STREAM_MAXLEN must be at least 1000 (got {stream_max_len}): a stream is the buffer consumers catch up from"
        ));
    }
    if !(1..=10_000).contains(&batch) {
        problems.push(format!("EVENT_RELAY_BATCH must be between 1 and 10000 (got {batch})"));
    }
    EventsSpec { stream_max_len, batch }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_and_nonsense_is_named() {
        let mut problems = Problems::new();
        let d = EventsSpec::default();
        assert_eq!(validate(d.stream_max_len, d.batch, &mut problems), d);
        assert!(problems.is_empty());
        validate(10, 0, &mut problems);
        let said = problems.into_vec().join("\n");
        assert!(said.contains("EVENT_STREAM_MAXLEN") && said.contains("EVENT_RELAY_BATCH"), "{said}");
    }
}
