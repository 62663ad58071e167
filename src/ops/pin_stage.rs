//! `pin.stage`: checks a newly chosen PIN and hands back its salted hash for the
//! confirm step.

use serde_json::json;

use super::{Call, OpSpec, Operation};
use crate::domain::Pin;
use crate::money::{Money, MoneyError, is_weak};
use crate::outcome::{OpResult, Outcome as O};

pub struct PinStage {
    pin: Option<Pin>,
}

impl Operation for PinStage {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "pin.stage",
        outcomes: &[O::Ok, O::PinWeak],
        args: &[],
        secrets: &["pin"],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "digest": "x".repeat(120) })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(PinStage { pin: call.pin() })
    }

    async fn apply(self, money: &Money, _: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(match self.pin {
            Some(p) if !is_weak(&p) => {
                OpResult::new(O::Ok, json!({ "digest": money.settings().pins.stage(&p).encode() }))
            }
            _ => OpResult::bare(O::PinWeak),
        })
    }
}
