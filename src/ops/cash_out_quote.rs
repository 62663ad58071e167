//! `cash_out.quote`: the agent, store and withdrawal fee, for the customer's cash-out
//! confirmation.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, wide};
use crate::domain::Amount;
use crate::money::{Money, MoneyError, agents};
use crate::outcome::{OpResult, Outcome as O};

pub struct CashOutQuote {
    agent: String,
    store: String,
    amount: Amount,
}

impl Operation for CashOutQuote {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "cash_out.quote",
        outcomes: &[O::Ok, O::RecipientUnknown, O::SameAccount, O::LimitExceeded],
        args: &["agent", "store", "amount"],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "agent": wide(40), "store": wide(40), "fee": SAMPLE_AMOUNT, "total": SAMPLE_AMOUNT })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(CashOutQuote {
            agent: call.digits("agent")?,
            store: call.digits("store")?,
            amount: call.amount("amount")?,
        })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(agents::quote_cash_out(money.lane(), call.msisdn, &self.agent, &self.store, self.amount).await?)
    }
}
