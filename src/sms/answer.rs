//! The worker that answers subscribers' messages, in every replica: it claims stored
//! messages (one per number at a time, oldest first, `SKIP LOCKED`, a lease on the
//! row), runs commands and replies as hops of an SMS conversation through the gateway —
//! no hop deadline, nobody waits on the line — and queues the answer through the
//! outbox with the message marked answered, in one transaction. A message whose
//! dependencies failed is tried again later, backing off; one that keeps failing is
//! dead-lettered with its reason, and its sender told to check before trying again.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::SmsChannelSpec;
use super::codes::Codes;
use super::own::{help, keyword, own_reply};
use crate::channel::{Hop, Input};
use crate::domain::{Msisdn, Region};
use crate::gateway::{Gateway, HopKind, HopRules};
use crate::menu::Message;
use crate::menu::words::{HELP, START, STOP};
use crate::money::VaultError;

/// What answering one message came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    Stopped,
    Started,
    Helped,
    /// A command that started a conversation in the menus.
    Command,
    /// A reply within a conversation.
    Reply,
    /// A command from a number without a wallet.
    NotRegistered,
    /// A movement whose outcome is not known yet: the promised SMS is the answer.
    Promised,
}

impl Handled {
    pub fn as_str(self) -> &'static str {
        match self {
            Handled::Stopped => "stop",
            Handled::Started => "start",
            Handled::Helped => "help",
            Handled::Command => "command",
            Handled::Reply => "reply",
            Handled::NotRegistered => "not_registered",
            Handled::Promised => "promised",
        }
    }
}

/// How the worker paces, bounds and retries.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Messages claimed at once (each from a different number).
    pub batch: i64,
    /// How long a claim lasts: longer than answering can take.
    pub lease: Duration,
    /// The bound on one conversation hop. Nobody waits on the line; it only keeps a
    /// stuck dependency from holding the message forever.
    pub hop_bound: Duration,
    /// Tries before a message is dead-lettered.
    pub max_attempts: i32,
    /// The first retry's delay; each further one doubles, up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// How often an idle worker looks for messages.
    pub idle_poll: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            batch: 16,
            lease: Duration::from_secs(45),
            hop_bound: Duration::from_secs(30),
            max_attempts: 8,
            retry_base: Duration::from_secs(2),
            retry_cap: Duration::from_secs(300),
            idle_poll: Duration::from_millis(250),
        }
    }
}

impl Policy {
    fn backoff(&self, attempts: i32) -> Duration {
        let doubling =
            2u32.saturating_pow(u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20));
        self.retry_base.saturating_mul(doubling).min(self.retry_cap)
    }
}

/// Answers the messages of the configured SMS channels. Cheap to clone.
#[derive(Clone)]
pub struct Answerer {
    gateway: Arc<Gateway>,
    channels: Arc<[SmsChannelSpec]>,
    region: Region,
    policy: Arc<Policy>,
}

/// A claimed message.
#[derive(sqlx::FromRow)]
struct Claimed {
    id: i64,
    channel: String,
    provider: String,
    message_id: String,
    msisdn: String,
    text_sealed: Option<Vec<u8>>,
    attempts: i32,
}

/// What to do with a message once its hop has run.
enum Said {
    /// Queue this reply.
    Text(Handled, Answer, String),
    /// The promised SMS answers it.
    Promised,
    /// Nothing changed; answer it again later, for this reason.
    Retry(String),
    /// It can never be answered, for this reason.
    Dead(String),
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

const CLAIM: &str = "
WITH due AS (
    SELECT i.id FROM sms_inbound i
     WHERE i.answered_at IS NULL AND i.dead_at IS NULL AND i.next_attempt_at <= now()
       -- Stored by a version that answered in the callback: left to it for a minute.
       AND (i.text_sealed IS NOT NULL OR i.received_at < now() - interval '1 minute')
       AND NOT EXISTS (SELECT 1 FROM sms_inbound e
                        WHERE e.msisdn = i.msisdn AND e.answered_at IS NULL AND e.dead_at IS NULL
                          AND e.id < i.id)
     ORDER BY i.id
     LIMIT $1
       FOR UPDATE SKIP LOCKED
)
UPDATE sms_inbound i SET attempts = i.attempts + 1,
       next_attempt_at = now() + make_interval(secs => $2)
  FROM due WHERE i.id = due.id
RETURNING i.id, i.channel, i.provider, i.message_id, i.msisdn, i.text_sealed, i.attempts";

impl Answerer {
    pub fn new(
        gateway: Arc<Gateway>,
        channels: Arc<[SmsChannelSpec]>,
        region: Region,
        policy: Policy,
    ) -> Self {
        Answerer { gateway, channels, region, policy: Arc::new(policy) }
    }

    fn pool(&self) -> &PgPool {
        self.gateway.money().pool()
    }

    /// Answers messages until `stop` is cancelled, then finishes the batch in hand.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            if stop.is_cancelled() {
                return;
            }
            let claimed = match self.tick().await {
                Ok(n) => n,
                Err(e) => {
                    warn!(error = %e, "the SMS answerer could not claim messages; trying again shortly");
                    0
                }
            };
            if claimed == 0 {
                tokio::select! {
                    () = tokio::time::sleep(self.policy.idle_poll) => {}
                    () = stop.cancelled() => {}
                }
            }
        }
    }

    /// Claims the messages that are due and answers them; returns how many it claimed.
    pub async fn tick(&self) -> Result<usize, sqlx::Error> {
        let claimed: Vec<Claimed> = sqlx::query_as(CLAIM)
            .bind(self.policy.batch)
            .bind(self.policy.lease.as_secs_f64())
            .fetch_all(self.pool())
            .await?;
        let count = claimed.len();
        let mut work = JoinSet::new();
        for message in claimed {
            let this = self.clone();
            work.spawn(async move { this.answer(message).await });
        }
        work.join_all().await;
        Ok(count)
    }

    /// Answers one claimed message, or leaves it to be tried again.
    async fn answer(&self, message: Claimed) {
        let said = match self.work(&message).await {
            Ok(said) => said,
            Err(e) => Said::Retry(format!("database: {e}")),
        };
        let recorded = match said {
            Said::Text(handled, answer, language) => {
                self.count(&message, handled.as_str());
                self.reply(&message, handled, &answer, &language).await
            }
            Said::Promised => {
                self.count(&message, Handled::Promised.as_str());
                sqlx::query(
                    "UPDATE sms_inbound SET answered_at = now(), handled = 'promised', text_sealed = NULL
                      WHERE id = $1",
                )
                .bind(message.id)
                .execute(self.pool())
                .await
                .map(|_| ())
            }
            Said::Retry(reason) if message.attempts < self.policy.max_attempts => {
                self.retry(&message, &reason).await
            }
            Said::Retry(reason) | Said::Dead(reason) => self.dead(&message, &reason).await,
        };
        if let Err(e) = recorded {
            // The lease runs out and the message is answered again.
            warn!(inbound = message.id, error = %e, "could not record how an SMS was answered; it is tried again");
        }
    }

    fn count(&self, message: &Claimed, kind: &'static str) {
        metrics::counter!("sms_inbound_answered_total", "channel" => message.channel.clone(), "kind" => kind)
            .increment(1);
    }

    /// Queues `answer` and marks the message answered, in one transaction.
    async fn reply(
        &self,
        message: &Claimed,
        handled: Handled,
        answer: &Answer,
        language: &str,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        super::outbox::queue_reply(
            &mut tx,
            message.id,
            &message.msisdn,
            &answer.text,
            answer.secret,
            language,
        )
        .await?;
        sqlx::query(
            "UPDATE sms_inbound SET answered_at = now(), handled = $2, text_sealed = NULL WHERE id = $1",
        )
        .bind(message.id)
        .bind(handled.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Tries the message again after a backoff.
    async fn retry(&self, message: &Claimed, reason: &str) -> Result<(), sqlx::Error> {
        debug!(inbound = message.id, attempts = message.attempts, %reason, "an SMS will be answered again later");
        sqlx::query(
            "UPDATE sms_inbound SET next_attempt_at = now() + make_interval(secs => $2),
                    last_error = left($3, 300)
              WHERE id = $1",
        )
        .bind(message.id)
        .bind(self.policy.backoff(message.attempts).as_secs_f64())
        .bind(reason)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Dead-letters the message with `reason`, erasing its text, and tells its sender
    /// that nothing could be confirmed.
    async fn dead(&self, message: &Claimed, reason: &str) -> Result<(), sqlx::Error> {
        warn!(inbound = message.id, channel = %message.channel, attempts = message.attempts, %reason, "an SMS could not be answered and is dead-lettered");
        metrics::counter!("sms_inbound_dead_total", "channel" => message.channel.clone()).increment(1);
        let language: Option<String> = sqlx::query_scalar("SELECT language FROM customers WHERE msisdn = $1")
            .bind(&message.msisdn)
            .fetch_optional(self.pool())
            .await?;
        let language = language.unwrap_or_else(|| "en".into());
        let mut tx = self.pool().begin().await?;
        let answer =
            Answer::from(self.gateway.menus().texts().line(&language, Message::Unconfirmed).to_owned());
        super::outbox::queue_reply(
            &mut tx,
            message.id,
            &message.msisdn,
            &answer.text,
            answer.secret,
            &language,
        )
        .await?;
        sqlx::query(
            "UPDATE sms_inbound SET dead_at = now(), last_error = left($2, 300), text_sealed = NULL,
                    handled = 'dead'
              WHERE id = $1",
        )
        .bind(message.id)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// What the message does, and its answer.
    async fn work(&self, message: &Claimed) -> Result<Said, sqlx::Error> {
        let Some(spec) = self.channels.iter().find(|c| c.name == message.channel) else {
            return Ok(Said::Retry(format!("the SMS channel `{}` is not configured", message.channel)));
        };
        let vault = self.gateway.money().vault();
        let row = super::inbound::text_row(&message.provider, &message.message_id);
        let opened = match message.text_sealed.as_deref() {
            Some(sealed) => vault.open(super::inbound::text_place(&row), sealed).await,
            None => Err(VaultError::Unreadable),
        };
        let text = match opened {
            Ok(text) => text,
            // A text not kept or unreadable does not come back by trying again, nor does
            // an unreadable number (below).
            Err(VaultError::Unreadable) => {
                return Ok(Said::Dead("the message's text was not kept or cannot be read".into()));
            }
            // The keys may: another replica, or this one once its configuration is right.
            Err(e) => return Ok(Said::Retry(e.to_string())),
        };
        let Ok(msisdn) = Msisdn::parse(&message.msisdn, self.region) else {
            return Ok(Said::Dead("the sender's number cannot be read".into()));
        };
        let pool = self.pool();
        let registered: Option<String> =
            sqlx::query_scalar("SELECT language FROM customers WHERE msisdn = $1")
                .bind(msisdn.as_e164())
                .fetch_optional(pool)
                .await?;
        let language = registered.clone().unwrap_or_else(|| "en".into());
        let menus = self.gateway.menus();
        // The menu SMS speaks for: the first with commands (a wallet, not an agent menu).
        let sms_menu =
            menus.menus().iter().find(|m| !m.commands.is_empty()).or(menus.menus().first()).map(|m| &**m);
        let code = sms_menu.and_then(|m| m.codes.first()).map_or("*384#", String::as_str);
        let word = keyword(&text);
        let own = |handled| {
            Said::Text(
                handled,
                Answer::from(own_reply(menus.texts(), handled, &language, code)),
                language.clone(),
            )
        };
        let said = if STOP.contains(&word.as_str()) {
            sqlx::query("INSERT INTO sms_opt_outs (msisdn) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(msisdn.as_e164())
                .execute(pool)
                .await?;
            own(Handled::Stopped)
        } else if START.contains(&word.as_str()) {
            sqlx::query("DELETE FROM sms_opt_outs WHERE msisdn = $1")
                .bind(msisdn.as_e164())
                .execute(pool)
                .await?;
            own(Handled::Started)
        } else if HELP.contains(&word.as_str()) {
            Said::Text(
                Handled::Helped,
                help(menus.texts(), sms_menu, &language, code).into(),
                language.clone(),
            )
        } else if let Some((menu, command)) =
            menus.menus().iter().find_map(|m| m.command(&word).map(|(c, _)| (m, c)))
        {
            let args: Vec<&str> = text.split_whitespace().skip(1).collect();
            let code = menu.codes.first().map_or(code, String::as_str);
            match (&registered, command.dial(code, &args)) {
                (None, _) => Said::Text(
                    Handled::NotRegistered,
                    own_reply(menus.texts(), Handled::NotRegistered, &language, code).into(),
                    language.clone(),
                ),
                (Some(_), None) => Said::Text(
                    Handled::Helped,
                    help(menus.texts(), Some(menu), &language, code).into(),
                    language.clone(),
                ),
                (Some(_), Some(dial)) => {
                    // Each conversation its own session, never used before by any
                    // process or database, so its movements' idempotency keys are new.
                    let session_id = format!("sms-{:032x}", rand::random::<u128>());
                    let input = Input::PerHop { text: dial.clone(), first: true, seq: None };
                    let hop = self.hop(spec, &msisdn, session_id, dial, input);
                    self.converse(spec, hop, Handled::Command, &language).await?
                }
            }
        } else {
            let open: Option<String> = sqlx::query_scalar(
                "SELECT session_id FROM sms_conversations
                  WHERE channel = $1 AND msisdn = $2 AND updated_at > now() - make_interval(secs => $3)",
            )
            .bind(&spec.name)
            .bind(msisdn.as_e164())
            .bind(self.gateway.session_ttl().as_secs_f64())
            .fetch_optional(pool)
            .await?;
            match open {
                Some(session_id) => {
                    let input = Input::PerHop { text: text.trim().to_owned(), first: false, seq: None };
                    let hop = self.hop(spec, &msisdn, session_id, String::new(), input);
                    self.converse(spec, hop, Handled::Reply, &language).await?
                }
                None => Said::Text(
                    Handled::Helped,
                    help(menus.texts(), sms_menu, &language, code).into(),
                    language.clone(),
                ),
            }
        };
        Ok(said)
    }

    fn hop(
        &self,
        spec: &SmsChannelSpec,
        msisdn: &Msisdn,
        session_id: String,
        code: String,
        input: Input,
    ) -> Hop {
        // Sessions live under `sms:<channel>`, apart from a USSD channel of the same name.
        Hop {
            provider: "sms",
            channel: format!("sms:{}", spec.name),
            session_id,
            msisdn: msisdn.clone(),
            service_code: code,
            input,
        }
    }

    /// One hop of a conversation through the gateway; remembers the conversation while
    /// it goes on and forgets it when it ends.
    async fn converse(
        &self,
        spec: &SmsChannelSpec,
        hop: Hop,
        handled: Handled,
        language: &str,
    ) -> Result<Said, sqlx::Error> {
        let rules = HopRules {
            deadline: self.policy.hop_bound,
            codes: &[],
            repeat_window: Duration::ZERO,
            conversation: Some(&Codes {
                rules: spec.rules,
                lane: self.gateway.money().lane(),
                channel: &hop.channel,
            }),
        };
        let (reply, kind) = self.gateway.handle_with(&hop, rules).await;
        if kind == HopKind::Retry {
            return Ok(Said::Retry(reply.text));
        }
        let pool = self.pool();
        if reply.end || kind == HopKind::Promised {
            sqlx::query(
                "DELETE FROM sms_conversations WHERE channel = $1 AND msisdn = $2 AND session_id = $3",
            )
            .bind(&spec.name)
            .bind(hop.msisdn.as_e164())
            .bind(&hop.session_id)
            .execute(pool)
            .await?;
        } else {
            sqlx::query(
                "INSERT INTO sms_conversations (channel, msisdn, session_id) VALUES ($1, $2, $3)
                 ON CONFLICT (channel, msisdn) DO UPDATE SET session_id = excluded.session_id, updated_at = now()",
            )
            .bind(&spec.name)
            .bind(hop.msisdn.as_e164())
            .bind(&hop.session_id)
            .execute(pool)
            .await?;
        }
        if kind == HopKind::Promised {
            return Ok(Said::Promised);
        }
        // A screen that asks for a secret is, over SMS, the one-time code's prompt.
        let answer = Answer { text: reply.text, secret: reply.secret_next };
        Ok(Said::Text(handled, answer, language.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_cap() {
        let p = Policy::default();
        assert_eq!(p.backoff(1), Duration::from_secs(2));
        assert_eq!(p.backoff(2), Duration::from_secs(4));
        assert_eq!(p.backoff(30), Duration::from_secs(300));
    }
}
