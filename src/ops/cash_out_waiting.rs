//! `cash_out.waiting`: the cash-out requests waiting for the customer's answer.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF, wide};
use crate::money::{Money, MoneyError, approvals};
use crate::outcome::{OpResult, Outcome as O};

pub struct CashOutWaiting;

impl Operation for CashOutWaiting {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "cash_out.waiting",
        outcomes: &[O::Ok],
        args: &[],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({
            "count": 99,
            "first": {
                "ref": SAMPLE_REF, "amount": SAMPLE_AMOUNT, "fee": SAMPLE_AMOUNT, "total": SAMPLE_AMOUNT,
                "agent": wide(40), "agent_number": "1234567", "store": wide(40),
            },
        })
    }

    fn parse(_: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(CashOutWaiting)
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(approvals::waiting(money.lane(), call.msisdn).await?)
    }
}
