//! `customer.set_language`: remembers the subscriber's language.

use serde_json::json;

use super::{Call, OpSpec, Operation};
use crate::money::{Money, MoneyError};
use crate::outcome::{OpResult, Outcome as O};

pub struct CustomerSetLanguage {
    language: String,
}

impl Operation for CustomerSetLanguage {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "customer.set_language",
        outcomes: &[O::Ok, O::NotRegistered],
        args: &["language"],
        secrets: &[],
        authenticates: false,
        writes: true,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "language": "sw" })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        let language = call.arg("language")?;
        if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(call.bad("language", "must be a language code such as en"));
        }
        Ok(CustomerSetLanguage { language: language.to_owned() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        Ok(money.set_language(call.msisdn, &self.language).await?)
    }
}
