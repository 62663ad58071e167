//! `merchant.owned`: the merchants the dialling number owns, for the merchant menu.

use serde_json::json;

use super::{Call, OpSpec, Operation, wide};
use crate::money::{Money, MoneyError, merchants};
use crate::outcome::{OpResult, Outcome as O};

pub struct MerchantOwned;

impl Operation for MerchantOwned {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "merchant.owned",
        outcomes: &[O::Ok],
        args: &[],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        let merchant =
            json!({ "ref": "MC0123456789ABCDEF", "name": wide(30), "kind": "paybill", "number": "1234567" });
        json!({ "merchants": vec![merchant; 9] })
    }

    fn parse(_: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(MerchantOwned)
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(merchants::owned(money.lane(), call.msisdn).await?)
    }
}
