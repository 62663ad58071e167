//! Messages subscribers send: stored once by the provider's message id, long ones
//! joined from their parts, then answered through the outbox like receipts. STOP and
//! START change whether the number receives messages that are not transactional;
//! anything else gets the help reply.

use std::time::Duration;

use governor::DefaultKeyedRateLimiter;

use serde_json::json;
use sqlx::PgPool;

use crate::channel::sms::{Incoming, Provider};
use crate::channel::{Hop, Input};
use crate::domain::{Msisdn, Region};
use crate::gateway::{Gateway, HopRules, SmsRules};
use crate::menu::Menu;

/// What became of one incoming message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// The provider sent it before and it was answered: nothing more happens.
    Duplicate,
    /// The provider sent it again while the first copy is being answered: it should
    /// try later (by then it is a duplicate).
    InProgress,
    /// A piece of a longer message; the rest has not arrived.
    Partial,
    /// The sender is not a number we can answer.
    Unanswerable,
    Stopped,
    Started,
    Helped,
    /// A command that started a conversation in the menus.
    Command,
    /// A reply within a conversation.
    Reply,
    /// A command from a number without a wallet.
    NotRegistered,
    /// Over the number's message limit: acknowledged, not answered.
    Limited,
}

impl Handled {
    pub fn as_str(self) -> &'static str {
        match self {
            Handled::Duplicate => "duplicate",
            Handled::InProgress => "in_progress",
            Handled::Partial => "partial",
            Handled::Unanswerable => "unanswerable",
            Handled::Stopped => "stop",
            Handled::Started => "start",
            Handled::Helped => "help",
            Handled::Command => "command",
            Handled::Reply => "reply",
            Handled::NotRegistered => "not_registered",
            Handled::Limited => "limited",
        }
    }
}

/// Words that opt a number out, and back in, in every language we ship.
const STOP: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ACHA", "SITISHA"];
const START: &[&str] = &["START", "UNSTOP", "SUBSCRIBE", "ANZA"];
const HELP: &[&str] = &["HELP", "INFO", "MSAADA"];
/// What a subscriber replies with a one-time code to confirm.
const YES: &[&str] = &["YES", "NDIYO"];

/// Whether `word` is how a subscriber says yes to a one-time code.
pub fn is_yes(word: &str) -> bool {
    YES.contains(&word.to_uppercase().as_str())
}

/// Words menus may not use for commands: the gateway answers them itself.
pub fn reserved() -> impl Iterator<Item = &'static str> {
    [STOP, START, HELP, YES].into_iter().flatten().copied()
}

/// The command word: the first word, upper-cased.
fn keyword(text: &str) -> String {
    text.split_whitespace().next().unwrap_or_default().to_uppercase()
}

/// The gateway's own replies, in `language` (English unless Swahili).
fn own_reply(handled: Handled, language: &str, code: &str) -> String {
    let sw = language == "sw";
    match (handled, sw) {
        (Handled::Stopped, false) => "You will no longer receive promotional messages. Receipts for your transactions still come. Reply START to subscribe again.".into(),
        (Handled::Stopped, true) => "Hutapokea tena ujumbe wa matangazo. Risiti za miamala yako bado zitakuja. Jibu ANZA kujiandikisha tena.".into(),
        (Handled::Started, false) => "You will receive our messages again. Reply STOP to stop them.".into(),
        (Handled::Started, true) => "Utapokea ujumbe wetu tena. Jibu ACHA kuuzuia.".into(),
        (Handled::NotRegistered, false) => format!("This number has no mobile money account. Dial {code} to register."),
        (Handled::NotRegistered, true) => format!("Nambari hii haina akaunti ya pesa za simu. Piga {code} kujisajili."),
        (_, false) => format!("Dial {code} for your wallet. Never send your PIN by SMS. Reply STOP to stop promotional messages."),
        (_, true) => format!("Piga {code} kwa pochi yako. Usitume PIN yako kwa SMS. Jibu ACHA kuzuia ujumbe wa matangazo."),
    }
}

/// The help reply: the menu's commands, then the gateway's own line.
fn help(menu: Option<&Menu>, language: &str, code: &str) -> String {
    let mut lines = menu.map(|m| m.help(language)).unwrap_or_default();
    lines.push(own_reply(Handled::Helped, language, code));
    lines.join("\n")
}

/// Where and how an inbound message is answered.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub channel: &'a str,
    pub provider: Provider,
    /// How to read numbers in national form.
    pub region: Region,
    pub gateway: &'a Gateway,
    /// How conversations stand in for PIN screens.
    pub rules: SmsRules,
    /// How long one hop of a conversation may take.
    pub deadline: Duration,
    /// Messages per number per minute.
    pub limiter: &'a DefaultKeyedRateLimiter<Msisdn>,
}

/// After this long a message whose first copy has not been answered is taken over by
/// a retry: its process died (the hop deadline is far shorter).
const TAKEOVER_SECS: f64 = 30.0;

/// Stores `message` once, works out its answer (through the menus for commands and
/// replies in a conversation) and queues it. A copy arriving while the first is being
/// answered is told to come back; no connection is held while the menus work, since
/// they need connections of their own.
pub async fn receive(pool: &PgPool, ctx: Context<'_>, message: Incoming) -> Result<Handled, sqlx::Error> {
    let Ok(msisdn) = Msisdn::parse(&message.from, ctx.region) else {
        return Ok(Handled::Unanswerable);
    };
    let (message_id, text) = match &message.part {
        None => (message.message_id, message.text),
        Some(part) => {
            match join(pool, ctx.provider, &msisdn, part, &message.message_id, &message.text).await? {
                Some(joined) => joined,
                None => return Ok(Handled::Partial),
            }
        }
    };
    let claimed: Option<i64> = sqlx::query_scalar(
        "INSERT INTO sms_inbound AS i (channel, provider, message_id, msisdn) VALUES ($1, $2, $3, $4)
         ON CONFLICT (provider, message_id) DO UPDATE SET received_at = now()
          WHERE i.answered_at IS NULL AND i.received_at < now() - make_interval(secs => $5)
         RETURNING id",
    )
    .bind(ctx.channel)
    .bind(ctx.provider.name())
    .bind(&message_id)
    .bind(msisdn.as_e164())
    .bind(TAKEOVER_SECS)
    .fetch_optional(pool)
    .await?;
    let Some(inbound) = claimed else {
        let answered: bool = sqlx::query_scalar(
            "SELECT answered_at IS NOT NULL FROM sms_inbound WHERE provider = $1 AND message_id = $2",
        )
        .bind(ctx.provider.name())
        .bind(&message_id)
        .fetch_one(pool)
        .await?;
        return Ok(if answered { Handled::Duplicate } else { Handled::InProgress });
    };
    // Counted once per message, not per provider retry; over the limit it is stored
    // (so that its retries stay duplicates) and not answered.
    if ctx.limiter.check_key(&msisdn).is_err() {
        sqlx::query("UPDATE sms_inbound SET answered_at = now() WHERE id = $1")
            .bind(inbound)
            .execute(pool)
            .await?;
        return Ok(Handled::Limited);
    }
    let (handled, answer, language) = answer(pool, ctx, inbound, &msisdn, &text).await?;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO outbox (inbound_id, role, msisdn, language, template, data)
         VALUES ($1, 'reply', $2, $3, 'reply', $4) ON CONFLICT (inbound_id) DO NOTHING",
    )
    .bind(inbound)
    .bind(msisdn.as_e164())
    .bind(&language)
    .bind(if answer.secret {
        json!({ "text": answer.text, "secret": true })
    } else {
        json!({ "text": answer.text })
    })
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE sms_inbound SET answered_at = now() WHERE id = $1")
        .bind(inbound)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(handled)
}

/// What `text` from `msisdn` does, the reply, and its language.
async fn answer(
    pool: &PgPool,
    ctx: Context<'_>,
    inbound: i64,
    msisdn: &Msisdn,
    text: &str,
) -> Result<(Handled, Answer, String), sqlx::Error> {
    let registered: Option<String> = sqlx::query_scalar("SELECT language FROM customers WHERE msisdn = $1")
        .bind(msisdn.as_e164())
        .fetch_optional(pool)
        .await?;
    let language = registered.clone().unwrap_or_else(|| "en".into());
    let menus = ctx.gateway.menus();
    // The menu SMS speaks for: the first with commands (a wallet, not an agent menu).
    let sms_menu =
        menus.menus().iter().find(|m| !m.commands.is_empty()).or(menus.menus().first()).map(|m| &**m);
    let code = sms_menu.and_then(|m| m.codes.first()).map_or("*384#", String::as_str);
    let word = keyword(text);
    let reply = |handled| (handled, Answer::from(own_reply(handled, &language, code)));
    let (handled, answer) = if STOP.contains(&word.as_str()) {
        sqlx::query("INSERT INTO sms_opt_outs (msisdn) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(msisdn.as_e164())
            .execute(pool)
            .await?;
        reply(Handled::Stopped)
    } else if START.contains(&word.as_str()) {
        sqlx::query("DELETE FROM sms_opt_outs WHERE msisdn = $1")
            .bind(msisdn.as_e164())
            .execute(pool)
            .await?;
        reply(Handled::Started)
    } else if HELP.contains(&word.as_str()) {
        (Handled::Helped, help(sms_menu, &language, code).into())
    } else if let Some((menu, command)) =
        menus.menus().iter().find_map(|m| m.command(&word).map(|(c, _)| (m, c)))
    {
        let args: Vec<&str> = text.split_whitespace().skip(1).collect();
        let code = menu.codes.first().map_or(code, String::as_str);
        match (&registered, command.dial(code, &args)) {
            (None, _) => (Handled::NotRegistered, own_reply(Handled::NotRegistered, &language, code).into()),
            (Some(_), None) => (Handled::Helped, help(Some(menu), &language, code).into()),
            (Some(_), Some(dial)) => {
                // Each conversation its own session, so its movements' idempotency keys
                // never repeat an earlier conversation's.
                let session_id = format!("sms-{inbound}");
                let input = Input::PerHop { text: dial.clone(), first: true, seq: None };
                (Handled::Command, converse(pool, ctx, msisdn, session_id, dial, input).await?)
            }
        }
    } else {
        let open: Option<String> = sqlx::query_scalar(
            "SELECT session_id FROM sms_conversations
              WHERE channel = $1 AND msisdn = $2 AND updated_at > now() - make_interval(secs => $3)",
        )
        .bind(ctx.channel)
        .bind(msisdn.as_e164())
        .bind(ctx.gateway.session_ttl().as_secs_f64())
        .fetch_optional(pool)
        .await?;
        match open {
            Some(session_id) => {
                let input = Input::PerHop { text: text.trim().to_owned(), first: false, seq: None };
                (Handled::Reply, converse(pool, ctx, msisdn, session_id, String::new(), input).await?)
            }
            None => (Handled::Helped, help(sms_menu, &language, code).into()),
        }
    };
    Ok((handled, answer, language))
}

/// One hop of a conversation through the gateway; remembers the conversation while it
/// goes on and forgets it when it ends. Returns the screen's text.
async fn converse(
    pool: &PgPool,
    ctx: Context<'_>,
    msisdn: &Msisdn,
    session_id: String,
    service_code: String,
    input: Input,
) -> Result<Answer, sqlx::Error> {
    // Sessions live under `sms:<channel>`, apart from a USSD channel of the same name.
    let hop = Hop {
        provider: "sms",
        channel: format!("sms:{}", ctx.channel),
        session_id,
        msisdn: msisdn.clone(),
        service_code,
        input,
    };
    let rules =
        HopRules { deadline: ctx.deadline, codes: &[], repeat_window: Duration::ZERO, sms: Some(ctx.rules) };
    let (reply, _) = ctx.gateway.handle_with(&hop, rules).await;
    if reply.end {
        sqlx::query("DELETE FROM sms_conversations WHERE channel = $1 AND msisdn = $2 AND session_id = $3")
            .bind(ctx.channel)
            .bind(hop.msisdn.as_e164())
            .bind(&hop.session_id)
            .execute(pool)
            .await?;
    } else {
        sqlx::query(
            "INSERT INTO sms_conversations (channel, msisdn, session_id) VALUES ($1, $2, $3)
             ON CONFLICT (channel, msisdn) DO UPDATE SET session_id = excluded.session_id, updated_at = now()",
        )
        .bind(ctx.channel)
        .bind(hop.msisdn.as_e164())
        .bind(&hop.session_id)
        .execute(pool)
        .await?;
    }
    // A screen that asks for a secret is, over SMS, the one-time code's prompt.
    Ok(Answer { text: reply.text, secret: reply.secret_next })
}

/// A reply to queue; `secret` when it carries a one-time code, which the outbox forgets
/// once the message is sent.
struct Answer {
    text: String,
    secret: bool,
}

impl From<String> for Answer {
    fn from(text: String) -> Self {
        Answer { text, secret: false }
    }
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
            let text = own_reply(handled, language, "*384#");
            assert!(crate::sms::segments::segment(&text).count() <= 2, "{text}");
        }
        assert!(help(None, "sw", "*384#").starts_with("Piga *384#"));
        assert!(is_yes("ndiyo") && is_yes("Yes") && !is_yes("YESS"));
    }
}
