//! `transfer.quote`: the payee's name and the fee, for the confirmation screen.

use serde_json::json;

use super::{Call, NAME, OpSpec, Operation, SAMPLE_AMOUNT, wide};
use crate::domain::{Amount, Msisdn};
use crate::money::{Money, MoneyError, ledger};
use crate::outcome::{OpResult, Outcome as O};

pub struct TransferQuote {
    to: Msisdn,
    amount: Amount,
}

impl Operation for TransferQuote {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "transfer.quote",
        outcomes: &[O::Ok, O::RecipientUnknown, O::SameAccount, O::LimitExceeded],
        args: &["to", "amount"],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "name": wide(2 * NAME + 1), "fee": SAMPLE_AMOUNT, "total": SAMPLE_AMOUNT, "max": SAMPLE_AMOUNT })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(TransferQuote { to: call.msisdn("to")?, amount: call.amount("amount")? })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(ledger::quote(money.lane(), call.msisdn, &self.to, self.amount).await?)
    }
}
