//! `airtime.offer`: whether airtime can be bought for a number, and the amounts offered.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, wide};
use crate::domain::Msisdn;
use crate::money::{Money, MoneyError};
use crate::outcome::{OpResult, Outcome as O};

pub struct AirtimeOffer {
    to: Msisdn,
}

impl Operation for AirtimeOffer {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "airtime.offer",
        outcomes: &[O::Ok, O::RecipientUnknown, O::AccountInvalid],
        args: &["to"],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "provider": wide(30), "to": "+123456789012345", "amounts": vec![SAMPLE_AMOUNT; 8] })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(AirtimeOffer { to: call.msisdn("to")? })
    }

    async fn apply(self, money: &Money, _: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(money.bills().airtime_offer(money.read_pool().await, &self.to).await?)
    }
}
