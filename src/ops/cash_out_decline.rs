//! `cash_out.decline`: the customer declines a waiting request; the hold is released.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF};
use crate::money::{Money, MoneyError, approvals};
use crate::outcome::{OpResult, Outcome as O};

pub struct CashOutDecline {
    /// The held transfer.
    request: i64,
}

impl Operation for CashOutDecline {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "cash_out.decline",
        outcomes: &[O::Ok, O::Expired],
        args: &["request"],
        secrets: &[],
        authenticates: false,
        writes: true,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "ref": SAMPLE_REF, "fee": SAMPLE_AMOUNT, "balance": SAMPLE_AMOUNT })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(CashOutDecline { request: call.reference("request")? })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(approvals::decide(money.lane(), call.idempotency_key, call.msisdn, self.request, false).await?)
    }
}
