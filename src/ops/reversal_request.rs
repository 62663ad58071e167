//! `reversal.request`: the sender asks for a send back; the amount is held on the
//! recipient's wallet for the dispute window, or the request queued if it was spent.

use serde_json::json;

use super::agent_cash_out_request::is_dial_string;
use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF};
use crate::domain::Pin;
use crate::money::{Money, MoneyError, reversals};
use crate::outcome::{OpResult, Outcome as O};

pub struct ReversalRequest {
    /// The send asked back.
    send: i64,
    /// Where the recipient disputes, for their SMS (`*384*7#`).
    dial: String,
    pin: Option<Pin>,
}

impl Operation for ReversalRequest {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "reversal.request",
        outcomes: &[
            O::Ok,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::RecipientUnknown,
            O::AccountBlocked,
        ],
        args: &["send", "dial"],
        secrets: &["pin"],
        authenticates: true,
        writes: true,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "ref": SAMPLE_REF, "state": "queued", "because": "disputed", "amount": SAMPLE_AMOUNT, "hours": 720 })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        let dial = call.arg("dial")?;
        if !is_dial_string(dial) {
            return Err(call.bad("dial", "must be a USSD code such as *384*7#"));
        }
        Ok(ReversalRequest { send: call.reference("send")?, dial: dial.to_owned(), pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        let window = money.settings().reversal_dispute;
        let ask = |_| reversals::request(money.pool(), call.msisdn, self.send, window, &self.dial);
        money.with_pin(call.caller(), self.pin.as_ref(), ask).await
    }
}
