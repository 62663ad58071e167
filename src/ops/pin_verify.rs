//! `pin.verify`: checks the subscriber's current PIN, with the lockout.

use super::{Call, OpSpec, Operation, PIN_CHECKED};
use crate::domain::Pin;
use crate::money::{Money, MoneyError};
use crate::outcome::{OpResult, Outcome as O};

pub struct PinVerify {
    pin: Option<Pin>,
}

impl Operation for PinVerify {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "pin.verify",
        outcomes: &PIN_CHECKED,
        args: &[],
        secrets: &["pin"],
        authenticates: true,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        serde_json::Value::Null
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(PinVerify { pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        let ok = |_| async { Ok::<_, MoneyError>(OpResult::bare(O::Ok)) };
        money.with_pin(call.caller(), self.pin.as_ref(), ok).await
    }
}
