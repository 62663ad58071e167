//! `merchant.balance`: a merchant's settlement balance and today's payments, behind the
//! owner's PIN.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT};
use crate::domain::Pin;
use crate::money::{Money, MoneyError, merchants};
use crate::outcome::{OpResult, Outcome as O};

pub struct MerchantBalance {
    merchant: i64,
    pin: Option<Pin>,
}

impl Operation for MerchantBalance {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "merchant.balance",
        outcomes: &[O::Ok, O::PinInvalid, O::PinLocked, O::NotRegistered, O::RecipientUnknown],
        args: &["merchant"],
        secrets: &["pin"],
        authenticates: true,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "balance": SAMPLE_AMOUNT, "today_count": 99_999, "today_total": SAMPLE_AMOUNT })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(MerchantBalance { merchant: call.merchant("merchant")?, pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        let read = |_| merchants::balance(money.lane(), call.msisdn, self.merchant);
        money.with_pin(call.caller(), self.pin.as_ref(), read).await
    }
}
