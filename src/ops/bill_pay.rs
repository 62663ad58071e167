//! `bill.pay`: pays a bill; held, sent to the biller, posted or voided on its answer.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF, transfer, wide};
use crate::domain::{Amount, Pin};
use crate::money::{Money, MoneyError, bills::Bill};
use crate::outcome::{OpResult, Outcome as O};

pub struct BillPay {
    biller: String,
    account: String,
    /// The holder's name the biller gave when the account was validated.
    holder: String,
    amount: Amount,
    pin: Option<Pin>,
}

impl Operation for BillPay {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "bill.pay",
        outcomes: &[
            O::Ok,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::RecipientUnknown,
            O::AccountInvalid,
            O::InsufficientFunds,
            O::LimitExceeded,
            O::AccountBlocked,
            O::Conflict,
            O::BillRejected,
            O::Pending,
        ],
        args: &["biller", "account", "amount", "holder"],
        secrets: &["pin"],
        authenticates: true,
        writes: true,
        calls_out: false,
        movement: transfer("bill"),
    };

    fn sample() -> serde_json::Value {
        json!({
            "ref": SAMPLE_REF, "fee": SAMPLE_AMOUNT, "balance": SAMPLE_AMOUNT,
            "token": "x".repeat(40), "receipt": "x".repeat(24), "reason": wide(60),
        })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(BillPay {
            biller: call.arg("biller")?.to_owned(),
            account: call.arg("account")?.to_owned(),
            holder: call.arg("holder")?.to_owned(),
            amount: call.amount("amount")?,
            pin: call.pin(),
        })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        if let Some(refused) = call.over_channel_limit(self.amount) {
            return Ok(refused);
        }
        let bill =
            Bill { biller: &self.biller, account: &self.account, holder: &self.holder, amount: self.amount };
        let pay = |_| money.bills().pay(call.idempotency_key, call.msisdn, bill);
        money.with_pin(call.caller(), self.pin.as_ref(), pay).await
    }
}
