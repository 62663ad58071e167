//! `customer.seal_id`: checks that an ID number is free and seals it for registration.

use serde_json::json;

use super::{Call, OpSpec, Operation};
use crate::domain::Secret;
use crate::money::{Money, MoneyError, customers};
use crate::outcome::{OpResult, Outcome as O};

pub struct CustomerSealId {
    national_id: Secret,
}

impl Operation for CustomerSealId {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "customer.seal_id",
        outcomes: &[O::Ok, O::IdTaken],
        args: &[],
        secrets: &["national_id"],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "sealed": "0".repeat(120) })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        let id = call.secret("national_id").map(Secret::expose).unwrap_or_default();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(call.bad("national_id", "must be letters and digits"));
        }
        Ok(CustomerSealId { national_id: Secret::new(id) })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        let vault = &money.settings().vault;
        Ok(customers::seal_id(money.lane(), vault, call.msisdn, self.national_id.expose()).await?)
    }
}
