//! The sessions this process last answered with a screen that waits for input, kept to
//! count those nobody answers within the session lifetime (the timeout funnel).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::session::SessionKey;

/// Waiting sessions one process keeps track of. Past this many the funnel counts new
/// ones as untracked instead of growing the process without bound: a run of abandoned
/// sessions (a load test, a flood) would otherwise hold memory for a session lifetime.
pub const MOST_TRACKED: usize = 100_000;

/// A session left on a screen after this process's reply.
#[derive(Debug)]
pub struct Wait {
    pub menu: Arc<str>,
    pub screen: Arc<str>,
    /// The session's version after that reply: another in the store means it was
    /// written since (another process answered it, took it over or claimed it), and
    /// is no longer this process's to count.
    pub version: u64,
    pub at: Instant,
}

pub struct Waiting {
    sessions: HashMap<SessionKey, Wait>,
    /// Menu and screen names, one copy however many sessions wait on them.
    names: HashSet<Arc<str>>,
    most: usize,
}

impl Default for Waiting {
    fn default() -> Self {
        Waiting::with_most(MOST_TRACKED)
    }
}

impl Waiting {
    pub fn with_most(most: usize) -> Self {
        Waiting { sessions: HashMap::new(), names: HashSet::new(), most }
    }

    /// Notes that `key` now waits on `screen`; false when it is not tracked because as
    /// many sessions as may be already are.
    pub fn answered(
        &mut self,
        key: &SessionKey,
        menu: &str,
        screen: &str,
        version: u64,
        at: Instant,
    ) -> bool {
        let wait = Wait { menu: self.name(menu), screen: self.name(screen), version, at };
        if let Some(slot) = self.sessions.get_mut(key) {
            *slot = wait;
        } else if self.sessions.len() < self.most {
            self.sessions.insert(key.clone(), wait);
        } else {
            return false;
        }
        true
    }

    /// Forgets `key`: it ended, or an aggregator reported it closed.
    pub fn ended(&mut self, key: &SessionKey) {
        self.sessions.remove(key);
    }

    /// Takes out at most `most` of the sessions that have waited `ttl` or longer by `now`.
    pub fn due(&mut self, now: Instant, ttl: Duration, most: usize) -> Vec<(SessionKey, Wait)> {
        // Unvisited sessions stay (std's `ExtractIf` keeps what it did not reach).
        let due: Vec<_> =
            self.sessions.extract_if(|_, w| now.duration_since(w.at) >= ttl).take(most).collect();
        if !due.is_empty() {
            // A name only `due` still holds is not kept for later: menus get reloaded.
            self.names.retain(|name| Arc::strong_count(name) > 1);
        }
        due
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    fn name(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.names.get(name) {
            return Arc::clone(known);
        }
        let name: Arc<str> = Arc::from(name);
        self.names.insert(Arc::clone(&name));
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> SessionKey {
        SessionKey::new("africastalking", "+254700000001", &format!("s{n}"))
    }

    #[test]
    fn a_session_is_due_once_it_has_waited_a_lifetime_since_its_last_answer() {
        let ttl = Duration::from_secs(180);
        let start = Instant::now();
        let mut waiting = Waiting::default();
        assert!(waiting.answered(&key(1), "wallet", "main", 1, start));
        assert!(waiting.answered(&key(2), "wallet", "main", 1, start));
        assert!(waiting.answered(&key(1), "wallet", "pin", 2, start + Duration::from_secs(60)));
        waiting.ended(&key(2));
        assert!(waiting.due(start + ttl, ttl, usize::MAX).is_empty(), "key 1 answered again a minute in");
        let due = waiting.due(start + ttl + Duration::from_secs(60), ttl, usize::MAX);
        assert_eq!(due.len(), 1);
        let (k, w) = &due[0];
        assert_eq!((k, &*w.menu, &*w.screen, w.version), (&key(1), "wallet", "pin", 2));
        assert_eq!(waiting.len(), 0, "taken out, so counted once");
    }

    #[test]
    fn due_sessions_are_taken_a_batch_at_a_time_and_the_rest_stay() {
        let t = Instant::now();
        let second = Duration::from_secs(1);
        let mut waiting = Waiting::default();
        for n in 0..100 {
            waiting.answered(&key(n), "wallet", "main", 1, t);
        }
        waiting.answered(&key(100), "wallet", "main", 1, t + second);
        let mut taken = std::collections::HashSet::new();
        for size in [30, 30, 30, 10, 0] {
            let batch = waiting.due(t + second, second, 30);
            assert_eq!(batch.len(), size);
            taken.extend(batch.into_iter().map(|(k, _)| k));
        }
        assert_eq!(taken.len(), 100, "each due session taken once");
        assert_eq!(waiting.len(), 1, "the one not due stays");
    }

    #[test]
    fn past_its_most_it_tracks_no_new_session_but_follows_those_it_has() {
        let t = Instant::now();
        let mut waiting = Waiting::with_most(2);
        assert!(waiting.answered(&key(1), "wallet", "main", 1, t));
        assert!(waiting.answered(&key(2), "wallet", "main", 1, t));
        assert!(!waiting.answered(&key(3), "wallet", "main", 1, t), "a third is over the most");
        assert!(waiting.answered(&key(1), "wallet", "pin", 2, t), "a tracked one moves on");
        waiting.ended(&key(2));
        assert!(waiting.answered(&key(3), "wallet", "main", 1, t), "room again once one ended");
        assert_eq!(waiting.len(), 2);
    }

    #[test]
    fn names_are_shared_and_let_go_by_the_sweep_after_their_last_session() {
        let t = Instant::now();
        let second = Duration::from_secs(1);
        let mut waiting = Waiting::default();
        for n in 0..100 {
            waiting.answered(&key(n), "wallet", "main", 1, t);
        }
        assert_eq!(waiting.names.len(), 2, "one copy of `wallet` and of `main` for a hundred sessions");
        assert_eq!(waiting.due(t + second, second, usize::MAX).len(), 100);
        waiting.answered(&key(0), "agent", "float", 1, t);
        assert_eq!(waiting.due(t + second, second, usize::MAX).len(), 1);
        let mut kept: Vec<_> = waiting.names.iter().map(|n| n.to_string()).collect();
        kept.sort();
        assert_eq!(kept, ["agent", "float"], "`wallet` and `main` went with the sweep after their last");
    }
}
