//! `bill.validate`: the biller checks an account number (the holder's name), and the
//! fee for an amount.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, wide};
use crate::domain::Amount;
use crate::money::{Money, MoneyError};
use crate::outcome::{OpResult, Outcome as O};

pub struct BillValidate {
    biller: String,
    account: String,
    amount: Amount,
}

impl Operation for BillValidate {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "bill.validate",
        outcomes: &[O::Ok, O::RecipientUnknown, O::AccountInvalid, O::LimitExceeded],
        args: &["biller", "account", "amount"],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: true,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "holder": wide(40), "biller": wide(30), "fee": SAMPLE_AMOUNT, "total": SAMPLE_AMOUNT })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(BillValidate {
            biller: call.arg("biller")?.to_owned(),
            account: call.arg("account")?.to_owned(),
            amount: call.amount("amount")?,
        })
    }

    async fn apply(self, money: &Money, _: &Call<'_>) -> Result<OpResult, MoneyError> {
        money
            .bills()
            .validate(&self.biller, &self.account, self.amount)
            .await?
            .ok_or_else(|| MoneyError::Unavailable(format!("biller {}", self.biller)))
    }
}
