//! `merchant.withdraw`: a merchant's settlement to its owner's wallet, free, behind the
//! owner's PIN.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF, transfer};
use crate::domain::{Amount, Pin};
use crate::money::{Money, MoneyError, merchants};
use crate::outcome::{OpResult, Outcome as O};

pub struct MerchantWithdraw {
    merchant: i64,
    amount: Amount,
    pin: Option<Pin>,
}

impl Operation for MerchantWithdraw {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "merchant.withdraw",
        outcomes: &[
            O::Ok,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::RecipientUnknown,
            O::InsufficientFunds,
            O::LimitExceeded,
            O::AccountBlocked,
            O::Conflict,
        ],
        args: &["merchant", "amount"],
        secrets: &["pin"],
        authenticates: true,
        writes: true,
        calls_out: false,
        movement: transfer("merchant_withdrawal"),
    };

    fn sample() -> serde_json::Value {
        json!({ "ref": SAMPLE_REF, "settlement": SAMPLE_AMOUNT, "balance": SAMPLE_AMOUNT })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(MerchantWithdraw {
            merchant: call.merchant("merchant")?,
            amount: call.amount("amount")?,
            pin: call.pin(),
        })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        if let Some(refused) = call.over_channel_limit(self.amount) {
            return Ok(refused);
        }
        let (key, owner) = (call.idempotency_key, call.msisdn);
        let take = |_| merchants::withdraw(money.lane(), key, owner, self.merchant, self.amount);
        money.with_pin(call.caller(), self.pin.as_ref(), take).await
    }
}
