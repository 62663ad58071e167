//! `bill.billers`: the billers a customer can pay.

use serde_json::json;

use super::{Call, OpSpec, Operation, wide};
use crate::money::{Money, MoneyError};
use crate::outcome::{OpResult, Outcome as O};

pub struct BillBillers;

impl Operation for BillBillers {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "bill.billers",
        outcomes: &[O::Ok],
        args: &[],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        let biller = json!({ "code": "ABCDEFGHIJKL", "name": wide(30), "label": wide(30) });
        json!({ "billers": vec![biller; 9] })
    }

    fn parse(_: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(BillBillers)
    }

    async fn apply(self, money: &Money, _: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(money.bills().catalogue(money.read_pool().await).await?)
    }
}
