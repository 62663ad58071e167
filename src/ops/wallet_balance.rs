//! `wallet.balance`: the subscriber's available wallet balance.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT};
use crate::domain::Pin;
use crate::money::{Money, MoneyError, ledger};
use crate::outcome::{OpResult, Outcome as O};

pub struct WalletBalance {
    pin: Option<Pin>,
}

impl Operation for WalletBalance {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "wallet.balance",
        outcomes: &[O::Ok, O::PinInvalid, O::PinLocked, O::NotRegistered, O::AccountBlocked],
        args: &[],
        secrets: &["pin"],
        authenticates: true,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "balance": SAMPLE_AMOUNT, "available": SAMPLE_AMOUNT, "currency": "KES" })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(WalletBalance { pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        let db = money.lane();
        money.with_pin(call.caller(), self.pin.as_ref(), |id| ledger::balance(db, id)).await
    }
}
