//! One call of an op: who asked, under which key, and the arguments a menu rendered,
//! read into typed values once.

use std::collections::BTreeMap;

use serde_json::json;

use super::Op;
use crate::domain::{Amount, MerchantNumber, Msisdn, Pin, Region, Secret};
use crate::money::{Auth, Caller, MoneyError, StagedPin, ledger, merchants};
use crate::outcome::{OpResult, Outcome};

/// An op to run for the subscriber dialling, as the engine asked for it.
#[derive(Debug)]
pub struct Call<'a> {
    pub op: Op,
    pub msisdn: &'a Msisdn,
    /// The channel the hop came through (`hubtel-gh`, `sms:at-ke`).
    pub channel: &'a str,
    /// Unique per op of a journey: a retried hop runs the same op under the same key.
    pub idempotency_key: &'a str,
    /// Rendered by the menu's templates.
    pub args: &'a BTreeMap<String, String>,
    /// Typed in this same hop (a `pin` step, a `sensitive` input).
    pub secrets: &'a [(String, Secret)],
    pub auth: Auth,
    /// The menu's region: numbers in arguments are read as its subscribers write them.
    pub region: Region,
    /// When the hop stops waiting for the op's answer (`None`: nothing waits): an op
    /// that asks a partner keeps within it, so that its own fallback answers in time.
    pub budget: Option<tokio::time::Instant>,
}

impl Call<'_> {
    /// The subscriber asking, as the ledger's PIN check takes them.
    pub fn caller(&self) -> Caller<'_> {
        Caller { msisdn: self.msisdn, channel: self.channel, auth: self.auth }
    }

    pub fn arg(&self, name: &'static str) -> Result<&str, MoneyError> {
        self.args.get(name).map(String::as_str).ok_or_else(|| self.bad(name, "is missing"))
    }

    pub fn bad(&self, arg: &'static str, problem: impl Into<String>) -> MoneyError {
        MoneyError::BadArgument { op: self.op.name(), arg, problem: problem.into() }
    }

    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// The PIN typed in this hop, if one was and it is a PIN at all (a wrong one is
    /// the ledger's to count).
    pub fn pin(&self) -> Option<Pin> {
        self.secret("pin").and_then(|s| Pin::parse(s.expose()).ok())
    }

    pub fn msisdn(&self, name: &'static str) -> Result<Msisdn, MoneyError> {
        Msisdn::parse(self.arg(name)?, self.region).map_err(|e| self.bad(name, e.to_string()))
    }

    pub fn amount(&self, name: &'static str) -> Result<Amount, MoneyError> {
        let raw = self.arg(name)?;
        let minor: i64 = raw.parse().map_err(|_| self.bad(name, "is not an amount in minor units"))?;
        Amount::from_minor(minor).map_err(|e| self.bad(name, e.to_string()))
    }

    /// An agent or store number: digits only.
    pub fn digits(&self, name: &'static str) -> Result<String, MoneyError> {
        let raw = self.arg(name)?;
        if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.bad(name, "must be digits"));
        }
        Ok(raw.to_owned())
    }

    /// A till or business number.
    pub fn merchant_number(&self, name: &'static str) -> Result<MerchantNumber, MoneyError> {
        MerchantNumber::parse(self.arg(name)?).map_err(|e| self.bad(name, e.to_string()))
    }

    /// A customer's account with a business: 1 to 20 letters, digits, `-`, `.` or `/`.
    pub fn account(&self, name: &'static str) -> Result<String, MoneyError> {
        let raw = self.arg(name)?.trim();
        let fits = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'/');
        if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(fits) {
            return Err(self.bad(name, "must be 1 to 20 letters, digits, -, . or /"));
        }
        Ok(raw.to_owned())
    }

    /// A merchant named by its reference (`merchant: "{{ merchant.ref }}"`).
    pub fn merchant(&self, name: &'static str) -> Result<i64, MoneyError> {
        merchants::parse_merchant_ref(self.arg(name)?)
            .ok_or_else(|| self.bad(name, "is not a merchant reference"))
    }

    /// A transfer named by its reference (`request: "{{ approval.ref }}"`).
    pub fn reference(&self, name: &'static str) -> Result<i64, MoneyError> {
        ledger::parse_reference(self.arg(name)?).ok_or_else(|| self.bad(name, "is not a transfer reference"))
    }

    /// A new PIN as `pin.stage` handed it back.
    pub fn staged(&self, name: &'static str) -> Result<StagedPin, MoneyError> {
        StagedPin::decode(self.arg(name)?).ok_or_else(|| self.bad(name, "is not a staged PIN"))
    }

    /// A movement above what the channel that vouched for the caller allows (SMS).
    pub fn over_channel_limit(&self, amount: Amount) -> Option<OpResult> {
        match self.auth {
            Auth::Vouched { max_amount } if amount.minor() > max_amount => {
                Some(OpResult::new(Outcome::LimitExceeded, json!({ "max": max_amount })))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{Op, TransferQuote};

    fn call<'a>(args: &'a BTreeMap<String, String>, msisdn: &'a Msisdn, region: &str) -> Call<'a> {
        Call {
            op: Op::of::<TransferQuote>(),
            msisdn,
            channel: "test",
            idempotency_key: "k",
            args,
            secrets: &[],
            auth: Auth::Pin,
            region: Region::parse(region).unwrap(),
            budget: None,
        }
    }

    #[test]
    fn numbers_in_arguments_are_read_in_the_menus_region() {
        let me = Msisdn::parse("+254700000001", Region::parse("KE").unwrap()).unwrap();
        let args = BTreeMap::from([("to".to_owned(), "0712345678".to_owned())]);
        assert_eq!(call(&args, &me, "TZ").msisdn("to").unwrap().as_e164(), "+255712345678");
        assert_eq!(call(&args, &me, "KE").msisdn("to").unwrap().as_e164(), "+254712345678");
    }

    #[test]
    fn an_unusable_argument_names_the_op_and_the_argument() {
        let me = Msisdn::parse("+254700000001", Region::parse("KE").unwrap()).unwrap();
        let args = BTreeMap::from([("amount".to_owned(), "12.50".to_owned())]);
        let c = call(&args, &me, "KE");
        let e = c.amount("amount").unwrap_err().to_string();
        assert_eq!(e, "op `transfer.quote`: argument `amount` is not an amount in minor units");
        assert_eq!(c.msisdn("to").unwrap_err().to_string(), "op `transfer.quote`: argument `to` is missing");
    }
}
