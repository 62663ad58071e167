//! Messages subscribers send, as their provider's callback delivers them: stored once by
//! the provider's message id (long ones joined from their parts), their text sealed
//! under the data key until answered, and acknowledged at once. `sms::answer` answers
//! them.

use governor::DefaultKeyedRateLimiter;
use sqlx::PgPool;

use crate::channel::sms::{Incoming, Provider};
use crate::domain::{Msisdn, Region};
use crate::money::{DataVault, Place, VaultError};

/// What became of one incoming message at the callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Stored: a worker answers it.
    Queued,
    /// The provider sent it before: nothing more happens.
    Duplicate,
    /// A piece of a longer message; the rest has not arrived.
    Partial,
    /// The sender is not a number we can answer.
    Unanswerable,
    /// Over the number's message limit: stored (so that its copies stay duplicates),
    /// not answered.
    Limited,
}

impl Received {
    pub fn as_str(self) -> &'static str {
        match self {
            Received::Queued => "queued",
            Received::Duplicate => "duplicate",
            Received::Partial => "partial",
            Received::Unanswerable => "unanswerable",
            Received::Limited => "limited",
        }
    }
}

/// Where a message came in.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub channel: &'a str,
    pub provider: Provider,
    /// How to read numbers in national form.
    pub region: Region,
    /// Seals the text while it waits.
    pub vault: &'a DataVault,
    /// Messages per number per minute.
    pub limiter: &'a DefaultKeyedRateLimiter<Msisdn>,
}

/// Stores `message` once, for a worker to answer. No connection is held and no menu
/// runs while the provider waits for its acknowledgement.
pub async fn receive(pool: &PgPool, ctx: Context<'_>, message: Incoming) -> Result<Received, sqlx::Error> {
    let Ok(msisdn) = Msisdn::parse(&message.from, ctx.region) else {
        return Ok(Received::Unanswerable);
    };
    let (message_id, text) = match &message.part {
        None => (message.message_id, message.text),
        Some(part) => {
            match join(pool, ctx.provider, &msisdn, part, &message.message_id, &message.text).await? {
                Some(joined) => joined,
                None => return Ok(Received::Partial),
            }
        }
    };
    let row = text_row(ctx.provider.name(), &message_id);
    let sealed = ctx.vault.seal(text_place(&row), &text).await.map_err(VaultError::into_sqlx)?;
    let stored: Option<i64> = sqlx::query_scalar(
        "INSERT INTO sms_inbound (channel, provider, message_id, msisdn, text_sealed)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider, message_id) DO NOTHING RETURNING id",
    )
    .bind(ctx.channel)
    .bind(ctx.provider.name())
    .bind(&message_id)
    .bind(msisdn.as_e164())
    .bind(sealed)
    .fetch_optional(pool)
    .await?;
    let Some(id) = stored else { return Ok(Received::Duplicate) };
    // Counted once per message, not per provider retry; over the limit the message stays
    // stored (so that its copies remain duplicates), answered, without its text.
    if ctx.limiter.check_key(&msisdn).is_ok() {
        return Ok(Received::Queued);
    }
    sqlx::query(
        "UPDATE sms_inbound SET answered_at = now(), handled = 'limited', text_sealed = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(Received::Limited)
}

/// Keeps one piece of a long message; when it was the last missing one, marks every
/// piece joined and returns the whole text with an id made from its pieces' ids. Of two
/// last pieces arriving at once, one joins; a piece retried later is recognised by its
/// own id; pieces are forgotten after an hour.
async fn join(
    pool: &PgPool,
    provider: Provider,
    msisdn: &Msisdn,
    part: &crate::channel::sms::Part,
    message_id: &str,
    body: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query("DELETE FROM sms_parts WHERE received_at < now() - interval '1 hour'").execute(pool).await?;
    sqlx::query(
        "INSERT INTO sms_parts (provider, message_id, msisdn, reference, part, total, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(provider.name())
    .bind(message_id)
    .bind(msisdn.as_e164())
    .bind(&part.reference)
    .bind(i16::try_from(part.number).unwrap_or(i16::MAX))
    .bind(i16::try_from(part.total).unwrap_or(i16::MAX))
    .bind(body)
    .execute(pool)
    .await?;
    let mut pieces: Vec<(i16, String, String)> = sqlx::query_as(
        "UPDATE sms_parts p SET joined = true
          WHERE p.provider = $1 AND p.msisdn = $2 AND p.reference = $3 AND p.total = $4 AND NOT p.joined
            AND (SELECT count(DISTINCT q.part) FROM sms_parts q
                  WHERE q.provider = $1 AND q.msisdn = $2 AND q.reference = $3 AND q.total = $4
                    AND NOT q.joined) = $4
         RETURNING p.part, p.body, p.message_id",
    )
    .bind(provider.name())
    .bind(msisdn.as_e164())
    .bind(&part.reference)
    .bind(i16::try_from(part.total).unwrap_or(i16::MAX))
    .fetch_all(pool)
    .await?;
    pieces.sort();
    pieces.dedup_by_key(|(n, _, _)| *n);
    if pieces.len() != usize::from(part.total) {
        return Ok(None);
    }
    let first_id = pieces.iter().map(|(_, _, id)| id.as_str()).min().unwrap_or_default();
    let joined = format!("concat:{first_id}");
    Ok(Some((joined, pieces.iter().map(|(_, body, _)| body.as_str()).collect())))
}

/// What names a waiting message's row for good: its provider and the provider's id.
pub fn text_row(provider: &str, message_id: &str) -> String {
    format!("{provider}/{message_id}")
}

/// Where a waiting message's text is sealed.
pub fn text_place(row: &str) -> Place<'_> {
    Place { table: "sms_inbound", column: "text_sealed", row }
}
