//! In-process session store: the embedded default when no Redis is configured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::{SessionKey, Unless};

struct Entry {
    version: u64,
    expires: Instant,
    bytes: Vec<u8>,
}

/// Sessions in a mutex-guarded map, expired lazily on read and swept every 30 s.
/// Lost on restart and not shared between replicas: for one process only.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
}

impl MemoryStore {
    /// Creates the store and, inside a Tokio runtime, its expiry sweeper.
    pub fn new() -> Self {
        let store = MemoryStore::default();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let weak: Weak<Mutex<HashMap<String, Entry>>> = Arc::downgrade(&store.inner);
            handle.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(30));
                loop {
                    tick.tick().await;
                    let Some(map) = weak.upgrade() else { break };
                    let now = Instant::now();
                    lock(&map).retain(|_, e| e.expires > now);
                }
            });
        }
        store
    }

    pub fn load(&self, key: &str) -> Option<(u64, Vec<u8>)> {
        let map = lock(&self.inner);
        map.get(key).filter(|e| e.expires > Instant::now()).map(|e| (e.version, e.bytes.clone()))
    }

    pub fn save(&self, key: &str, expected: u64, bytes: Vec<u8>, ttl: Duration) -> Option<u64> {
        cas(&mut lock(&self.inner), key, expected, bytes, ttl)
    }
}

impl MemoryStore {
    /// [`Self::save`], and under the same lock points `pointer` at this session for
    /// `keep` (deletes it when `keep` is `None`).
    pub fn save_pointing(
        &self,
        key: &str,
        expected: u64,
        bytes: Vec<u8>,
        ttl: Duration,
        pointer: &str,
        keep: Option<Duration>,
    ) -> Option<u64> {
        let mut map = lock(&self.inner);
        let version = cas(&mut map, key, expected, bytes, ttl)?;
        let slot = slot(pointer);
        match keep {
            Some(keep) => {
                let entry =
                    Entry { version: 1, expires: Instant::now() + keep, bytes: key.as_bytes().to_vec() };
                map.insert(slot, entry);
            }
            None => {
                map.remove(&slot);
            }
        }
        Some(version)
    }

    /// [`Self::save`] unless `pointer` leads to another session, under one lock.
    pub fn save_unless_pointed(
        &self,
        key: &str,
        expected: u64,
        bytes: Vec<u8>,
        ttl: Duration,
        pointer: &str,
    ) -> Unless {
        let mut map = lock(&self.inner);
        let now = Instant::now();
        let pointed = map.get(&slot(pointer)).filter(|e| e.expires > now && e.bytes != key.as_bytes());
        if let Some(other) = pointed {
            return Unless::Pointed(SessionKey(String::from_utf8_lossy(&other.bytes).into_owned()));
        }
        match cas(&mut map, key, expected, bytes, ttl) {
            Some(version) => Unless::Saved(version),
            None => Unless::Lost,
        }
    }

    pub fn recall(&self, pointer: &str) -> Option<String> {
        let (_, bytes) = self.load(&slot(pointer))?;
        String::from_utf8(bytes).ok()
    }
}

fn cas(
    map: &mut HashMap<String, Entry>,
    key: &str,
    expected: u64,
    bytes: Vec<u8>,
    ttl: Duration,
) -> Option<u64> {
    let now = Instant::now();
    let current = map.get(key).filter(|e| e.expires > now).map_or(0, |e| e.version);
    if current != expected {
        return None;
    }
    let version = expected + 1;
    map.insert(key.to_owned(), Entry { version, expires: now + ttl, bytes });
    Some(version)
}

/// A poisoned lock only means another thread panicked mid-insert of a whole entry;
/// the map itself is still consistent.
fn lock(m: &Mutex<HashMap<String, Entry>>) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where a resume pointer lives beside the sessions (no session key starts with NUL).
fn slot(pointer: &str) -> String {
    format!("\0r:{pointer}")
}
