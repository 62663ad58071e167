//! `agent.float_transfer`: one agent's float to another's.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF, transfer};
use crate::domain::{Amount, Pin};
use crate::money::{Money, MoneyError, agents};
use crate::outcome::{OpResult, Outcome as O};

pub struct AgentFloatTransfer {
    /// The receiving agent's number.
    agent: String,
    amount: Amount,
    pin: Option<Pin>,
}

impl Operation for AgentFloatTransfer {
    const SPEC: &'static OpSpec = &OpSpec {
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
        authenticates: true,
        writes: true,
        calls_out: false,
        movement: transfer("float_transfer"),
    };

    fn sample() -> serde_json::Value {
        json!({ "ref": SAMPLE_REF, "balance": SAMPLE_AMOUNT })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(AgentFloatTransfer {
            agent: call.digits("agent")?,
            amount: call.amount("amount")?,
            pin: call.pin(),
        })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        if let Some(refused) = call.over_channel_limit(self.amount) {
            return Ok(refused);
        }
        let (db, key) = (money.lane(), call.idempotency_key);
        let send = |_| agents::transfer_float(db, key, call.msisdn, &self.agent, self.amount);
        money.with_pin(call.caller(), self.pin.as_ref(), send).await
    }
}
