//! `customer.verify`: "Upgrade my account" — the subscriber's national ID and names go
//! to the identity provider; a match moves them to the verified tier, with an SMS.

use serde_json::json;

use super::{Call, NAME, OpSpec, Operation, wide};
use crate::domain::{PersonName, Pin};
use crate::money::identity::Asked;
use crate::money::{Money, MoneyError, VaultError, customers};
use crate::outcome::{OpResult, Outcome as O};

pub struct CustomerVerify {
    pin: Option<Pin>,
    first_name: PersonName,
    last_name: PersonName,
    /// The ID as `customer.seal_id` sealed it for this number.
    sealed_id: Vec<u8>,
}

impl Operation for CustomerVerify {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "customer.verify",
        outcomes: &[
            O::Ok,
            O::Pending,
            O::AlreadyVerified,
            O::IdTaken,
            O::PinInvalid,
            O::PinLocked,
            O::NotRegistered,
            O::AccountBlocked,
        ],
        args: &["first_name", "last_name", "sealed_id"],
        secrets: &["pin"],
        authenticates: true,
        writes: true,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "first_name": wide(NAME) })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        let name = |arg| PersonName::parse(call.arg(arg)?).map_err(|e| call.bad(arg, e.to_string()));
        let sealed_id = crate::bytes::from_hex(call.arg("sealed_id")?).ok_or_else(|| not_sealed(call))?;
        Ok(CustomerVerify {
            pin: call.pin(),
            first_name: name("first_name")?,
            last_name: name("last_name")?,
            sealed_id,
        })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        let Some(identity) = money.identity() else {
            return Err(MoneyError::Unavailable("the identity provider (IDENTITY_URL is not set)".into()));
        };
        let vault = &money.settings().vault;
        let national_id = match vault.open(customers::id_in_session(call.msisdn), &self.sealed_id).await {
            Ok(id) => id,
            Err(VaultError::Unreadable) => return Err(not_sealed(call)),
            Err(e) => return Err(e.into_sqlx().into()),
        };
        let (first, last) = (self.first_name.as_str(), self.last_name.as_str());
        money
            .with_pin(call.caller(), self.pin.as_ref(), |customer_id| async move {
                let asked = identity.checks().ask(customer_id, first, last, &national_id).await?;
                Ok::<_, sqlx::Error>(match asked {
                    Asked::Queued(_) => OpResult::new(O::Ok, json!({ "first_name": first })),
                    Asked::Waiting => OpResult::bare(O::Pending),
                    Asked::AlreadyVerified => OpResult::bare(O::AlreadyVerified),
                    Asked::IdTaken => OpResult::bare(O::IdTaken),
                    Asked::Blocked => OpResult::bare(O::AccountBlocked),
                })
            })
            .await
    }
}

fn not_sealed(call: &Call<'_>) -> MoneyError {
    call.bad("sealed_id", "is not an ID sealed by customer.seal_id for this number")
}
