//! How an SMS conversation stands in for PIN screens: an op that only reads runs on the
//! sender's registered number; one that moves money waits for a one-time code the
//! subscriber replies with (`YES 482193`), is refused above a channel's amount, and is
//! called off after too many wrong codes in the conversation or for the number in a day.

use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::domain::Msisdn;
use crate::gateway::{Checked, Conversation, StandIn, unix_ms};
use crate::menu::Message;
use crate::menu::words::is_yes;
use crate::money::{Auth, Db, Lane, MoneyError};
use crate::ops::Op;
use crate::session::{PendingCode, TextKey};

/// A channel's rules for its conversations.
#[derive(Clone, Copy, Debug)]
pub struct SmsRules {
    /// Minor units.
    pub max_amount: i64,
    /// How long a one-time code stays good.
    pub code_ttl: Duration,
    /// Wrong codes a number may send in a day, over all its conversations.
    pub wrong_codes_per_day: u32,
}

/// Wrong one-time codes before the movement is called off.
const MAX_WRONG_CODES: u8 = 3;

/// How long wrong one-time codes of one number are added up.
const CODE_FAILURE_WINDOW: &str = "1 day";

/// The conversation rules of one channel, with the counters in the ledger's database.
pub struct Codes<'a> {
    pub rules: SmsRules,
    pub lane: &'a Lane,
    /// Named by the event of each wrong code (`sms:at-ke`).
    pub channel: &'a str,
}

impl Conversation for Codes<'_> {
    fn auth(&self) -> Auth {
        Auth::Vouched { max_amount: self.rules.max_amount }
    }

    fn instead_of_pin<'a>(
        &'a self,
        msisdn: &'a Msisdn,
        op: Option<Op>,
    ) -> BoxFuture<'a, Result<StandIn, MoneyError>> {
        Box::pin(async move {
            // A PIN that is data (a new PIN to choose, to confirm) cannot be vouched for.
            let Some(op) = op else { return Ok(StandIn::Refused(Message::NotBySms)) };
            if !op.spec().moves_money() {
                return Ok(StandIn::Vouched);
            }
            if failures(self.lane, msisdn).await? >= self.rules.wrong_codes_per_day {
                return Ok(StandIn::Refused(Message::NoMoreCodes));
            }
            let code = format!("{:06}", rand::random_range(0..1_000_000u32));
            let ttl = u64::try_from(self.rules.code_ttl.as_millis()).unwrap_or(u64::MAX);
            Ok(StandIn::Code { code, expires_ms: unix_ms().saturating_add(ttl) })
        })
    }

    /// The right code, in time, goes past the PIN screen once; a wrong one is counted in
    /// the conversation and for the number, and the conversation's third or the number's
    /// last of the day calls the movement off, as does an expired code. Where the menu
    /// offers only the USSD hand-off, a reply is pointed there and counts for nothing.
    /// (A wrong code in a hop that then loses its compare-and-set and runs again is
    /// counted twice for the number: on the safe side.)
    fn check_code<'a>(
        &'a self,
        msisdn: &'a Msisdn,
        key: &'a TextKey,
        pending: &'a mut PendingCode,
        text: &'a str,
        by_reply: bool,
    ) -> BoxFuture<'a, Result<Checked, MoneyError>> {
        Box::pin(async move {
            if unix_ms() > pending.expires_ms {
                return Ok(Checked::Over(Message::CodeExpired));
            }
            if !by_reply {
                return Ok(Checked::Again(Message::DialToFinish));
            }
            let mut words = text.split_whitespace();
            let said_yes = words.next().is_some_and(is_yes);
            let code = words.next().unwrap_or_default();
            if said_yes && key.mark(code) == pending.mark {
                return Ok(Checked::Passed);
            }
            // Counted for the number too, so that guessing cannot go on conversation
            // after conversation.
            let today = failed(self.lane, msisdn, self.channel).await?;
            pending.wrong += 1;
            if pending.wrong >= MAX_WRONG_CODES || today >= self.rules.wrong_codes_per_day {
                return Ok(Checked::Over(Message::TooManyAnswers));
            }
            Ok(Checked::Again(Message::WrongCode))
        })
    }
}

/// Counts a wrong one-time code from `msisdn` on `channel`; returns the wrong codes of
/// its current day (which starts with the first of them). One statement, so that
/// concurrent conversations cannot each see a count below the cap.
pub async fn failed(db: impl Db, msisdn: &Msisdn, channel: &str) -> Result<u32, sqlx::Error> {
    // The channel is for the code's event, written at the commit.
    let failures = sqlx::query_scalar!(
        r#"WITH counted AS (
               INSERT INTO sms_code_failures AS f (msisdn, failures) VALUES ($1, 1)
               ON CONFLICT (msisdn) DO UPDATE SET
                   failures = CASE WHEN f.since < now() - $2::text::interval THEN 1 ELSE f.failures + 1 END,
                   since = CASE WHEN f.since < now() - $2::text::interval THEN now() ELSE f.since END
               RETURNING failures)
           SELECT failures AS "failures!" FROM counted, set_config('ussd.channel', $3, true)"#,
        msisdn.as_e164(),
        CODE_FAILURE_WINDOW,
        channel,
    )
    .fetch_one(db)
    .await?;
    Ok(u32::try_from(failures).unwrap_or(0))
}

/// The wrong one-time codes from `msisdn` in its current day.
pub async fn failures(db: impl Db, msisdn: &Msisdn) -> Result<u32, sqlx::Error> {
    let failures = sqlx::query_scalar!(
        "SELECT failures FROM sms_code_failures WHERE msisdn = $1 AND since >= now() - $2::text::interval",
        msisdn.as_e164(),
        CODE_FAILURE_WINDOW,
    )
    .fetch_optional(db)
    .await?;
    Ok(failures.and_then(|n| u32::try_from(n).ok()).unwrap_or(0))
}
