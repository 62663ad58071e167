//! `pin.change`: replaces the PIN with the staged one, once confirmed.

use super::{Call, OpSpec, Operation};
use crate::domain::Pin;
use crate::money::{Money, MoneyError, StagedPin};
use crate::outcome::{OpResult, Outcome as O};

pub struct PinChange {
    staged: StagedPin,
    /// The new PIN typed again.
    pin: Option<Pin>,
}

impl Operation for PinChange {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "pin.change",
        outcomes: &[O::Ok, O::PinMismatch, O::NotRegistered],
        args: &["staged_pin"],
        secrets: &["pin"],
        authenticates: false,
        writes: true,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        serde_json::Value::Null
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(PinChange { staged: call.staged("staged_pin")?, pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        if !self.pin.as_ref().is_some_and(|p| self.staged.matches(&money.settings().pins, p)) {
            return Ok(OpResult::bare(O::PinMismatch));
        }
        Ok(OpResult::bare(if money.store_pin(call.msisdn, &self.staged).await? {
            O::Ok
        } else {
            O::NotRegistered
        }))
    }
}
