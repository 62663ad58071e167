//! `cash_out.withdraw`: cash out at an agent's store, the customer's wallet to the
//! agent's float, with the withdrawal fee and the agent's commission.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF, transfer};
use crate::domain::{Amount, Pin};
use crate::money::{Money, MoneyError, agents};
use crate::outcome::{OpResult, Outcome as O};

pub struct CashOutWithdraw {
    agent: String,
    store: String,
    amount: Amount,
    pin: Option<Pin>,
}

impl Operation for CashOutWithdraw {
    const SPEC: &'static OpSpec = &OpSpec {
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
        authenticates: true,
        writes: true,
        calls_out: false,
        movement: transfer("cash_out"),
    };

    fn sample() -> serde_json::Value {
        json!({ "ref": SAMPLE_REF, "fee": SAMPLE_AMOUNT, "balance": SAMPLE_AMOUNT })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(CashOutWithdraw {
            agent: call.digits("agent")?,
            store: call.digits("store")?,
            amount: call.amount("amount")?,
            pin: call.pin(),
        })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        if let Some(refused) = call.over_channel_limit(self.amount) {
            return Ok(refused);
        }
        let (db, key, at) = (money.lane(), call.idempotency_key, (self.agent.as_str(), self.store.as_str()));
        let withdraw = |_| agents::cash_out(db, key, call.msisdn, at, self.amount);
        money.with_pin(call.caller(), self.pin.as_ref(), withdraw).await
    }
}
