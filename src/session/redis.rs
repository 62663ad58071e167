//! Redis session store: a hash `{v, d}` per session, written by a compare-and-set script.

use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncCommands, Cmd, ErrorKind, FromRedisValue, Script};

use super::{SessionKey, StoreError, Unless};
use crate::redis_link::RedisLink;

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

/// Returns the session the subscriber's resume pointer (KEYS[2]) leads to, if it is
/// another than this one (ARGV[4]): the scripts below that begin with it write nothing
/// then, and the caller sees whether that session's journey can be offered.
macro_rules! unless_pointed {
    () => {
        r"
local pointed = redis.call('GET', KEYS[2])
if pointed and pointed ~= ARGV[4] then return pointed end
"
    };
}

/// Sets the subscriber's resume pointer (KEYS[2]) to this session (ARGV[4]) for ARGV[5]
/// ms or, with ARGV[5] = 0, deletes it.
macro_rules! point {
    () => {
        r"
if ARGV[5] == '0' then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
end
"
    };
}

/// The compare-and-set, then in the same call the subscriber's resume pointer.
const CAS_AND_POINT: &str = concat!(cas!(), point!(), "return next\n");

/// The compare-and-set, unless the resume pointer leads to another session.
const CAS_UNLESS_POINTED: &str = concat!(unless_pointed!(), cas!(), "return next\n");

/// Both: a new session's first write, when it is also its last of the hop.
const CAS_AND_POINT_UNLESS_POINTED: &str = concat!(unless_pointed!(), cas!(), point!(), "return next\n");

/// Sessions in Redis, on one server, a Cluster or behind Sentinels (cheap to clone).
///
/// On a Cluster the subscriber's number is the hash tag of both their sessions and their
/// resume pointers (`s:prov:{+2547…}:id`, `r:{+2547…}:service`), so the scripts that touch
/// the two together run in one slot. A single server keeps the untagged names it always
/// had, so an upgrade moves no session in flight.
#[derive(Clone)]
pub struct RedisStore {
    conn: RedisLink,
    prefix: String,
    scripts: Arc<Scripts>,
    /// How many replicas must have copied each write (`REDIS_WAIT_REPLICAS`).
    wait_replicas: u32,
}

/// The store's scripts, shared by its clones.
struct Scripts {
    cas: Script,
    cas_and_point: Script,
    cas_unless_pointed: Script,
    cas_and_point_unless_pointed: Script,
}

/// How long a write waits for its replicas: a replica on the same network answers in
/// well under a millisecond, and a hop cannot spend much of its deadline here.
const WAIT_MS: u64 = 250;

impl RedisStore {
    /// Connects, failing fast (about `timeout`) if Redis cannot be reached.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let conn = crate::redis_link::connect(url, timeout).await.map_err(unavailable)?;
        Ok(Self::over(conn, prefix))
    }

    /// Over a connection already made.
    pub fn over(conn: RedisLink, prefix: &str) -> Self {
        RedisStore {
            conn,
            prefix: prefix.to_owned(),
            wait_replicas: 0,
            scripts: Arc::new(Scripts {
                cas: Script::new(CAS),
                cas_and_point: Script::new(CAS_AND_POINT),
                cas_unless_pointed: Script::new(CAS_UNLESS_POINTED),
                cas_and_point_unless_pointed: Script::new(CAS_AND_POINT_UNLESS_POINTED),
            }),
        }
    }

    /// Every write counts only once `replicas` replicas have it (`WAIT`).
    pub fn waiting_for(mut self, replicas: u32) -> Self {
        self.wait_replicas = replicas;
        self
    }

    /// The Redis key of a session (`provider:msisdn:id`).
    pub fn key(&self, key: &str) -> String {
        if self.conn.is_cluster() {
            format!("{}s:{}", self.prefix, tagged(key))
        } else {
            format!("{}s:{key}", self.prefix)
        }
    }

    /// The Redis key of a resume pointer (`msisdn:service…`).
    pub fn pointer(&self, pointer: &str) -> String {
        if self.conn.is_cluster() {
            format!("{}r:{}", self.prefix, tagged(pointer))
        } else {
            format!("{}r:{pointer}", self.prefix)
        }
    }

    pub async fn load(&self, key: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let mut conn = self.conn.clone();
        let (version, bytes): (Option<u64>, Option<Vec<u8>>) =
            conn.hget(self.key(key), &["v", "d"]).await.map_err(unavailable)?;
        Ok(version.zip(bytes))
    }

    /// The versions alone of many sessions: pipelined on one server (one round trip),
    /// all at once on a Cluster (the keys are in many slots).
    pub async fn versions(&self, keys: impl Iterator<Item = &str>) -> Result<Vec<Option<u64>>, StoreError> {
        if self.conn.is_cluster() {
            let reads = keys.map(|key| {
                let mut conn = self.conn.clone();
                let key = self.key(key);
                async move { conn.hget(key, "v").await }
            });
            futures_util::future::try_join_all(reads).await.map_err(unavailable)
        } else {
            let mut pipe = redis::pipe();
            for key in keys {
                pipe.hget(self.key(key), "v");
            }
            let mut conn = self.conn.clone();
            pipe.query_async(&mut conn).await.map_err(unavailable)
        }
    }

    pub async fn save(
        &self,
        key: &str,
        expected: u64,
        bytes: Vec<u8>,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let mut cmd = self.evalsha(&self.scripts.cas, &[self.key(key)]);
        cmd.arg(expected).arg(bytes).arg(millis(ttl));
        let written: u64 = self.eval(&self.scripts.cas, cmd).await?;
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
        let mut cmd = self.evalsha(&self.scripts.cas_and_point, &[self.key(key), self.pointer(pointer)]);
        cmd.arg(expected).arg(bytes).arg(millis(ttl)).arg(key).arg(keep.map_or(0, millis));
        let written: u64 = self.eval(&self.scripts.cas_and_point, cmd).await?;
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
        let mut cmd = self.evalsha(&self.scripts.cas_unless_pointed, &[self.key(key), self.pointer(pointer)]);
        cmd.arg(expected).arg(bytes).arg(millis(ttl)).arg(key);
        unless(self.eval(&self.scripts.cas_unless_pointed, cmd).await?)
    }

    /// [`Self::save_pointing`] unless `pointer` already leads to another session: one
    /// round trip either way.
    pub async fn save_pointing_unless_pointed(
        &self,
        key: &str,
        expected: u64,
        bytes: Vec<u8>,
        ttl: Duration,
        pointer: &str,
        keep: Option<Duration>,
    ) -> Result<Unless, StoreError> {
        let script = &self.scripts.cas_and_point_unless_pointed;
        let mut cmd = self.evalsha(script, &[self.key(key), self.pointer(pointer)]);
        cmd.arg(expected).arg(bytes).arg(millis(ttl)).arg(key).arg(keep.map_or(0, millis));
        unless(self.eval(script, cmd).await?)
    }

    /// `EVALSHA` of `script` over `keys`, for the caller to add the arguments.
    fn evalsha(&self, script: &Script, keys: &[String]) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
        cmd
    }

    /// Runs `cmd` (an `EVALSHA` of `script`), loading the script where the server lacks
    /// it (a new master after a failover, a restart). With `wait_replicas`, `WAIT` goes
    /// in the same round trip, and a write that too few replicas copied in time counts
    /// as failed: the master that took it may be about to lose it.
    async fn eval<T: FromRedisValue>(&self, script: &Script, cmd: Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        let mut loaded = false;
        loop {
            let done = if self.wait_replicas == 0 {
                cmd.query_async(&mut conn).await
            } else {
                let mut pipe = redis::pipe();
                pipe.add_command(cmd.clone()).cmd("WAIT").arg(self.wait_replicas).arg(WAIT_MS);
                match pipe.query_async::<(T, u32)>(&mut conn).await {
                    Ok((_, copies)) if copies < self.wait_replicas => {
                        return Err(StoreError::Unavailable(format!(
                            "the session write reached {copies} of {} replicas within {WAIT_MS} ms",
                            self.wait_replicas
                        )));
                    }
                    done => done.map(|(value, _)| value),
                }
            };
            match done {
                Err(e) if e.kind() == ErrorKind::NoScriptError && !loaded => {
                    script.load_async(&mut conn).await.map_err(unavailable)?;
                    loaded = true;
                }
                done => return done.map_err(unavailable),
            }
        }
    }

    /// The session `pointer` points at, if it has not expired.
    pub async fn recall(&self, pointer: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        conn.get(self.pointer(pointer)).await.map_err(unavailable)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await.map_err(unavailable)?;
        Ok(())
    }
}

/// The answer of a script that begins with `unless_pointed!`.
fn unless(answer: redis::Value) -> Result<Unless, StoreError> {
    match answer {
        redis::Value::Int(0) => Ok(Unless::Lost),
        redis::Value::Int(version) => Ok(Unless::Saved(version.unsigned_abs())),
        redis::Value::BulkString(other) => String::from_utf8(other)
            .map(|other| Unless::Pointed(SessionKey(other)))
            .map_err(|e| StoreError::Corrupt(format!("resume pointer: {e}"))),
        other => Err(StoreError::Corrupt(format!("unexpected answer to a guarded write: {other:?}"))),
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A TTL for `PEXPIRE`/`PX`: at least 1 ms, since 0 would mean "now" (or "no pointer").
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `key` with its subscriber's number (the first `:`-separated part in E.164, `+…`)
/// made the hash tag: a channel's name may hold a colon (`sms:at-ke`), a number cannot.
fn tagged(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    let mut tagged = false;
    for (n, part) in key.split(':').enumerate() {
        if n > 0 {
            out.push(':');
        }
        if !tagged && part.starts_with('+') {
            tagged = true;
            out.push('{');
            out.push_str(part);
            out.push('}');
        } else {
            out.push_str(part);
        }
    }
    out
}

#[cfg(test)]
mod tagging {
    #[test]
    fn the_subscriber_is_the_tag_of_sessions_and_pointers() {
        assert_eq!(super::tagged("at:+254700000001:ATid_1:+x"), "at:{+254700000001}:ATid_1:+x");
        assert_eq!(super::tagged("sms:at-ke:+254700000001:c1"), "sms:at-ke:{+254700000001}:c1");
        assert_eq!(super::tagged("+254700000001:wallet:handoff:00ff"), "{+254700000001}:wallet:handoff:00ff");
    }
}
