//! What an op reports: the outcomes menus route on, with data for their templates.
//!
//! A leaf: the ledger answers in these terms, the ops pass them on, the engine routes
//! on them.

use std::fmt;

use serde::{Deserialize, Serialize};

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
    /// subscriber gets an SMS either way. (An identity check: one is waiting already.)
    Pending,
    /// The customer's identity was verified before.
    AlreadyVerified,
}

use Outcome as O;

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
        O::AlreadyVerified,
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
            O::AlreadyVerified => "already_verified",
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
    fn every_outcome_round_trips_through_its_name() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::from_name(o.as_str()), Some(*o));
            // serde and the menu compiler agree on every name.
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
    }
}
