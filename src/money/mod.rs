//! The ledger and what stands beside it in Postgres: wallets, PINs, agents, approvals,
//! bills, merchants and promises, each movement one transaction, answering in [`OpResult`]s.

pub mod agents;
pub mod approvals;
pub mod bills;
#[cfg(test)]
mod checked;
pub mod crypto;
pub mod customers;
mod demo;
pub mod events;
pub mod group;
pub mod identity;
pub mod kek;
mod lane;
pub mod ledger;
pub mod merchants;
mod pin;
mod profiles;
mod promises;
mod replica;
pub mod reversals;
pub mod settings;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;
use sqlx::PgPool;

pub use self::crypto::{DataVault, Place, VaultError};
pub use self::demo::{
    DEMO_AGENT, DEMO_PIN, DEMO_STORE, DemoSubscriber, demo_subscribers, seed_demo, seed_demo_agent,
    seed_demo_billers, seed_demo_merchants,
};
pub use self::group::GroupOptions;
pub use self::lane::{Db, Lane, LaneOptions};
use self::ledger::Pinned;
pub use self::ledger::{
    Reversal, Reversed, Transfer, parse_reference, reference, request_hash, reverse, transfer_p2p,
};
pub use self::pin::{PinCheck, PinHasher, PinPolicy, StagedPin, is_weak};
use self::pin::{PinProof, SaltCache};
pub use self::profiles::{LISTENER_NAME, ProfileOptions, Profiles};
pub use self::promises::{Kept, Movement, Promise};
pub use self::replica::Replica;
pub use self::settings::{DataKey, MoneyDeclared, MoneySpec};
use crate::domain::{Amount, Msisdn, Pin};
use crate::outcome::{OpResult, Outcome};

/// A dependency failed, or a menu passed an op something it cannot use. Whether the
/// subscriber may simply retry depends on [`MoneyError::may_have_moved`].
#[derive(Debug, thiserror::Error)]
pub enum MoneyError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The database failed before the op's movement was sent (checking the PIN).
    #[error("database, before the movement: {0}")]
    BeforeMovement(sqlx::Error),
    /// The database failed after the movement had begun (a bill held before its biller
    /// was asked): what became of it is found out later.
    #[error("database, after the movement began: {0}")]
    Unsettled(sqlx::Error),
    #[error("op `{op}`: argument `{arg}` {problem}")]
    BadArgument { op: &'static str, arg: &'static str, problem: String },
    #[error("{0} did not answer")]
    Unavailable(String),
}

impl MoneyError {
    /// Whether the ledger may have changed before the op failed: a statement was sent
    /// and its answer never came (the connection broke, the server went away, the
    /// answer could not be read). Nothing moved when the statement never left (no
    /// connection could be opened, none was free), when Postgres itself refused it (its
    /// transaction rolled back), or when an argument was unusable.
    pub fn may_have_moved(&self) -> bool {
        match self {
            MoneyError::Database(e) => !lane::never_sent(e) && !refused_by_postgres(e),
            MoneyError::Unsettled(_) => true,
            MoneyError::BeforeMovement(_) | MoneyError::BadArgument { .. } | MoneyError::Unavailable(_) => {
                false
            }
        }
    }
}

/// An error Postgres reported for the statement itself: the statement's transaction
/// rolled back. A fatal one (the server shutting down mid-statement) is not: the commit
/// may have come before it.
fn refused_by_postgres(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => !lane::is_fatal(db.as_ref()),
        // Arguments are encoded before anything is sent.
        sqlx::Error::Encode(_) => true,
        _ => false,
    }
}

/// The secrets and policies the ops need.
#[derive(Clone, Debug)]
pub struct MoneySettings {
    pub pins: PinHasher,
    pub pin_policy: PinPolicy,
    /// How long an agent's cash-out request holds the customer's money.
    pub approval_ttl: std::time::Duration,
    /// How long the recipient of a send asked back has to dispute it.
    pub reversal_dispute: std::time::Duration,
    pub vault: DataVault,
    /// Currency of new wallets.
    pub currency: String,
}

/// Runs ops against the ledger. Cheap to clone.
#[derive(Clone)]
pub struct Money {
    /// For what hops do not wait on (registration's transaction, the sweeper, bills).
    pool: PgPool,
    /// The statements hops wait on.
    lane: Lane,
    settings: Arc<MoneySettings>,
    salts: Arc<SaltCache>,
    /// Transfers whose PIN was checked in the transfer's own round trip.
    pinned: Arc<AtomicU64>,
    bills: Arc<bills::Bills>,
    /// Where reads that may lag go, when there is a replica.
    replica: Option<Arc<Replica>>,
    /// Asks paybills' validation URLs.
    validator: Arc<merchants::validation::Validator>,
    /// Posts sends in groups, when they are.
    grouper: Option<group::Grouper>,
    /// Customers' profiles kept in memory, when they are.
    profiles: Option<Profiles>,
    /// Checks identities, when a provider is configured.
    identity: Option<Arc<identity::Identity>>,
}

/// A send from one customer to another under an idempotency key.
#[derive(Clone, Copy, Debug)]
pub struct P2p<'a> {
    pub key: &'a str,
    pub from: &'a Msisdn,
    pub to: &'a Msisdn,
    pub amount: Amount,
}

/// How the subscriber proved who they are for an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// The PIN typed in this hop, where the op takes one (USSD).
    Pin,
    /// The channel vouched for the subscriber: the registered number a message came
    /// from (SMS), and for a movement a one-time code it confirmed. A movement above
    /// `max_amount` (minor units) is refused as over the limit.
    Vouched { max_amount: i64 },
}

/// Who asks for an op: their number, the channel the hop came through (a PIN lockout's
/// event names it, for the rules that watch channels) and how they proved who they are.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    pub msisdn: &'a Msisdn,
    pub channel: &'a str,
    pub auth: Auth,
}

/// The answer to a PIN check that did not let the op through.
pub fn refusal(check: PinCheck) -> OpResult {
    OpResult::bare(match check {
        PinCheck::Ok { .. } | PinCheck::Invalid => Outcome::PinInvalid,
        PinCheck::Locked => Outcome::PinLocked,
        PinCheck::NotRegistered => Outcome::NotRegistered,
    })
}

impl Money {
    /// Ops over `pool`'s database; the statements hops wait on go through a lane of as
    /// many connections again as the pool may open.
    pub fn new(pool: PgPool, settings: MoneySettings) -> Self {
        let lane =
            LaneOptions { max_connections: pool.options().get_max_connections(), ..Default::default() };
        Self::with_lane(pool.clone(), Lane::new((*pool.connect_options()).clone(), lane), settings)
    }

    /// Ops whose hop statements go through `lane`, the rest through `pool`.
    pub fn with_lane(pool: PgPool, lane: Lane, settings: MoneySettings) -> Self {
        let bills =
            Arc::new(bills::Bills::new(pool.clone(), settings.vault.clone(), settings.currency.clone()));
        Money {
            pool,
            lane,
            settings: Arc::new(settings),
            salts: Arc::default(),
            pinned: Arc::default(),
            bills,
            replica: None,
            validator: Arc::new(merchants::validation::Validator::new(false)),
            grouper: None,
            profiles: None,
            identity: None,
        }
    }

    /// Sends are posted in groups from now on (see [`group`]); the gatherer runs on the
    /// current runtime.
    pub fn posting_in_groups(mut self, options: GroupOptions) -> Self {
        self.grouper = Some(group::Grouper::start(self.lane.clone(), options, self.settings.pin_policy));
        self
    }

    /// Customers' profiles are kept in memory from now on (see [`profiles`]); their
    /// listener runs on the current runtime.
    pub fn caching_profiles(mut self, options: ProfileOptions) -> Self {
        self.profiles = Some(Profiles::start(&self.pool, options));
        self
    }

    /// Registrations and upgrades are checked by the identity provider `spec` from now on.
    pub fn verifying_identity(mut self, spec: identity::ProviderSpec) -> Self {
        let checks = identity::Identity::new(self.pool.clone(), self.settings.vault.clone(), spec);
        self.identity = Some(Arc::new(checks));
        self
    }

    /// The identity provider's checks, when one is configured.
    pub fn identity(&self) -> Option<&identity::Identity> {
        self.identity.as_deref()
    }

    /// The identity checks in the database, to settle and review with or without a
    /// provider.
    pub fn identity_checks(&self) -> identity::Checks {
        identity::Checks::new(self.pool.clone(), self.settings.vault.clone())
    }

    /// The profiles kept in memory, when they are.
    pub fn profiles(&self) -> Option<&Profiles> {
        self.profiles.as_ref()
    }

    /// `customer.profile`'s answer for `msisdn`: from memory when kept there.
    pub async fn profile(&self, msisdn: &Msisdn) -> Result<OpResult, sqlx::Error> {
        let ticket = match self.profiles.as_ref().map(|profiles| profiles.get(msisdn)) {
            Some(profiles::Cached::Hit(profile)) => {
                crate::telemetry::record_profile_read(true);
                return Ok(customers::profile_answer(msisdn, Some(&profile), self.identity.is_some()));
            }
            Some(profiles::Cached::Miss(ticket)) => Some(ticket),
            None => None,
        };
        crate::telemetry::record_profile_read(false);
        let found = customers::read_profile(&self.lane, msisdn).await?;
        let answer = customers::profile_answer(msisdn, found.as_ref(), self.identity.is_some());
        if let (Some(profiles), Some(ticket), Some(profile)) = (&self.profiles, ticket, found) {
            profiles.keep(msisdn, profile, ticket);
        }
        Ok(answer)
    }

    /// Remembers the subscriber's language; their profile kept in memory is dropped.
    pub async fn set_language(&self, msisdn: &Msisdn, language: &str) -> Result<OpResult, sqlx::Error> {
        let answer = customers::set_language(&self.lane, msisdn, language).await;
        // Dropped whatever the answer: a statement whose answer was lost may have committed.
        if let Some(profiles) = &self.profiles {
            profiles.forget(msisdn);
        }
        answer
    }

    /// Partners' servers this process calls for the ops (paybills' validation URLs) may
    /// be on loopback or private networks (`serve --demo`, tests).
    pub fn allowing_private_networks(mut self) -> Self {
        self.validator = Arc::new(merchants::validation::Validator::new(true));
        self
    }

    /// Reads that may lag (statements, the catalogue, the admin API's views) go to
    /// `replica` whenever it has caught up with the primary.
    pub fn reading_from(mut self, replica: Replica) -> Self {
        self.replica = Some(Arc::new(replica));
        self
    }

    /// The replica, if there is one.
    pub fn replica(&self) -> Option<&Replica> {
        self.replica.as_deref()
    }

    /// Where a read that may lag goes now: the replica's pool when it has replayed all
    /// the primary had committed (`None`: read on the primary, as the hop would).
    pub async fn replica_read(&self) -> Option<&PgPool> {
        self.replica.as_ref()?.caught_up(&self.lane).await
    }

    /// [`Self::replica_read`], or else the primary's pool.
    pub async fn read_pool(&self) -> &PgPool {
        match self.replica_read().await {
            Some(replica) => replica,
            None => &self.pool,
        }
    }

    /// Writes down that the dialler was told an SMS would follow about this op.
    pub async fn promise(&self, promise: &Promise<'_>) -> Result<(), MoneyError> {
        Ok(promises::make(&self.pool, promise).await?)
    }

    /// Keeps the promise on the op under `op_key` now, if no one has; `hint` is the
    /// op's outcome where the caller knows it.
    pub async fn keep_promise(&self, op_key: &str, hint: Option<Outcome>) -> Result<Kept, MoneyError> {
        Ok(promises::keep(&self.pool, op_key, hint).await?)
    }

    /// The promise sweeper's pass over every due promise; returns how many it kept.
    pub async fn keep_due_promises(&self) -> Result<usize, MoneyError> {
        Ok(promises::sweep(&self.pool).await?)
    }

    /// Promises not kept yet, and the age of the oldest in seconds.
    pub async fn open_promises(&self) -> Result<(i64, f64), MoneyError> {
        Ok(promises::open(&self.pool).await?)
    }

    /// Sends money to another customer. The usual case is one round trip: the salt of
    /// the payer's PIN is known, so the PIN is checked in the transfer's own statement
    /// (with other sends in one group's, when sends are posted in groups).
    pub async fn send_p2p(
        &self,
        transfer: P2p<'_>,
        caller: Caller<'_>,
        pin: Option<&Pin>,
    ) -> Result<OpResult, MoneyError> {
        let P2p { key, from, to, amount } = transfer;
        let sent = |t: Transfer| {
            let data = json!({ "ref": t.reference(), "fee": t.fee, "balance": t.payer_balance });
            OpResult::new(t.outcome, data)
        };
        if caller.auth == Auth::Pin
            && let Some(salt) = self.salts.get(from)
        {
            let proof = PinProof::new(&self.settings.pins, salt, pin);
            let pinned =
                self.post(group::Send::new(key, (from, to), amount, Some(proof), caller.channel)).await?;
            if pinned != Pinned::StaleSalt {
                self.pinned.fetch_add(1, Ordering::Relaxed);
            }
            match pinned {
                Pinned::Sent(t) => return Ok(sent(t)),
                Pinned::Refused(check) => return Ok(refusal(check)),
                Pinned::StaleSalt => self.salts.forget(from),
            }
        }
        self.with_pin(caller, pin, |_| async {
            let t = match &self.grouper {
                Some(grouper) => grouper.transfer_p2p(key, from, to, amount).await?,
                None => ledger::transfer_p2p(&self.lane, key, from, to, amount).await?,
            };
            Ok::<_, MoneyError>(sent(t))
        })
        .await
    }

    /// Posts `send` with the next group when sends are posted in groups, else alone.
    async fn post(&self, send: group::Send) -> Result<Pinned, MoneyError> {
        match &self.grouper {
            Some(grouper) => grouper.post(send).await,
            None => Ok(ledger::transfer_p2p_one(&self.lane, &send, self.settings.pin_policy).await?),
        }
    }

    /// Replaces the subscriber's PIN with `staged`; false when they have no wallet.
    pub async fn store_pin(&self, msisdn: &Msisdn, staged: &StagedPin) -> Result<bool, MoneyError> {
        let stored = pin::store(&self.lane, msisdn, staged).await?;
        if stored {
            self.salts.put(msisdn, staged.salt);
        }
        Ok(stored)
    }

    /// Asks billers about the payments they have not answered; returns how many
    /// settled (the reconciler's one pass).
    pub async fn reconcile_bills(&self) -> Result<u64, MoneyError> {
        Ok(self.bills.reconcile().await?)
    }

    /// The connections hops wait on.
    pub fn lane(&self) -> &Lane {
        &self.lane
    }

    /// The secrets and policies the ops need.
    pub fn settings(&self) -> &MoneySettings {
        &self.settings
    }

    /// The key that seals personal data at rest (national IDs, waiting SMS texts).
    pub fn vault(&self) -> &DataVault {
        &self.settings.vault
    }

    /// The currency of new wallets and accounts.
    pub fn currency(&self) -> &str {
        &self.settings.currency
    }

    /// The biller catalogue and payments.
    pub fn bills(&self) -> &bills::Bills {
        &self.bills
    }

    /// Asks paybills' validation URLs.
    pub fn validator(&self) -> &merchants::validation::Validator {
        &self.validator
    }

    /// Runs the reversals asked for whose recipients did not dispute them in time;
    /// returns how many.
    pub async fn sweep_reversals(&self) -> Result<u64, MoneyError> {
        Ok(reversals::sweep(&self.pool, 100).await?)
    }

    /// Expires the cash-out requests nobody answered in time, releasing their holds;
    /// returns how many (the hold sweeper's one step).
    pub async fn expire_holds(&self) -> Result<u64, MoneyError> {
        Ok(approvals::sweep(&self.pool, 100).await?)
    }

    /// Runs `then` with the customer's id once their PIN checks out (or the channel
    /// vouched for them), or reports why not. A failure of the check itself comes
    /// before any movement was sent.
    pub async fn with_pin<F, Fut, E>(
        &self,
        caller: Caller<'_>,
        pin: Option<&Pin>,
        then: F,
    ) -> Result<OpResult, MoneyError>
    where
        F: FnOnce(i64) -> Fut,
        Fut: Future<Output = Result<OpResult, E>>,
        MoneyError: From<E>,
    {
        let s = &*self.settings;
        let checked = match caller.auth {
            Auth::Pin => pin::check(&self.lane, &s.pins, s.pin_policy, &self.salts, caller, pin).await,
            Auth::Vouched { .. } => pin::vouched(&self.lane, caller.msisdn).await,
        };
        match checked.map_err(MoneyError::BeforeMovement)? {
            PinCheck::Ok { customer_id } => Ok(then(customer_id).await?),
            refused => Ok(refusal(refused)),
        }
    }

    /// How many transfers this process checked the PIN of in the transfer's own round
    /// trip (tests and metrics).
    pub fn pinned_transfers(&self) -> u64 {
        self.pinned.load(Ordering::Relaxed)
    }

    /// The ledger's database, for the parts of the gateway that keep state beside it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether both the hops' lane and the pool reach the database. Both are asked every
    /// time, so that each drops the connections an outage left dead.
    pub async fn ping(&self) -> Result<(), MoneyError> {
        let (lane, pool) = tokio::join!(
            sqlx::query("SELECT 1").execute(&self.lane),
            sqlx::query("SELECT 1").execute(&self.pool)
        );
        lane?;
        pool?;
        Ok(())
    }
}
