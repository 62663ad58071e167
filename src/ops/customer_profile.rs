//! `customer.profile`: the subscriber dialling, by name, language and number, and whether
//! their identity is verified.

use serde_json::json;

use super::{Call, NAME, OpSpec, Operation, wide};
use crate::money::{Money, MoneyError};
use crate::outcome::{OpResult, Outcome as O};

pub struct CustomerProfile;

impl Operation for CustomerProfile {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "customer.profile",
        outcomes: &[O::Ok, O::NotRegistered],
        args: &[],
        secrets: &[],
        authenticates: false,
        writes: false,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "first_name": wide(NAME), "last_name": wide(NAME), "language": "sw", "msisdn": "+123456789012345", "verified": false, "upgradable": true })
    }

    fn parse(_: &Call<'_>) -> Result<Self, MoneyError> {
        Ok(CustomerProfile)
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(money.profile(call.msisdn).await?)
    }
}
