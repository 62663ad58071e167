//! The last stage of a hop: the session written with its reply, under the version it
//! was read at; or, when the hop failed, what the subscriber is told instead.

use std::time::Duration;

use tracing::warn;

use super::told::Unknown;
use super::{Attempt, Gateway, HopError, HopKind, Interrupt, Record, unix_ms};
use crate::channel::Input;
use crate::menu::{Message, Reply};
use crate::session::{Session, SessionKey, StoreError, Unless};

/// Time kept back from the deadline, after a write that gave up, to send the reply.
const ANSWER_MARGIN: Duration = Duration::from_millis(20);

/// How the last stage of an attempt ended.
pub(super) enum Finished {
    /// The answer to give.
    Answered(Reply, HopKind),
    /// Another writer came first: the hop is tried again.
    Again,
    /// Nothing was written: the new session's resume pointer leads to this other
    /// session, whose journey may be offered back before anything is shown.
    Pointed(SessionKey),
}

impl Gateway {
    /// Writes the session with this hop's reply.
    pub(super) async fn finish(
        &self,
        at: &Attempt<'_>,
        record: Record,
        mut reply: Reply,
        kind: HopKind,
    ) -> Result<Finished, HopError> {
        let (hop, menu) = (at.hop, at.menu);
        let Record { mut session, version, claimed, ran, unread, .. } = record;
        let refused_on = std::mem::take(&mut session.journey.refused_on);
        session.seen = at.mark;
        reply.secret_next = !reply.end && menu.is_sensitive(&session.journey.screen);
        // An SMS conversation's replies are not kept: duplicates are caught by provider
        // message id, and a reply may carry a one-time code.
        session.reply = at.conversation.is_none().then(|| reply.clone());
        session.pending_since_ms = None;
        session.claim = None;
        session.answered_ms = unix_ms();
        session.hops += 1;
        if let Input::PerHop { seq: Some(seq), .. } = hop.input {
            session.last_seq = Some(seq);
        }
        let written = if ran {
            // Past the deadline the hop would be answered "unavailable" though its op
            // answered: the write gives up first, and the reply stands.
            let cut = at.deadline.checked_sub(ANSWER_MARGIN).unwrap_or(at.deadline);
            tokio::time::timeout_at(cut, self.write(at, version, &session, kind, unread.is_some()))
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("the write outlasted the hop".into())))
        } else {
            self.write(at, version, &session, kind, unread.is_some()).await
        };
        match written {
            Ok(Unless::Saved(version)) => {
                // Counted once the hop's outcome is stored, not per attempt.
                crate::telemetry::record_screens(
                    &session.service,
                    &session.journey.screen,
                    reply.end,
                    &refused_on,
                );
                self.track(at.key, &session, version, reply.end);
                Ok(Finished::Answered(reply, kind))
            }
            // Only reads ran (a movement claims first, and its claim reads the pointer).
            Ok(Unless::Pointed(other)) => Ok(Finished::Pointed(other)),
            // What an op answered is true whether or not the session could be saved
            // after it: the reply stands, and a copy of this hop finds the claim and
            // answers for it.
            Err(e) if ran => {
                warn!(channel = %hop.channel, msisdn = %hop.msisdn, error = %e, "the session could not be saved after an op answered; its reply stands");
                Ok(Finished::Answered(reply, kind))
            }
            Ok(Unless::Lost) if ran => {
                warn!(channel = %hop.channel, msisdn = %hop.msisdn, "another writer replaced a session whose op answered; its reply stands");
                Ok(Finished::Answered(reply, kind))
            }
            Err(e) => Err(e.into()),
            Ok(Unless::Lost) if claimed => Err(HopError::ClaimLost),
            Ok(Unless::Lost) => Ok(Finished::Again),
        }
    }

    /// The session written as its menu keeps it: with the resume pointer of a menu that
    /// offers dropped journeys back, as a conversation over SMS. A new session whose
    /// subscriber's resume pointer is `unread` writes nothing if it leads elsewhere.
    async fn write(
        &self,
        at: &Attempt<'_>,
        version: u64,
        session: &Session,
        kind: HopKind,
        unread: bool,
    ) -> Result<Unless, StoreError> {
        let (hop, menu, key) = (at.hop, at.menu, at.key);
        let saved = |saved: Option<u64>| saved.map_or(Unless::Lost, Unless::Saved);
        match menu.resume {
            // An SMS conversation is never offered on USSD, nor does it touch the USSD
            // journey a subscriber may come back to; it may hand its movement over by a
            // code instead.
            _ if at.conversation.is_some() => {
                self.save_conversation(hop, key, version, session, menu).await.map(saved)
            }
            None => self.store.save(key, version, session, self.config.session_ttl).await.map(saved),
            Some(ref resume) => {
                let within = resume.within;
                // The record must outlive the offer window; the pointer leads to it
                // while the journey can be resumed, and is removed once it cannot.
                let pointer = super::pointer(hop, &session.service);
                let keep = (matches!(kind, HopKind::Continue | HopKind::End)
                    && menu.can_resume(&session.journey))
                .then_some(within);
                let ttl = within.max(self.config.session_ttl);
                if unread {
                    self.store.save_pointing_unless_pointed(key, version, session, ttl, &pointer, keep).await
                } else {
                    self.store.save_pointing(key, version, session, ttl, &pointer, keep).await.map(saved)
                }
            }
        }
    }

    /// What a hop that failed tells the subscriber: a movement whose outcome is unknown
    /// (or that committed before something else failed) gets an SMS promised; anything
    /// else moved nothing and says so.
    pub(super) async fn failed(
        &self,
        at: &Attempt<'_>,
        rec: &mut Record,
        failure: Interrupt,
    ) -> (Message, HopKind) {
        let (hop, lang) = (at.hop, &rec.session.journey.lang);
        let unknown = match failure {
            Interrupt::Unknown(unknown) => Some(*unknown),
            other => {
                match &other {
                    Interrupt::Engine(e) => {
                        warn!(channel = %hop.channel, msisdn = %hop.msisdn, error = %e, "menu engine refused the hop")
                    }
                    Interrupt::Money(e) => {
                        warn!(channel = %hop.channel, msisdn = %hop.msisdn, error = %e, "op failed; nothing moved")
                    }
                    Interrupt::Store(e) => {
                        warn!(channel = %hop.channel, msisdn = %hop.msisdn, error = %e, "session store failed after a movement")
                    }
                    _ => {}
                }
                rec.moved.take().map(|(op, seq, request)| Unknown {
                    op,
                    seq,
                    request,
                    running: None,
                    due_in: Duration::ZERO,
                })
            }
        };
        match unknown {
            Some(unknown) => self.promise_on(hop, at.key, lang, unknown, at.deadline).await,
            None => (Message::ServiceUnavailable, HopKind::Failed),
        }
    }
}
