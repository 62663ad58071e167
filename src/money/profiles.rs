//! Customers' profiles as last read, each dropped the moment Postgres announces it changed.
//!
//! Every dial reads who is dialling (`customer.profile`), and that read was the largest
//! single cost of a browse journey. A replica keeps the profiles it read, and a listener on the
//! channel the `customers` trigger announces on drops one as soon as its change commits,
//! wherever it was made. While the listener is not connected nothing is served from
//! memory or kept: a change could go unheard. Only registered customers are kept, so a
//! registration is seen at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{info, warn};

use crate::domain::Msisdn;

/// The channel the `customers` trigger announces a changed number on.
const CHANNEL: &str = "customer_profile";

/// The listener's `application_name`, for operators reading `pg_stat_activity`.
pub const LISTENER_NAME: &str = "ussd-gateway profile listener";

/// How long the listener waits before connecting again.
const RECONNECT: Duration = Duration::from_secs(1);

/// How often a token is announced through the pool writers use, and the listener checks
/// that the last one reached it: a listening connection that died without a word (a NAT's
/// idle timeout, a partition), left on an old primary, or behind a pooler that does not
/// deliver, is found within two of these.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// How many profiles a replica keeps, and for how long (PROFILE_CACHE_MAX, _SECS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileOptions {
    pub most: usize,
    pub ttl: Duration,
}

/// What `customer.profile` tells a menu about a registered customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub first_name: String,
    pub last_name: String,
    pub language: String,
    /// In the verified KYC tier (or above).
    pub verified: bool,
}

/// What a look in memory found.
pub enum Cached {
    Hit(Arc<Profile>),
    /// Not kept: read it, and offer what was read to [`Profiles::keep`] with this.
    Miss(Ticket),
}

/// The moment a read began, as [`Profiles::keep`] checks it: a change announced since
/// may be newer than what the read found.
#[derive(Clone, Copy, Debug)]
pub struct Ticket(u64);

/// The profiles one replica keeps (cheap to clone); the listener stops with the last clone.
#[derive(Clone)]
pub struct Profiles {
    shared: Arc<Shared>,
    _listener: Arc<DropGuard>,
}

struct Shared {
    kept: Mutex<Kept>,
    options: ProfileOptions,
}

#[derive(Default)]
struct Kept {
    profiles: HashMap<Box<str>, (Arc<Profile>, Instant)>,
    /// Bumped by every change announced and every reconnection of the listener.
    generation: u64,
    /// Whether the listener is connected, so that every change is heard.
    listening: bool,
    /// Heartbeats that came back, since the process started.
    heartbeats: u64,
}

impl Profiles {
    /// Starts the listener on `pool`'s database (on the current runtime); nothing is
    /// kept until it is connected.
    pub fn start(pool: &PgPool, options: ProfileOptions) -> Self {
        let shared = Arc::new(Shared { kept: Mutex::default(), options });
        let stop = CancellationToken::new();
        tokio::spawn(listen(Arc::clone(&shared), pool.clone(), stop.clone()));
        Profiles { shared, _listener: Arc::new(stop.drop_guard()) }
    }

    pub fn get(&self, msisdn: &Msisdn) -> Cached {
        let kept = self.shared.lock();
        match kept.profiles.get(msisdn.as_e164()) {
            Some((profile, until)) if kept.listening && Instant::now() < *until => {
                Cached::Hit(Arc::clone(profile))
            }
            _ => Cached::Miss(Ticket(kept.generation)),
        }
    }

    /// Keeps `profile`, read since `ticket`, unless a change was announced since then
    /// (it may be newer than the read) or the listener is not connected.
    pub fn keep(&self, msisdn: &Msisdn, profile: Profile, ticket: Ticket) {
        let ProfileOptions { most, ttl } = self.shared.options;
        let mut kept = self.shared.lock();
        if !kept.listening || kept.generation != ticket.0 {
            return;
        }
        let now = Instant::now();
        let mut dropped = HashMap::new();
        if kept.profiles.len() >= most {
            kept.profiles.retain(|_, (_, until)| now < *until);
            // Still mostly live ones: start over rather than track recency on every
            // read (the ones dialling again come back at one read each), and rather
            // than sweep a nearly full map again at the next read.
            if kept.profiles.len() >= most - most / 4 {
                dropped = std::mem::take(&mut kept.profiles);
            }
        }
        kept.profiles.insert(msisdn.as_e164().into(), (Arc::new(profile), now + ttl));
        drop(kept);
        // Freed outside the lock every dial needs.
        drop(dropped);
    }

    /// Drops the profile of `msisdn`, changed by this replica: its own next read must
    /// not wait for the announcement to come back.
    pub fn forget(&self, msisdn: &Msisdn) {
        self.shared.changed(msisdn.as_e164());
    }

    /// Whether the listener is connected (profiles are served from memory).
    pub fn listening(&self) -> bool {
        self.shared.lock().listening
    }

    /// How many of the listener's heartbeats came back.
    pub fn heartbeats(&self) -> u64 {
        self.shared.lock().heartbeats
    }

    /// How many profiles are kept.
    pub fn len(&self) -> usize {
        self.shared.lock().profiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Kept> {
        // Every change leaves the map whole: a panic elsewhere cannot corrupt it.
        self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes may have gone unheard (or, when connected, are heard from now on):
    /// nothing kept before can be trusted.
    fn hearing(&self, listening: bool) {
        let mut kept = self.lock();
        let dropped = std::mem::take(&mut kept.profiles);
        kept.generation += 1;
        kept.listening = listening;
        drop(kept);
        drop(dropped);
    }

    fn changed(&self, msisdn: &str) {
        let mut kept = self.lock();
        kept.profiles.remove(msisdn);
        kept.generation += 1;
    }
}

/// Listens for changes until `stop`, connecting again whenever the connection is lost
/// or stops delivering.
async fn listen(shared: Arc<Shared>, writers: PgPool, stop: CancellationToken) {
    let options = writers.connect_options().as_ref().clone().application_name(LISTENER_NAME);
    let mut failures = 0u32;
    loop {
        // A connection of its own, not one of the pool's, and a new one each time: one
        // given up on (gone silent) is never handed back to be listened on again.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options.clone());
        let connect = async {
            let mut listener = PgListener::connect_with(&own).await?;
            // A lost connection is reported at once, not after sqlx has quietly
            // connected again with every change made meanwhile unheard.
            listener.eager_reconnect(false);
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let listener = match stop.run_until_cancelled(connect).await {
            None => return,
            Some(Ok(listener)) => listener,
            Some(Err(e)) => {
                failures += 1;
                // Said once per outage, not once a second.
                if failures == 1 {
                    warn!(error = %e, "cannot listen for profile changes, so every dial reads its profile from Postgres: check that the gateway reaches Postgres itself (or a pooler in session mode), or set PROFILE_CACHE_MAX=0");
                }
                if stop.run_until_cancelled(tokio::time::sleep(RECONNECT)).await.is_none() {
                    return;
                }
                continue;
            }
        };
        if failures > 0 {
            info!("listening for profile changes again; profiles are kept in memory");
        }
        shared.hearing(true);
        let Some(why) = hear(&shared, listener, &writers, &stop).await else { return };
        shared.hearing(false);
        failures = 1;
        warn!(reason = %why, "stopped hearing profile changes, so every dial reads its profile from Postgres until the listener is back");
    }
}

/// Hears changes on `listener` until `stop` (`None`) or until it can no longer be
/// trusted to hear them (why).
async fn hear(
    shared: &Shared,
    mut listener: PgListener,
    writers: &PgPool,
    stop: &CancellationToken,
) -> Option<String> {
    let token = format!("alive:{:016x}", rand::random::<u64>());
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut awaited = false;
    loop {
        tokio::select! {
            // A token already on its way back is taken before the tick that checks it.
            biased;
            () = stop.cancelled() => return None,
            heard = listener.try_recv() => match heard {
                Ok(Some(n)) if n.payload() == token => {
                    awaited = false;
                    shared.lock().heartbeats += 1;
                }
                // Another replica's heartbeat.
                Ok(Some(n)) if n.payload().starts_with("alive:") => {}
                Ok(Some(n)) => shared.changed(n.payload()),
                Ok(None) => return Some("the connection was lost".into()),
                Err(e) => return Some(e.to_string()),
            },
            _ = beat.tick() => {
                if awaited {
                    return Some(format!("its own announcement did not come back within {HEARTBEAT:?}"));
                }
                // Sent as a writer's change would be, from another session: hearing
                // one's own session proves nothing about hearing the others.
                let sent = sqlx::query!("SELECT FROM pg_notify($1, $2)", CHANNEL, &token).execute(writers);
                match tokio::time::timeout(HEARTBEAT, sent).await {
                    Ok(Ok(_)) => awaited = true,
                    Ok(Err(e)) => return Some(format!("the heartbeat could not be sent: {e}")),
                    Err(_) => return Some(format!("the heartbeat was not sent within {HEARTBEAT:?}")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Region;

    /// Kept profiles as if the listener were connected, with no database behind them.
    fn heard(most: usize, ttl: Duration) -> Profiles {
        let shared = Arc::new(Shared { kept: Mutex::default(), options: ProfileOptions { most, ttl } });
        shared.hearing(true);
        Profiles { shared, _listener: Arc::new(CancellationToken::new().drop_guard()) }
    }

    fn m(n: u32) -> Msisdn {
        Msisdn::parse(&format!("+2547000{n:05}"), Region::parse("KE").unwrap()).unwrap()
    }

    fn amina() -> Profile {
        Profile {
            first_name: "Amina".into(),
            last_name: "Otieno".into(),
            language: "sw".into(),
            verified: true,
        }
    }

    fn ticket(profiles: &Profiles, msisdn: &Msisdn) -> Ticket {
        match profiles.get(msisdn) {
            Cached::Miss(ticket) => ticket,
            Cached::Hit(_) => panic!("{msisdn:?} was kept"),
        }
    }

    #[test]
    fn a_profile_read_is_served_until_its_number_changes() {
        let profiles = heard(10, Duration::from_secs(60));
        let t = ticket(&profiles, &m(1));
        profiles.keep(&m(1), amina(), t);
        assert!(matches!(profiles.get(&m(1)), Cached::Hit(p) if *p == amina()));
        profiles.shared.changed(m(2).as_e164());
        assert!(matches!(profiles.get(&m(1)), Cached::Hit(_)), "another number's change leaves it");
        profiles.shared.changed(m(1).as_e164());
        ticket(&profiles, &m(1));
    }

    #[test]
    fn a_read_that_began_before_a_change_is_not_kept() {
        let profiles = heard(10, Duration::from_secs(60));
        let t = ticket(&profiles, &m(1));
        // The change commits and is heard while the read is on its way back.
        profiles.shared.changed(m(1).as_e164());
        profiles.keep(&m(1), amina(), t);
        ticket(&profiles, &m(1));
        profiles.forget(&m(3));
        profiles.keep(&m(1), amina(), t);
        assert!(profiles.is_empty(), "a change to any number since the read began");
    }

    #[test]
    fn nothing_is_served_or_kept_while_changes_cannot_be_heard() {
        let profiles = heard(10, Duration::from_secs(60));
        let t = ticket(&profiles, &m(1));
        profiles.keep(&m(1), amina(), t);
        profiles.shared.hearing(false);
        assert!(!profiles.listening());
        let t = ticket(&profiles, &m(1));
        profiles.keep(&m(1), amina(), t);
        assert!(profiles.is_empty());
        profiles.shared.hearing(true);
        ticket(&profiles, &m(1));
    }

    #[test]
    fn a_profile_is_served_for_its_time_and_the_full_memory_starts_over() {
        let profiles = heard(2, Duration::ZERO);
        let t = ticket(&profiles, &m(1));
        profiles.keep(&m(1), amina(), t);
        ticket(&profiles, &m(1));
        let profiles = heard(2, Duration::from_secs(60));
        for n in 1..=2 {
            let t = ticket(&profiles, &m(n));
            profiles.keep(&m(n), amina(), t);
        }
        assert_eq!(profiles.len(), 2);
        let t = ticket(&profiles, &m(3));
        profiles.keep(&m(3), amina(), t);
        assert_eq!(profiles.len(), 1, "full of live profiles: started over with the newest");
        assert!(matches!(profiles.get(&m(3)), Cached::Hit(_)));
    }
}
