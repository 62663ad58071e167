//! `paybill.quote`: the account checked against the business's pattern (and by the
//! business itself, where it has a validation URL), and the fee the customer pays, for
//! the confirmation screen.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, wide};
use crate::domain::{Amount, MerchantNumber};
use crate::money::merchants::{self, MerchantKind, MerchantPayment};
use crate::money::{Money, MoneyError};
use crate::outcome::{OpResult, Outcome as O};

pub struct PaybillQuote {
    business: MerchantNumber,
    account: String,
    amount: Amount,
}

impl Operation for PaybillQuote {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "paybill.quote",
        outcomes: &[
            O::Ok,
            O::RecipientUnknown,
            O::AccountBlocked,
            O::AccountInvalid,
            O::LimitExceeded,
            O::BillRejected,
        ],
        args: &["business", "account", "amount"],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: true,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({
            "name": wide(30), "fee": SAMPLE_AMOUNT, "total": SAMPLE_AMOUNT, "max": SAMPLE_AMOUNT, "reason": wide(60),
        })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(PaybillQuote {
            business: call.merchant_number("business")?,
            account: call.account("account")?,
            amount: call.amount("amount")?,
        })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        let payment = MerchantPayment {
            key: call.idempotency_key,
            from: call.msisdn,
            kind: MerchantKind::Paybill,
            number: &self.business,
            account: Some(&self.account),
            amount: self.amount,
        };
        merchants::quote(money, &payment, call.budget).await
    }
}
