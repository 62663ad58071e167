//! The SMS conversation inside the hop pipeline: the interface through which the SMS
//! layer decides what stands in for a PIN screen and judges a one-time code
//! ([`Conversation`], implemented by `sms::codes::Codes`), and the mechanics the
//! pipeline keeps — the code's mark in the session, the hand-off of a movement to a
//! USSD dial, and putting a conversation back when its hop failed.

use std::time::Duration;

use futures_util::future::BoxFuture;
use tracing::warn;

use super::{Attempt, CAS_ATTEMPTS, Gateway, HopError, HopKind, Interrupt, Record, line, unix_ms};
use crate::channel::Hop;
use crate::domain::Msisdn;
use crate::menu::{Journey, Menu, Message, Reply, Step};
use crate::money::{Auth, MoneyError};
use crate::ops::Op;
use crate::session::{Loaded, PendingCode, ResumePointer, Session, SessionKey, StoreError, TextKey};

/// How a conversation that carries no PIN (SMS) stands in for the screens that ask for
/// one. The SMS layer owns these rules and the counters behind them.
pub trait Conversation: Send + Sync {
    /// How the ops of this conversation are authorised (the sender's number, up to an
    /// amount).
    fn auth(&self) -> Auth;

    /// A screen asks for the PIN of `op` (`None`: a secret that is data, such as a new
    /// PIN, which nothing can vouch for).
    fn instead_of_pin<'a>(
        &'a self,
        msisdn: &'a Msisdn,
        op: Option<Op>,
    ) -> BoxFuture<'a, Result<StandIn, MoneyError>>;

    /// The subscriber replied `text` while the one-time code `pending` (marked with
    /// `key`) waits; `by_reply` when the menu lets a reply confirm (otherwise only a
    /// USSD dial does). Counts what it must on `pending` and for the number.
    fn check_code<'a>(
        &'a self,
        msisdn: &'a Msisdn,
        key: &'a TextKey,
        pending: &'a mut PendingCode,
        text: &'a str,
        by_reply: bool,
    ) -> BoxFuture<'a, Result<Checked, MoneyError>>;
}

/// What stands in for a PIN screen.
#[derive(Debug, PartialEq, Eq)]
pub enum StandIn {
    /// The sender's number vouches: go past the screen.
    Vouched,
    /// Ask for this one-time code, good until `expires_ms` (Unix milliseconds).
    Code { code: String, expires_ms: u64 },
    /// Not done over this conversation; the journey ends with `Message`.
    Refused(Message),
}

/// What a reply to a one-time code comes to.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// The right code, in time: go past the PIN screen once.
    Passed,
    /// Say `Message`; the code still waits.
    Again(Message),
    /// Say `Message`; the movement is called off.
    Over(Message),
}

impl Gateway {
    /// Over SMS, a hop that failed without promising anything: the session goes back to
    /// what it was before the hop, so that answering the message again later runs the
    /// same step under the same idempotency keys.
    pub(super) async fn restore(
        &self,
        key: &SessionKey,
        rec: &Record,
        before: Option<Session>,
        menu: &Menu,
        message: Message,
    ) -> (Reply, HopKind) {
        let reply = Reply::end(line(menu, &rec.session.journey, message));
        // A command's conversation is new each time it is answered: nothing to put back.
        if let Some(before) = before.filter(|_| rec.claimed)
            && let Err(e) = self.store.save(key, rec.version, &before, self.config.session_ttl).await
        {
            warn!(error = %e, "could not put an SMS conversation back after a failed hop");
        }
        (reply, HopKind::Retry)
    }

    /// Over SMS, a screen that asks for a secret: what the conversation puts in its
    /// place — going past it, a one-time code asked for (`Err(reply)`), or an end.
    pub(super) async fn instead_of_pin(
        &self,
        at: &Attempt<'_>,
        rec: &mut Record,
        conversation: &dyn Conversation,
    ) -> Result<Result<Step, Reply>, Interrupt> {
        let menu = at.menu;
        let j = &mut rec.session.journey;
        let ending = |j: &mut Journey, message| {
            j.done = true;
            Reply::end(line(menu, j, message))
        };
        let op = menu.pin_op(&j.screen).filter(|op| op.authenticates_with_pin());
        match conversation.instead_of_pin(&at.hop.msisdn, op).await.map_err(Interrupt::Money)? {
            StandIn::Vouched => menu.vouch(j).map(Ok).map_err(Interrupt::Engine),
            StandIn::Refused(message) => Ok(Err(ending(j, message))),
            StandIn::Code { code, expires_ms } => {
                let Some(prompt) = menu.sms_prompt(j, &code).map_err(Interrupt::Engine)? else {
                    return Ok(Err(ending(j, Message::NotBySms)));
                };
                rec.session.code =
                    Some(PendingCode { mark: self.text_key.mark(&code), expires_ms, wrong: 0 });
                Ok(Err(Reply::con(prompt)))
            }
        }
    }

    /// Over SMS, the reply to a pending one-time code (`YES 482193`), judged by the
    /// conversation: past the PIN screen, the code kept waiting with a line, or the
    /// movement called off.
    pub(super) async fn confirm(
        &self,
        at: &Attempt<'_>,
        rec: &mut Record,
        conversation: &dyn Conversation,
        text: &str,
    ) -> Result<Step, Interrupt> {
        let menu = at.menu;
        let Some(mut pending) = rec.session.code.take() else {
            return menu.input(&mut rec.session.journey, text).map_err(Interrupt::Engine);
        };
        let j = &mut rec.session.journey;
        let by_reply = menu.confirms_by_reply(&j.screen);
        let checked = conversation
            .check_code(&at.hop.msisdn, &self.text_key, &mut pending, text, by_reply)
            .await
            .map_err(Interrupt::Money)?;
        match checked {
            Checked::Passed => menu.vouch(j).map_err(Interrupt::Engine),
            Checked::Again(message) => {
                rec.session.code = Some(pending);
                Ok(Step::Reply(Reply::con(line(menu, j, message))))
            }
            Checked::Over(message) => {
                j.done = true;
                Ok(Step::Reply(Reply::end(line(menu, j, message))))
            }
        }
    }

    /// Saves an SMS conversation; while it waits for a code its menu lets the subscriber
    /// dial, a pointer from that code (as a keyed hash) leads a USSD dial to it.
    pub(super) async fn save_conversation(
        &self,
        hop: &Hop,
        key: &SessionKey,
        version: u64,
        session: &Session,
        menu: &Menu,
    ) -> Result<Option<u64>, StoreError> {
        let ttl = self.config.session_ttl;
        match session.code.filter(|_| menu.confirms_by_dial(&session.journey.screen)) {
            Some(code) => {
                let pointer = ResumePointer::handoff(hop.msisdn.as_e164(), &session.service, code.mark);
                let left = Duration::from_millis(code.expires_ms.saturating_sub(unix_ms()));
                self.store.save_pointing(key, version, session, ttl, &pointer, Some(left)).await
            }
            None => self.store.save(key, version, session, ttl).await,
        }
    }

    /// A USSD dial of the hand-off `code` an SMS conversation of this subscriber sent:
    /// ends that conversation by compare-and-set — so that the code is used once, and a
    /// reply by SMS can no longer confirm — and returns its journey, on the PIN screen.
    /// `None` when there is no such code, or it expired or was used.
    pub(super) async fn take_handoff(
        &self,
        hop: &Hop,
        menu: &Menu,
        code: &str,
    ) -> Result<Option<Journey>, HopError> {
        let mark = self.text_key.mark(code);
        let pointer = ResumePointer::handoff(hop.msisdn.as_e164(), &menu.service, mark);
        let Some(key) = self.store.recall(&pointer).await? else { return Ok(None) };
        for _ in 0..CAS_ATTEMPTS {
            let Some(Loaded { version, mut session }) = self.store.load(&key).await? else { return Ok(None) };
            let waiting = session.menu_version == menu.version
                && !session.journey.done
                && session.pending_since_ms.is_none()
                && session.code.is_some_and(|c| c.mark == mark && unix_ms() <= c.expires_ms);
            if !waiting {
                return Ok(None);
            }
            let journey = session.journey.clone();
            session.code = None;
            session.journey.done = true;
            if self.store.save(&key, version, &session, self.config.session_ttl).await?.is_some() {
                return Ok(Some(journey));
            }
        }
        Err(HopError::Contended)
    }
}
