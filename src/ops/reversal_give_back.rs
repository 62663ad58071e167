//! `reversal.give_back`: the recipient gives a send asked back now, with their PIN.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_REF};
use crate::domain::Pin;
use crate::money::{Money, MoneyError, reversals};
use crate::outcome::{OpResult, Outcome as O};

pub struct ReversalGiveBack {
    send: i64,
    pin: Option<Pin>,
}

impl Operation for ReversalGiveBack {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "reversal.give_back",
        outcomes: &[O::Ok, O::PinInvalid, O::PinLocked, O::NotRegistered, O::Expired, O::AccountBlocked],
        args: &["send"],
        secrets: &["pin"],
        authenticates: true,
        writes: true,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "ref": SAMPLE_REF })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(ReversalGiveBack { send: call.reference("send")?, pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        let give = |_| reversals::give_back(money.pool(), call.msisdn, self.send);
        money.with_pin(call.caller(), self.pin.as_ref(), give).await
    }
}
