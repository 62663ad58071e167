//! The SMS conversation's rules inside the hop pipeline: what stands in for a PIN screen
//! (the sender's number for what only reads, a one-time code for a movement), the
//! code's checks and counters, the hand-off of a movement to a USSD dial, and putting
//! a conversation back when its hop failed.

use std::time::Duration;

use tracing::warn;

use super::{Attempt, CAS_ATTEMPTS, Gateway, HopError, HopKind, Interrupt, Record, line, unix_ms};
use crate::channel::Hop;
use crate::menu::{Journey, Menu, Message, Reply, Step};
use crate::session::{Loaded, PendingCode, ResumePointer, Session, SessionKey, StoreError};

/// How an SMS conversation stands in for PIN screens: an op that only reads runs on
/// the sender's registered number; one that moves money waits for a one-time code the
/// subscriber replies with, and is refused above `max_amount`.
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

    /// Over SMS, a screen that asks for a secret: an op that only reads goes on (the
    /// sender's number vouches); a movement asks for a one-time code instead
    /// (`Err(reply)`); anything else (a national ID) is not done by SMS.
    pub(super) async fn instead_of_pin(
        &self,
        at: &Attempt<'_>,
        rec: &mut Record,
        sms: SmsRules,
    ) -> Result<Result<Step, Reply>, Interrupt> {
        let menu = at.menu;
        let j = &mut rec.session.journey;
        let ending = |j: &mut Journey, message| {
            j.done = true;
            Reply::end(line(menu, j, message))
        };
        // A PIN that is data (a new PIN to choose, to confirm) cannot be vouched for.
        let Some(op) = menu.pin_op(&j.screen).filter(|op| op.authenticates_with_pin()) else {
            return Ok(Err(ending(j, Message::NotBySms)));
        };
        if !op.spec().moves_money() {
            return menu.vouch(j).map(Ok).map_err(Interrupt::Engine);
        }
        let failures = self.ops.money().code_failures(&at.hop.msisdn).await.map_err(Interrupt::Money)?;
        if failures >= sms.wrong_codes_per_day {
            return Ok(Err(ending(j, Message::NoMoreCodes)));
        }
        let code = format!("{:06}", rand::random_range(0..1_000_000u32));
        let Some(prompt) = menu.sms_prompt(j, &code).map_err(Interrupt::Engine)? else {
            return Ok(Err(ending(j, Message::NotBySms)));
        };
        let ttl = u64::try_from(sms.code_ttl.as_millis()).unwrap_or(u64::MAX);
        rec.session.code = Some(PendingCode {
            mark: self.text_key.mark(&code),
            expires_ms: unix_ms().saturating_add(ttl),
            wrong: 0,
        });
        Ok(Err(Reply::con(prompt)))
    }

    /// Over SMS, the reply to a one-time code: `YES 482193` (or `NDIYO 482193`). The right
    /// code, in time, goes past the PIN screen once; a wrong one is counted in the
    /// conversation and for the number, and the conversation's third or the number's
    /// last of the day calls the movement off, as does an expired code. Where the menu
    /// offers only the USSD hand-off, a reply is pointed there and counts for nothing.
    /// (A wrong code in a hop that then loses its compare-and-set and runs again is
    /// counted twice for the number: on the safe side.)
    pub(super) async fn confirm(
        &self,
        at: &Attempt<'_>,
        rec: &mut Record,
        sms: SmsRules,
        text: &str,
    ) -> Result<Step, Interrupt> {
        let menu = at.menu;
        let Some(mut pending) = rec.session.code.take() else {
            return menu.input(&mut rec.session.journey, text).map_err(Interrupt::Engine);
        };
        let j = &mut rec.session.journey;
        let mut words = text.split_whitespace();
        let said_yes = words.next().is_some_and(crate::menu::words::is_yes);
        let code = words.next().unwrap_or_default();
        if unix_ms() > pending.expires_ms {
            j.done = true;
            return Ok(Step::Reply(Reply::end(line(menu, j, Message::CodeExpired))));
        }
        if !menu.confirms_by_reply(&j.screen) {
            // The menu finishes this movement on USSD, with the PIN, only.
            rec.session.code = Some(pending);
            return Ok(Step::Reply(Reply::con(line(menu, j, Message::DialToFinish))));
        }
        if said_yes && self.text_key.mark(code) == pending.mark {
            return menu.vouch(j).map_err(Interrupt::Engine);
        }
        // Counted for the number too, so that guessing cannot go on conversation after
        // conversation.
        let today = self.ops.money().code_failed(&at.hop.msisdn).await.map_err(Interrupt::Money)?;
        pending.wrong += 1;
        if pending.wrong >= MAX_WRONG_CODES || today >= sms.wrong_codes_per_day {
            j.done = true;
            return Ok(Step::Reply(Reply::end(line(menu, j, Message::TooManyAttempts))));
        }
        rec.session.code = Some(pending);
        Ok(Step::Reply(Reply::con(line(menu, j, Message::WrongCode))))
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
