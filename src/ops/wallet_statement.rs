//! `wallet.statement`: the last five movements of the wallet.

use super::{Call, OpSpec, Operation, PIN_CHECKED, sample_statement};
use crate::domain::Pin;
use crate::money::{Money, MoneyError, ledger};
use crate::outcome::OpResult;

pub struct WalletStatement {
    pin: Option<Pin>,
}

impl Operation for WalletStatement {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "wallet.statement",
        outcomes: &PIN_CHECKED,
        args: &[],
        secrets: &["pin"],
        authenticates: true,
        writes: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        sample_statement("p2p")
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(WalletStatement { pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        let db = money.lane();
        money.with_pin(call.caller(), self.pin.as_ref(), |id| ledger::statement(db, id)).await
    }
}
