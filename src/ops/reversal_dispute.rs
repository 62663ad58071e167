//! `reversal.dispute`: the recipient disputes a send asked back; an operator decides.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_REF};
use crate::money::{Money, MoneyError, reversals};
use crate::outcome::{OpResult, Outcome as O};

pub struct ReversalDispute {
    send: i64,
}

impl Operation for ReversalDispute {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "reversal.dispute",
        outcomes: &[O::Ok, O::Expired],
        args: &["send"],
        secrets: &[],
        authenticates: false,
        writes: true,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "ref": SAMPLE_REF })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(ReversalDispute { send: call.reference("send")? })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(reversals::dispute(money.pool(), call.msisdn, self.send).await?)
    }
}
