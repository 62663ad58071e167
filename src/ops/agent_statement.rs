//! `agent.statement`: the last five movements of the agent's float.

use super::{Call, OpSpec, Operation, sample_statement};
use crate::domain::Pin;
use crate::money::{Money, MoneyError, agents};
use crate::outcome::{OpResult, Outcome as O};

pub struct AgentStatement {
    pin: Option<Pin>,
}

impl Operation for AgentStatement {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "agent.statement",
        outcomes: &[O::Ok, O::PinInvalid, O::PinLocked, O::NotRegistered, O::NotAgent],
        args: &[],
        secrets: &["pin"],
        authenticates: true,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        sample_statement("float_transfer")
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(AgentStatement { pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        money
            .with_pin(call.caller(), self.pin.as_ref(), |id| async move {
                // The PIN is checked on the primary; the movements may be read on a replica.
                // A replica failing mid-read (a recovery conflict, a restart) leaves
                // the read to the primary.
                match money.replica_read().await {
                    Some(replica) => match agents::statement(replica, id).await {
                        Ok(read) => Ok(read),
                        Err(_) => agents::statement(money.lane(), id).await,
                    },
                    None => agents::statement(money.lane(), id).await,
                }
            })
            .await
    }
}
