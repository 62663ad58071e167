//! `customer.register`: opens a wallet for the subscriber dialling, with the PIN chosen
//! and confirmed.

use serde_json::json;

use super::{Call, NAME, OpSpec, Operation, wide};
use crate::domain::{PersonName, Pin};
use crate::money::{Money, MoneyError, StagedPin, VaultError, customers};
use crate::outcome::{OpResult, Outcome as O};

pub struct CustomerRegister {
    staged: StagedPin,
    /// The PIN typed again to confirm the staged one.
    pin: Option<Pin>,
    /// The rest, read after the PIN is confirmed: a mismatch is the subscriber's to
    /// correct, and is answered before anything else the menu passed is judged.
    details: Result<Details, MoneyError>,
}

struct Details {
    first_name: PersonName,
    last_name: PersonName,
    /// The ID as `customer.seal_id` sealed it for this number.
    sealed_id: Vec<u8>,
    language: String,
}

impl Operation for CustomerRegister {
    const SPEC: &'static OpSpec = &OpSpec {
        name: "customer.register",
        outcomes: &[O::Ok, O::PinMismatch, O::AlreadyRegistered, O::IdTaken],
        args: &["first_name", "last_name", "sealed_id", "staged_pin", "language"],
        secrets: &["pin"],
        authenticates: false,
        writes: true,
        calls_out: false,
        movement: None,
    };

    fn sample() -> serde_json::Value {
        json!({ "first_name": wide(NAME), "verifying": true })
    }

    fn parse(call: &Call<'_>) -> Result<Self, MoneyError> {
        let details = || {
            let name = |arg| PersonName::parse(call.arg(arg)?).map_err(|e| call.bad(arg, e.to_string()));
            let sealed_id = crate::bytes::from_hex(call.arg("sealed_id")?).ok_or_else(|| not_sealed(call))?;
            Ok(Details {
                first_name: name("first_name")?,
                last_name: name("last_name")?,
                sealed_id,
                language: call.arg("language")?.to_owned(),
            })
        };
        Ok(CustomerRegister { staged: call.staged("staged_pin")?, pin: call.pin(), details: details() })
    }

    async fn apply(self, money: &Money, call: &Call<'_>) -> Result<OpResult, MoneyError> {
        let s = money.settings();
        if !self.pin.as_ref().is_some_and(|p| self.staged.matches(&s.pins, p)) {
            return Ok(OpResult::bare(O::PinMismatch));
        }
        let details = self.details?;
        let national_id = match s.vault.open(customers::id_in_session(call.msisdn), &details.sealed_id).await
        {
            Ok(id) => id,
            Err(VaultError::Unreadable) => return Err(not_sealed(call)),
            Err(e) => return Err(e.into_sqlx().into()),
        };
        let registration = customers::Registration {
            msisdn: call.msisdn,
            first_name: details.first_name,
            last_name: details.last_name,
            national_id: &national_id,
            pin: &self.staged,
            language: &details.language,
            currency: &s.currency,
        };
        Ok(customers::register(money.pool(), &s.vault, money.identity(), registration).await?)
    }
}

fn not_sealed(call: &Call<'_>) -> MoneyError {
    call.bad("sealed_id", "is not an ID sealed by customer.seal_id for this number")
}
