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
    /// The subscriber's available wallet balance, after checking their PIN.
    WalletBalance,
}

/// What an op reports; menus route on these by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    NotRegistered,
    PinInvalid,
    AccountBlocked,
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
}

pub const CATALOG: &[OpSpec] = &[
    OpSpec {
        op: Op::CustomerProfile,
        name: "customer.profile",
        outcomes: &[Outcome::Ok, Outcome::NotRegistered],
        args: &[],
        secrets: &[],
    },
    OpSpec {
        op: Op::WalletBalance,
        name: "wallet.balance",
        outcomes: &[Outcome::Ok, Outcome::PinInvalid, Outcome::NotRegistered, Outcome::AccountBlocked],
        args: &[],
        secrets: &["pin"],
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
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Outcome {
    pub const ALL: &'static [Outcome] =
        &[Outcome::Ok, Outcome::NotRegistered, Outcome::PinInvalid, Outcome::AccountBlocked];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NotRegistered => "not_registered",
            Outcome::PinInvalid => "pin_invalid",
            Outcome::AccountBlocked => "account_blocked",
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
        for o in Outcome::ALL {
            assert_eq!(Outcome::from_name(o.as_str()), Some(*o));
        }
    }
}
