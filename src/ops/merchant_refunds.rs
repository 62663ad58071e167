//! `merchant.refunds`: the refunds a merchant's customers asked for, waiting for it.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF, wide};
use crate::money::{Money, MoneyError, reversals};
use crate::outcome::{OpResult, Outcome as O};

pub struct MerchantRefunds {
    merchant: i64,
}

impl Operation for MerchantRefunds {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "merchant.refunds",
        outcomes: &[O::Ok, O::RecipientUnknown],
        args: &["merchant"],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        let first = json!({ "ref": SAMPLE_REF, "amount": SAMPLE_AMOUNT, "customer": wide(23), "date": "31/12 23:59" });
        json!({ "count": 99, "first": first })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(MerchantRefunds { merchant: call.merchant("merchant")? })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(reversals::refunds(money.lane(), call.msisdn, self.merchant).await?)
    }
}
