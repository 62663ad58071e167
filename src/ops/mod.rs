//! The operations menus may call, one file each: its contract, its typed arguments and
//! what it does against the ledger. The registry below is the only list of them.
//!
//! Each op implements [`Operation`]: a [`OpSpec`] (what the menu compiler checks an
//! `action` against), a sample of the longest data it reports (what `menus check` proves
//! screens against), `parse` (the engine's rendered arguments into a typed struct, once)
//! and `apply` (the struct against [`Money`]). Adding an op: a file here, a line in
//! [`REGISTRY`], and its migration if it needs SQL of its own.

mod agent_balances;
mod agent_cash_in;
mod agent_cash_in_quote;
mod agent_cash_out_quote;
mod agent_cash_out_request;
mod agent_float_quote;
mod agent_float_transfer;
mod agent_profile;
mod agent_statement;
mod airtime_buy;
mod airtime_offer;
mod bill_billers;
mod bill_pay;
mod bill_validate;
mod call;
mod cash_out_approve;
mod cash_out_decline;
mod cash_out_quote;
mod cash_out_waiting;
mod cash_out_withdraw;
mod customer_profile;
mod customer_register;
mod customer_seal_id;
mod customer_set_language;
mod customer_verify;
mod goods_find;
mod goods_pay;
mod merchant_balance;
mod merchant_owned;
mod merchant_payments;
mod merchant_refund;
mod merchant_refund_decline;
mod merchant_refunds;
mod merchant_withdraw;
mod paybill_find;
mod paybill_pay;
mod paybill_quote;
mod pin_change;
mod pin_stage;
mod pin_verify;
mod reversal_dispute;
mod reversal_give_back;
mod reversal_request;
mod reversal_sends;
mod reversal_waiting;
mod transfer_p2p;
mod transfer_quote;
mod wallet_balance;
mod wallet_statement;

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use self::agent_balances::AgentBalances;
pub use self::agent_cash_in::AgentCashIn;
pub use self::agent_cash_in_quote::AgentCashInQuote;
pub use self::agent_cash_out_quote::AgentCashOutQuote;
pub use self::agent_cash_out_request::AgentCashOutRequest;
pub use self::agent_float_quote::AgentFloatQuote;
pub use self::agent_float_transfer::AgentFloatTransfer;
pub use self::agent_profile::AgentProfile;
pub use self::agent_statement::AgentStatement;
pub use self::airtime_buy::AirtimeBuy;
pub use self::airtime_offer::AirtimeOffer;
pub use self::bill_billers::BillBillers;
pub use self::bill_pay::BillPay;
pub use self::bill_validate::BillValidate;
pub use self::call::Call;
pub use self::cash_out_approve::CashOutApprove;
pub use self::cash_out_decline::CashOutDecline;
pub use self::cash_out_quote::CashOutQuote;
pub use self::cash_out_waiting::CashOutWaiting;
pub use self::cash_out_withdraw::CashOutWithdraw;
pub use self::customer_profile::CustomerProfile;
pub use self::customer_register::CustomerRegister;
pub use self::customer_seal_id::CustomerSealId;
pub use self::customer_set_language::CustomerSetLanguage;
pub use self::customer_verify::CustomerVerify;
pub use self::goods_find::GoodsFind;
pub use self::goods_pay::GoodsPay;
pub use self::merchant_balance::MerchantBalance;
pub use self::merchant_owned::MerchantOwned;
pub use self::merchant_payments::MerchantPayments;
pub use self::merchant_refund::MerchantRefund;
pub use self::merchant_refund_decline::MerchantRefundDecline;
pub use self::merchant_refunds::MerchantRefunds;
pub use self::merchant_withdraw::MerchantWithdraw;
pub use self::paybill_find::PaybillFind;
pub use self::paybill_pay::PaybillPay;
pub use self::paybill_quote::PaybillQuote;
pub use self::pin_change::PinChange;
pub use self::pin_stage::PinStage;
pub use self::pin_verify::PinVerify;
pub use self::reversal_dispute::ReversalDispute;
pub use self::reversal_give_back::ReversalGiveBack;
pub use self::reversal_request::ReversalRequest;
pub use self::reversal_sends::ReversalSends;
pub use self::reversal_waiting::ReversalWaiting;
pub use self::transfer_p2p::TransferP2p;
pub use self::transfer_quote::TransferQuote;
pub use self::wallet_balance::WalletBalance;
pub use self::wallet_statement::WalletStatement;
use crate::money::{Money, MoneyError, Movement};
use crate::outcome::{OpResult, Outcome};

/// Every op, in the order `menus check` lists them. One line per op.
pub static REGISTRY: &[&dyn Entry] = &[
    &Registered::<CustomerProfile>(PhantomData),
    &Registered::<CustomerSealId>(PhantomData),
    &Registered::<CustomerRegister>(PhantomData),
    &Registered::<CustomerVerify>(PhantomData),
    &Registered::<CustomerSetLanguage>(PhantomData),
    &Registered::<PinStage>(PhantomData),
    &Registered::<PinVerify>(PhantomData),
    &Registered::<PinChange>(PhantomData),
    &Registered::<WalletBalance>(PhantomData),
    &Registered::<WalletStatement>(PhantomData),
    &Registered::<TransferQuote>(PhantomData),
    &Registered::<TransferP2p>(PhantomData),
    &Registered::<AgentProfile>(PhantomData),
    &Registered::<AgentCashInQuote>(PhantomData),
    &Registered::<AgentCashIn>(PhantomData),
    &Registered::<AgentStatement>(PhantomData),
    &Registered::<AgentFloatQuote>(PhantomData),
    &Registered::<AgentFloatTransfer>(PhantomData),
    &Registered::<CashOutQuote>(PhantomData),
    &Registered::<CashOutWithdraw>(PhantomData),
    &Registered::<AgentCashOutQuote>(PhantomData),
    &Registered::<AgentCashOutRequest>(PhantomData),
    &Registered::<CashOutWaiting>(PhantomData),
    &Registered::<CashOutApprove>(PhantomData),
    &Registered::<CashOutDecline>(PhantomData),
    &Registered::<BillBillers>(PhantomData),
    &Registered::<BillValidate>(PhantomData),
    &Registered::<BillPay>(PhantomData),
    &Registered::<AgentBalances>(PhantomData),
    &Registered::<GoodsFind>(PhantomData),
    &Registered::<GoodsPay>(PhantomData),
    &Registered::<PaybillFind>(PhantomData),
    &Registered::<PaybillQuote>(PhantomData),
    &Registered::<PaybillPay>(PhantomData),
    &Registered::<MerchantOwned>(PhantomData),
    &Registered::<MerchantBalance>(PhantomData),
    &Registered::<MerchantPayments>(PhantomData),
    &Registered::<MerchantWithdraw>(PhantomData),
    &Registered::<AirtimeOffer>(PhantomData),
    &Registered::<AirtimeBuy>(PhantomData),
    &Registered::<ReversalSends>(PhantomData),
    &Registered::<ReversalRequest>(PhantomData),
    &Registered::<ReversalWaiting>(PhantomData),
    &Registered::<ReversalGiveBack>(PhantomData),
    &Registered::<ReversalDispute>(PhantomData),
    &Registered::<MerchantRefunds>(PhantomData),
    &Registered::<MerchantRefund>(PhantomData),
    &Registered::<MerchantRefundDecline>(PhantomData),
];

/// What the menu compiler and the hop pipeline need to know about an op.
#[derive(Debug)]
pub struct OpSpec {
    pub name: &'static str,
    pub outcomes: &'static [Outcome],
    /// Arguments the `action` step must pass (rendered from templates).
    pub args: &'static [&'static str],
    /// Sensitive values, collected by a `pin` step in the same hop.
    pub secrets: &'static [&'static str],
    /// Whether the op takes the PIN to check who is asking (rather than as data, like a
    /// new PIN): only then may a channel vouch for the subscriber instead.
    pub authenticates: bool,
    /// How the op moves money, if it can. One whose outcome the hop cannot learn (it
    /// overran, or its answer was lost) tells the subscriber an SMS will follow, and the
    /// promise keeper finds the outcome here; one that only reads asks them to retry.
    pub movement: Option<Movement>,
    /// Whether success changes stored state (money, PIN, profile): the menu's Back key
    /// never returns across it.
    pub writes: bool,
    /// Whether the op asks a partner (a biller, a business's validation URL) even when
    /// it writes nothing here: a copy of its hop must not ask again (a biller counts
    /// every call against its breaker, a business would see the question twice).
    pub calls_out: bool,
}

impl OpSpec {
    /// Whether the op can move money.
    pub fn moves_money(&self) -> bool {
        self.movement.is_some()
    }

    /// Whether success may leave something changed here: money moved, state written,
    /// a secret taken (a PIN check counts failures).
    pub fn changes_state(&self) -> bool {
        self.movement.is_some() || self.writes || self.authenticates || !self.secrets.is_empty()
    }

    /// Whether the op only reads: it changes nothing and asks no partner, so running it
    /// twice is harmless.
    pub fn reads_only(&self) -> bool {
        !self.changes_state() && !self.calls_out
    }
}

/// An op: its contract, its arguments parsed once, and what it does.
pub trait Operation: Sized + Send + 'static {
    const SPEC: &'static OpSpec;

    /// The longest data the op can report on any outcome, for `menus check` to prove
    /// that every screen showing it fits the budget.
    fn sample() -> serde_json::Value;

    /// The call's rendered arguments and secrets as the op's own types. A menu that
    /// passes something unusable is a [`MoneyError::BadArgument`]: nothing ran.
    fn parse(call: &Call<'_>) -> Result<Self, MoneyError>;

    fn apply(
        self,
        money: &Money,
        call: &Call<'_>,
    ) -> impl Future<Output = Result<OpResult, MoneyError>> + Send;
}

type Running<'a> = Pin<Box<dyn Future<Output = Result<OpResult, MoneyError>> + Send + 'a>>;

/// An [`Operation`] as the registry holds it.
pub trait Entry: Sync {
    fn spec(&self) -> &'static OpSpec;
    fn sample(&self) -> serde_json::Value;
    fn run<'a>(&self, money: &'a Money, call: &'a Call<'a>) -> Running<'a>;
}

struct Registered<T>(PhantomData<fn() -> T>);

impl<T: Operation> Entry for Registered<T> {
    fn spec(&self) -> &'static OpSpec {
        T::SPEC
    }

    fn sample(&self) -> serde_json::Value {
        T::sample()
    }

    fn run<'a>(&self, money: &'a Money, call: &'a Call<'a>) -> Running<'a> {
        Box::pin(async move { T::parse(call)?.apply(money, call).await })
    }
}

/// An op by its place in the [`REGISTRY`]: what a menu's `action` step names.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Op(u8);

impl Op {
    pub fn from_name(name: &str) -> Option<Op> {
        REGISTRY.iter().position(|e| e.spec().name == name).map(|i| Op(i as u8))
    }

    /// The registered op implemented by `T`.
    pub fn of<T: Operation>() -> Op {
        Op::from_name(T::SPEC.name).expect("every Operation is in the REGISTRY")
    }

    /// Every op, in registry order.
    pub fn all() -> impl Iterator<Item = Op> {
        (0..REGISTRY.len()).map(|i| Op(i as u8))
    }

    fn entry(self) -> &'static dyn Entry {
        REGISTRY[usize::from(self.0)]
    }

    pub fn spec(self) -> &'static OpSpec {
        self.entry().spec()
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn authenticates_with_pin(self) -> bool {
        self.spec().authenticates
    }

    /// The longest data this op can return on any outcome (see [`Operation::sample`]).
    pub fn sample(self) -> serde_json::Value {
        self.entry().sample()
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Op({})", self.name())
    }
}

/// Runs ops against the ledger, counting them. Cheap to clone.
#[derive(Clone)]
pub struct Ops {
    money: Money,
    runs: Arc<[AtomicU64]>,
}

impl Ops {
    pub fn new(money: Money) -> Self {
        Ops { money, runs: REGISTRY.iter().map(|_| AtomicU64::new(0)).collect() }
    }

    pub async fn run(&self, call: Call<'_>) -> Result<OpResult, MoneyError> {
        self.runs[usize::from(call.op.0)].fetch_add(1, Ordering::Relaxed);
        call.op.entry().run(&self.money, &call).await
    }

    /// How many times `op` has been started by this process (tests and metrics).
    pub fn runs(&self, op: Op) -> u64 {
        self.runs[usize::from(op.0)].load(Ordering::Relaxed)
    }

    pub fn money(&self) -> &Money {
        &self.money
    }
}

/// The largest amount the linter assumes an op reports (minor units): KES 99,999,999.99.
const SAMPLE_AMOUNT: i64 = 99_999_999_99;

/// A sample transfer reference, as long as any.
const SAMPLE_REF: &str = "TX0123456789ABCDEF";

/// A name-like text of `n` characters, outside GSM-7 so that the screen is counted in
/// UCS-2, the smaller budget: the worst case a subscriber's name can bring.
fn wide(n: usize) -> String {
    "ũ".repeat(n)
}

/// The longest name a customer can have.
const NAME: usize = crate::domain::PersonName::MAX;

/// Outcomes of every op that checks the subscriber's PIN first.
const PIN_CHECKED: [Outcome; 4] =
    [Outcome::Ok, Outcome::PinInvalid, Outcome::PinLocked, Outcome::NotRegistered];

const fn transfer(kind: &'static str) -> Option<Movement> {
    Some(Movement::Transfer { kind, held_tells: true })
}

/// Five statement lines of `kind`, the longest each can be.
fn sample_statement(kind: &str) -> serde_json::Value {
    let entry = serde_json::json!({
        "date": "31/12", "amount": -SAMPLE_AMOUNT, "kind": kind, "party": wide(12), "ref": SAMPLE_REF,
    });
    serde_json::json!({ "entries": vec![entry; 5] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_round_trips_through_its_name() {
        assert!(REGISTRY.len() <= usize::from(u8::MAX));
        for op in Op::all() {
            assert_eq!(Op::from_name(op.name()), Some(op));
            assert!(op.spec().outcomes.contains(&Outcome::Ok), "{op}");
            for o in op.spec().outcomes {
                assert!(Outcome::ALL.contains(o), "{o} is missing from Outcome::ALL");
            }
        }
        let mut names: Vec<_> = Op::all().map(Op::name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len(), "two ops share a name");
        assert_eq!(Op::of::<TransferP2p>().name(), "transfer.p2p");
    }

    /// A menu author learns an op's arguments and outcomes from docs/menus.md alone:
    /// every op has its own row there, naming each argument and each outcome it answers
    /// besides `ok`. The PIN outcomes may be named together ("the PIN outcomes"), and a
    /// row may answer "as `goods.pay`", which counts that row's outcomes too.
    #[test]
    fn every_op_has_a_row_in_the_menu_guide() {
        let guide = include_str!("../../docs/menus.md");
        let row_of = |name: &str| {
            let start = format!("| `{name}` |");
            guide.lines().find(|l| l.starts_with(&start)).unwrap_or_else(|| panic!("no row for `{name}`"))
        };
        let mut missing = Vec::new();
        for op in Op::all() {
            let own = row_of(op.name());
            let row = own
                .split("as `")
                .skip(1)
                .filter_map(|rest| rest.split('`').next())
                .filter(|name| Op::from_name(name).is_some())
                .fold(own.to_owned(), |row, like| row + row_of(like));
            let named = |word: &str| row.contains(&format!("`{word}`"));
            for arg in op.spec().args.iter().filter(|arg| !named(arg)) {
                missing.push(format!("`{op}`: the argument `{arg}`"));
            }
            let pin = [Outcome::PinInvalid, Outcome::PinLocked, Outcome::NotRegistered];
            for o in op.spec().outcomes.iter().filter(|o| **o != Outcome::Ok) {
                let as_pin = pin.contains(o) && row.contains("the PIN outcomes");
                if !as_pin && !named(o.as_str()) {
                    missing.push(format!("`{op}`: the outcome `{o}`"));
                }
            }
        }
        assert!(missing.is_empty(), "docs/menus.md's ops table leaves out:\n{}", missing.join("\n"));
    }

    #[test]
    fn an_op_that_authenticates_takes_the_pin_as_a_secret() {
        for op in Op::all().filter(|op| op.authenticates_with_pin()) {
            assert!(op.spec().secrets.contains(&"pin"), "{op}");
        }
    }
}
