//! The hop pipeline: session → dedupe → engine ⇄ ops → cached reply, within the deadline.
//!
//! One writer per session: a hop that will run an op first claims the session with a
//! compare-and-set (marking it pending); a duplicate that loses the race waits for the
//! claimant's reply instead of running anything. Hops without ops write once.

mod claim;
mod told;
mod waiting;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::channel::ussd::cumulative;
use crate::channel::{Closed, Hop, Input};
use crate::domain::Region;
use crate::menu::Journey;
use crate::menu::{Action, Bundle, EngineError, Menu, Message, Reply, Step};
use crate::money::{Auth, Money, MoneyError};
use crate::ops::{Call, Op, Ops};
use crate::outcome::{OpResult, Outcome};
use crate::session::{
    Loaded, PendingCode, ResumePointer, Session, SessionKey, SessionStore, StoreError, TextKey, TextMark,
};
use claim::RENEW_EVERY;
use told::{LEFT_TO_RUNNER, LEFT_TO_SERVER, PROMISE_MARGIN, Unknown};
use waiting::Waiting;

/// Compare-and-set attempts before a hop gives up on a contended session.
const CAS_ATTEMPTS: usize = 4;

/// Ops one hop may run; the menu checker refuses loops of ops, this guards the rest.
const MAX_OPS_PER_HOP: usize = 8;

/// How long after a reply a repeat of the same per-hop input, from a provider that
/// sends no hop counter, is taken for the provider's retry rather than the subscriber
/// typing the same answer again on the next screen (which takes longer than this).
/// Channels may set their own (`repeat_window_ms`).
pub const DEFAULT_REPEAT_WINDOW: Duration = Duration::from_secs(2);

/// What a channel asks of the hops it passes on.
#[derive(Clone, Copy, Debug)]
pub struct HopRules<'a> {
    /// Every hop is answered within this.
    pub deadline: Duration,
    /// Service codes the channel may open sessions on (`*384#`); any when empty.
    pub codes: &'a [String],
    /// See [`DEFAULT_REPEAT_WINDOW`].
    pub repeat_window: Duration,
    /// Set for SMS conversations, where no PIN may travel.
    pub sms: Option<SmsRules>,
}

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

/// Time kept back from the hop deadline to write the session after an op.
const SAVE_MARGIN: Duration = Duration::from_millis(250);

/// Settings of the pipeline.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub session_ttl: Duration,
    /// Time within which every hop is answered.
    pub hop_deadline: Duration,
    /// The longest deadline of any channel: a claim written before claims had leases
    /// and older than twice this belongs to a process that died mid-op.
    pub longest_deadline: Duration,
    /// Screen budgets of channels that hold less than the menus' own, by provider.
    pub budgets: std::collections::HashMap<String, crate::menu::Budget>,
}

/// Everything a hop needs; shared by all requests.
pub struct Gateway {
    menus: ArcSwap<Bundle>,
    store: SessionStore,
    ops: Ops,
    text_key: TextKey,
    config: GatewayConfig,
    /// Ops run on tasks of their own; an op that overruns its hop keeps running here.
    tasks: TaskTracker,
    /// One reload at a time, so that no replaced edition is lost between two.
    reloading: std::sync::Mutex<()>,
    /// Sessions this process last answered with a `CON`, for the timeout funnel metric.
    waiting: std::sync::Mutex<Waiting>,
}

/// Due sessions the timeout sweep reads back from the store in one round trip.
const SWEEP_BATCH: usize = 500;

/// How a hop was answered, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HopKind {
    Continue,
    End,
    /// A duplicate answered from the session's cached reply.
    Replayed,
    /// A dependency failed or the deadline passed; nothing moved, or the subscriber is
    /// told the outcome cannot be confirmed.
    Failed,
    /// The outcome of a movement is not known yet: the subscriber was promised an SMS
    /// saying what happened, and the promise is written down.
    Promised,
    /// Over SMS only: a dependency failed before anything changed, and the session is
    /// as it was; the message should be answered again later.
    Retry,
}

impl HopKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HopKind::Continue => "continue",
            HopKind::End => "end",
            HopKind::Replayed => "replayed",
            HopKind::Failed => "failed",
            HopKind::Promised => "promised",
            HopKind::Retry => "retry",
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum HopError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("session stayed contended for {CAS_ATTEMPTS} attempts")]
    Contended,
    #[error("another writer replaced a session this hop had claimed")]
    ClaimLost,
    #[error("the session's menu `{0}` (edition {1}) is no longer loaded")]
    MenuGone(String, String),
}

/// What one attempt at a hop works on: fixed for the attempt.
struct Attempt<'a> {
    hop: &'a Hop,
    key: &'a SessionKey,
    mark: TextMark,
    menu: &'a Menu,
    deadline: Instant,
    sms: Option<SmsRules>,
}

/// The session this attempt writes, with the version its next write must match.
struct Record {
    session: Session,
    version: u64,
    /// Whether this attempt has claimed the session (marked it pending) for an op.
    claimed: bool,
    /// Whether another writer replaced the claim while the op ran.
    lost: bool,
    /// A new session's resume pointer, not read yet: the claim reads it.
    unread: Option<ResumePointer>,
    /// Whether an op answered in this attempt: its reply then stands even if the
    /// session cannot be saved.
    ran: bool,
    /// A movement this attempt committed (op, counter, request): a failure after it
    /// must not say "unavailable".
    moved: Option<(Op, u32, Option<i64>)>,
}

/// How a hop enters the engine.
enum Entry {
    /// An input on a running journey.
    Continue,
    /// A new session: the start screen.
    Begin,
    /// A new session whose subscriber may have dropped a journey that could be offered
    /// back: the start screen, and the claim before its first op reads the resume
    /// pointer in the same round trip.
    Fresh,
    /// A new session offered the journey its subscriber dropped.
    Offer(Box<Journey>),
    /// A new session that takes over an SMS movement on its PIN screen.
    HandOff(Box<Journey>),
}

/// Why the engine loop stopped without a reply of its own.
enum Interrupt {
    /// Another hop claimed the session first: reload and start over.
    LostRace,
    Store(StoreError),
    Engine(EngineError),
    /// An op failed and nothing moved.
    Money(MoneyError),
    /// The op's task panicked (an op that moves nothing).
    OpCrashed,
    /// An op that moves nothing overran the deadline; it goes on without the subscriber.
    OpOverran,
    /// A movement's outcome is not known: it overran, or its answer was lost.
    Unknown(Box<Unknown>),
    /// A fresh session's resume pointer leads to this session (or was not read): whether
    /// to offer that journey back is decided before anything is shown.
    Dropped(Option<SessionKey>),
}

impl Gateway {
    pub fn new(
        menus: Bundle,
        store: SessionStore,
        money: Money,
        text_key: TextKey,
        config: GatewayConfig,
    ) -> Self {
        Gateway {
            menus: ArcSwap::from_pointee(menus),
            store,
            ops: Ops::new(money),
            text_key,
            config,
            tasks: TaskTracker::new(),
            reloading: Default::default(),
            waiting: Default::default(),
        }
    }

    /// Counts, per screen, the sessions left waiting for longer than the session lifetime
    /// as of `now` (`ussd_screen_timeouts_total`), and forgets them. A session another
    /// process answered since is left to that process. Returns how many timed out.
    pub async fn sweep_timeouts(&self, now: Instant) -> usize {
        let due = {
            let mut waiting = self.waiting();
            let due = waiting.due(now, self.config.session_ttl);
            metrics::gauge!("ussd_sessions_waiting").set(waiting.len() as f64);
            due
        };
        let mut timed_out = 0;
        for batch in due.chunks(SWEEP_BATCH) {
            let keys: Vec<&SessionKey> = batch.iter().map(|(key, _)| key).collect();
            // The store is down, or a record unreadable: count nothing rather than guess.
            let Ok(stored) = self.store.load_many(&keys).await else { continue };
            for ((_, wait), stored) in batch.iter().zip(stored) {
                let answered_elsewhere = stored.is_some_and(|l| l.session.hops != wait.hops);
                if !answered_elsewhere {
                    timed_out += 1;
                    metrics::counter!(
                        "ussd_screen_timeouts_total",
                        "menu" => wait.menu.to_string(),
                        "screen" => wait.screen.to_string()
                    )
                    .increment(1);
                }
            }
        }
        timed_out
    }

    /// Notes where a session waits after a reply of this process, or that it ended.
    fn track(&self, key: &SessionKey, session: &Session, ended: bool) {
        let mut waiting = self.waiting();
        if ended {
            waiting.ended(key);
        } else if !waiting.answered(
            key,
            &session.service,
            &session.journey.screen,
            session.hops,
            Instant::now(),
        ) {
            metrics::counter!("ussd_screen_untracked_total").increment(1);
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The menus being served now.
    pub fn menus(&self) -> Arc<Bundle> {
        self.menus.load_full()
    }

    /// Compiles the menus in `dir` and, only if every check passes, serves them from the
    /// next hop on; sessions already running finish on the edition they started on.
    /// On any problem the current menus keep serving and the diagnostics come back.
    pub fn reload(&self, dir: &std::path::Path) -> Result<Arc<Bundle>, Vec<crate::menu::Diagnostic>> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = match Bundle::load_dir(dir) {
            Ok(b) => b,
            Err(diagnostics) => {
                warn!(dir = %dir.display(), problems = diagnostics.len(), "menu reload refused; the current menus keep serving");
                for d in &diagnostics {
                    warn!("{d}");
                }
                return Err(diagnostics);
            }
        };
        let old = self.menus.load_full();
        let next = Arc::new(fresh.succeeding(&old, std::time::Instant::now(), self.config.session_ttl));
        self.menus.store(Arc::clone(&next));
        for m in next.menus() {
            tracing::info!(service = %m.service, version = %m.version, screens = m.screen_count(), "menu reloaded");
        }
        Ok(next)
    }

    pub fn store(&self) -> &SessionStore {
        &self.store
    }

    pub fn money(&self) -> &Money {
        self.ops.money()
    }

    /// The ops this process runs, and how many times each ran.
    pub fn ops(&self) -> &Ops {
        &self.ops
    }

    /// How long a session lives without a hop.
    pub fn session_ttl(&self) -> Duration {
        self.config.session_ttl
    }

    /// Waits for every op still running, including those whose hop already answered,
    /// so that a shutdown never abandons a money movement between its hop and its receipt.
    pub async fn drain(&self) {
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
    }

    /// Answers one hop under the gateway's own rules (the configured deadline, every
    /// served code).
    pub async fn handle(&self, hop: &Hop) -> (Reply, HopKind) {
        let rules = HopRules {
            deadline: self.config.hop_deadline,
            codes: &[],
            repeat_window: DEFAULT_REPEAT_WINDOW,
            sms: None,
        };
        self.handle_with(hop, rules).await
    }

    /// Answers one hop under its channel's rules, always within the channel's deadline.
    pub async fn handle_with(&self, hop: &Hop, rules: HopRules<'_>) -> (Reply, HopKind) {
        let deadline = Instant::now() + rules.deadline;
        // Over SMS a hop that failed outright is answered again later.
        let failed = if rules.sms.is_some() { HopKind::Retry } else { HopKind::Failed };
        match tokio::time::timeout_at(deadline, self.process(hop, rules, deadline)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                warn!(channel = %hop.channel, msisdn = %hop.msisdn, error = %e, "hop failed");
                (Reply::end(Message::ServiceUnavailable.text("en")), failed)
            }
            Err(_) => {
                warn!(channel = %hop.channel, msisdn = %hop.msisdn, "hop deadline passed");
                (Reply::end(Message::ServiceUnavailable.text("en")), failed)
            }
        }
    }

    async fn process(
        &self,
        hop: &Hop,
        rules: HopRules<'_>,
        deadline: Instant,
    ) -> Result<(Reply, HopKind), HopError> {
        let bundle = self.menus.load_full();
        let key = SessionKey::new(&hop.channel, hop.msisdn.as_e164(), &hop.session_id);
        let mark = self.text_key.mark(&hop.input.identity());

        // A first hop almost always opens a new session: skip the read and create the
        // record by compare-and-set on version 0. If a record exists after all (a
        // duplicate), that write fails and the next attempt reads it.
        let mut assume_new = hop.input.is_first();
        // How a new session enters once its resume pointer has been read.
        let mut decided: Option<Entry> = None;
        for _ in 0..CAS_ATTEMPTS {
            let mut loaded =
                if std::mem::take(&mut assume_new) { None } else { self.store.load(&key).await? };
            let retry = loaded.as_ref().is_some_and(|l| self.is_retry(hop, &l.session, mark, rules));
            // An opening hop on a record it does not repeat is a new dial under a reused
            // session id: it replaces the record (compare-and-set on its version).
            let mut replaces = 0;
            if let Some(old) = loaded.take_if(|_| hop.input.is_first() && !retry) {
                replaces = old.version;
            }
            let (version, session, menu, inputs, entry) = match loaded {
                Some(loaded) => {
                    let edition = bundle.for_session(&loaded.session.service, &loaded.session.menu_version);
                    if let Input::PerHop { seq: Some(seq), .. } = hop.input
                        && loaded.session.last_seq.is_some_and(|last| seq < last)
                    {
                        // A copy of a hop answered long ago: it changes nothing, and gets
                        // the screen the session is on.
                        let reply = match (&loaded.session.reply, loaded.session.pending_since_ms) {
                            (Some(reply), None) => reply.clone(),
                            _ => Reply::end(session_line(
                                edition.map(|m| &**m),
                                &loaded.session,
                                Message::Unconfirmed,
                            )),
                        };
                        return Ok((reply, HopKind::Replayed));
                    }
                    if retry || loaded.session.pending_since_ms.is_some() {
                        let mark = retry.then_some(mark);
                        return self
                            .behind(hop, &key, loaded, mark, deadline, edition.map(|m| &**m), rules)
                            .await;
                    }
                    let Loaded { version, session } = loaded;
                    if session.journey.done {
                        let over = session_line(edition.map(|m| &**m), &session, Message::SessionOver);
                        return Ok((Reply::end(over), HopKind::End));
                    }
                    let menu =
                        bundle.for_session(&session.service, &session.menu_version).cloned().ok_or_else(
                            || HopError::MenuGone(session.service.clone(), session.menu_version.clone()),
                        )?;
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
                    (version, session, menu, vec![input], Entry::Continue)
                }
                None => {
                    if matches!(hop.input, Input::PerHop { first: false, .. }) {
                        // An answer whose session expired (or never was): it means
                        // nothing on a start screen.
                        return Ok((Reply::end(Message::SessionOver.text("en")), HopKind::End));
                    }
                    let dialled = bundle
                        .resolve(&hop.service_code)
                        .filter(|d| rules.codes.is_empty() || rules.codes.contains(&d.code));
                    let Some(dialled) = dialled else {
                        debug!(code = %hop.service_code, channel = %hop.channel, "no menu for this service code on this channel");
                        return Ok((Reply::end("This service is not available."), HopKind::End));
                    };
                    let mut inputs = dialled.jump.clone();
                    if let Input::Cumulative(text) = &hop.input {
                        inputs.extend(cumulative::first_inputs(text));
                    }
                    let menu = Arc::clone(dialled.menu);
                    let handoff = menu.handoff_code(&inputs).filter(|_| rules.sms.is_none());
                    let entry = match (handoff, &menu.resume) {
                        (Some(code), _) => {
                            let Some(journey) = self.take_handoff(hop, &menu, code).await? else {
                                let j = Journey { lang: menu.languages[0].clone(), ..Journey::default() };
                                return Ok((Reply::end(line(&menu, &j, Message::CodeExpired)), HopKind::End));
                            };
                            inputs.clear();
                            Entry::HandOff(Box::new(journey))
                        }
                        (None, Some(_)) if inputs.is_empty() && rules.sms.is_none() => {
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
                    (replaces, session, menu, inputs, entry)
                }
            };

            let attempt = Attempt { hop, key: &key, mark, menu: &menu, deadline, sms: rules.sms };
            let unread = matches!(entry, Entry::Fresh)
                .then(|| ResumePointer::new(hop.msisdn.as_e164(), &menu.service));
            // Over SMS a failed hop leaves a running conversation as it was, to be
            // answered again.
            let before = (rules.sms.is_some() && matches!(entry, Entry::Continue)).then(|| session.clone());
            let mut record =
                Record { session, version, claimed: false, lost: false, unread, ran: false, moved: None };
            let (reply, kind) = match self.drive(&attempt, &mut record, inputs, entry).await {
                Ok(reply) => {
                    let kind = if reply.end { HopKind::End } else { HopKind::Continue };
                    (reply, kind)
                }
                Err(Interrupt::LostRace) => continue,
                Err(Interrupt::Store(e)) if record.moved.is_none() => return Err(e.into()),
                Err(Interrupt::Dropped(found)) => {
                    let dropped = match found {
                        Some(dropped) => Some(dropped),
                        None => {
                            let pointer = ResumePointer::new(hop.msisdn.as_e164(), &menu.service);
                            self.store.recall(&pointer).await?
                        }
                    };
                    decided = Some(match self.offerable(&key, dropped, &menu).await? {
                        Some(journey) => Entry::Offer(Box::new(journey)),
                        None => Entry::Begin,
                    });
                    // Nothing was written: a record that did not exist still does not.
                    assume_new = record.version == 0;
                    continue;
                }
                Err(failure) => {
                    let (message, kind) = self.failed(&attempt, &mut record, failure).await;
                    if kind != HopKind::Promised && rules.sms.is_some() {
                        return Ok(self.restore(&key, &record, before, &menu, message).await);
                    }
                    record.session.journey.done = true;
                    (Reply::end(line(&menu, &record.session.journey, message)), kind)
                }
            };
            let Record { mut session, version, claimed, ran, .. } = record;
            let refused_on = std::mem::take(&mut session.journey.refused_on);
            session.seen = mark;
            let mut reply = reply;
            reply.secret_next = !reply.end && menu.is_sensitive(&session.journey.screen);
            // An SMS conversation's replies are not kept: duplicates are caught by
            // provider message id, and a reply may carry a one-time code.
            session.reply = rules.sms.is_none().then(|| reply.clone());
            session.pending_since_ms = None;
            session.claim = None;
            session.answered_ms = unix_ms();
            session.hops += 1;
            if let Input::PerHop { seq: Some(seq), .. } = hop.input {
                session.last_seq = Some(seq);
            }
            let saved = match menu.resume {
                // An SMS conversation is never offered on USSD, nor does it touch the
                // USSD journey a subscriber may come back to; it may hand its movement
                // over by a code instead.
                _ if rules.sms.is_some() => self.save_conversation(hop, &key, version, &session, &menu).await,
                None => self.store.save(&key, version, &session, self.config.session_ttl).await,
                Some(ref resume) => {
                    let within = resume.within;
                    // The record must outlive the offer window; the pointer leads to it
                    // while the journey can be resumed, and is removed once it cannot.
                    let pointer = ResumePointer::new(hop.msisdn.as_e164(), &session.service);
                    let keep = (matches!(kind, HopKind::Continue | HopKind::End)
                        && menu.can_resume(&session.journey))
                    .then_some(within);
                    let ttl = within.max(self.config.session_ttl);
                    self.store.save_pointing(&key, version, &session, ttl, &pointer, keep).await
                }
            };
            match saved {
                Ok(Some(_)) => {
                    // Counted once the hop's outcome is stored, not per attempt.
                    crate::telemetry::record_screens(
                        &session.service,
                        &session.journey.screen,
                        reply.end,
                        &refused_on,
                    );
                    self.track(&key, &session, reply.end);
                    return Ok((reply, kind));
                }
                // What an op answered is true whether or not the session could be
                // saved after it: the reply stands, and a copy of this hop finds the
                // claim and answers for it.
                Err(e) if ran => {
                    warn!(channel = %hop.channel, msisdn = %hop.msisdn, error = %e, "the session could not be saved after an op answered; its reply stands");
                    return Ok((reply, kind));
                }
                Ok(None) if ran => {
                    warn!(channel = %hop.channel, msisdn = %hop.msisdn, "another writer replaced a session whose op answered; its reply stands");
                    return Ok((reply, kind));
                }
                Err(e) => return Err(e.into()),
                Ok(None) if claimed => return Err(HopError::ClaimLost),
                Ok(None) => continue,
            }
        }
        Err(HopError::Contended)
    }

    /// What a hop that failed tells the subscriber: a movement whose outcome is unknown
    /// (or that committed before something else failed) gets an SMS promised; anything
    /// else moved nothing and says so.
    async fn failed(&self, at: &Attempt<'_>, rec: &mut Record, failure: Interrupt) -> (Message, HopKind) {
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

    /// Over SMS, a hop that failed without promising anything: the session goes back to
    /// what it was before the hop, so that answering the message again later runs the
    /// same step under the same idempotency keys.
    async fn restore(
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

    /// Runs the engine over this hop's inputs, running ops as it asks for them.
    async fn drive(
        &self,
        at: &Attempt<'_>,
        rec: &mut Record,
        inputs: Vec<String>,
        entry: Entry,
    ) -> Result<Reply, Interrupt> {
        let menu = at.menu;
        let mut inputs = inputs.into_iter();
        let mut ops = 0;
        let mut step = match entry {
            Entry::Begin | Entry::Fresh | Entry::Offer(_) | Entry::HandOff(_) => {
                let channel = self.config.budgets.get(at.hop.provider).copied();
                let budget = channel.map(|b| b.min(menu.budget)).filter(|b| *b != menu.budget);
                let (journey, step) = match entry {
                    Entry::Offer(mut dropped) => {
                        dropped.budget = budget;
                        menu.offer_resume(*dropped)
                    }
                    Entry::HandOff(handed) => {
                        let mut j = Journey { budget, retries: 0, ..*handed };
                        menu.show(&mut j).map(|step| (j, step))
                    }
                    _ => menu.begin_within(None, channel),
                }
                .map_err(Interrupt::Engine)?;
                rec.session.journey = journey;
                step
            }
            Entry::Continue => {
                let first = inputs.next().unwrap_or_default();
                match at.sms {
                    Some(sms) if rec.session.code.is_some() => self.confirm(at, rec, sms, &first).await?,
                    _ => menu.input(&mut rec.session.journey, &first).map_err(Interrupt::Engine)?,
                }
            }
        };
        loop {
            step = match step {
                Step::Reply(reply) => match at.sms {
                    // Over SMS a screen asking for a secret takes no input — a command's
                    // dial cannot type a PIN, the rest of it is dropped — unless its
                    // code is already out (this is the wrong-code line).
                    Some(sms)
                        if !reply.end
                            && rec.session.code.is_none()
                            && menu.is_sensitive(&rec.session.journey.screen) =>
                    {
                        match self.instead_of_pin(at, rec, sms).await? {
                            Ok(vouched) => vouched,
                            Err(asked) => return Ok(asked),
                        }
                    }
                    // Inputs left over are dialled ahead (`*384*1*0712…#`, or an
                    // opening hop's text): they never type a PIN nor say yes to a
                    // step on the subscriber's behalf, so the dial string and the
                    // aggregator's logs carry no PIN and a replayed dial moves nothing.
                    _ if !reply.end
                        && inputs.len() > 0
                        && dialled_past(menu, at, &rec.session.journey.screen) =>
                    {
                        return Ok(reply);
                    }
                    _ => match inputs.next() {
                        Some(next) if !reply.end => {
                            menu.input(&mut rec.session.journey, &next).map_err(Interrupt::Engine)?
                        }
                        // A start screen with no op: the resume pointer is read now.
                        _ if rec.unread.is_some() => return Err(Interrupt::Dropped(None)),
                        _ => return Ok(reply),
                    },
                },
                Step::Run(action) => {
                    ops += 1;
                    if ops > MAX_OPS_PER_HOP {
                        let screen = rec.session.journey.screen.clone();
                        return Err(Interrupt::Engine(EngineError::Loop(screen)));
                    }
                    if Self::needs_claim(rec, &action) {
                        self.claim(at, rec, &action).await?;
                    }
                    let auth = match at.sms {
                        Some(sms) => Auth::Vouched { max_amount: sms.max_amount },
                        None => Auth::Pin,
                    };
                    let result = self.run_op(at, rec, action, auth, menu.region).await?;
                    menu.resume(&mut rec.session.journey, result).map_err(Interrupt::Engine)?
                }
            };
        }
    }

    /// Over SMS, a screen that asks for a secret: an op that only reads goes on (the
    /// sender's number vouches); a movement asks for a one-time code instead
    /// (`Err(reply)`); anything else (a national ID) is not done by SMS.
    async fn instead_of_pin(
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
    async fn confirm(
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
    async fn save_conversation(
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
    async fn take_handoff(&self, hop: &Hop, menu: &Menu, code: &str) -> Result<Option<Journey>, HopError> {
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

    /// The journey this subscriber dropped in session `dropped` (where their resume
    /// pointer led), if it can be offered back: same menu edition, no op in flight, past
    /// the first screen, and not this very session.
    async fn offerable(
        &self,
        key: &SessionKey,
        dropped: Option<SessionKey>,
        menu: &Menu,
    ) -> Result<Option<Journey>, HopError> {
        let Some(old) = dropped.filter(|old| old != key) else { return Ok(None) };
        let Some(Loaded { session, .. }) = self.store.load(&old).await? else { return Ok(None) };
        let offer = session.menu_version == menu.version
            && session.pending_since_ms.is_none()
            && menu.can_resume(&session.journey);
        Ok(offer.then_some(session.journey))
    }

    /// Runs an op on its own task so that it completes even if the hop cannot wait,
    /// renewing the hop's claim meanwhile. A movement that overruns, fails after its
    /// statement was sent, or crashes has an unknown outcome; any other failure moved
    /// nothing.
    async fn run_op(
        &self,
        at: &Attempt<'_>,
        rec: &mut Record,
        action: Action,
        auth: Auth,
        region: Region,
    ) -> Result<OpResult, Interrupt> {
        let ops = self.ops.clone();
        let msisdn = at.hop.msisdn.clone();
        let (op, seq) = (action.op, action.seq);
        let spec = op.spec();
        let request = rec.session.claim.as_ref().filter(|c| c.seq == seq).and_then(|c| c.request);
        let idempotency_key = op_key(at.key, seq);
        let mut task = self.tasks.spawn(async move {
            let Action { args, secrets, .. } = &action;
            let key = &idempotency_key;
            let call = Call { op, msisdn: &msisdn, idempotency_key: key, args, secrets, auth, region };
            ops.run(call).await
        });
        // A movement keeps back the time to write its promise, should it overrun.
        let margin = if spec.moves_money() { SAVE_MARGIN + PROMISE_MARGIN } else { SAVE_MARGIN };
        let budget = at.deadline.checked_sub(margin).unwrap_or(at.deadline);
        let joined = loop {
            let renew_at = (Instant::now() + RENEW_EVERY).min(budget);
            match tokio::time::timeout_at(renew_at, &mut task).await {
                Ok(joined) => break Some(joined),
                Err(_) if renew_at >= budget => break None,
                Err(_) => self.renew(at, rec).await,
            }
        };
        let unknown = |running, due_in| {
            Err(Interrupt::Unknown(Box::new(Unknown { op, seq, request, running, due_in })))
        };
        let outcome = match &joined {
            Some(Ok(Ok(result))) => result.outcome.as_str(),
            Some(_) => "error",
            None => "overran",
        };
        metrics::counter!("ussd_ops_total", "op" => op.name(), "outcome" => outcome).increment(1);
        match joined {
            Some(Ok(Ok(result))) => {
                rec.ran = true;
                if spec.moves_money() && result.outcome == Outcome::Ok {
                    rec.moved = Some((op, seq, request));
                }
                Ok(result)
            }
            Some(Ok(Err(e))) if spec.moves_money() && e.may_have_moved() => {
                warn!(op = op.name(), channel = %at.hop.channel, session = %at.hop.session_id, error = %e, "a movement's answer was lost; its outcome will be looked up");
                unknown(None, LEFT_TO_SERVER)
            }
            Some(Ok(Err(e))) => Err(Interrupt::Money(e)),
            Some(Err(join)) => {
                warn!(op = op.name(), error = %join, "op task panicked");
                if spec.moves_money() { unknown(None, LEFT_TO_SERVER) } else { Err(Interrupt::OpCrashed) }
            }
            None if spec.moves_money() => unknown(Some(task), LEFT_TO_RUNNER),
            None => Err(Interrupt::OpOverran),
        }
    }

    /// Whether a hop on an existing session repeats the last one received: the same
    /// identity (for a per-hop input without a counter, only while the reply is fresh or
    /// still being worked out). A second opening hop right after the first (Safaricom
    /// may send two) has the first's identity.
    fn is_retry(&self, hop: &Hop, session: &Session, mark: TextMark, rules: HopRules<'_>) -> bool {
        let window = u64::try_from(rules.repeat_window.as_millis()).unwrap_or(u64::MAX);
        session.seen == mark
            && (hop.input.identifies_uniquely()
                || session.pending_since_ms.is_some()
                || unix_ms().saturating_sub(session.answered_ms) < window)
    }

    /// An aggregator's notice that a session is over: counted as an abort or a timeout
    /// on the screen it was left on. The record stays, so a resumable journey can still
    /// be offered back on the next dial.
    pub async fn close(&self, closed: &Closed) {
        let key = SessionKey::new(&closed.channel, closed.msisdn.as_e164(), &closed.session_id);
        // The notice replaces this process's own timeout count for the session.
        self.waiting().ended(&key);
        let session = match self.store.load(&key).await {
            Ok(Some(Loaded { session, .. })) => session,
            Ok(None) => return,
            Err(e) => {
                warn!(channel = %closed.channel, error = %e, "could not read a closed session");
                return;
            }
        };
        if session.journey.done || session.reply.as_ref().is_some_and(|r| r.end) {
            return;
        }
        crate::telemetry::record_close(&session.service, &session.journey.screen, closed.reason.as_str());
    }
}

/// Whether dialling ahead must stop at `screen`: it asks for a secret, or (on USSD) for
/// a yes. An SMS command's arguments confirm by design, and its movements wait for a
/// one-time code; its secrets are never typed (`instead_of_pin`).
fn dialled_past(menu: &Menu, at: &Attempt<'_>, screen: &str) -> bool {
    menu.is_sensitive(screen) || (at.sms.is_none() && menu.is_confirm(screen))
}

/// A built-in line as the menu words it, in the journey's language.
fn line(menu: &Menu, journey: &Journey, message: Message) -> String {
    menu.message(journey, message).unwrap_or_else(|_| message.text(&journey.lang).to_owned())
}

/// [`line`] for a session whose menu edition may be gone.
fn session_line(menu: Option<&Menu>, session: &Session, message: Message) -> String {
    match menu {
        Some(menu) => line(menu, &session.journey, message),
        None => message.text(&session.journey.lang).to_owned(),
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The idempotency key of a session's `seq`th op.
fn op_key(key: &SessionKey, seq: u32) -> String {
    format!("{}:{}", key.as_str(), seq)
}
