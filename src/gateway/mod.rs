//! The hop pipeline: session → dedupe → engine ⇄ ops → cached reply, within the deadline.
//!
//! One writer per session: a hop that will run an op first claims the session with a
//! compare-and-set (marking it pending); a duplicate that loses the race waits for the
//! claimant's reply instead of running anything. Hops without ops, or whose ops only
//! read, write once: a duplicate may read again, and gets the reply stored first.

mod claim;
mod conversation;
mod drive;
mod entry;
mod save;
mod timeouts;
mod told;
mod waiting;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::field::Empty;
use tracing::{Instrument, warn};

use crate::channel::{DEFAULT_REPEAT_WINDOW, Hop};
use crate::flags::Flags;
use crate::menu::{Bundle, EngineError, Journey, Menu, Message, Reply};
use crate::money::{Money, MoneyError};
use crate::ops::{Op, Ops};
use crate::session::{ResumePointer, Session, SessionKey, SessionStore, StoreError, TextKey, TextMark};
pub use conversation::{Checked, Conversation, StandIn};
use entry::{Entered, Entry, Opened};
use save::Finished;
use told::Unknown;
use waiting::Waiting;

/// Compare-and-set attempts before a hop gives up on a contended session.
const CAS_ATTEMPTS: usize = 4;

/// Ops one hop may run; the menu checker refuses loops of ops, this guards the rest.
const MAX_OPS_PER_HOP: usize = 8;

/// What a channel asks of the hops it passes on.
#[derive(Clone, Copy)]
pub struct HopRules<'a> {
    /// Every hop is answered within this.
    pub deadline: Duration,
    /// Service codes the channel may open sessions on (`*384#`); any when empty.
    pub codes: &'a [String],
    /// See [`DEFAULT_REPEAT_WINDOW`].
    pub repeat_window: Duration,
    /// Set for SMS conversations, where no PIN may travel: what stands in for it.
    pub conversation: Option<&'a dyn Conversation>,
}

/// Where the journey of this hop's subscriber that a later dial may resume is kept: the
/// simulator's apart from the channels', so that neither is offered a journey the
/// other left (an operator's half-made transfer on a subscriber's phone).
fn pointer(hop: &Hop, service: &str) -> ResumePointer {
    if hop.channel == crate::channel::SIMULATOR_CHANNEL {
        ResumePointer::new(hop.msisdn.as_e164(), &format!("{service}{}", crate::channel::SIMULATOR_CHANNEL))
    } else {
        ResumePointer::new(hop.msisdn.as_e164(), service)
    }
}

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
    menus: Arc<ArcSwap<Bundle>>,
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
    /// The feature flags as this replica last read them.
    flags: Flags,
}

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

/// A hop as it arrived, with the session it names: fixed for all its attempts.
struct Arrival<'a> {
    hop: &'a Hop,
    key: SessionKey,
    /// The hop's identity, as a keyed hash.
    mark: TextMark,
    rules: HopRules<'a>,
    deadline: Instant,
    /// When it arrived, in Unix milliseconds: a session answered for its identity since
    /// was answered for a copy of it.
    arrived_ms: u64,
}

/// What one attempt at a hop works on: fixed for the attempt.
struct Attempt<'a> {
    hop: &'a Hop,
    key: &'a SessionKey,
    mark: TextMark,
    menu: &'a Menu,
    deadline: Instant,
    conversation: Option<&'a dyn Conversation>,
}

/// The session this attempt writes, with the version its next write must match.
struct Record {
    session: Session,
    version: u64,
    /// Whether this attempt has claimed the session (marked it pending) for an op.
    claimed: bool,
    /// Whether another writer replaced the claim while the op ran.
    lost: bool,
    /// A new session's resume pointer, not read yet: the first write reads it (a claim,
    /// or the hop's only write).
    unread: Option<ResumePointer>,
    /// Whether an op that does more than read answered in this attempt: its reply then
    /// stands even if the session cannot be saved.
    ran: bool,
    /// A movement this attempt committed (op, counter, request): a failure after it
    /// must not say "unavailable".
    moved: Option<(Op, u32, Option<i64>)>,
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
    /// A fresh session's resume pointer leads to this other session: whether to offer
    /// that journey back is decided before anything is shown.
    Dropped(SessionKey),
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
            menus: Arc::new(ArcSwap::from_pointee(menus)),
            store,
            ops: Ops::new(money),
            text_key,
            config,
            tasks: TaskTracker::new(),
            reloading: Default::default(),
            waiting: Default::default(),
            flags: Flags::default(),
        }
    }

    /// The feature flags hops decide by; whoever runs the gateway keeps them fresh
    /// ([`Flags::refresh`]).
    pub fn flags(&self) -> &Flags {
        &self.flags
    }

    /// The menu's flags on for the hop's subscriber on its channel, as bits.
    fn flag_bits(&self, menu: &Menu, hop: &Hop) -> u64 {
        if menu.flags.is_empty() {
            return 0;
        }
        let snapshot = self.flags.snapshot();
        menu.flag_bits(|name, default| snapshot.on(name, default, &hop.msisdn, &hop.channel))
    }

    /// The place of a flag that switches `op` off for the hop's subscriber, if one does:
    /// decided as the op is about to run, so that switching an op off (a biller's outage)
    /// holds for sessions already on their way to it.
    fn switched_off(&self, menu: &Menu, hop: &Hop, op: Op) -> Option<u8> {
        let mut gates = menu.gates(op).peekable();
        gates.peek()?;
        let snapshot = self.flags.snapshot();
        gates
            .find(|(_, f)| !snapshot.on(&f.name, f.default, &hop.msisdn, &hop.channel))
            .map(|(place, _)| place)
    }

    /// The menus being served now.
    pub fn menus(&self) -> Arc<Bundle> {
        self.menus.load_full()
    }

    /// The menus being served, as they will be after each reload: for what words its
    /// messages from the bundle's `texts/` (the outbox's receipts).
    pub fn menus_handle(&self) -> Arc<ArcSwap<Bundle>> {
        Arc::clone(&self.menus)
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
            conversation: None,
        };
        self.handle_with(hop, rules).await
    }

    /// Answers one hop under its channel's rules, always within the channel's deadline.
    pub async fn handle_with(&self, hop: &Hop, rules: HopRules<'_>) -> (Reply, HopKind) {
        // Not the code as dialled: a jump-ahead dial or an SMS command carries a number
        // in it, or a PIN.
        let span = tracing::debug_span!("hop", channel = %hop.channel, menu = Empty, kind = Empty);
        let answer = self.answer(hop, rules).instrument(span.clone()).await;
        span.record("kind", tracing::field::debug(&answer.1));
        answer
    }

    async fn answer(&self, hop: &Hop, rules: HopRules<'_>) -> (Reply, HopKind) {
        let deadline = Instant::now() + rules.deadline;
        // Over SMS a hop that failed outright is answered again later.
        let failed = if rules.conversation.is_some() { HopKind::Retry } else { HopKind::Failed };
        match tokio::time::timeout_at(deadline, self.process(hop, rules, deadline)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                warn!(channel = %hop.channel, msisdn = %hop.msisdn, error = %e, "hop failed");
                (Reply::end(self.menus().texts().line("en", Message::ServiceUnavailable)), failed)
            }
            Err(_) => {
                warn!(channel = %hop.channel, msisdn = %hop.msisdn, "hop deadline passed");
                (Reply::end(self.menus().texts().line("en", Message::ServiceUnavailable)), failed)
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
        let arrival = Arrival { hop, key, mark, rules, deadline, arrived_ms: unix_ms() };
        let key = &arrival.key;

        // A first hop almost always opens a new session: skip the read and create the
        // record by compare-and-set on version 0. If a record exists after all (a
        // duplicate), that write fails and the next attempt reads it.
        let mut assume_new = hop.input.is_first();
        // How a new session enters once its resume pointer has been read.
        let mut decided: Option<Entry> = None;
        // The rare paths below are boxed: a future holds room for its largest await,
        // and every hop's future is allocated and moved whole.
        for _ in 0..CAS_ATTEMPTS {
            let loaded = if std::mem::take(&mut assume_new) { None } else { self.store.load(key).await? };
            let Opened { version, session, menu, inputs, entry } =
                match self.enter(&arrival, &bundle, loaded, &mut decided).await? {
                    Entered::Answered(reply, kind) => return Ok((reply, kind)),
                    Entered::Open(opened) => opened,
                };
            tracing::Span::current().record("menu", menu.service.as_str());
            let attempt = Attempt { hop, key, mark, menu: &menu, deadline, conversation: rules.conversation };
            let unread = matches!(entry, Entry::Fresh).then(|| pointer(hop, &menu.service));
            // Over SMS a failed hop leaves a running conversation as it was, to be
            // answered again.
            let before =
                (rules.conversation.is_some() && matches!(entry, Entry::Continue)).then(|| session.clone());
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
                    decided = Some(Box::pin(self.after_pointer(&arrival, &menu, found)).await?);
                    // Nothing was written: a record that did not exist still does not.
                    assume_new = record.version == 0;
                    continue;
                }
                Err(failure) => {
                    let (message, kind) = Box::pin(self.failed(&attempt, &mut record, failure)).await;
                    if kind != HopKind::Promised && rules.conversation.is_some() {
                        return Ok(Box::pin(self.restore(key, &record, before, &menu, message)).await);
                    }
                    record.session.journey.done = true;
                    (Reply::end(line(&menu, &record.session.journey, message)), kind)
                }
            };
            let version = record.version;
            match self.finish(&attempt, record, reply, kind).await? {
                Finished::Answered(reply, kind) => return Ok((reply, kind)),
                Finished::Again => {}
                Finished::Pointed(found) => {
                    decided = Some(Box::pin(self.after_pointer(&arrival, &menu, found)).await?);
                    assume_new = version == 0;
                }
            }
        }
        Err(HopError::Contended)
    }
}

/// A built-in line as the menu words it, in the journey's language.
fn line(menu: &Menu, journey: &Journey, message: Message) -> String {
    menu.message(journey, message).unwrap_or_else(|_| menu.line(&journey.lang, message).to_owned())
}

impl Gateway {
    /// [`line`] for a session whose menu edition may be gone: then as the texts served
    /// now word it.
    fn session_line(&self, menu: Option<&Menu>, session: &Session, message: Message) -> String {
        match menu {
            Some(menu) => line(menu, &session.journey, message),
            None => self.menus().texts().line(&session.journey.lang, message).to_owned(),
        }
    }
}

/// Now, in Unix milliseconds: the clock session deadlines and codes are written in.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The idempotency key of a session's `seq`th op.
fn op_key(key: &SessionKey, seq: u32) -> String {
    format!("{}:{}", key.as_str(), seq)
}
