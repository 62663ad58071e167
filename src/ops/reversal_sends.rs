//! `reversal.sends`: the caller's sends of the last day that may be asked back.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF, wide};
use crate::money::{Money, MoneyError, reversals};
use crate::outcome::{OpResult, Outcome as O};

pub struct ReversalSends;

impl Operation for ReversalSends {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "reversal.sends",
        outcomes: &[O::Ok],
        args: &[],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        let send =
            json!({ "ref": SAMPLE_REF, "date": "31/12 23:59", "amount": SAMPLE_AMOUNT, "name": wide(12) });
        json!({ "entries": vec![send; 5] })
    }

    fn parse(_: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(ReversalSends)
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(reversals::sends(money.lane(), call.msisdn).await?)
    }
}
