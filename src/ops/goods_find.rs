//! `goods.find`: the merchant and store behind a till number, shown before the amount
//! so that a wrong till is seen before money moves.

use serde_json::json;

use super::{Call, OpSpec, Operation, wide};
use crate::domain::MerchantNumber;
use crate::money::merchants::{self, MerchantKind};
use crate::money::{Money, MoneyError};
use crate::outcome::{OpResult, Outcome as O};

pub struct GoodsFind {
    till: MerchantNumber,
}

impl Operation for GoodsFind {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "goods.find",
        outcomes: &[O::Ok, O::RecipientUnknown, O::AccountBlocked],
        args: &["till"],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "name": wide(30), "store": wide(30), "label": "" })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(GoodsFind { till: call.merchant_number("till")? })
    }

    async fn apply(self, money: &Money, _: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(merchants::find(money.lane(), MerchantKind::Till, &self.till).await?)
    }
}
