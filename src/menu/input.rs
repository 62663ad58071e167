//! Parsing what a subscriber typed on an `input` screen into a typed session value.

use serde_json::Value;

use super::messages::Message;
use super::model::InputKind;
use crate::domain::{Amount, Currency, Msisdn, PersonName, Region};

/// The checks an `input` step declares, with amounts already in minor units.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    /// Anchored at both ends by the compiler.
    pub pattern: Option<regex::Regex>,
}

/// Why an input was refused: the built-in line to show, unless the step overrides it.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejected(pub Message);

/// Parses `raw` as `kind`. Amounts are stored in minor units, numbers in E.164,
/// digits as a string (leading zeros matter in account numbers).
pub fn parse(
    kind: InputKind,
    rules: &Rules,
    raw: &str,
    region: Region,
    currency: &Currency,
) -> Result<Value, Rejected> {
    let raw = raw.trim();
    match kind {
        InputKind::Digits => {
            let ok_chars = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit());
            let ok_len = rules.min_length.is_none_or(|m| raw.len() >= m)
                && rules.max_length.is_none_or(|m| raw.len() <= m);
            if !ok_chars || !ok_len || !matches_pattern(raw, rules) {
                return Err(Rejected(Message::InvalidDigits));
            }
            if rules.min.is_some() || rules.max.is_some() {
                let value: i64 = raw.parse().map_err(|_| Rejected(Message::InvalidDigits))?;
                if !in_range(value, rules) {
                    return Err(Rejected(Message::InvalidDigits));
                }
            }
            Ok(Value::String(raw.to_owned()))
        }
        InputKind::Amount => {
            let amount = Amount::parse_major(raw, currency).map_err(|_| Rejected(Message::InvalidAmount))?;
            if !in_range(amount.minor(), rules) {
                return Err(Rejected(Message::InvalidAmount));
            }
            Ok(Value::from(amount.minor()))
        }
        InputKind::Msisdn => Msisdn::parse(raw, region)
            .map(|m| Value::String(m.as_e164().to_owned()))
            .map_err(|_| Rejected(Message::InvalidMsisdn)),
        InputKind::Name => {
            let name = PersonName::parse(raw).map_err(|_| Rejected(Message::InvalidName))?;
            let len = name.as_str().chars().count();
            if rules.min_length.is_some_and(|m| len < m) || rules.max_length.is_some_and(|m| len > m) {
                return Err(Rejected(Message::InvalidName));
            }
            Ok(Value::String(name.as_str().to_owned()))
        }
        InputKind::Text => {
            let len = raw.chars().count();
            let ok_len = len >= rules.min_length.unwrap_or(1) && rules.max_length.is_none_or(|m| len <= m);
            if !ok_len || !matches_pattern(raw, rules) {
                return Err(Rejected(Message::InvalidText));
            }
            Ok(Value::String(raw.to_owned()))
        }
    }
}

fn matches_pattern(raw: &str, rules: &Rules) -> bool {
    rules.pattern.as_ref().is_none_or(|p| p.is_match(raw))
}

fn in_range(value: i64, rules: &Rules) -> bool {
    rules.min.is_none_or(|m| value >= m) && rules.max.is_none_or(|m| value <= m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ke() -> Region {
        Region::parse("KE").unwrap()
    }
    fn kes() -> Currency {
        Currency::new("KES", 2)
    }

    #[test]
    fn amount_in_minor_units_within_bounds() {
        let rules = Rules { min: Some(1_000), max: Some(25_000_000), ..Rules::default() };
        let p = |s| parse(InputKind::Amount, &rules, s, ke(), &kes());
        assert_eq!(p("500"), Ok(Value::from(50_000)));
        assert_eq!(p("9.99"), Err(Rejected(Message::InvalidAmount)));
        assert_eq!(p("250001"), Err(Rejected(Message::InvalidAmount)));
        assert_eq!(p("abc"), Err(Rejected(Message::InvalidAmount)));
    }

    #[test]
    fn digits_keep_leading_zeros_and_check_length() {
        let rules = Rules { min_length: Some(3), max_length: Some(5), ..Rules::default() };
        let p = |s| parse(InputKind::Digits, &rules, s, ke(), &kes());
        assert_eq!(p("007"), Ok(Value::from("007")));
        assert_eq!(p("12"), Err(Rejected(Message::InvalidDigits)));
        assert_eq!(p("123456"), Err(Rejected(Message::InvalidDigits)));
        assert_eq!(p("12*3"), Err(Rejected(Message::InvalidDigits)));
    }

    #[test]
    fn names_are_tidied() {
        let p = |s| parse(InputKind::Name, &Rules::default(), s, ke(), &kes());
        assert_eq!(p("AMINA"), Ok(Value::from("Amina")));
        assert_eq!(p("4mina"), Err(Rejected(Message::InvalidName)));
    }

    #[test]
    fn text_is_checked_against_length_and_pattern() {
        let rules = Rules {
            max_length: Some(8),
            pattern: Some(regex::Regex::new("^(?:[A-Z]{2}[0-9]+)$").unwrap()),
            ..Rules::default()
        };
        let p = |s| parse(InputKind::Text, &rules, s, ke(), &kes());
        assert_eq!(p(" KE1234 "), Ok(Value::from("KE1234")));
        assert_eq!(p("ke1234"), Err(Rejected(Message::InvalidText)));
        assert_eq!(p("KE1234567"), Err(Rejected(Message::InvalidText)));
        assert_eq!(p(""), Err(Rejected(Message::InvalidText)));
    }

    #[test]
    fn msisdn_is_normalised_to_e164() {
        let p = |s| parse(InputKind::Msisdn, &Rules::default(), s, ke(), &kes());
        assert_eq!(p("0712345678"), Ok(Value::from("+254712345678")));
        assert_eq!(p("12"), Err(Rejected(Message::InvalidMsisdn)));
    }
}
