//! Sessions: the small record kept between hops, and the stores that hold it
//! (Redis in production, process memory as the embedded default).

mod memory;
mod record;
mod redis;

use std::time::Duration;

pub use self::memory::{DEFAULT_CAPACITY as MEMORY_CAPACITY, MemoryStore};
pub use self::record::{Claim, PendingCode, Session, TextKey, TextMark};
pub use self::redis::RedisStore;

/// Which session a hop belongs to: (provider, msisdn, provider session id).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionKey(String);

impl SessionKey {
    pub fn new(provider: &str, msisdn_e164: &str, session_id: &str) -> Self {
        SessionKey(format!("{provider}:{msisdn_e164}:{session_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a subscriber's resumable journey of one service is: (msisdn, service).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumePointer(String);

impl ResumePointer {
    pub fn new(msisdn_e164: &str, service: &str) -> Self {
        ResumePointer(format!("{msisdn_e164}:{service}"))
    }

    /// Where an SMS conversation waiting for the hand-off code marked `code` is.
    pub fn handoff(msisdn_e164: &str, service: &str, code: TextMark) -> Self {
        ResumePointer(format!("{msisdn_e164}:{service}:handoff:{:016x}", code.hash))
    }
}

/// What a save that first looks at the subscriber's resume pointer did.
#[derive(Debug, PartialEq, Eq)]
pub enum Unless {
    /// Written: the new version.
    Saved(u64),
    /// Another writer got there first.
    Lost,
    /// Not written: the pointer leads to this other session.
    Pointed(SessionKey),
}

/// A session as loaded, with the version a save must match.
#[derive(Debug)]
pub struct Loaded {
    pub version: u64,
    pub session: Session,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unreachable: {0}")]
    Unavailable(String),
    #[error("session record unreadable: {0}")]
    Corrupt(String),
}

/// The session store: one writer per session through compare-and-set on a version.
///
/// An enum rather than a trait object: two backends, no boxing on the hot path.
#[derive(Clone)]
pub enum SessionStore {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl SessionStore {
    #[tracing::instrument(name = "session.load", level = "debug", skip_all)]
    pub async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>, StoreError> {
        let raw = match self {
            SessionStore::Memory(m) => m.load(key.as_str()),
            SessionStore::Redis(r) => r.load(key.as_str()).await?,
        };
        raw.map(decode).transpose()
    }

    /// The versions of the sessions under `keys`, in their order (`None`: no record),
    /// read in one round trip without the records themselves.
    #[tracing::instrument(name = "session.versions", level = "debug", skip_all)]
    pub async fn versions(&self, keys: &[&SessionKey]) -> Result<Vec<Option<u64>>, StoreError> {
        match self {
            SessionStore::Memory(m) => Ok(keys.iter().map(|k| m.version(k.as_str())).collect()),
            SessionStore::Redis(r) => r.versions(keys.iter().map(|k| k.as_str())).await,
        }
    }

    /// Writes `session` if the stored version is still `expected` (0: no record yet).
    /// Returns the new version, or `None` when another writer got there first.
    #[tracing::instrument(name = "session.save", level = "debug", skip_all)]
    pub async fn save(
        &self,
        key: &SessionKey,
        expected: u64,
        session: &Session,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let bytes = encode(session)?;
        match self {
            SessionStore::Memory(m) => m.save(key.as_str(), expected, bytes, ttl),
            SessionStore::Redis(r) => r.save(key.as_str(), expected, bytes, ttl).await,
        }
    }

    /// [`Self::save`], and in the same write the subscriber's resume pointer: aimed at
    /// this session for `keep`, or removed when `keep` is `None`.
    #[tracing::instrument(name = "session.save", level = "debug", skip_all)]
    pub async fn save_pointing(
        &self,
        key: &SessionKey,
        expected: u64,
        session: &Session,
        ttl: Duration,
        pointer: &ResumePointer,
        keep: Option<Duration>,
    ) -> Result<Option<u64>, StoreError> {
        let bytes = encode(session)?;
        match self {
            SessionStore::Memory(m) => m.save_pointing(key.as_str(), expected, bytes, ttl, &pointer.0, keep),
            SessionStore::Redis(r) => {
                r.save_pointing(key.as_str(), expected, bytes, ttl, &pointer.0, keep).await
            }
        }
    }

    /// [`Self::save`], unless `pointer` leads to another session (a journey this
    /// subscriber may have dropped), in one round trip: a new session claims its record
    /// and learns whether to offer a dropped journey at once.
    #[tracing::instrument(name = "session.save", level = "debug", skip_all)]
    pub async fn save_unless_pointed(
        &self,
        key: &SessionKey,
        expected: u64,
        session: &Session,
        ttl: Duration,
        pointer: &ResumePointer,
    ) -> Result<Unless, StoreError> {
        let bytes = encode(session)?;
        match self {
            SessionStore::Memory(m) => m.save_unless_pointed(key.as_str(), expected, bytes, ttl, &pointer.0),
            SessionStore::Redis(r) => {
                r.save_unless_pointed(key.as_str(), expected, bytes, ttl, &pointer.0).await
            }
        }
    }

    /// [`Self::save_pointing`] unless `pointer` already leads to another session, in one
    /// round trip: a new session whose first write is also its hop's last.
    #[tracing::instrument(name = "session.save", level = "debug", skip_all)]
    pub async fn save_pointing_unless_pointed(
        &self,
        key: &SessionKey,
        expected: u64,
        session: &Session,
        ttl: Duration,
        pointer: &ResumePointer,
        keep: Option<Duration>,
    ) -> Result<Unless, StoreError> {
        let bytes = encode(session)?;
        match self {
            SessionStore::Memory(m) => {
                m.save_pointing_unless_pointed(key.as_str(), expected, bytes, ttl, &pointer.0, keep)
            }
            SessionStore::Redis(r) => {
                r.save_pointing_unless_pointed(key.as_str(), expected, bytes, ttl, &pointer.0, keep).await
            }
        }
    }

    /// The session a subscriber's journey was left in, if the pointer has not expired.
    #[tracing::instrument(name = "session.recall", level = "debug", skip_all)]
    pub async fn recall(&self, pointer: &ResumePointer) -> Result<Option<SessionKey>, StoreError> {
        let found = match self {
            SessionStore::Memory(m) => m.recall(&pointer.0),
            SessionStore::Redis(r) => r.recall(&pointer.0).await?,
        };
        Ok(found.map(SessionKey))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            SessionStore::Memory(_) => Ok(()),
            SessionStore::Redis(r) => r.ping().await,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            SessionStore::Memory(_) => "memory",
            SessionStore::Redis(_) => "redis",
        }
    }
}

fn decode((version, bytes): (u64, Vec<u8>)) -> Result<Loaded, StoreError> {
    let session = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Loaded { version, session })
}

#[cfg(test)]
mod tests;

/// A session as the stores keep it.
fn encode(session: &Session) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(session).map_err(|e| StoreError::Corrupt(e.to_string()))
}
