//! `agent.cash_in_quote`: the customer's name for the agent's cash-in confirmation.

use serde_json::json;

use super::{Call, NAME, OpSpec, Operation, wide};
use crate::domain::Msisdn;
use crate::money::{Money, MoneyError, agents};
use crate::outcome::{OpResult, Outcome as O};

pub struct AgentCashInQuote {
    to: Msisdn,
}

impl Operation for AgentCashInQuote {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "agent.cash_in_quote",
        outcomes: &[O::Ok, O::NotAgent, O::RecipientUnknown, O::SameAccount],
        args: &["to"],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "name": wide(2 * NAME + 1) })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(AgentCashInQuote { to: call.msisdn("to")? })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(agents::quote_cash_in(money.lane(), call.msisdn, &self.to).await?)
    }
}
