//! In-process session store: the embedded default when no Redis is configured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::{SessionKey, StoreError, Unless};

struct Entry {
    version: u64,
    expires: Instant,
    bytes: Vec<u8>,
}

/// Records kept at most, sessions and resume pointers together, unless configured
/// otherwise: a few hundred bytes each, some tens of megabytes in all.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Sessions in a mutex-guarded map, expired lazily on read and swept every 30 s, at
/// most `capacity` of them: past it a new session is refused (the store is "full")
/// until some expire, while sessions already running go on. Lost on restart and not
/// shared between replicas: for one process only.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Map>>,
}

struct Map {
    entries: HashMap<String, Entry>,
    capacity: usize,
    /// When the map was last swept because it was full: at most once a second.
    swept: Instant,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_capacity(DEFAULT_CAPACITY)
    }
}

impl MemoryStore {
    /// Creates the store and, inside a Tokio runtime, its expiry sweeper.
    pub fn new() -> Self {
        MemoryStore::with_capacity(DEFAULT_CAPACITY)
    }

    /// [`Self::new`], keeping at most `capacity` records.
    pub fn with_capacity(capacity: usize) -> Self {
        let map = Map { entries: HashMap::new(), capacity: capacity.max(1), swept: Instant::now() };
        let store = MemoryStore { inner: Arc::new(Mutex::new(map)) };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let weak: Weak<Mutex<Map>> = Arc::downgrade(&store.inner);
            handle.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(30));
                loop {
                    tick.tick().await;
                    let Some(map) = weak.upgrade() else { break };
                    lock(&map).sweep(Instant::now());
                }
            });
        }
        store
    }

    /// Records held now, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        lock(&self.inner).entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records the map has room for without growing.
    pub fn capacity(&self) -> usize {
        lock(&self.inner).entries.capacity()
    }

    /// Drops expired records and gives back the memory a burst of sessions left behind.
    pub fn sweep(&self) {
        lock(&self.inner).sweep(Instant::now());
    }

    pub fn version(&self, key: &str) -> Option<u64> {
        let map = lock(&self.inner);
        map.entries.get(key).filter(|e| e.expires > Instant::now()).map(|e| e.version)
    }

    pub fn load(&self, key: &str) -> Option<(u64, Vec<u8>)> {
        let map = lock(&self.inner);
        map.entries.get(key).filter(|e| e.expires > Instant::now()).map(|e| (e.version, e.bytes.clone()))
    }

    pub fn save(
        &self,
        key: &str,
        expected: u64,
        bytes: Vec<u8>,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        lock(&self.inner).cas(key, expected, bytes, ttl)
    }
}

impl Map {
    fn sweep(&mut self, now: Instant) {
        self.entries.retain(|_, e| e.expires > now);
        // A map keeps the room its largest burst needed: give most of it back.
        if self.entries.capacity() > 4 * self.entries.len() + 1024 {
            self.entries.shrink_to(2 * self.entries.len());
        }
    }

    /// Room for `key`: it is there already, or the map has space (after a sweep, at
    /// most once a second, when it looks full).
    fn room_for(&mut self, key: &str) -> Result<(), StoreError> {
        if self.entries.len() < self.capacity || self.entries.contains_key(key) {
            return Ok(());
        }
        let now = Instant::now();
        if now.duration_since(self.swept) >= Duration::from_secs(1) {
            self.swept = now;
            self.sweep(now);
        }
        if self.entries.len() < self.capacity {
            return Ok(());
        }
        metrics::counter!("ussd_sessions_refused_total", "reason" => "store_full").increment(1);
        Err(StoreError::Unavailable(format!(
            "the in-memory session store holds {} records, its most; set REDIS_URL for more",
            self.capacity
        )))
    }

    fn cas(
        &mut self,
        key: &str,
        expected: u64,
        bytes: Vec<u8>,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let now = Instant::now();
        let current = self.entries.get(key).filter(|e| e.expires > now).map_or(0, |e| e.version);
        if current != expected {
            return Ok(None);
        }
        self.room_for(key)?;
        let version = expected + 1;
        self.entries.insert(key.to_owned(), Entry { version, expires: now + ttl, bytes });
        Ok(Some(version))
    }
}

impl Map {
    /// [`MemoryStore::save_pointing`] under a lock already held.
    fn cas_pointing(
        &mut self,
        key: &str,
        expected: u64,
        bytes: Vec<u8>,
        ttl: Duration,
        pointer: &str,
        keep: Option<Duration>,
    ) -> Result<Option<u64>, StoreError> {
        let slot = slot(pointer);
        if keep.is_some() {
            self.room_for(&slot)?;
        }
        let Some(version) = self.cas(key, expected, bytes, ttl)? else { return Ok(None) };
        match keep {
            Some(keep) => {
                let entry =
                    Entry { version: 1, expires: Instant::now() + keep, bytes: key.as_bytes().to_vec() };
                self.entries.insert(slot, entry);
            }
            None => {
                self.entries.remove(&slot);
            }
        }
        Ok(Some(version))
    }

    /// The session `pointer` leads to, if it has not expired and is not `key`'s.
    fn pointed_elsewhere(&self, key: &str, pointer: &str) -> Option<SessionKey> {
        let now = Instant::now();
        let other =
            self.entries.get(&slot(pointer)).filter(|e| e.expires > now && e.bytes != key.as_bytes())?;
        Some(SessionKey(String::from_utf8_lossy(&other.bytes).into_owned()))
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
    ) -> Result<Option<u64>, StoreError> {
        lock(&self.inner).cas_pointing(key, expected, bytes, ttl, pointer, keep)
    }

    /// [`Self::save`] unless `pointer` leads to another session, under one lock.
    pub fn save_unless_pointed(
        &self,
        key: &str,
        expected: u64,
        bytes: Vec<u8>,
        ttl: Duration,
        pointer: &str,
    ) -> Result<Unless, StoreError> {
        let mut map = lock(&self.inner);
        if let Some(other) = map.pointed_elsewhere(key, pointer) {
            return Ok(Unless::Pointed(other));
        }
        Ok(map.cas(key, expected, bytes, ttl)?.map_or(Unless::Lost, Unless::Saved))
    }

    /// [`Self::save_pointing`] unless `pointer` already leads to another session, under
    /// one lock.
    pub fn save_pointing_unless_pointed(
        &self,
        key: &str,
        expected: u64,
        bytes: Vec<u8>,
        ttl: Duration,
        pointer: &str,
        keep: Option<Duration>,
    ) -> Result<Unless, StoreError> {
        let mut map = lock(&self.inner);
        if let Some(other) = map.pointed_elsewhere(key, pointer) {
            return Ok(Unless::Pointed(other));
        }
        Ok(map.cas_pointing(key, expected, bytes, ttl, pointer, keep)?.map_or(Unless::Lost, Unless::Saved))
    }

    pub fn recall(&self, pointer: &str) -> Option<String> {
        let (_, bytes) = self.load(&slot(pointer))?;
        String::from_utf8(bytes).ok()
    }
}

/// A poisoned lock only means another thread panicked mid-insert of a whole entry;
/// the map itself is still consistent.
fn lock(m: &Mutex<Map>) -> std::sync::MutexGuard<'_, Map> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where a resume pointer lives beside the sessions (no session key starts with NUL).
fn slot(pointer: &str) -> String {
    format!("\0r:{pointer}")
}
