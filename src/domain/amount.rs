//! `Amount` in integer minor units, and the `Currency` that says how to read and print it.

use std::fmt;

/// A currency and its number of minor-unit digits (KES: 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Currency {
    pub code: String,
    pub exponent: u32,
}

impl Currency {
    pub fn new(code: &str, exponent: u32) -> Self {
        Currency { code: code.to_owned(), exponent }
    }

    fn scale(&self) -> i64 {
        10_i64.pow(self.exponent)
    }

    /// `KES 1,234.50`: what a subscriber reads on a screen or in an SMS.
    pub fn format(&self, minor: i64) -> String {
        format!("{} {}", self.code, self.number(minor))
    }

    /// `1,234.50`: the amount without the currency code, for tight lines.
    pub fn number(&self, minor: i64) -> String {
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        let scale = self.scale().unsigned_abs();
        let (major, frac) = (abs / scale, abs % scale);
        let digits = major.to_string();
        let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if self.exponent == 0 {
            format!("{sign}{grouped}")
        } else {
            format!("{sign}{grouped}.{frac:0width$}", width = self.exponent as usize)
        }
    }
}

/// A strictly positive amount of money in minor units (cents). Never a float.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AmountError {
    #[error("not an amount")]
    Unparsable,
    #[error("more decimal places than the currency has")]
    TooPrecise,
    #[error("the amount must be greater than zero")]
    NotPositive,
    #[error("the amount is too large")]
    TooLarge,
}

impl Amount {
    /// Reads what a subscriber typed, in major units: `500`, `500.5`, `1,000.00`.
    pub fn parse_major(input: &str, currency: &Currency) -> Result<Self, AmountError> {
        let cleaned: String = input.trim().chars().filter(|c| *c != ',').collect();
        let (whole, frac) = match cleaned.split_once('.') {
            Some((w, f)) => (w, f),
            None => (cleaned.as_str(), ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() && frac.is_empty() || !all_digits(whole) || !all_digits(frac) {
            return Err(AmountError::Unparsable);
        }
        if frac.len() > currency.exponent as usize {
            return Err(AmountError::TooPrecise);
        }
        if whole.len() > 15 {
            return Err(AmountError::TooLarge);
        }
        let whole: i64 =
            if whole.is_empty() { 0 } else { whole.parse().map_err(|_| AmountError::Unparsable)? };
        let frac_value: i64 = if frac.is_empty() {
            0
        } else {
            let parsed: i64 = frac.parse().map_err(|_| AmountError::Unparsable)?;
            parsed * 10_i64.pow(currency.exponent - frac.len() as u32)
        };
        let minor = whole
            .checked_mul(currency.scale())
            .and_then(|m| m.checked_add(frac_value))
            .ok_or(AmountError::TooLarge)?;
        Self::from_minor(minor)
    }

    pub fn from_minor(minor: i64) -> Result<Self, AmountError> {
        if minor <= 0 { Err(AmountError::NotPositive) } else { Ok(Amount(minor)) }
    }

    pub fn minor(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kes() -> Currency {
        Currency::new("KES", 2)
    }

    #[test]
    fn parses_major_units_into_minor() {
        assert_eq!(Amount::parse_major("500", &kes()).unwrap().minor(), 50_000);
        assert_eq!(Amount::parse_major("500.5", &kes()).unwrap().minor(), 50_050);
        assert_eq!(Amount::parse_major("1,000.05", &kes()).unwrap().minor(), 100_005);
        assert_eq!(Amount::parse_major(".5", &kes()).unwrap().minor(), 50);
    }

    #[test]
    fn rejects_what_is_not_money() {
        assert_eq!(Amount::parse_major("0", &kes()), Err(AmountError::NotPositive));
        assert_eq!(Amount::parse_major("1.234", &kes()), Err(AmountError::TooPrecise));
        assert_eq!(Amount::parse_major("-5", &kes()), Err(AmountError::Unparsable));
        assert_eq!(Amount::parse_major("1e3", &kes()), Err(AmountError::Unparsable));
        assert_eq!(Amount::parse_major(".", &kes()), Err(AmountError::Unparsable));
        assert_eq!(Amount::parse_major("99999999999999999999", &kes()), Err(AmountError::TooLarge));
    }

    #[test]
    fn formats_with_grouping_and_minor_digits() {
        assert_eq!(kes().format(123_456_789), "KES 1,234,567.89");
        assert_eq!(kes().format(5), "KES 0.05");
        assert_eq!(kes().format(-100_000), "KES -1,000.00");
        assert_eq!(kes().number(-50_700), "-507.00");
        assert_eq!(Currency::new("UGX", 0).format(1_500_000), "UGX 1,500,000");
    }
}
