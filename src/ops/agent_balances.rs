//! `agent.balances`: the agent's float and commission balances.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT};
use crate::domain::Pin;
use crate::money::{Money, MoneyError, agents};
use crate::outcome::{OpResult, Outcome as O};

pub struct AgentBalances {
    pin: Option<Pin>,
}

impl Operation for AgentBalances {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "agent.balances",
        outcomes: &[O::Ok, O::PinInvalid, O::PinLocked, O::NotRegistered, O::NotAgent],
        args: &[],
        secrets: &["pin"],
        authenticates: true,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "float": SAMPLE_AMOUNT, "commission": SAMPLE_AMOUNT })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(AgentBalances { pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        let db = money.lane();
        money.with_pin(call.caller(), self.pin.as_ref(), |id| agents::balances(db, id)).await
    }
}
