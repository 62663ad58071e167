//! `merchant.payments`: a merchant's last five payments, behind the owner's PIN.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF};
use crate::domain::Pin;
use crate::money::{Money, MoneyError, merchants};
use crate::outcome::{OpResult, Outcome as O};

pub struct MerchantPayments {
    merchant: i64,
    pin: Option<Pin>,
}

impl Operation for MerchantPayments {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "merchant.payments",
        outcomes: &[O::Ok, O::PinInvalid, O::PinLocked, O::NotRegistered, O::RecipientUnknown],
        args: &["merchant"],
        secrets: &["pin"],
        authenticates: true,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        let entry = json!({
            "date": "31/12", "amount": SAMPLE_AMOUNT, "number": "x".repeat(20), "customer": "+999999***999",
            "ref": SAMPLE_REF,
        });
        json!({ "entries": vec![entry; 5] })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(MerchantPayments { merchant: call.merchant("merchant")?, pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        let read = |_| merchants::payments(money.lane(), call.msisdn, self.merchant);
        money.with_pin(call.caller(), self.pin.as_ref(), read).await
    }
}
