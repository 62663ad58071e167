//! Feature flags: switched in the database, held by every replica as a snapshot that is
//! reloaded when the table's revision moves, and decided per subscriber.
//!
//! A replica polls the table's revisions every [`REFRESH`] (one small query) instead of
//! listening for a notification: nothing to reconnect or to lose behind a pooler, and a
//! change reaches every replica within about a second. A hop reads the snapshot it holds,
//! never the database.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::domain::Msisdn;

/// How often a replica looks for a change to the flags.
pub const REFRESH: Duration = Duration::from_secs(1);

/// One flag as the database holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Flag {
    pub name: String,
    pub description: String,
    pub enabled: bool,
    /// Percent of subscribers it is on for; `None`: everyone.
    pub rollout: Option<i16>,
    /// E.164 numbers and channel names always in or out while it is enabled (out wins).
    pub numbers_in: Vec<String>,
    pub numbers_out: Vec<String>,
    pub channels_in: Vec<String>,
    pub channels_out: Vec<String>,
    /// A change needs a second token's approval.
    pub sensitive: bool,
    pub revision: i64,
    pub updated_at: String,
}

/// The columns every read of a flag takes, in [`Flag`]'s order.
pub const COLUMNS: &str = "name, description, enabled, rollout, numbers_in, numbers_out, channels_in, \
     channels_out, sensitive, revision, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS updated_at";

impl Flag {
    /// Whether the flag is on for this subscriber on this channel: off while disabled;
    /// then a number or channel listed out is out, one listed in is in, and the rest are
    /// in when their bucket falls within the rollout.
    pub fn on_for(&self, msisdn: &str, channel: &str) -> bool {
        let listed = |list: &[String], value: &str| list.iter().any(|v| v == value);
        if !self.enabled || listed(&self.numbers_out, msisdn) || listed(&self.channels_out, channel) {
            return false;
        }
        if listed(&self.numbers_in, msisdn) || listed(&self.channels_in, channel) {
            return true;
        }
        self.rollout.is_none_or(|share| i16::from(bucket(&self.name, msisdn)) < share)
    }
}

/// A subscriber's place from 0 to 99 for one flag: the same on every replica and every
/// release (SHA-256, not the standard library's hasher), apart for each flag, so that a
/// 10% rollout of one is not the same 10% as another's. Raising a rollout keeps everyone
/// who was in.
pub fn bucket(flag: &str, msisdn: &str) -> u8 {
    let digest = Sha256::new().chain_update(flag).chain_update([0]).chain_update(msisdn).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 100) as u8
}

/// The flags as last read, by name.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The sum of the rows' revisions and their number. Every change gives its row a
    /// higher revision, so the sum moves even when two changes commit in the other order
    /// than their revisions were taken (the highest revision alone would not).
    seen: (i64, i64),
    flags: HashMap<String, Flag>,
}

impl FromIterator<Flag> for Snapshot {
    fn from_iter<I: IntoIterator<Item = Flag>>(rows: I) -> Self {
        let flags: HashMap<String, Flag> = rows.into_iter().map(|f| (f.name.clone(), f)).collect();
        let seen = (flags.values().map(|f| f.revision).sum(), flags.len() as i64);
        Snapshot { seen, flags }
    }
}

impl Snapshot {
    /// Whether `name` is on for this subscriber; `default` when no row names it.
    pub fn on(&self, name: &str, default: bool, msisdn: &Msisdn, channel: &str) -> bool {
        self.flags.get(name).map_or(default, |f| f.on_for(msisdn.as_e164(), channel))
    }
}

/// The flags one replica holds (cheap to clone).
#[derive(Clone, Default)]
pub struct Flags {
    snapshot: Arc<ArcSwap<Snapshot>>,
}

impl Flags {
    /// The flags as last read: what a hop decides by (borrowed, not cloned: the hop
    /// drops it before it waits on anything).
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// Reads the flags again if they changed since the last read; whether they had.
    pub async fn refresh(&self, pool: &PgPool) -> Result<bool, sqlx::Error> {
        let seen: (i64, i64) =
            sqlx::query_as("SELECT coalesce(sum(revision), 0)::bigint, count(*) FROM flags")
                .fetch_one(pool)
                .await?;
        if seen == self.snapshot.load().seen {
            return Ok(false);
        }
        // Marked with the revisions read with the rows: a change between the two queries
        // is seen on the next look rather than missed.
        self.snapshot.store(Arc::new(list(pool).await?.into_iter().collect()));
        Ok(true)
    }
}

/// Every flag, by name.
pub async fn list(pool: &PgPool) -> Result<Vec<Flag>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM flags ORDER BY name")).fetch_all(pool).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(enabled: bool, rollout: Option<i16>) -> Flag {
        Flag {
            name: "merchant_pay".into(),
            description: String::new(),
            enabled,
            rollout,
            numbers_in: Vec::new(),
            numbers_out: Vec::new(),
            channels_in: Vec::new(),
            channels_out: Vec::new(),
            sensitive: false,
            revision: 1,
            updated_at: String::new(),
        }
    }

    fn number(n: u32) -> String {
        format!("+2547{n:08}")
    }

    #[test]
    fn a_ten_percent_rollout_takes_about_a_tenth_and_keeps_each_subscriber_on_their_side() {
        let ten = flag(true, Some(10));
        let in_at_ten: Vec<u32> = (0..20_000).filter(|n| ten.on_for(&number(*n), "ussd")).collect();
        // 2,000 expected; 4.5 standard deviations either side.
        assert!((1_820..=2_180).contains(&in_at_ten.len()), "{} of 20,000", in_at_ten.len());
        let again: Vec<u32> = (0..20_000).filter(|n| ten.on_for(&number(*n), "ussd")).collect();
        assert_eq!(in_at_ten, again, "the same subscribers every time");
        let twenty = flag(true, Some(20));
        assert!(in_at_ten.iter().all(|n| twenty.on_for(&number(*n), "ussd")), "raising it keeps who was in");
        let mut other = flag(true, Some(10));
        other.name = "bill_pay".into();
        let both = in_at_ten.iter().filter(|n| other.on_for(&number(**n), "ussd")).count();
        assert!(both < 400, "another flag's tenth is another tenth ({both} in both)");
    }

    #[test]
    fn disabled_is_off_for_everyone_and_out_beats_in() {
        let mut f = flag(false, None);
        f.numbers_in = vec![number(1)];
        assert!(!f.on_for(&number(1), "ussd"), "off means off, whoever is listed");
        f.enabled = true;
        f.rollout = Some(0);
        assert!(f.on_for(&number(1), "ussd") && !f.on_for(&number(2), "ussd"), "listed in at 0%");
        f.channels_out = vec!["sms".into()];
        assert!(!f.on_for(&number(1), "sms"), "a channel listed out beats a number listed in");
        f.channels_in = vec!["hubtel-gh".into()];
        assert!(f.on_for(&number(2), "hubtel-gh"));
        assert!(
            flag(true, None).on_for(&number(3), "ussd") && !flag(true, Some(0)).on_for(&number(3), "ussd")
        );
    }

    #[test]
    fn a_flag_no_row_names_takes_the_default() {
        let snapshot = Snapshot::default();
        let msisdn = Msisdn::parse("+254700000001", crate::domain::Region::parse("KE").unwrap()).unwrap();
        assert!(snapshot.on("x", true, &msisdn, "ussd") && !snapshot.on("x", false, &msisdn, "ussd"));
    }
}
