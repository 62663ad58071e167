//! `airtime.buy`: tops up a number with airtime; held, sent to the airtime provider,
//! posted or voided on its answer.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF, transfer, wide};
use crate::domain::{Amount, Msisdn, Pin};
use crate::money::{Money, MoneyError};
use crate::outcome::{OpResult, Outcome as O};

pub struct AirtimeBuy {
    to: Msisdn,
    amount: Amount,
    pin: Option<Pin>,
}

impl Operation for AirtimeBuy {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "airtime.buy",
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
        args: &["to", "amount"],
        secrets: &["pin"],
        authenticates: true,
        writes: true,
        calls_out: false,
        movement: transfer("bill"),
    };

    fn sample() -> serde_json::Value {
        json!({
            "ref": SAMPLE_REF, "fee": SAMPLE_AMOUNT, "balance": SAMPLE_AMOUNT,
            "token": null, "receipt": "x".repeat(24), "reason": wide(60),
        })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(AirtimeBuy { to: call.msisdn("to")?, amount: call.amount("amount")?, pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        if let Some(refused) = call.over_channel_limit(self.amount) {
            return Ok(refused);
        }
        let buy = |_| money.bills().top_up(call.idempotency_key, call.msisdn, &self.to, self.amount);
        money.with_pin(call.caller(), self.pin.as_ref(), buy).await
    }
}
