//! `agent.float_quote`: the receiving agent's name, for a float transfer's
//! confirmation.

use serde_json::json;

use super::{Call, OpSpec, Operation, wide};
use crate::money::{Money, MoneyError, agents};
use crate::outcome::{OpResult, Outcome as O};

pub struct AgentFloatQuote {
    agent: String,
}

impl Operation for AgentFloatQuote {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "agent.float_quote",
        outcomes: &[O::Ok, O::NotAgent, O::RecipientUnknown, O::SameAccount],
        args: &["agent"],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "name": wide(40) })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(AgentFloatQuote { agent: call.digits("agent")? })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(agents::quote_float(money.lane(), call.msisdn, &self.agent).await?)
    }
}
