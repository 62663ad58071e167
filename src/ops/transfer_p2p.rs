//! `transfer.p2p`: sends money to another customer.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF, transfer};
use crate::domain::{Amount, Msisdn, Pin};
use crate::money::{Money, MoneyError, P2p};
use crate::outcome::{OpResult, Outcome as O};

pub struct TransferP2p {
    to: Msisdn,
    amount: Amount,
    pin: Option<Pin>,
}

impl Operation for TransferP2p {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "transfer.p2p",
        outcomes: &[
            O::Ok,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::InsufficientFunds,
            O::LimitExceeded,
            O::RecipientUnknown,
            O::SameAccount,
            O::AccountBlocked,
            O::Conflict,
        ],
        args: &["to", "amount"],
        secrets: &["pin"],
        authenticates: true,
        writes: true,
        calls_out: false,
        movement: transfer("p2p"),
    };

    fn sample() -> serde_json::Value {
        json!({ "ref": SAMPLE_REF, "fee": SAMPLE_AMOUNT, "balance": SAMPLE_AMOUNT })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(TransferP2p { to: call.msisdn("to")?, amount: call.amount("amount")?, pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        if let Some(refused) = call.over_channel_limit(self.amount) {
            return Ok(refused);
        }
        let send = P2p { key: call.idempotency_key, from: call.msisdn, to: &self.to, amount: self.amount };
        money.send_p2p(send, call.caller(), self.pin.as_ref()).await
    }
}
