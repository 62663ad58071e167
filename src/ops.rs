//! The catalogue of operations menus may call: names, arguments and typed outcomes.
//!
//! Pure data shared by the menu compiler (which checks every `action` against it) and the
//! money layer (which implements each op). Adding an op means adding it here first.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An operation a menu `action` step can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Looks up the subscriber dialling: name and language.
    CustomerProfile,
    /// Checks that an ID number is free and seals it for registration.
    CustomerSealId,
    /// Opens a wallet for the subscriber dialling, with the PIN chosen and confirmed.
    CustomerRegister,
    /// Remembers the subscriber's language.
    CustomerSetLanguage,
    /// Checks a newly chosen PIN and hands back its salted hash for the confirm step.
    PinStage,
    /// Checks the subscriber's current PIN (with the lockout).
    PinVerify,
    /// Replaces the PIN with the staged one, once confirmed.
    PinChange,
    /// The subscriber's available wallet balance.
    WalletBalance,
    /// The last five movements of the wallet.
    WalletStatement,
    /// The payee's name and the fee, for the confirmation screen.
    TransferQuote,
    /// Sends money to another customer.
    TransferP2p,
    /// The agent behind the number dialling: business name and agent number.
    AgentProfile,
    /// The customer's name for the agent's cash-in confirmation screen.
    AgentCashInQuote,
    /// Cash in at an agent: the agent's float to the customer's wallet.
    AgentCashIn,
    /// The agent's float and commission balances.
    AgentBalances,
    /// The last five movements of the agent's float.
    AgentStatement,
    /// The receiving agent's name, for a float transfer's confirmation.
    AgentFloatQuote,
    /// One agent's float to another's.
    AgentFloatTransfer,
    /// The agent, store and withdrawal fee, for the customer's cash-out confirmation.
    CashOutQuote,
    /// Cash out at an agent's store: the customer's wallet to the agent's float, with
    /// the withdrawal fee and the agent's commission.
    CashOutWithdraw,
    /// The customer's name and the fee, for the agent's confirmation of a cash-out request.
    AgentCashOutQuote,
    /// The agent asks a customer to approve a cash-out: the amount and fee are held.
    AgentCashOutRequest,
    /// The cash-out requests waiting for the customer's answer.
    CashOutWaiting,
    /// The customer approves a waiting request with their PIN: the held money moves.
    CashOutApprove,
    /// The customer declines a waiting request: the hold is released.
    CashOutDecline,
    /// The billers a customer can pay.
    BillBillers,
    /// The biller checks an account number (the holder's name), and the fee for an amount.
    BillValidate,
    /// Pays a bill: held, sent to the biller, posted or voided on its answer.
    BillPay,
}

/// What an op reports; menus route on these by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    NotRegistered,
    AlreadyRegistered,
    IdTaken,
    PinInvalid,
    PinLocked,
    PinWeak,
    PinMismatch,
    AccountBlocked,
    InsufficientFunds,
    LimitExceeded,
    RecipientUnknown,
    SameAccount,
    Conflict,
    /// The number dialling is not a registered agent.
    NotAgent,
    /// The store number is not one of the agent's stores.
    StoreUnknown,
    /// The request is no longer waiting: it expired, or was answered already.
    Expired,
    /// The account number is not one the biller issues.
    AccountInvalid,
    /// The biller refused the payment; the money was given back.
    BillRejected,
    /// The biller has not answered yet: the money stays held until it does, and the
    /// subscriber gets an SMS either way.
    Pending,
}

/// What the menu compiler needs to know about an op.
#[derive(Debug)]
pub struct OpSpec {
    pub op: Op,
    pub name: &'static str,
    pub outcomes: &'static [Outcome],
    /// Arguments the `action` step must pass (rendered from templates).
    pub args: &'static [&'static str],
    /// Sensitive values, collected by a `pin` step in the same hop.
    pub secrets: &'static [&'static str],
    /// How the op moves money, if it can. One whose outcome the hop cannot learn (it
    /// overran, or its answer was lost) tells the subscriber an SMS will follow, and the
    /// promise keeper finds the outcome here; one that only reads asks them to retry.
    pub movement: Option<Movement>,
    /// Whether success changes stored state (money, PIN, profile): the menu's Back key
    /// never returns across it.
    pub writes: bool,
}

/// Where the outcome of a money op is found once the op itself cannot say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Movement {
    /// A transfer of `kind` under the op's idempotency key. `held_tells`: whether the
    /// dialler has an SMS while the transfer is held (an agent's cash-out request tells
    /// only the customer until it is decided).
    Transfer { kind: &'static str, held_tells: bool },
    /// The decision on the hold of the transfer the `request` argument names.
    Hold,
}

impl Movement {
    /// The name the promise keeper knows it by: the transfer kind, or `hold`.
    pub fn name(self) -> &'static str {
        match self {
            Movement::Transfer { kind, .. } => kind,
            Movement::Hold => "hold",
        }
    }

    pub fn held_tells(self) -> bool {
        match self {
            Movement::Transfer { held_tells, .. } => held_tells,
            Movement::Hold => true,
        }
    }
}

impl OpSpec {
    /// Whether the op can move money.
    pub fn moves_money(&self) -> bool {
        self.movement.is_some()
    }
}

const fn transfer(kind: &'static str) -> Option<Movement> {
    Some(Movement::Transfer { kind, held_tells: true })
}

use Outcome as O;

/// Outcomes of every op that checks the subscriber's PIN first.
const PIN_CHECKED: [Outcome; 4] = [O::Ok, O::PinInvalid, O::PinLocked, O::NotRegistered];

pub const CATALOG: &[OpSpec] = &[
    OpSpec {
        op: Op::CustomerProfile,
        name: "customer.profile",
        outcomes: &[O::Ok, O::NotRegistered],
        args: &[],
        secrets: &[],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::CustomerSealId,
        name: "customer.seal_id",
        outcomes: &[O::Ok, O::IdTaken],
        args: &[],
        secrets: &["national_id"],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::CustomerRegister,
        name: "customer.register",
        outcomes: &[O::Ok, O::PinMismatch, O::AlreadyRegistered, O::IdTaken],
        args: &["first_name", "last_name", "sealed_id", "staged_pin", "language"],
        secrets: &["pin"],
        writes: true,
        movement: None,
    },
    OpSpec {
        op: Op::CustomerSetLanguage,
        name: "customer.set_language",
        outcomes: &[O::Ok, O::NotRegistered],
        args: &["language"],
        secrets: &[],
        writes: true,
        movement: None,
    },
    OpSpec {
        op: Op::PinStage,
        name: "pin.stage",
        outcomes: &[O::Ok, O::PinWeak],
        args: &[],
        secrets: &["pin"],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::PinVerify,
        name: "pin.verify",
        outcomes: &PIN_CHECKED,
        args: &[],
        secrets: &["pin"],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::PinChange,
        name: "pin.change",
        outcomes: &[O::Ok, O::PinMismatch, O::NotRegistered],
        args: &["staged_pin"],
        secrets: &["pin"],
        writes: true,
        movement: None,
    },
    OpSpec {
        op: Op::WalletBalance,
        name: "wallet.balance",
        outcomes: &[O::Ok, O::PinInvalid, O::PinLocked, O::NotRegistered, O::AccountBlocked],
        args: &[],
        secrets: &["pin"],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::WalletStatement,
        name: "wallet.statement",
        outcomes: &PIN_CHECKED,
        args: &[],
        secrets: &["pin"],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::TransferQuote,
        name: "transfer.quote",
        outcomes: &[O::Ok, O::RecipientUnknown, O::SameAccount, O::LimitExceeded],
        args: &["to", "amount"],
        secrets: &[],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::TransferP2p,
        name: "transfer.p2p",
        outcomes: &[
            O::Ok,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::InsufficientFunds,
            O::LimitExceeded,
            O::RecipientUnknown,
            O::SameAccount,
            O::AccountBlocked,
            O::Conflict,
        ],
        args: &["to", "amount"],
        secrets: &["pin"],
        writes: true,
        movement: transfer("p2p"),
    },
    OpSpec {
        op: Op::AgentProfile,
        name: "agent.profile",
        outcomes: &[O::Ok, O::NotAgent],
        args: &[],
        secrets: &[],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::AgentCashInQuote,
        name: "agent.cash_in_quote",
        outcomes: &[O::Ok, O::NotAgent, O::RecipientUnknown, O::SameAccount],
        args: &["to"],
        secrets: &[],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::AgentCashIn,
        name: "agent.cash_in",
        outcomes: &[
            O::Ok,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::NotAgent,
            O::InsufficientFunds,
            O::LimitExceeded,
            O::RecipientUnknown,
            O::SameAccount,
            O::AccountBlocked,
            O::Conflict,
        ],
        args: &["to", "amount"],
        secrets: &["pin"],
        writes: true,
        movement: transfer("cash_in"),
    },
    OpSpec {
        op: Op::AgentStatement,
        name: "agent.statement",
        outcomes: &[O::Ok, O::PinInvalid, O::PinLocked, O::NotRegistered, O::NotAgent],
        args: &[],
        secrets: &["pin"],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::AgentFloatQuote,
        name: "agent.float_quote",
        outcomes: &[O::Ok, O::NotAgent, O::RecipientUnknown, O::SameAccount],
        args: &["agent"],
        secrets: &[],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::AgentFloatTransfer,
        name: "agent.float_transfer",
        outcomes: &[
            O::Ok,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::NotAgent,
            O::InsufficientFunds,
            O::RecipientUnknown,
            O::SameAccount,
            O::AccountBlocked,
            O::Conflict,
        ],
        args: &["agent", "amount"],
        secrets: &["pin"],
        writes: true,
        movement: transfer("float_transfer"),
    },
    OpSpec {
        op: Op::CashOutQuote,
        name: "cash_out.quote",
        outcomes: &[O::Ok, O::RecipientUnknown, O::SameAccount, O::LimitExceeded],
        args: &["agent", "store", "amount"],
        secrets: &[],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::CashOutWithdraw,
        name: "cash_out.withdraw",
        outcomes: &[
            O::Ok,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::InsufficientFunds,
            O::LimitExceeded,
            O::RecipientUnknown,
            O::SameAccount,
            O::AccountBlocked,
            O::Conflict,
        ],
        args: &["agent", "store", "amount"],
        secrets: &["pin"],
        writes: true,
        movement: transfer("cash_out"),
    },
    OpSpec {
        op: Op::AgentCashOutQuote,
        name: "agent.cash_out_quote",
        outcomes: &[
            O::Ok,
            O::NotAgent,
            O::StoreUnknown,
            O::RecipientUnknown,
            O::SameAccount,
            O::LimitExceeded,
        ],
        args: &["customer", "store", "amount"],
        secrets: &[],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::AgentCashOutRequest,
        name: "agent.cash_out_request",
        outcomes: &[
            O::Ok,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::NotAgent,
            O::StoreUnknown,
            O::InsufficientFunds,
            O::LimitExceeded,
            O::RecipientUnknown,
            O::SameAccount,
            O::AccountBlocked,
            O::Conflict,
        ],
        args: &["customer", "store", "amount", "dial"],
        secrets: &["pin"],
        writes: true,
        movement: Some(Movement::Transfer { kind: "cash_out", held_tells: false }),
    },
    OpSpec {
        op: Op::CashOutWaiting,
        name: "cash_out.waiting",
        outcomes: &[O::Ok],
        args: &[],
        secrets: &[],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::CashOutApprove,
        name: "cash_out.approve",
        outcomes: &[
            O::Ok,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::Expired,
            O::LimitExceeded,
            O::AccountBlocked,
        ],
        args: &["request"],
        secrets: &["pin"],
        writes: true,
        movement: Some(Movement::Hold),
    },
    OpSpec {
        op: Op::CashOutDecline,
        name: "cash_out.decline",
        outcomes: &[O::Ok, O::Expired],
        args: &["request"],
        secrets: &[],
        writes: true,
        movement: None,
    },
    OpSpec {
        op: Op::BillBillers,
        name: "bill.billers",
        outcomes: &[O::Ok],
        args: &[],
        secrets: &[],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::BillValidate,
        name: "bill.validate",
        outcomes: &[O::Ok, O::RecipientUnknown, O::AccountInvalid, O::LimitExceeded],
        args: &["biller", "account", "amount"],
        secrets: &[],
        writes: false,
        movement: None,
    },
    OpSpec {
        op: Op::BillPay,
        name: "bill.pay",
        outcomes: &[
            O::Ok,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::RecipientUnknown,
            O::AccountInvalid,
            O::InsufficientFunds,
            O::LimitExceeded,
            O::AccountBlocked,
            O::Conflict,
            O::BillRejected,
            O::Pending,
        ],
        args: &["biller", "account", "amount", "holder"],
        secrets: &["pin"],
        writes: true,
        movement: transfer("bill"),
    },
    OpSpec {
        op: Op::AgentBalances,
        name: "agent.balances",
        outcomes: &[O::Ok, O::PinInvalid, O::PinLocked, O::NotRegistered, O::NotAgent],
        args: &[],
        secrets: &["pin"],
        writes: false,
        movement: None,
    },
];

impl Op {
    pub fn from_name(name: &str) -> Option<Op> {
        CATALOG.iter().find(|s| s.name == name).map(|s| s.op)
    }

    pub fn spec(self) -> &'static OpSpec {
        CATALOG.iter().find(|s| s.op == self).expect("every Op has an entry in CATALOG")
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Whether the op takes the PIN to check who is asking (rather than as data, like
    /// a new PIN): only then may a channel vouch for the subscriber instead.
    pub fn authenticates_with_pin(self) -> bool {
        matches!(
            self,
            Op::PinVerify
                | Op::WalletBalance
                | Op::WalletStatement
                | Op::TransferP2p
                | Op::AgentCashIn
                | Op::AgentBalances
                | Op::AgentStatement
                | Op::AgentFloatTransfer
                | Op::CashOutWithdraw
                | Op::AgentCashOutRequest
                | Op::CashOutApprove
                | Op::BillPay
        )
    }
}

/// The largest amount the linter assumes an op reports (minor units): KES 99,999,999.99.
const SAMPLE_AMOUNT: i64 = 99_999_999_99;

/// A name-like text of `n` characters, outside GSM-7 so that the screen is counted in
/// UCS-2, the smaller budget: the worst case a subscriber's name can bring.
fn wide(n: usize) -> String {
    "ũ".repeat(n)
}

impl Op {
    /// The longest data this op can return on any outcome, for `menus check` to prove
    /// that every screen showing it fits the budget. Keep in step with `crate::money`.
    pub fn sample(self) -> serde_json::Value {
        use serde_json::json;
        let name = crate::domain::PersonName::MAX;
        match self {
            Op::CustomerProfile => {
                json!({ "first_name": wide(name), "last_name": wide(name), "language": "sw" })
            }
            Op::CustomerSealId => json!({ "sealed": "0".repeat(120) }),
            Op::CustomerRegister => json!({ "first_name": wide(name) }),
            Op::CustomerSetLanguage => json!({ "language": "sw" }),
            Op::PinStage => json!({ "digest": "x".repeat(120) }),
            Op::PinVerify | Op::PinChange => serde_json::Value::Null,
            Op::WalletBalance => {
                json!({ "balance": SAMPLE_AMOUNT, "available": SAMPLE_AMOUNT, "currency": "KES" })
            }
            Op::WalletStatement => {
                let entry = json!({
                    "date": "31/12", "amount": -SAMPLE_AMOUNT, "kind": "p2p",
                    "party": wide(12), "ref": "TX0123456789ABCDEF",
                });
                json!({ "entries": vec![entry; 5] })
            }
            Op::TransferQuote => json!({
                "name": wide(2 * name + 1), "fee": SAMPLE_AMOUNT, "total": SAMPLE_AMOUNT, "max": SAMPLE_AMOUNT,
            }),
            Op::TransferP2p => {
                json!({ "ref": "TX0123456789ABCDEF", "fee": SAMPLE_AMOUNT, "balance": SAMPLE_AMOUNT })
            }
            Op::AgentProfile => json!({ "name": wide(40), "agent_number": "1234567", "language": "sw" }),
            Op::AgentCashInQuote => json!({ "name": wide(2 * name + 1) }),
            Op::AgentCashIn => json!({ "ref": "TX0123456789ABCDEF", "balance": SAMPLE_AMOUNT }),
            Op::AgentBalances => json!({ "float": SAMPLE_AMOUNT, "commission": SAMPLE_AMOUNT }),
            Op::AgentStatement => {
                let entry = json!({
                    "date": "31/12", "amount": -SAMPLE_AMOUNT, "kind": "float_transfer",
                    "party": wide(12), "ref": "TX0123456789ABCDEF",
                });
                json!({ "entries": vec![entry; 5] })
            }
            Op::AgentFloatQuote => json!({ "name": wide(40) }),
            Op::AgentFloatTransfer => json!({ "ref": "TX0123456789ABCDEF", "balance": SAMPLE_AMOUNT }),
            Op::CashOutQuote => json!({
                "agent": wide(40), "store": wide(40), "fee": SAMPLE_AMOUNT, "total": SAMPLE_AMOUNT,
            }),
            Op::CashOutWithdraw | Op::CashOutApprove | Op::CashOutDecline => {
                json!({ "ref": "TX0123456789ABCDEF", "fee": SAMPLE_AMOUNT, "balance": SAMPLE_AMOUNT })
            }
            Op::AgentCashOutQuote => {
                json!({ "name": wide(2 * name + 1), "fee": SAMPLE_AMOUNT, "total": SAMPLE_AMOUNT })
            }
            Op::AgentCashOutRequest => {
                json!({ "ref": "TX0123456789ABCDEF", "fee": SAMPLE_AMOUNT, "minutes": 1440 })
            }
            Op::BillBillers => {
                let biller = json!({ "code": "ABCDEFGHIJKL", "name": wide(30), "label": wide(30) });
                json!({ "billers": vec![biller; 9] })
            }
            Op::BillValidate => json!({
                "holder": wide(40), "biller": wide(30), "fee": SAMPLE_AMOUNT, "total": SAMPLE_AMOUNT,
            }),
            Op::BillPay => json!({
                "ref": "TX0123456789ABCDEF", "fee": SAMPLE_AMOUNT, "balance": SAMPLE_AMOUNT,
                "token": "x".repeat(40), "receipt": "x".repeat(24), "reason": wide(60),
            }),
            Op::CashOutWaiting => json!({
                "count": 99,
                "first": {
                    "ref": "TX0123456789ABCDEF", "amount": SAMPLE_AMOUNT, "fee": SAMPLE_AMOUNT,
                    "total": SAMPLE_AMOUNT, "agent": wide(40), "agent_number": "1234567", "store": wide(40),
                },
            }),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Outcome {
    pub const ALL: &'static [Outcome] = &[
        O::Ok,
        O::NotRegistered,
        O::AlreadyRegistered,
        O::IdTaken,
        O::PinInvalid,
        O::PinLocked,
        O::PinWeak,
        O::PinMismatch,
        O::AccountBlocked,
        O::InsufficientFunds,
        O::LimitExceeded,
        O::RecipientUnknown,
        O::SameAccount,
        O::Conflict,
        O::NotAgent,
        O::StoreUnknown,
        O::Expired,
        O::AccountInvalid,
        O::BillRejected,
        O::Pending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            O::Ok => "ok",
            O::NotRegistered => "not_registered",
            O::AlreadyRegistered => "already_registered",
            O::IdTaken => "id_taken",
            O::PinInvalid => "pin_invalid",
            O::PinLocked => "pin_locked",
            O::PinWeak => "pin_weak",
            O::PinMismatch => "pin_mismatch",
            O::AccountBlocked => "account_blocked",
            O::InsufficientFunds => "insufficient_funds",
            O::LimitExceeded => "limit_exceeded",
            O::RecipientUnknown => "recipient_unknown",
            O::SameAccount => "same_account",
            O::Conflict => "conflict",
            O::NotAgent => "not_agent",
            O::StoreUnknown => "store_unknown",
            O::Expired => "expired",
            O::AccountInvalid => "account_invalid",
            O::BillRejected => "bill_rejected",
            O::Pending => "pending",
        }
    }

    pub fn from_name(name: &str) -> Option<Outcome> {
        Self::ALL.iter().copied().find(|o| o.as_str() == name)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The typed result of an op, fed back into the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct OpResult {
    pub outcome: Outcome,
    /// Data for templates (`result.balance`) and for `save:`.
    pub data: serde_json::Value,
}

impl OpResult {
    pub fn new(outcome: Outcome, data: serde_json::Value) -> Self {
        OpResult { outcome, data }
    }

    pub fn bare(outcome: Outcome) -> Self {
        OpResult { outcome, data: serde_json::Value::Null }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_round_trips_through_its_name() {
        for spec in CATALOG {
            assert_eq!(Op::from_name(spec.name), Some(spec.op));
            assert_eq!(spec.op.spec().name, spec.name);
            assert!(spec.outcomes.contains(&Outcome::Ok));
        }
        for spec in CATALOG {
            for o in spec.outcomes {
                assert!(Outcome::ALL.contains(o), "{o} is missing from Outcome::ALL");
            }
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::from_name(o.as_str()), Some(*o));
            // serde and the menu compiler agree on every name.
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
    }
}
