//! The anomaly detector every replica runs when there is a Redis: a consumer group of
//! its own (`anomalies`) on every stream, so replicas share the events. Each rule keeps
//! a window per account or channel in Redis (a sorted set by event time; one key per
//! rule and account or channel, so it fits Redis Cluster); an event that brings the window to the rule's
//! threshold is recorded in Postgres — a row and an `anomaly.detected` event in one
//! transaction — and marks the window fired. An event is acknowledged only once it is
//! handled, so a replica that dies leaves its events to the others.

use std::sync::Arc;
use std::time::Duration;

use metrics::counter;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, Script};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{By, Kind, Rule};
use crate::events::FAMILIES;
use crate::events::redis::{RedisLink, stream};

/// The detector's consumer group on every stream.
pub const GROUP: &str = "anomalies";

/// Adds the event to the account's window, drops what fell out of it, and answers what
/// the window holds; when that reaches the threshold and the window has not fired,
/// claims the firing for a minute (the caller makes it last the window once recorded).
const WINDOW: &str = r"
redis.call('ZADD', KEYS[1], 'GT', ARGV[3], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (tonumber(ARGV[3]) - tonumber(ARGV[4])))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local observed = 0
if ARGV[1] == 'outflow' then
    for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
        observed = observed + tonumber(string.match(member, '|(%-?%d+)$'))
    end
else
    observed = redis.call('ZCARD', KEYS[1])
end
if observed >= tonumber(ARGV[5]) and redis.call('SET', KEYS[2], '1', 'NX', 'PX', 60000) then
    return {observed, 1}
end
return {observed, 0}
";

/// How long an event handed to a consumer that never acknowledged it waits before
/// another replica takes it.
const ABANDONED_AFTER: Duration = Duration::from_secs(60);

/// Applies the rules to the streams. Cheap to clone.
#[derive(Clone)]
pub struct Detector {
    conn: RedisLink,
    pool: PgPool,
    prefix: String,
    rules: Arc<Vec<Rule>>,
    consumer: String,
    window: Script,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the database: {0}")]
    Database(#[from] sqlx::Error),
}

impl Detector {
    /// `conn` is the detector's own: its reads block, and would hold up whatever else
    /// shared the connection.
    pub fn new(conn: RedisLink, pool: PgPool, prefix: &str, rules: Vec<Rule>) -> Self {
        Detector {
            conn,
            pool,
            prefix: prefix.to_owned(),
            rules: Arc::new(rules),
            consumer: format!("detector-{}-{:08x}", std::process::id(), rand::random::<u32>()),
            window: Script::new(WINDOW),
        }
    }

    fn streams(&self) -> Vec<String> {
        FAMILIES.iter().map(|f| stream(&self.prefix, f, self.conn.is_cluster())).collect()
    }

    /// Makes the group on every stream (from what comes next), once.
    pub async fn join(&self) -> Result<(), DetectError> {
        let mut conn = self.conn.clone();
        for key in self.streams() {
            let made: redis::RedisResult<()> = conn.xgroup_create_mkstream(&key, GROUP, "$").await;
            match made {
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Handles what the streams hold for the group now (waiting up to `block`), then
    /// what other consumers abandoned; how many events were handled.
    pub async fn pass(&self, block: Duration) -> Result<usize, DetectError> {
        let streams = self.streams();
        let mut conn = self.conn.clone();
        let options = StreamReadOptions::default()
            .group(GROUP, &self.consumer)
            .count(100)
            .block(block.as_millis() as usize);
        let ids = vec![">"; streams.len()];
        let reply: Option<StreamReadReply> = conn.xread_options(&streams, &ids, &options).await?;
        let mut handled = 0;
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            handled += self.handle_all(&key.key, key.ids).await?;
        }
        for key in &streams {
            let options = StreamAutoClaimOptions::default().count(100);
            let claimed: StreamAutoClaimReply = conn
                .xautoclaim_options(
                    key,
                    GROUP,
                    &self.consumer,
                    ABANDONED_AFTER.as_millis() as u64,
                    "0-0",
                    options,
                )
                .await?;
            handled += self.handle_all(key, claimed.claimed).await?;
        }
        Ok(handled)
    }

    async fn handle_all(&self, key: &str, entries: Vec<StreamId>) -> Result<usize, DetectError> {
        let mut conn = self.conn.clone();
        let count = entries.len();
        for entry in entries {
            let event: Option<String> = entry.get("event");
            if let Some(event) = event.and_then(|e| serde_json::from_str::<Value>(&e).ok()) {
                self.apply(&event).await?;
            }
            let _: u64 = conn.xack(key, GROUP, &[&entry.id]).await?;
        }
        Ok(count)
    }

    /// Applies every rule that counts `event` to its account's window.
    async fn apply(&self, event: &Value) -> Result<(), DetectError> {
        let kind = event["type"].as_str().unwrap_or_default();
        let data = &event["data"];
        let (Some(account), Some(id), Some(at)) =
            (event["account"].as_str(), event["id"].as_str(), event["time"].as_str().and_then(unix_ms))
        else {
            return Ok(());
        };
        for rule in self.rules.iter().filter(|r| r.counts(kind, data)) {
            let member = match rule.kind {
                Kind::Outflow => {
                    let paid = data["amount"].as_i64().unwrap_or(0) + data["fee"].as_i64().unwrap_or(0);
                    format!("{id}|{paid}")
                }
                Kind::DistinctPayees => data["counterparty"].as_str().unwrap_or_default().to_owned(),
                Kind::Events => id.to_owned(),
                Kind::DistinctAccounts => account.to_owned(),
            };
            let channel = data["channel"].as_str().unwrap_or_default();
            let whose = match rule.by {
                By::Account => account.to_owned(),
                By::Channel => format!("channel:{channel}"),
            };
            let tag = format!("{}anomaly:{{{}:{whose}}}", self.prefix, rule.name);
            let window_ms = u64::from(rule.window_secs) * 1000;
            let mut conn = self.conn.clone();
            let (observed, crossed): (i64, i64) = self
                .window
                .key(format!("{tag}:window"))
                .key(format!("{tag}:fired"))
                .arg(rule.kind.name())
                .arg(member)
                .arg(at)
                .arg(window_ms)
                .arg(rule.threshold)
                .invoke_async(&mut conn)
                .await?;
            if crossed == 1 {
                let found = Found {
                    account,
                    observed,
                    trigger: id,
                    channel: Some(channel).filter(|_| rule.by == By::Channel),
                };
                if let Err(e) = self.record(rule, found).await {
                    // Unclaimed, so that the event read again fires the rule then.
                    let _: redis::RedisResult<()> = conn.del(format!("{tag}:fired")).await;
                    return Err(e);
                }
                let _: () = conn.pset_ex(format!("{tag}:fired"), 1, window_ms).await?;
            }
        }
        Ok(())
    }

    async fn record(&self, rule: &Rule, found: Found<'_>) -> Result<(), DetectError> {
        let Found { account, observed, trigger, channel } = found;
        let mut data = json!({ "kind": rule.kind.name(), "by": rule.by.name() });
        if let Some(channel) = channel {
            data["channel"] = channel.into();
        }
        let Some(account_id) = account.strip_prefix("AC").and_then(|hex| i64::from_str_radix(hex, 16).ok())
        else {
            return Ok(());
        };
        let recorded = sqlx::query_scalar!(
            "SELECT record_anomaly($1, $2, $3, $4, $5, $6, $7)",
            rule.name,
            account_id,
            observed,
            rule.threshold,
            rule.window_secs as i32,
            trigger,
            data,
        )
        .fetch_one(&self.pool)
        .await?;
        if recorded.is_some() {
            counter!("ussd_anomalies_total", "rule" => rule.name.clone()).increment(1);
            info!(rule = %rule.name, account, observed, threshold = rule.threshold, "anomaly detected");
        }
        Ok(())
    }

    /// Detects until `stop` is cancelled; joins the streams again after a failure (a
    /// stream deleted, a Redis restarted empty).
    pub async fn run(self, stop: CancellationToken) {
        let mut joined = false;
        while !stop.is_cancelled() {
            let pass = async {
                if !joined {
                    self.join().await?;
                    joined = true;
                }
                self.pass(Duration::from_secs(1)).await
            };
            if let Some(Err(e)) = stop.run_until_cancelled(pass).await {
                joined = false;
                warn!(error = %e, "the anomaly detector failed; its events wait and it tries again in 1 s");
                let _ = stop.run_until_cancelled(tokio::time::sleep(Duration::from_secs(1))).await;
            }
        }
    }
}

/// What a rule found: the account it is recorded on (for a channel's rule, that of the
/// event that reached the threshold), what it measured, and that event.
struct Found<'a> {
    account: &'a str,
    observed: i64,
    trigger: &'a str,
    channel: Option<&'a str>,
}

/// Milliseconds since the epoch of an event's time (`2026-12-06T09:14:03.512071Z`).
fn unix_ms(time: &str) -> Option<i64> {
    let b = time.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' || !time.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| time.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let micros = match time.get(19..time.len() - 1) {
        Some("") => 0,
        Some(f) => f.strip_prefix('.')?.get(..3).and_then(|ms| ms.parse::<i64>().ok())? * 1000,
        None => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3_600 + mm * 60 + ss) * 1_000_000 + micros) / 1000)
}

#[cfg(test)]
mod tests {
    use super::unix_ms;

    #[test]
    fn event_times_read_as_the_epoch_counts_them() {
        assert_eq!(unix_ms("1970-01-01T00:00:00.000000Z"), Some(0));
        assert_eq!(unix_ms("2026-12-06T09:14:03.512071Z"), Some(1_796_548_443_512));
        assert_eq!(unix_ms("2000-02-29T23:59:59Z"), Some(951_868_799_000));
        assert_eq!(unix_ms("not a time"), None);
    }
}
