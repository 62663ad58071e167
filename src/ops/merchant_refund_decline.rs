//! `merchant.refund_decline`: the merchant's owner declines a refund its customer asked
//! for; the customer is told.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_REF};
use crate::money::{Money, MoneyError, reversals};
use crate::outcome::{OpResult, Outcome as O};

pub struct MerchantRefundDecline {
    merchant: i64,
    payment: i64,
}

impl Operation for MerchantRefundDecline {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "merchant.refund_decline",
        outcomes: &[O::Ok, O::Expired],
        args: &["merchant", "payment"],
        secrets: &[],
        authenticates: false,
        writes: true,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "ref": SAMPLE_REF })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(MerchantRefundDecline {
            merchant: call.merchant("merchant")?,
            payment: call.reference("payment")?,
        })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(reversals::merchant_decides(money.pool(), call.msisdn, self.merchant, self.payment, false).await?)
    }
}
