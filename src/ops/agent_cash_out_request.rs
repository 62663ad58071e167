//! `agent.cash_out_request`: the agent asks a customer to approve a cash-out; the amount
//! and fee are held on the customer's wallet until they answer.

use serde_json::json;

use super::{Call, OpSpec, Operation, SAMPLE_AMOUNT, SAMPLE_REF};
use crate::domain::{Amount, Msisdn, Pin, is_service_code};
use crate::money::{Money, MoneyError, Movement, approvals};
use crate::outcome::{OpResult, Outcome as O};

pub struct AgentCashOutRequest {
    customer: Msisdn,
    store: String,
    amount: Amount,
    /// Where the customer approves, quoted in the SMS asking them to; judged after the
    /// channel's limit, which the subscriber can act on.
    dial: Result<String, MoneyError>,
    pin: Option<Pin>,
}

impl Operation for AgentCashOutRequest {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "agent.cash_out_request",
        outcomes: &[
            O::Ok,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::NotAgent,
            O::StoreUnknown,
            O::InsufficientFunds,
            O::LimitExceeded,
            O::RecipientUnknown,
            O::SameAccount,
            O::AccountBlocked,
            O::Conflict,
        ],
        args: &["customer", "store", "amount", "dial"],
        secrets: &["pin"],
        authenticates: true,
        writes: true,
        calls_out: false,
        // Until the customer decides, only they hear of it.
        movement: Some(Movement::Transfer { kind: "cash_out", held_tells: false }),
    };

    fn sample() -> serde_json::Value {
        json!({ "ref": SAMPLE_REF, "fee": SAMPLE_AMOUNT, "minutes": 1440 })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        let (customer, store, amount) =
            (call.msisdn("customer")?, call.digits("store")?, call.amount("amount")?);
        let dial = call.arg("dial").and_then(|dial| {
            if is_dial_string(dial) {
                Ok(dial.to_owned())
            } else {
                Err(call.bad("dial", "must be a USSD code such as *384*7#"))
            }
        });
        Ok(AgentCashOutRequest { customer, store, amount, dial, pin: call.pin() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        if let Some(refused) = call.over_channel_limit(self.amount) {
            return Ok(refused);
        }
        let dial = self.dial?;
        let request = approvals::Request {
            customer: &self.customer,
            store: &self.store,
            amount: self.amount,
            dial: &dial,
        };
        let (db, key, ttl) = (money.lane(), call.idempotency_key, money.settings().approval_ttl);
        let ask = |_| approvals::request(db, key, call.msisdn, request, ttl);
        money.with_pin(call.caller(), self.pin.as_ref(), ask).await
    }
}

/// A service code short enough to quote in an SMS.
pub(super) fn is_dial_string(text: &str) -> bool {
    text.len() <= 20 && is_service_code(text)
}

#[cfg(test)]
mod tests {
    use super::is_dial_string;

    #[test]
    fn dial_strings_are_star_digits_hash() {
        for good in ["*384#", "*384*7#", "*1*2*3#"] {
            assert!(is_dial_string(good), "{good}");
        }
        for bad in ["384#", "*384", "*#", "**7#", "*384*#", "*38a#", "*384*7#;", "*1234567890123456789#"] {
            assert!(!is_dial_string(bad), "{bad}");
        }
    }
}
