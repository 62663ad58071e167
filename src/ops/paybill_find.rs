//! `paybill.find`: the business behind a business number, and what it calls its
//! customers' accounts.

use serde_json::json;

use super::{Call, OpSpec, Operation, wide};
use crate::domain::MerchantNumber;
use crate::money::merchants::{self, MerchantKind};
use crate::money::{Money, MoneyError};
use crate::outcome::{OpResult, Outcome as O};

pub struct PaybillFind {
    business: MerchantNumber,
}

impl Operation for PaybillFind {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "paybill.find",
        outcomes: &[O::Ok, O::RecipientUnknown, O::AccountBlocked],
        args: &["business"],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "name": wide(30), "store": "", "label": wide(20) })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(PaybillFind { business: call.merchant_number("business")? })
    }

    async fn apply(self, money: &Money, _: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(merchants::find(money.lane(), MerchantKind::Paybill, &self.business).await?)
    }
}
