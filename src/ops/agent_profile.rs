//! `agent.profile`: the agent behind the number dialling, by business name and agent
//! number.

use serde_json::json;

use super::{Call, OpSpec, Operation, wide};
use crate::money::{Money, MoneyError, agents};
use crate::outcome::{OpResult, Outcome as O};

pub struct AgentProfile;

impl Operation for AgentProfile {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "agent.profile",
        outcomes: &[O::Ok, O::NotAgent],
        args: &[],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "name": wide(40), "agent_number": "1234567", "language": "sw" })
    }

    fn parse(_: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(AgentProfile)
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(agents::profile(money.lane(), call.msisdn).await?)
    }
}
