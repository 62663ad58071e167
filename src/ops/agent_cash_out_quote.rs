//! `agent.cash_out_quote`: the customer's name and the fee, for the agent's
//! confirmation of a cash-out request.

use serde_json::json;

use super::{Call, NAME, OpSpec, Operation, SAMPLE_AMOUNT, wide};
use crate::domain::{Amount, Msisdn};
use crate::money::{Money, MoneyError, approvals};
use crate::outcome::{OpResult, Outcome as O};

pub struct AgentCashOutQuote {
    customer: Msisdn,
    store: String,
    amount: Amount,
}

impl Operation for AgentCashOutQuote {
    const SPEC: &'static OpSpec = &OpSpec {
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
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "name": wide(2 * NAME + 1), "fee": SAMPLE_AMOUNT, "total": SAMPLE_AMOUNT })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(AgentCashOutQuote {
            customer: call.msisdn("customer")?,
            store: call.digits("store")?,
            amount: call.amount("amount")?,
        })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(approvals::quote(money.lane(), call.msisdn, &self.customer, &self.store, self.amount).await?)
    }
}
