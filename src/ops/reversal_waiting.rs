//! `reversal.waiting`: sends the caller received whose senders asked them back.

use serde_json::json;

use super::{Call, NAME, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF, wide};
use crate::money::{Money, MoneyError, reversals};
use crate::outcome::{OpResult, Outcome as O};

pub struct ReversalWaiting;

impl Operation for ReversalWaiting {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "reversal.waiting",
        outcomes: &[O::Ok],
        args: &[],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        let first = json!({ "ref": SAMPLE_REF, "amount": SAMPLE_AMOUNT, "name": wide(2 * NAME + 1), "until": "31/12 23:59" });
        json!({ "count": 99, "first": first })
    }

    fn parse(_: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(ReversalWaiting)
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(reversals::waiting(money.lane(), call.msisdn).await?)
    }
}
