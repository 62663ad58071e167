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
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        sample_statement("p2p")
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(WalletStatement { pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        money
            .with_pin(call.caller(), self.pin.as_ref(), |id| async move {
                // The PIN is checked on the primary; the movements may be read on a replica.
                // A replica failing mid-read (a recovery conflict, a restart) leaves
                // the read to the primary.
                match money.replica_read().await {
                    Some(replica) => match ledger::statement(replica, id).await {
                        Ok(read) => Ok(read),
                        Err(_) => ledger::statement(money.lane(), id).await,
                    },
                    None => ledger::statement(money.lane(), id).await,
                }
            })
            .await
    }
}
