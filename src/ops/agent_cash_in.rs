//! `agent.cash_in`: cash in at an agent, the agent's float to the customer's wallet.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF, transfer};
use crate::domain::{Amount, Msisdn, Pin};
use crate::money::{Money, MoneyError, agents};
use crate::outcome::{OpResult, Outcome as O};

pub struct AgentCashIn {
    to: Msisdn,
    amount: Amount,
    pin: Option<Pin>,
}

impl Operation for AgentCashIn {
    const SPEC: &'static OpSpec = &OpSpec {
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
        authenticates: true,
        writes: true,
        calls_out: false,
        movement: transfer("cash_in"),
    };

    fn sample() -> serde_json::Value {
        json!({ "ref": SAMPLE_REF, "balance": SAMPLE_AMOUNT })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(AgentCashIn { to: call.msisdn("to")?, amount: call.amount("amount")?, pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        if let Some(refused) = call.over_channel_limit(self.amount) {
            return Ok(refused);
        }
        let (db, key) = (money.lane(), call.idempotency_key);
        let cash_in = |_| agents::cash_in(db, key, call.msisdn, &self.to, self.amount);
        money.with_pin(call.caller(), self.pin.as_ref(), cash_in).await
    }
}
