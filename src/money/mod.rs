//! Money operations behind a narrow typed interface: the ops menus call, run against
//! Postgres, each answering with a typed [`OpResult`].

mod agents;
mod approvals;
pub mod bills;
pub mod crypto;
mod customers;
mod demo;
pub mod kek;
mod lane;
mod ledger;
mod pin;
mod promises;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;
use sqlx::PgPool;

pub use self::crypto::{DataVault, Place, VaultError};
pub use self::demo::{
    DEMO_AGENT, DEMO_PIN, DEMO_STORE, DemoSubscriber, demo_subscribers, seed_demo, seed_demo_agent,
    seed_demo_billers,
};
pub use self::lane::{Db, Lane, LaneOptions};
use self::ledger::Pinned;
pub use self::ledger::{
    Reversal, Reversed, Transfer, parse_reference, reference, request_hash, reverse, transfer_p2p,
};
pub use self::pin::{PinCheck, PinHasher, PinPolicy, StagedPin, is_weak};
use self::pin::{PinProof, SaltCache};
pub use self::promises::{Kept, Promise};
use crate::domain::{Amount, Msisdn, PersonName, Pin};
use crate::menu::Action;
use crate::ops::{CATALOG, Op, OpResult, Outcome};

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
    BadArgument { op: Op, arg: &'static str, problem: String },
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
    runs: Arc<[AtomicU64]>,
    salts: Arc<SaltCache>,
    /// Transfers whose PIN was checked in the transfer's own round trip.
    pinned: Arc<AtomicU64>,
    bills: Arc<bills::Bills>,
}

/// Who asked and under which idempotency key.
#[derive(Debug)]
pub struct OpCall<'a> {
    pub msisdn: &'a Msisdn,
    pub idempotency_key: &'a str,
    pub action: &'a Action,
    pub auth: Auth,
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

impl OpCall<'_> {
    fn arg(&self, name: &'static str) -> Result<&str, MoneyError> {
        self.action.args.get(name).map(String::as_str).ok_or_else(|| self.bad(name, "is missing"))
    }

    fn bad(&self, arg: &'static str, problem: impl Into<String>) -> MoneyError {
        MoneyError::BadArgument { op: self.action.op, arg, problem: problem.into() }
    }

    fn msisdn_arg(&self, name: &'static str) -> Result<Msisdn, MoneyError> {
        let raw = self.arg(name)?;
        // Inputs of kind `msisdn` are already E.164, so the region is never consulted.
        let region = crate::domain::Region::parse("KE").expect("KE is a region");
        Msisdn::parse(raw, region).map_err(|e| self.bad(name, e.to_string()))
    }

    fn amount_arg(&self, name: &'static str) -> Result<Amount, MoneyError> {
        let raw = self.arg(name)?;
        let minor: i64 = raw.parse().map_err(|_| self.bad(name, "is not an amount in minor units"))?;
        Amount::from_minor(minor).map_err(|e| self.bad(name, e.to_string()))
    }

    /// An agent or store number: digits only.
    fn digits_arg(&self, name: &'static str) -> Result<&str, MoneyError> {
        let raw = self.arg(name)?;
        if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.bad(name, "must be digits"));
        }
        Ok(raw)
    }

    /// A movement above what the channel that vouched for the caller allows (SMS).
    fn over_channel_limit(&self, amount: Amount) -> Option<OpResult> {
        match self.auth {
            Auth::Vouched { max_amount } if amount.minor() > max_amount => {
                Some(OpResult::new(Outcome::LimitExceeded, json!({ "max": max_amount })))
            }
            _ => None,
        }
    }

    /// A transfer named by its reference (`request: "{{ approval.ref }}"`).
    fn request_arg(&self) -> Result<i64, MoneyError> {
        ledger::parse_reference(self.arg("request")?)
            .ok_or_else(|| self.bad("request", "is not a transfer reference"))
    }

    fn staged_arg(&self) -> Result<StagedPin, MoneyError> {
        StagedPin::decode(self.arg("staged_pin")?)
            .ok_or_else(|| self.bad("staged_pin", "is not a staged PIN"))
    }
}

/// A service code short enough to quote in an SMS.
fn is_dial_string(text: &str) -> bool {
    text.len() <= 20 && crate::menu::is_service_code(text)
}

/// The answer to a PIN check that did not let the op through.
fn refusal(check: PinCheck) -> OpResult {
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
        let runs = CATALOG.iter().map(|_| AtomicU64::new(0)).collect();
        let bills =
            Arc::new(bills::Bills::new(pool.clone(), settings.vault.clone(), settings.currency.clone()));
        Money {
            pool,
            lane,
            settings: Arc::new(settings),
            runs,
            salts: Arc::default(),
            pinned: Arc::default(),
            bills,
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

    pub async fn run(&self, call: OpCall<'_>) -> Result<OpResult, MoneyError> {
        let op = call.action.op;
        if let Some(counter) = CATALOG.iter().position(|s| s.op == op).and_then(|i| self.runs.get(i)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let pool = &self.pool;
        let db = &self.lane;
        let s = &*self.settings;
        let pin = call.action.pin("pin");
        let pin = pin.as_ref();
        match op {
            Op::CustomerProfile => Ok(customers::profile(db, call.msisdn).await?),
            Op::CustomerRegister => {
                let staged = call.staged_arg()?;
                if !pin.is_some_and(|p| staged.matches(&s.pins, p)) {
                    return Ok(OpResult::bare(Outcome::PinMismatch));
                }
                let name = |arg| PersonName::parse(call.arg(arg)?).map_err(|e| call.bad(arg, e.to_string()));
                let not_sealed =
                    || call.bad("sealed_id", "is not an ID sealed by customer.seal_id for this number");
                let sealed = crate::bytes::from_hex(call.arg("sealed_id")?).ok_or_else(not_sealed)?;
                let national_id = match s.vault.open(customers::id_in_session(call.msisdn), &sealed).await {
                    Ok(id) => id,
                    Err(VaultError::Unreadable) => return Err(not_sealed()),
                    Err(e) => return Err(e.into_sqlx().into()),
                };
                let registration = customers::Registration {
                    msisdn: call.msisdn,
                    first_name: name("first_name")?,
                    last_name: name("last_name")?,
                    national_id: &national_id,
                    pin: &staged,
                    language: call.arg("language")?,
                    currency: &s.currency,
                };
                Ok(customers::register(pool, &s.vault, registration).await?)
            }
            Op::CustomerSealId => {
                let id = call.action.secret("national_id").map(|s| s.expose()).unwrap_or_default();
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(call.bad("national_id", "must be letters and digits"));
                }
                Ok(customers::seal_id(db, &s.vault, call.msisdn, id).await?)
            }
            Op::CustomerSetLanguage => {
                let language = call.arg("language")?;
                if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_lowercase()) {
                    return Err(call.bad("language", "must be a language code such as en"));
                }
                Ok(customers::set_language(db, call.msisdn, language).await?)
            }
            Op::PinStage => Ok(match pin {
                Some(p) if !is_weak(p) => {
                    OpResult::new(Outcome::Ok, json!({ "digest": s.pins.stage(p).encode() }))
                }
                _ => OpResult::bare(Outcome::PinWeak),
            }),
            Op::PinVerify => {
                self.with_pin(&call, pin, |_| async { Ok::<_, MoneyError>(OpResult::bare(Outcome::Ok)) })
                    .await
            }
            Op::PinChange => {
                let staged = call.staged_arg()?;
                if !pin.is_some_and(|p| staged.matches(&s.pins, p)) {
                    return Ok(OpResult::bare(Outcome::PinMismatch));
                }
                Ok(if pin::store(db, call.msisdn, &staged).await? {
                    self.salts.put(call.msisdn, staged.salt);
                    OpResult::bare(Outcome::Ok)
                } else {
                    OpResult::bare(Outcome::NotRegistered)
                })
            }
            Op::WalletBalance => self.with_pin(&call, pin, |id| ledger::balance(db, id)).await,
            Op::WalletStatement => self.with_pin(&call, pin, |id| ledger::statement(db, id)).await,
            Op::TransferQuote => {
                let (to, amount) = (call.msisdn_arg("to")?, call.amount_arg("amount")?);
                Ok(ledger::quote(db, call.msisdn, &to, amount).await?)
            }
            Op::TransferP2p => {
                let (to, amount) = (call.msisdn_arg("to")?, call.amount_arg("amount")?);
                if let Some(refused) = call.over_channel_limit(amount) {
                    return Ok(refused);
                }
                let sent = |t: Transfer| {
                    let data = json!({ "ref": t.reference(), "fee": t.fee, "balance": t.payer_balance });
                    OpResult::new(t.outcome, data)
                };
                // The usual case: the salt is known, so PIN and transfer are one round trip.
                if call.auth == Auth::Pin
                    && let Some(salt) = self.salts.get(call.msisdn)
                {
                    let proof = PinProof::new(&s.pins, salt, pin);
                    let parties = (call.msisdn, &to);
                    let pinned = ledger::transfer_p2p_pinned(
                        db,
                        call.idempotency_key,
                        parties,
                        amount,
                        &proof,
                        s.pin_policy,
                    )
                    .await?;
                    if pinned != Pinned::StaleSalt {
                        self.pinned.fetch_add(1, Ordering::Relaxed);
                    }
                    match pinned {
                        Pinned::Sent(t) => return Ok(sent(t)),
                        Pinned::Refused(check) => return Ok(refusal(check)),
                        Pinned::StaleSalt => self.salts.forget(call.msisdn),
                    }
                }
                self.with_pin(&call, pin, |_| async {
                    let t = ledger::transfer_p2p(db, call.idempotency_key, call.msisdn, &to, amount).await?;
                    Ok::<_, MoneyError>(sent(t))
                })
                .await
            }
            Op::AgentProfile => Ok(agents::profile(db, call.msisdn).await?),
            Op::AgentCashInQuote => {
                Ok(agents::quote_cash_in(db, call.msisdn, &call.msisdn_arg("to")?).await?)
            }
            Op::AgentCashIn => {
                let (to, amount) = (call.msisdn_arg("to")?, call.amount_arg("amount")?);
                if let Some(refused) = call.over_channel_limit(amount) {
                    return Ok(refused);
                }
                self.with_pin(&call, pin, |_| {
                    agents::cash_in(db, call.idempotency_key, call.msisdn, &to, amount)
                })
                .await
            }
            Op::AgentBalances => self.with_pin(&call, pin, |id| agents::balances(db, id)).await,
            Op::AgentStatement => self.with_pin(&call, pin, |id| agents::statement(db, id)).await,
            Op::AgentFloatQuote => Ok(agents::quote_float(db, call.msisdn, call.digits_arg("agent")?).await?),
            Op::AgentFloatTransfer => {
                let (agent, amount) = (call.digits_arg("agent")?, call.amount_arg("amount")?);
                if let Some(refused) = call.over_channel_limit(amount) {
                    return Ok(refused);
                }
                self.with_pin(&call, pin, |_| {
                    agents::transfer_float(db, call.idempotency_key, call.msisdn, agent, amount)
                })
                .await
            }
            Op::CashOutQuote => {
                let (agent, store) = (call.digits_arg("agent")?, call.digits_arg("store")?);
                let amount = call.amount_arg("amount")?;
                Ok(agents::quote_cash_out(db, call.msisdn, agent, store, amount).await?)
            }
            Op::CashOutWithdraw => {
                let (agent, store) = (call.digits_arg("agent")?, call.digits_arg("store")?);
                let amount = call.amount_arg("amount")?;
                if let Some(refused) = call.over_channel_limit(amount) {
                    return Ok(refused);
                }
                self.with_pin(&call, pin, |_| {
                    agents::cash_out(db, call.idempotency_key, call.msisdn, (agent, store), amount)
                })
                .await
            }
            Op::AgentCashOutQuote => {
                let (customer, store) = (call.msisdn_arg("customer")?, call.digits_arg("store")?);
                Ok(approvals::quote(db, call.msisdn, &customer, store, call.amount_arg("amount")?).await?)
            }
            Op::AgentCashOutRequest => {
                let (customer, store) = (call.msisdn_arg("customer")?, call.digits_arg("store")?);
                let amount = call.amount_arg("amount")?;
                if let Some(refused) = call.over_channel_limit(amount) {
                    return Ok(refused);
                }
                let dial = call.arg("dial")?;
                if !is_dial_string(dial) {
                    return Err(call.bad("dial", "must be a USSD code such as *384*7#"));
                }
                let request = approvals::Request { customer: &customer, store, amount, dial };
                self.with_pin(&call, pin, |_| {
                    approvals::request(db, call.idempotency_key, call.msisdn, request, s.approval_ttl)
                })
                .await
            }
            Op::CashOutWaiting => Ok(approvals::waiting(db, call.msisdn).await?),
            Op::CashOutApprove => {
                let request = call.request_arg()?;
                self.with_pin(&call, pin, |_| {
                    approvals::decide(db, call.idempotency_key, call.msisdn, request, true)
                })
                .await
            }
            Op::CashOutDecline => {
                Ok(approvals::decide(db, call.idempotency_key, call.msisdn, call.request_arg()?, false)
                    .await?)
            }
            Op::BillBillers => Ok(self.bills.catalogue().await?),
            Op::BillValidate => {
                let (biller, account) = (call.arg("biller")?, call.arg("account")?);
                let amount = call.amount_arg("amount")?;
                self.bills
                    .validate(biller, account, amount)
                    .await?
                    .ok_or_else(|| MoneyError::Unavailable(format!("biller {biller}")))
            }
            Op::BillPay => {
                let bill = bills::Bill {
                    biller: call.arg("biller")?,
                    account: call.arg("account")?,
                    holder: call.arg("holder")?,
                    amount: call.amount_arg("amount")?,
                };
                if let Some(refused) = call.over_channel_limit(bill.amount) {
                    return Ok(refused);
                }
                self.with_pin(&call, pin, |_| self.bills.pay(call.idempotency_key, call.msisdn, bill)).await
            }
        }
    }

    /// Asks billers about the payments they have not answered; returns how many
    /// settled (the reconciler's one pass).
    pub async fn reconcile_bills(&self) -> Result<u64, MoneyError> {
        Ok(self.bills.reconcile().await?)
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

    /// Expires the cash-out requests nobody answered in time, releasing their holds;
    /// returns how many (the hold sweeper's one step).
    pub async fn expire_holds(&self) -> Result<u64, MoneyError> {
        Ok(approvals::sweep(&self.pool, 100).await?)
    }

    /// Runs `then` with the customer's id once their PIN checks out (or the channel
    /// vouched for them), or reports why not. A failure of the check itself comes
    /// before any movement was sent.
    async fn with_pin<F, Fut, E>(
        &self,
        call: &OpCall<'_>,
        pin: Option<&Pin>,
        then: F,
    ) -> Result<OpResult, MoneyError>
    where
        F: FnOnce(i64) -> Fut,
        Fut: Future<Output = Result<OpResult, E>>,
        MoneyError: From<E>,
    {
        let s = &*self.settings;
        let checked = match call.auth {
            Auth::Pin => pin::check(&self.lane, &s.pins, s.pin_policy, &self.salts, call.msisdn, pin).await,
            Auth::Vouched { .. } => pin::vouched(&self.lane, call.msisdn).await,
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

    /// How many times `op` has been started by this process (tests and metrics).
    pub fn runs(&self, op: Op) -> u64 {
        CATALOG
            .iter()
            .position(|s| s.op == op)
            .and_then(|i| self.runs.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Counts a wrong one-time code (SMS) from `msisdn`; returns its wrong codes today.
    pub async fn code_failed(&self, msisdn: &Msisdn) -> Result<u32, MoneyError> {
        Ok(pin::code_failed(&self.lane, msisdn).await?)
    }

    /// The wrong one-time codes (SMS) from `msisdn` today.
    pub async fn code_failures(&self, msisdn: &Msisdn) -> Result<u32, MoneyError> {
        Ok(pin::code_failures(&self.lane, msisdn).await?)
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

#[cfg(test)]
mod tests {
    use super::is_dial_string;

    #[test]
    fn dial_strings_are_star_digits_hash() {
        for good in ["*384#", "*384*7#", "*1*2*3#"] {
            assert!(is_dial_string(good), "{good}");
        }
        for bad in ["384#", "*384", "*#", "**7#", "*384*#", "*38a#", "*384*7#;", "*1234567890123456789#"] {
            assert!(!is_dial_string(bad), "{bad}");
        }
    }
}
