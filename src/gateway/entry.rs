//! The first stage of a hop: what it is to the session it names. A late copy, a retry
//! or a hop behind a claim is answered from what is stored; an answer on a running
//! journey goes on with its input; an opening hop starts a journey (or offers back a
//! dropped one, or takes over an SMS movement handed to it).

use std::sync::Arc;

use tracing::{debug, warn};

use super::{Arrival, Gateway, HopError, HopKind, HopRules, line, unix_ms};
use crate::channel::Input;
use crate::channel::ussd::cumulative;
use crate::menu::{Bundle, Journey, Menu, Message, Reply};
use crate::session::{Loaded, Session, SessionKey, TextMark};

/// How a hop enters the engine.
pub(super) enum Entry {
    /// An input on a running journey.
    Continue,
    /// A new session: the start screen.
    Begin,
    /// A new session whose subscriber may have dropped a journey that could be offered
    /// back: the start screen, and the session's first write (a claim, or the hop's
    /// only write) reads the resume pointer in the same round trip.
    Fresh,
    /// A new session offered the journey its subscriber dropped.
    Offer(Box<Journey>),
    /// A new session that takes over an SMS movement on its PIN screen.
    HandOff(Box<Journey>),
}

/// What the first stage made of a hop.
#[expect(clippy::large_enum_variant, reason = "moved once per hop; a box would allocate on every hop")]
pub(super) enum Entered {
    /// Answered from what is stored, or refused: nothing to drive.
    Answered(Reply, HopKind),
    /// A journey to drive with these inputs.
    Open(Opened),
}

/// A session record to drive, and the version its write must match.
pub(super) struct Opened {
    pub version: u64,
    pub session: Session,
    pub menu: Arc<Menu>,
    pub inputs: Vec<String>,
    pub entry: Entry,
}

impl Gateway {
    /// Sorts a hop against the record `loaded` for its session (none when it is new).
    /// `decided` is how a new session enters once its resume pointer has been read.
    pub(super) async fn enter(
        &self,
        a: &Arrival<'_>,
        bundle: &Bundle,
        mut loaded: Option<Loaded>,
        decided: &mut Option<Entry>,
    ) -> Result<Entered, HopError> {
        let retry = loaded.as_ref().is_some_and(|l| self.is_retry(a, &l.session));
        // An opening hop on a record it does not repeat is a new dial under a reused
        // session id: it replaces the record (compare-and-set on its version).
        let mut replaces = 0;
        if let Some(old) = loaded.take_if(|_| a.hop.input.is_first() && !retry) {
            replaces = old.version;
        }
        match loaded {
            Some(loaded) => self.go_on(a, bundle, loaded, retry).await,
            None => self.open(a, bundle, replaces, decided).await,
        }
    }

    /// A hop on a stored session: a copy of one answered already, a retry or a hop
    /// behind a claim, a hop after the end, or the next input of the journey.
    async fn go_on(
        &self,
        a: &Arrival<'_>,
        bundle: &Bundle,
        loaded: Loaded,
        retry: bool,
    ) -> Result<Entered, HopError> {
        let hop = a.hop;
        let edition = bundle.for_session(&loaded.session.service, &loaded.session.menu_version);
        if let Input::PerHop { seq: Some(seq), .. } = hop.input
            && loaded.session.last_seq.is_some_and(|last| seq < last)
        {
            // A copy of a hop answered long ago: it changes nothing, and gets the screen
            // the session is on.
            let reply = match (&loaded.session.reply, loaded.session.pending_since_ms) {
                (Some(reply), None) => reply.clone(),
                _ => Reply::end(self.session_line(
                    edition.map(|m| &**m),
                    &loaded.session,
                    Message::Unconfirmed,
                )),
            };
            return Ok(Entered::Answered(reply, HopKind::Replayed));
        }
        if retry || loaded.session.pending_since_ms.is_some() {
            let mark = retry.then_some(a.mark);
            let (reply, kind) = Box::pin(self.behind(a, loaded, mark, edition.map(|m| &**m))).await?;
            return Ok(Entered::Answered(reply, kind));
        }
        let Loaded { version, session } = loaded;
        if session.journey.done {
            let over = self.session_line(edition.map(|m| &**m), &session, over(&a.rules));
            return Ok(Entered::Answered(Reply::end(over), HopKind::End));
        }
        let menu = edition
            .cloned()
            .ok_or_else(|| HopError::MenuGone(session.service.clone(), session.menu_version.clone()))?;
        let input = match &hop.input {
            Input::PerHop { text, .. } => text.clone(),
            Input::Cumulative(_) | Input::Dialled(_) => {
                let text = hop.input.identity();
                match cumulative::next_input(session.seen, &text, &self.text_key) {
                    Some(input) => input.to_owned(),
                    None => {
                        warn!(channel = %hop.channel, msisdn = %hop.msisdn, "text does not extend the previous hop; taking its last segment");
                        text.rsplit('*').next().unwrap_or_default().to_owned()
                    }
                }
            }
        };
        Ok(Entered::Open(Opened { version, session, menu, inputs: vec![input], entry: Entry::Continue }))
    }

    /// A hop with no stored session: a dial of a service code opens one (replacing the
    /// record at `replaces`, if a reused session id left one).
    async fn open(
        &self,
        a: &Arrival<'_>,
        bundle: &Bundle,
        replaces: u64,
        decided: &mut Option<Entry>,
    ) -> Result<Entered, HopError> {
        let (hop, rules) = (a.hop, a.rules);
        if matches!(hop.input, Input::PerHop { first: false, .. }) {
            // An answer whose session expired (or never was): it means nothing on a
            // start screen.
            return Ok(Entered::Answered(Reply::end(bundle.texts().line("en", over(&rules))), HopKind::End));
        }
        let dialled = bundle
            .resolve(&hop.service_code)
            .filter(|d| rules.codes.is_empty() || rules.codes.contains(&d.code));
        let Some(dialled) = dialled else {
            debug!(code = %hop.service_code, channel = %hop.channel, "no menu for this service code on this channel");
            return Ok(Entered::Answered(Reply::end("This service is not available."), HopKind::End));
        };
        let mut inputs = dialled.jump.clone();
        if let Input::Cumulative(text) = &hop.input {
            inputs.extend(cumulative::first_inputs(text));
        }
        let menu = Arc::clone(dialled.menu);
        let handoff = menu.handoff_code(&inputs).filter(|_| rules.conversation.is_none());
        let entry = match (handoff, &menu.resume) {
            (Some(code), _) => {
                let Some(journey) = Box::pin(self.take_handoff(hop, &menu, code)).await? else {
                    let j = Journey { lang: menu.languages[0].clone(), ..Journey::default() };
                    return Ok(Entered::Answered(
                        Reply::end(line(&menu, &j, Message::CodeExpired)),
                        HopKind::End,
                    ));
                };
                inputs.clear();
                Entry::HandOff(Box::new(journey))
            }
            (None, Some(_)) if inputs.is_empty() && rules.conversation.is_none() => {
                decided.take().unwrap_or(Entry::Fresh)
            }
            _ => Entry::Begin,
        };
        let session = Session {
            service: menu.service.clone(),
            menu_version: menu.version.clone(),
            journey: Default::default(),
            seen: TextMark::default(),
            reply: None,
            pending_since_ms: None,
            claim: None,
            last_seq: None,
            hops: 0,
            answered_ms: 0,
            code: None,
        };
        Ok(Entered::Open(Opened { version: replaces, session, menu, inputs, entry }))
    }

    /// How a fresh session enters once its subscriber's resume pointer was found to
    /// lead to `dropped`: offering back the journey there, if it can be.
    pub(super) async fn after_pointer(
        &self,
        a: &Arrival<'_>,
        menu: &Menu,
        dropped: SessionKey,
    ) -> Result<Entry, HopError> {
        Ok(match self.offerable(&a.key, dropped, menu).await? {
            Some(journey) => Entry::Offer(Box::new(journey)),
            None => Entry::Begin,
        })
    }

    /// The journey this subscriber dropped in session `dropped` (where their resume
    /// pointer led), if it can be offered back: same menu edition, no op in flight, past
    /// the first screen, and not this very session.
    async fn offerable(
        &self,
        key: &SessionKey,
        old: SessionKey,
        menu: &Menu,
    ) -> Result<Option<Journey>, HopError> {
        if old == *key {
            return Ok(None);
        }
        let Some(Loaded { session, .. }) = self.store.load(&old).await? else { return Ok(None) };
        let offer = session.menu_version == menu.version
            && session.pending_since_ms.is_none()
            && menu.can_resume(&session.journey);
        Ok(offer.then_some(session.journey))
    }

    /// Whether a hop on an existing session repeats the last one received: the same
    /// identity (for a per-hop input without a counter, only while the reply is fresh or
    /// still being worked out, or on USSD when it was answered after this hop arrived: a
    /// copy that ran a read beside the first, which claims nothing). An SMS conversation
    /// is answered one message at a time, its copies caught by message id: there, that
    /// test could only mistake a next message for a copy, on a replica whose clock is
    /// behind the one that answered. A second opening hop right after the first
    /// (Safaricom may send two) has the first's identity.
    fn is_retry(&self, a: &Arrival<'_>, session: &Session) -> bool {
        let window = u64::try_from(a.rules.repeat_window.as_millis()).unwrap_or(u64::MAX);
        session.seen == a.mark
            && (a.hop.input.identifies_uniquely()
                || session.pending_since_ms.is_some()
                || (a.rules.conversation.is_none() && session.answered_ms >= a.arrived_ms)
                || unix_ms().saturating_sub(session.answered_ms) < window)
    }
}

/// What a hop after the end is told: a USSD subscriber dials again, an SMS one sends the
/// command again.
fn over(rules: &HopRules<'_>) -> Message {
    if rules.conversation.is_some() { Message::ConversationOver } else { Message::SessionOver }
}
