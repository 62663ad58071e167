//! `cash_out.approve`: the customer approves a waiting request with their PIN; the held
//! money moves.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF};
use crate::domain::Pin;
use crate::money::{Money, MoneyError, Movement, approvals};
use crate::outcome::{OpResult, Outcome as O};

pub struct CashOutApprove {
    /// The held transfer.
    request: i64,
    pin: Option<Pin>,
}

impl Operation for CashOutApprove {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "cash_out.approve",
        outcomes: &[
            O::Ok,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::Expired,
            O::LimitExceeded,
            O::AccountBlocked,
        ],
        args: &["request"],
        secrets: &["pin"],
        authenticates: true,
        writes: true,
        calls_out: false,
        movement: Some(Movement::Hold),
    };

    fn sample() -> serde_json::Value {
        json!({ "ref": SAMPLE_REF, "fee": SAMPLE_AMOUNT, "balance": SAMPLE_AMOUNT })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(CashOutApprove { request: call.reference("request")?, pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        let (db, key) = (money.lane(), call.idempotency_key);
        let approve = |_| approvals::decide(db, key, call.msisdn, self.request, true);
        money.with_pin(call.caller(), self.pin.as_ref(), approve).await
    }
}
