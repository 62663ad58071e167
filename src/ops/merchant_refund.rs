//! `merchant.refund`: the merchant's owner refunds a payment its customer asked back,
//! with the PIN: the amount from its settlement to the customer's wallet.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_REF};
use crate::domain::Pin;
use crate::money::{Money, MoneyError, reversals};
use crate::outcome::{OpResult, Outcome as O};

pub struct MerchantRefund {
    merchant: i64,
    payment: i64,
    pin: Option<Pin>,
}

impl Operation for MerchantRefund {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "merchant.refund",
        outcomes: &[
            O::Ok,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::InsufficientFunds,
            O::AccountBlocked,
            O::Expired,
        ],
        args: &["merchant", "payment"],
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
        Ok(MerchantRefund {
            merchant: call.merchant("merchant")?,
            payment: call.reference("payment")?,
            pin: call.pin(),
        })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        let refund =
            |_| reversals::merchant_decides(money.pool(), call.msisdn, self.merchant, self.payment, true);
        money.with_pin(call.caller(), self.pin.as_ref(), refund).await
    }
}
