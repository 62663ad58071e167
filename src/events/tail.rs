//! `ussd-gateway events tail`: reads the streams as a consumer group does
//! (`XREADGROUP`, then `XACK`), so an operator sees events flow in one command and a
//! consumer's author sees what their code will receive.

use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio_util::sync::CancellationToken;

use super::FAMILIES;
use super::redis::{RedisLink, stream};

/// What to read.
#[derive(Clone, Debug)]
pub struct Tail {
    /// Event types to show: an exact type or a pattern with `*` (`transfer.*`,
    /// `*.rejected`, `*`).
    pub types: String,
    /// Where a new group starts on each stream: `$` (what comes next), `0` (all the
    /// streams still hold) or an entry id (`1765011243512-0`: from that moment).
    pub from: String,
    /// A named group is kept, so the next tail resumes where this one stopped; without
    /// one the group is made for this tail and removed when it ends.
    pub group: Option<String>,
    /// Stop after this many events.
    pub count: Option<u64>,
}

/// How long one read waits for entries; a stop is noticed within it.
const BLOCK_MS: usize = 1_000;

/// Hands each event's envelope (JSON) that matches to `out`, oldest first per stream,
/// acknowledging each, until `count` events or `stop`; how many were handed.
pub async fn tail(
    mut conn: RedisLink,
    prefix: &str,
    tail: &Tail,
    stop: &CancellationToken,
    mut out: impl FnMut(&str),
) -> redis::RedisResult<u64> {
    let streams: Vec<String> = FAMILIES
        .iter()
        .filter(|f| glob(tail.types.split('.').next().unwrap_or("*"), f))
        .map(|f| stream(prefix, f, conn.is_cluster()))
        .collect();
    let group = tail
        .group
        .clone()
        .unwrap_or_else(|| format!("tail-{}-{:08x}", std::process::id(), rand::random::<u32>()));
    for key in &streams {
        let made: redis::RedisResult<()> = conn.xgroup_create_mkstream(key, &group, &tail.from).await;
        match made {
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            other => other?,
        }
    }
    let shown = read(&mut conn, &streams, &group, tail, stop, &mut out).await;
    if tail.group.is_none() {
        for key in &streams {
            let _: redis::RedisResult<()> = conn.xgroup_destroy(key, &group).await;
        }
    }
    shown
}

async fn read(
    conn: &mut RedisLink,
    streams: &[String],
    group: &str,
    tail: &Tail,
    stop: &CancellationToken,
    out: &mut impl FnMut(&str),
) -> redis::RedisResult<u64> {
    // First what a kept group handed this consumer and it never acknowledged (a tail
    // that was stopped), then what comes next.
    let mut from = "0";
    let mut shown = 0u64;
    while !stop.is_cancelled() && tail.count.is_none_or(|n| shown < n) {
        // Never more than are still wanted: what is read is acknowledged.
        let wanted = tail.count.map_or(100, |n| (n - shown).min(100)) as usize;
        let options = StreamReadOptions::default().group(group, "tail").count(wanted).block(BLOCK_MS);
        let ids = vec![from; streams.len()];
        let reply: Option<StreamReadReply> = conn.xread_options(streams, &ids, &options).await?;
        let keys = reply.map(|r| r.keys).unwrap_or_default();
        if from == "0" && keys.iter().all(|k| k.ids.is_empty()) {
            from = ">";
        }
        for key in keys {
            for entry in key.ids {
                let kind: Option<String> = entry.get("type");
                let event: Option<String> = entry.get("event");
                if let (Some(kind), Some(event)) = (kind, event)
                    && glob(&tail.types, &kind)
                {
                    out(&event);
                    shown += 1;
                }
                let _: u64 = conn.xack(&key.key, group, &[&entry.id]).await?;
            }
        }
    }
    Ok(shown)
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(text) = text.strip_prefix(head) else {
                return false;
            };
            (0..=text.len()).filter(|&i| text.is_char_boundary(i)).any(|i| glob(rest, &text[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn patterns_match_types_as_a_shell_would() {
        assert!(glob("*", "transfer.posted"));
        assert!(glob("transfer.*", "transfer.posted"));
        assert!(!glob("transfer.*", "cash_in.posted"));
        assert!(glob("*.rejected", "float.rejected"));
        assert!(!glob("*.rejected", "float.moved"));
        assert!(glob("bill.paid", "bill.paid"));
        assert!(!glob("bill.paid", "bill.paid.x"));
        assert!(glob("c*.*ed", "cash_out.posted"));
    }
}
