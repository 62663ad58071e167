//! A circuit breaker for a remote party (an SMS provider, a biller): after a run of
//! failures callers stop calling it for a while, then one call goes through to see
//! whether it is back.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial message is out; the rest wait for its answer.
    Trial,
}

/// How long the others wait while a trial message is out.
const TRIAL_WAIT: Duration = Duration::from_secs(1);

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker { threshold: threshold.max(1), cooldown, state: Mutex::new(State::Closed { failures: 0 }) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a message may go to the provider now; if not, when to try again.
    pub fn permit(&self, now: Instant) -> Result<(), Instant> {
        let mut state = self.state();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now >= until => {
                *state = State::Trial;
                Ok(())
            }
            State::Open { until } => Err(until),
            State::Trial => Err(now + TRIAL_WAIT.min(self.cooldown)),
        }
    }

    /// Whether the breaker would refuse a message now (without starting a trial).
    pub fn is_open(&self, now: Instant) -> bool {
        match *self.state() {
            State::Closed { .. } => false,
            State::Open { until } => now < until,
            State::Trial => true,
        }
    }

    /// The provider answered (a refusal of one message included): it is up.
    pub fn succeeded(&self) {
        *self.state() = State::Closed { failures: 0 };
    }

    /// The provider failed in a way that another try might not.
    pub fn failed(&self, now: Instant) {
        let mut state = self.state();
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.threshold => {
                State::Closed { failures: failures + 1 }
            }
            State::Open { until } => State::Open { until },
            _ => State::Open { until: now + self.cooldown },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_then_lets_one_trial_through() {
        let b = Breaker::new(3, Duration::from_secs(30));
        let t0 = Instant::now();
        b.failed(t0);
        b.failed(t0);
        assert_eq!(b.permit(t0), Ok(()), "two failures of three keep it closed");
        b.failed(t0);
        assert!(b.is_open(t0));
        assert_eq!(b.permit(t0 + Duration::from_secs(29)), Err(t0 + Duration::from_secs(30)));
        let later = t0 + Duration::from_secs(30);
        assert_eq!(b.permit(later), Ok(()), "the trial");
        assert!(b.permit(later).is_err(), "only one trial at a time");
        b.failed(later);
        assert_eq!(b.permit(later), Err(later + Duration::from_secs(30)), "a failed trial reopens it");
        let again = later + Duration::from_secs(30);
        assert_eq!(b.permit(again), Ok(()));
        b.succeeded();
        assert!(!b.is_open(again));
        assert_eq!(b.permit(again), Ok(()));
        assert_eq!(b.permit(again), Ok(()), "closed: everyone goes");
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new(2, Duration::from_secs(5));
        let t = Instant::now();
        b.failed(t);
        b.succeeded();
        b.failed(t);
        assert!(!b.is_open(t));
        b.failed(t);
        assert!(b.is_open(t));
    }
}
