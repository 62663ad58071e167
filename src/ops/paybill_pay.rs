//! `paybill.pay`: the customer's wallet to a business, for their account there; the
//! fee paid as the business chose (the customer, the business, or half each).

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF, transfer};
use crate::domain::{Amount, MerchantNumber, Pin};
use crate::money::merchants::{self, MerchantKind, MerchantPayment};
use crate::money::{Money, MoneyError};
use crate::outcome::{OpResult, Outcome as O};

pub struct PaybillPay {
    business: MerchantNumber,
    account: String,
    amount: Amount,
    pin: Option<Pin>,
}

impl Operation for PaybillPay {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "paybill.pay",
        outcomes: &[
            O::Ok,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::InsufficientFunds,
            O::LimitExceeded,
            O::RecipientUnknown,
            O::AccountInvalid,
            O::SameAccount,
            O::AccountBlocked,
            O::Conflict,
        ],
        args: &["business", "account", "amount"],
        secrets: &["pin"],
        authenticates: true,
        writes: true,
        calls_out: false,
        movement: transfer("merchant"),
    };

    fn sample() -> serde_json::Value {
        json!({ "ref": SAMPLE_REF, "fee": SAMPLE_AMOUNT, "balance": SAMPLE_AMOUNT })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(PaybillPay {
            business: call.merchant_number("business")?,
            account: call.account("account")?,
            amount: call.amount("amount")?,
            pin: call.pin(),
        })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        if let Some(refused) = call.over_channel_limit(self.amount) {
            return Ok(refused);
        }
        let payment = MerchantPayment {
            key: call.idempotency_key,
            from: call.msisdn,
            kind: MerchantKind::Paybill,
            number: &self.business,
            account: Some(&self.account),
            amount: self.amount,
        };
        let pay = |_| merchants::pay(money.lane(), &payment);
        money.with_pin(call.caller(), self.pin.as_ref(), pay).await
    }
}
