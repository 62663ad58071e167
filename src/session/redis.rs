//! Redis session store: a hash `{v, d}` per session, written by a compare-and-set script.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{SessionKey, StoreError, Unless};

/// Writes `d` and bumps `v` only if `v` still equals the caller's expected version
/// (0 when the key must not exist), then refreshes the TTL; leaves `next` for what
/// follows it. The scripts below share it.
macro_rules! cas {
    () => {
        r"
local current = redis.call('HGET', KEYS[1], 'v')
if (current or '0') ~= ARGV[1] then return 0 end
local next = tonumber(ARGV[1]) + 1
redis.call('HSET', KEYS[1], 'v', next, 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
"
    };
}

/// The compare-and-set alone. One round trip.
const CAS: &str = concat!(cas!(), "return next\n");

/// The compare-and-set, then in the same call the subscriber's resume pointer: set to
/// this session (ARGV[5] ms) or, with ARGV[5] = 0, deleted.
const CAS_AND_POINT: &str = concat!(
    cas!(),
    r"if ARGV[5] == '0' then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
end
return next
"
);

/// The compare-and-set, unless the subscriber's resume pointer (KEYS[2]) leads to
/// another session (ARGV[4] is this one's): then nothing is written and that session's
/// key comes back, for the caller to see whether its journey can be offered.
const CAS_UNLESS_POINTED: &str = concat!(
    r"
local pointed = redis.call('GET', KEYS[2])
if pointed and pointed ~= ARGV[4] then return pointed end",
    cas!(),
    "return next\n"
);

/// A self-reconnecting connection that fails fast (about `timeout`) when Redis cannot
/// be reached, and gives up on a command after `timeout`.
pub async fn connect(url: &str, timeout: Duration) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout)
        .set_number_of_retries(2)
        .set_max_delay(200);
    ConnectionManager::new_with_config(redis::Client::open(url)?, config).await
}

/// Sessions in Redis through a self-reconnecting `ConnectionManager` (cheap to clone).
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    cas: Script,
    cas_and_point: Script,
    cas_unless_pointed: Script,
}

impl RedisStore {
    /// Connects, failing fast (about `timeout`) if Redis cannot be reached.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let conn = connect(url, timeout).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(RedisStore {
            conn,
            prefix: prefix.to_owned(),
            cas: Script::new(CAS),
            cas_and_point: Script::new(CAS_AND_POINT),
            cas_unless_pointed: Script::new(CAS_UNLESS_POINTED),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}s:{key}", self.prefix)
    }

    pub async fn load(&self, key: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let mut conn = self.conn.clone();
        let (version, bytes): (Option<u64>, Option<Vec<u8>>) =
            conn.hget(self.key(key), &["v", "d"]).await.map_err(unavailable)?;
        Ok(version.zip(bytes))
    }

    /// [`Self::load`] for many keys, pipelined: one round trip.
    pub async fn load_many(
        &self,
        keys: impl Iterator<Item = &str>,
    ) -> Result<Vec<Option<(u64, Vec<u8>)>>, StoreError> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.hget(self.key(key), &["v", "d"]);
        }
        let mut conn = self.conn.clone();
        let found: Vec<(Option<u64>, Option<Vec<u8>>)> =
            pipe.query_async(&mut conn).await.map_err(unavailable)?;
        Ok(found.into_iter().map(|(version, bytes)| version.zip(bytes)).collect())
    }

    pub async fn save(
        &self,
        key: &str,
        expected: u64,
        bytes: Vec<u8>,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let mut conn = self.conn.clone();
        let ttl_ms = millis(ttl);
        let written: u64 = self
            .cas
            .key(self.key(key))
            .arg(expected)
            .arg(bytes)
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok((written != 0).then_some(written))
    }

    /// [`Self::save`], and in the same round trip points `pointer` at this session for
    /// `keep` (or deletes it when `keep` is `None`).
    pub async fn save_pointing(
        &self,
        key: &str,
        expected: u64,
        bytes: Vec<u8>,
        ttl: Duration,
        pointer: &str,
        keep: Option<Duration>,
    ) -> Result<Option<u64>, StoreError> {
        let mut conn = self.conn.clone();
        let written: u64 = self
            .cas_and_point
            .key(self.key(key))
            .key(self.pointer(pointer))
            .arg(expected)
            .arg(bytes)
            .arg(millis(ttl))
            .arg(key)
            .arg(keep.map_or(0, millis))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok((written != 0).then_some(written))
    }

    /// [`Self::save`] unless `pointer` leads to another session: one round trip either way.
    pub async fn save_unless_pointed(
        &self,
        key: &str,
        expected: u64,
        bytes: Vec<u8>,
        ttl: Duration,
        pointer: &str,
    ) -> Result<Unless, StoreError> {
        let mut conn = self.conn.clone();
        let ttl_ms = millis(ttl);
        let answer: redis::Value = self
            .cas_unless_pointed
            .key(self.key(key))
            .key(self.pointer(pointer))
            .arg(expected)
            .arg(bytes)
            .arg(ttl_ms)
            .arg(key)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        match answer {
            redis::Value::Int(0) => Ok(Unless::Lost),
            redis::Value::Int(version) => Ok(Unless::Saved(version.unsigned_abs())),
            redis::Value::BulkString(other) => String::from_utf8(other)
                .map(|other| Unless::Pointed(SessionKey(other)))
                .map_err(|e| StoreError::Corrupt(format!("resume pointer: {e}"))),
            other => Err(StoreError::Corrupt(format!("unexpected answer to a claim: {other:?}"))),
        }
    }

    /// The session `pointer` points at, if it has not expired.
    pub async fn recall(&self, pointer: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        conn.get(self.pointer(pointer)).await.map_err(unavailable)
    }

    fn pointer(&self, pointer: &str) -> String {
        format!("{}r:{pointer}", self.prefix)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await.map_err(unavailable)?;
        Ok(())
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A TTL for `PEXPIRE`/`PX`: at least 1 ms, since 0 would mean "now" (or "no pointer").
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
