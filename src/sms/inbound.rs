//! Messages subscribers send: stored once by the provider's message id, long ones
//! joined from their parts, then answered through the outbox like receipts. STOP and
//! START change whether the number receives messages that are not transactional;
//! anything else gets the help reply.

use serde_json::json;
use sqlx::PgPool;

use crate::channel::sms::{Incoming, Provider};
use crate::domain::{Msisdn, Region};

/// What became of one incoming message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// The provider sent it before: nothing more happens.
    Duplicate,
    /// A piece of a longer message; the rest has not arrived.
    Partial,
    /// The sender is not a number we can answer.
    Unanswerable,
    Stopped,
    Started,
    Helped,
}

impl Handled {
    pub fn as_str(self) -> &'static str {
        match self {
            Handled::Duplicate => "duplicate",
            Handled::Partial => "partial",
            Handled::Unanswerable => "unanswerable",
            Handled::Stopped => "stop",
            Handled::Started => "start",
            Handled::Helped => "help",
        }
    }
}

/// Words that opt a number out, and back in, in every language we ship.
const STOP: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ACHA", "SITISHA"];
const START: &[&str] = &["START", "UNSTOP", "SUBSCRIBE", "ANZA"];

/// The command word: the first word, upper-cased.
fn keyword(text: &str) -> String {
    text.split_whitespace().next().unwrap_or_default().to_uppercase()
}

/// The reply in `language` (English unless Swahili).
fn reply(handled: Handled, language: &str, code: &str) -> String {
    let sw = language == "sw";
    match (handled, sw) {
        (Handled::Stopped, false) => "You will no longer receive promotional messages. Receipts for your transactions still come. Reply START to subscribe again.".into(),
        (Handled::Stopped, true) => "Hutapokea tena ujumbe wa matangazo. Risiti za miamala yako bado zitakuja. Jibu ANZA kujiandikisha tena.".into(),
        (Handled::Started, false) => "You will receive our messages again. Reply STOP to stop them.".into(),
        (Handled::Started, true) => "Utapokea ujumbe wetu tena. Jibu ACHA kuuzuia.".into(),
        (_, false) => format!("Dial {code} to send money, check your balance and see your statement. Never send your PIN by SMS. Reply STOP to stop promotional messages."),
        (_, true) => format!("Piga {code} kutuma pesa, kuona salio na taarifa fupi. Usitume PIN yako kwa SMS. Jibu ACHA kuzuia ujumbe wa matangazo."),
    }
}

/// Where and how an inbound message is answered.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub channel: &'a str,
    pub provider: Provider,
    /// How to read numbers in national form.
    pub region: Region,
    /// The USSD code the help reply points to.
    pub code: &'a str,
}

/// Stores `message` once and queues its reply.
pub async fn receive(pool: &PgPool, ctx: Context<'_>, message: Incoming) -> Result<Handled, sqlx::Error> {
    let Ok(msisdn) = Msisdn::parse(&message.from, ctx.region) else {
        return Ok(Handled::Unanswerable);
    };
    let (message_id, text) = match &message.part {
        None => (message.message_id, message.text),
        Some(part) => {
            let joined = format!("concat:{}:{}", part.reference, msisdn.as_e164());
            match join(pool, ctx.provider, &msisdn, part, &message.text, &joined).await? {
                Some(text) => (joined, text),
                None => return Ok(Handled::Partial),
            }
        }
    };
    let mut tx = pool.begin().await?;
    let inbound: Option<i64> = sqlx::query_scalar(
        "INSERT INTO sms_inbound (channel, provider, message_id, msisdn) VALUES ($1, $2, $3, $4)
         ON CONFLICT (provider, message_id) DO NOTHING RETURNING id",
    )
    .bind(ctx.channel)
    .bind(ctx.provider.name())
    .bind(&message_id)
    .bind(msisdn.as_e164())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(inbound) = inbound else {
        return Ok(Handled::Duplicate);
    };
    let word = keyword(&text);
    let handled = if STOP.contains(&word.as_str()) {
        sqlx::query("INSERT INTO sms_opt_outs (msisdn) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(msisdn.as_e164())
            .execute(&mut *tx)
            .await?;
        Handled::Stopped
    } else if START.contains(&word.as_str()) {
        sqlx::query("DELETE FROM sms_opt_outs WHERE msisdn = $1")
            .bind(msisdn.as_e164())
            .execute(&mut *tx)
            .await?;
        Handled::Started
    } else {
        Handled::Helped
    };
    let language: String =
        sqlx::query_scalar("SELECT coalesce((SELECT language FROM customers WHERE msisdn = $1), 'en')")
            .bind(msisdn.as_e164())
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query(
        "INSERT INTO outbox (inbound_id, role, msisdn, language, template, data)
         VALUES ($1, 'reply', $2, $3, 'reply', $4)",
    )
    .bind(inbound)
    .bind(msisdn.as_e164())
    .bind(&language)
    .bind(json!({ "text": reply(handled, &language, ctx.code) }))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(handled)
}

/// Keeps one piece of a long message; when it was the last missing one, takes every
/// piece out and returns the whole text. Of two last pieces arriving at once, one joins;
/// a piece retried after its message was joined (`joined`) is not kept, and pieces of a
/// message that never completes are forgotten after a day.
async fn join(
    pool: &PgPool,
    provider: Provider,
    msisdn: &Msisdn,
    part: &crate::channel::sms::Part,
    body: &str,
    joined: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("DELETE FROM sms_parts WHERE received_at < now() - interval '1 day'").execute(pool).await?;
    sqlx::query(
        "INSERT INTO sms_parts (provider, msisdn, reference, part, total, body)
         SELECT $1, $2, $3, $4, $5, $6
          WHERE NOT EXISTS (SELECT 1 FROM sms_inbound WHERE provider = $1 AND message_id = $7)
         ON CONFLICT DO NOTHING",
    )
    .bind(provider.name())
    .bind(msisdn.as_e164())
    .bind(&part.reference)
    .bind(i16::try_from(part.number).unwrap_or(i16::MAX))
    .bind(i16::try_from(part.total).unwrap_or(i16::MAX))
    .bind(body)
    .bind(joined)
    .execute(pool)
    .await?;
    let pieces: Vec<(i16, String)> = sqlx::query_as(
        "DELETE FROM sms_parts p
          WHERE p.provider = $1 AND p.msisdn = $2 AND p.reference = $3
            AND (SELECT count(*) FROM sms_parts q
                  WHERE q.provider = $1 AND q.msisdn = $2 AND q.reference = $3) = p.total
         RETURNING p.part, p.body",
    )
    .bind(provider.name())
    .bind(msisdn.as_e164())
    .bind(&part.reference)
    .fetch_all(pool)
    .await?;
    if pieces.len() != usize::from(part.total) {
        return Ok(None);
    }
    let mut pieces = pieces;
    pieces.sort_by_key(|(n, _)| *n);
    Ok(Some(pieces.into_iter().map(|(_, body)| body).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_word_is_the_command_in_any_case() {
        assert_eq!(keyword("  stop please"), "STOP");
        assert_eq!(keyword("Acha"), "ACHA");
        assert_eq!(keyword(""), "");
        for (handled, language) in
            [(Handled::Stopped, "en"), (Handled::Started, "sw"), (Handled::Helped, "en")]
        {
            let text = reply(handled, language, "*384#");
            assert!(crate::sms::segments::segment(&text).count() <= 2, "{text}");
        }
        assert!(reply(Handled::Helped, "sw", "*384#").starts_with("Piga *384#"));
    }
}
