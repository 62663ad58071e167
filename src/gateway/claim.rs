//! Claims: a hop marks its session before it runs an op, naming the op, under a lease
//! it renews while the op runs; a hop that finds a claim waits for the claimant's reply,
//! or answers for it once the lease shows the claimant gone.

use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

use super::told::{LEFT_TO_CLAIMANT, PROMISE_MARGIN, Unknown};
use super::{
    Arrival, Attempt, Gateway, HopError, HopKind, HopRules, Interrupt, Record, SAVE_MARGIN, unix_ms,
};
use crate::channel::Hop;
use crate::menu::{Action, Menu, Message, Reply};
use crate::money::Movement;
use crate::money::parse_reference;
use crate::ops::Op;
use crate::session::{Claim, Loaded, Session, SessionKey, TextMark, Unless};

/// How long a claim stands unless its owner renews it. Longer than a Redis round trip
/// on a bad day and than the clocks of two replicas differ.
pub(super) const CLAIM_LEASE: Duration = Duration::from_secs(2);

/// How often the owner renews its claim while an op runs.
pub(super) const RENEW_EVERY: Duration = Duration::from_millis(500);

/// What a hop found when it came upon a claimed session.
enum Behind {
    /// The claimant answered this very hop: its reply.
    Replayed(Reply),
    /// No reply to give: the claimant is gone, still at it, or the session moved on.
    Unanswered,
}

impl Gateway {
    /// Marks the session pending for this hop's text before `action` runs, so that a
    /// duplicate arriving meanwhile waits for this hop's reply instead of running it
    /// again; the claim names the op, so that a hop finding it knows what it waits for.
    /// A fresh session's claim also reads the subscriber's resume pointer, and stands
    /// aside (writing nothing) if it leads to another session.
    pub(super) async fn claim(
        &self,
        at: &Attempt<'_>,
        rec: &mut Record,
        action: &Action,
    ) -> Result<(), Interrupt> {
        let request = match action.op.spec().movement {
            Some(Movement::Hold) => action.args.get("request").and_then(|r| parse_reference(r)),
            _ => None,
        };
        rec.session.seen = at.mark;
        rec.session.reply = None;
        rec.session.pending_since_ms = Some(unix_ms());
        rec.session.claim = Some(Claim {
            op: action.op.name().to_owned(),
            seq: action.seq,
            request,
            lease_ms: lease_from_now(),
        });
        let (ttl, store) = (self.config.session_ttl, &self.store);
        let saved = match rec.unread.take() {
            Some(pointer) => {
                store.save_unless_pointed(at.key, rec.version, &rec.session, ttl, &pointer).await
            }
            None => store.save(at.key, rec.version, &rec.session, ttl).await.map(|saved| match saved {
                Some(version) => Unless::Saved(version),
                None => Unless::Lost,
            }),
        };
        match saved.map_err(Interrupt::Store)? {
            Unless::Saved(v) => {
                rec.version = v;
                rec.claimed = true;
                Ok(())
            }
            Unless::Lost => Err(Interrupt::LostRace),
            Unless::Pointed(dropped) => Err(Interrupt::Dropped(dropped)),
        }
    }

    /// Whether `action` needs a claim of its own: the hop has none yet, or holds one
    /// for an op that moves nothing while this one moves money. An op that only reads
    /// takes none: a copy of its hop may as well read again, and the hop saves a round
    /// trip to the store (the dial's greeting is such a read).
    pub(super) fn needs_claim(rec: &Record, action: &Action) -> bool {
        if action.op.spec().reads_only() {
            return false;
        }
        let claimed_money = rec.session.claim.as_ref().is_some_and(|c| op_of(c).is_some_and(moves_money));
        !rec.claimed || (moves_money(action.op) && !claimed_money)
    }

    /// Renews this hop's claim while its op runs. A claim another writer replaced is
    /// left alone from then on; a store that does not answer is asked again next time.
    /// A hop without a claim (its op only reads) has nothing to renew.
    pub(super) async fn renew(&self, at: &Attempt<'_>, rec: &mut Record) {
        if rec.lost || !rec.claimed {
            return;
        }
        if let Some(claim) = rec.session.claim.as_mut() {
            claim.lease_ms = lease_from_now();
        }
        match self.store.save(at.key, rec.version, &rec.session, self.config.session_ttl).await {
            Ok(Some(version)) => rec.version = version,
            Ok(None) => rec.lost = true,
            Err(_) => {}
        }
    }

    /// Whether a claim's owner is gone: its lease ran out unrenewed. (A claim written
    /// before claims named their op counts as gone after twice the longest deadline.)
    pub(super) fn is_stale(&self, session: &Session) -> bool {
        match (&session.claim, session.pending_since_ms) {
            (Some(claim), _) => unix_ms() > claim.lease_ms,
            (None, Some(since)) => {
                let longest = self.config.hop_deadline.max(self.config.longest_deadline);
                let limit = u64::try_from(longest.as_millis() * 2).unwrap_or(u64::MAX);
                unix_ms().saturating_sub(since) > limit
            }
            (None, None) => false,
        }
    }

    /// A hop that found its session claimed by an op: a copy of the claimant's hop
    /// (`mark`) waits for its reply while the claimant lives; otherwise, or once the
    /// claimant is gone, it is answered for. A copy that finds the session moved on
    /// past its hop cannot know what it was answered.
    pub(super) async fn behind(
        &self,
        a: &Arrival<'_>,
        mut loaded: Loaded,
        mark: Option<TextMark>,
        menu: Option<&Menu>,
    ) -> Result<(Reply, HopKind), HopError> {
        let (hop, key, deadline, rules) = (a.hop, &a.key, a.deadline, a.rules);
        if let Some(mark) = mark {
            let until = deadline.checked_sub(SAVE_MARGIN + PROMISE_MARGIN).unwrap_or(deadline);
            if let Behind::Replayed(reply) = self.wait_for_claimant(key, &mut loaded, mark, until).await? {
                return Ok((reply, HopKind::Replayed));
            }
            if loaded.session.seen != mark {
                let line = self.session_line(menu, &loaded.session, Message::Unconfirmed);
                return Ok((Reply::end(line), HopKind::Failed));
            }
        }
        self.answer_for_claimant(hop, key, loaded, menu, deadline, rules).await
    }

    /// Waits, until `until`, for the claimant of the hop with identity `mark` to store
    /// its reply, checking all the while whether the claimant is gone.
    async fn wait_for_claimant(
        &self,
        key: &SessionKey,
        loaded: &mut Loaded,
        mark: TextMark,
        until: Instant,
    ) -> Result<Behind, HopError> {
        let mut pause = Duration::from_millis(2);
        loop {
            let session = &loaded.session;
            if let (Some(reply), None) = (&session.reply, session.pending_since_ms) {
                return Ok(Behind::Replayed(reply.clone()));
            }
            if session.seen != mark || session.pending_since_ms.is_none() || self.is_stale(session) {
                return Ok(Behind::Unanswered);
            }
            if Instant::now() + pause >= until {
                return Ok(Behind::Unanswered);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
            match self.store.load(key).await? {
                Some(next) => *loaded = next,
                None => return Ok(Behind::Unanswered),
            }
        }
    }

    /// The answer to a hop that found the session claimed and got no reply of the
    /// claimant's: for a movement, an SMS is promised (the claimant may have moved the
    /// money); for anything else, "Service unavailable" (nothing moved). A claimant that
    /// is gone is answered for in the session, so that later copies get the same.
    async fn answer_for_claimant(
        &self,
        hop: &Hop,
        key: &SessionKey,
        loaded: Loaded,
        menu: Option<&Menu>,
        deadline: Instant,
        rules: HopRules<'_>,
    ) -> Result<(Reply, HopKind), HopError> {
        let Loaded { version, mut session } = loaded;
        let gone = self.is_stale(&session);
        let claimed = session.claim.as_ref().filter(|_| session.pending_since_ms.is_some());
        let (message, kind) = match claimed.map(|c| (op_of(c), c)) {
            Some((Some(op), claim)) if moves_money(op) => {
                let unknown = Unknown {
                    op,
                    seq: claim.seq,
                    request: claim.request,
                    running: None,
                    // A claimant still at it may yet answer; one that is gone cannot.
                    due_in: if gone { Duration::ZERO } else { LEFT_TO_CLAIMANT },
                };
                self.promise_on(hop, key, &session.journey.lang, unknown, deadline).await
            }
            Some((Some(_), _)) => (Message::ServiceUnavailable, HopKind::Failed),
            // A claim that does not say what it waits for, or names no op we know: no
            // promise can be made, and money may have moved.
            _ => (Message::Unconfirmed, HopKind::Failed),
        };
        let reply = Reply::end(self.session_line(menu, &session, message));
        if gone {
            session.reply = rules.conversation.is_none().then(|| reply.clone());
            session.pending_since_ms = None;
            session.claim = None;
            session.journey.done = true;
            if let Err(e) = self.store.save(key, version, &session, self.config.session_ttl).await {
                warn!(channel = %hop.channel, error = %e, "could not answer for a claimant that is gone");
            }
        }
        Ok((reply, kind))
    }
}

fn lease_from_now() -> u64 {
    unix_ms().saturating_add(u64::try_from(CLAIM_LEASE.as_millis()).unwrap_or(u64::MAX))
}

fn op_of(claim: &Claim) -> Option<Op> {
    Op::from_name(&claim.op)
}

fn moves_money(op: Op) -> bool {
    op.spec().moves_money()
}
