//! `MerchantNumber`: a till or business number, as subscribers type it.

use std::fmt;

/// Five to seven digits: what a till or a paybill is known by.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MerchantNumber(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a till or business number is 5 to 7 digits")]
pub struct MerchantNumberError;

impl MerchantNumber {
    pub fn parse(input: &str) -> Result<Self, MerchantNumberError> {
        let input = input.trim();
        if (5..=7).contains(&input.len()) && input.bytes().all(|b| b.is_ascii_digit()) {
            Ok(MerchantNumber(input.to_owned()))
        } else {
            Err(MerchantNumberError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MerchantNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MerchantNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MerchantNumber({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_to_seven_digits() {
        assert_eq!(MerchantNumber::parse(" 512345 ").unwrap().as_str(), "512345");
        for bad in ["1234", "12345678", "12a45", "", "+12345"] {
            assert_eq!(MerchantNumber::parse(bad), Err(MerchantNumberError), "{bad}");
        }
    }
}
