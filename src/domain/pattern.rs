//! `AccountPattern`: the account numbers a biller or paybill issues, as a regular
//! expression (Rust's syntax) matched against the whole account.

use regex::Regex;

/// A pattern compiled as it is matched: anchored, so one that compiles only alone (a
/// verbose comment that would swallow the anchor after it) is refused when it is set,
/// not by every payment.
#[derive(Clone, Debug)]
pub struct AccountPattern(Regex);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("must be at most {} characters", AccountPattern::MAX)]
    TooLong,
    #[error("is not a regular expression")]
    NotRegex,
}

impl AccountPattern {
    pub const MAX: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, PatternError> {
        if raw.chars().count() > Self::MAX {
            return Err(PatternError::TooLong);
        }
        Regex::new(&format!("^(?:{raw})$")).map(AccountPattern).map_err(|_| PatternError::NotRegex)
    }

    /// Whether `account` is, whole, one of the pattern's.
    pub fn matches(&self, account: &str) -> bool {
        self.0.is_match(account)
    }

    /// Whether `account` is one of stored pattern `raw`'s; a pattern that no longer
    /// compiles takes nothing.
    pub fn admits(raw: &str, account: &str) -> bool {
        Self::parse(raw).is_ok_and(|p| p.matches(account))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_the_whole_account() {
        assert!(AccountPattern::admits("[0-9]{4,8}", "123456"));
        assert!(!AccountPattern::admits("[0-9]{4,8}", "123456789"));
        assert!(!AccountPattern::admits("[0-9]{4,8}", "x1234"));
        assert!(AccountPattern::admits("A|B", "B") && !AccountPattern::admits("A|B", "AB"));
        assert!(!AccountPattern::admits("(", "("), "a pattern that does not compile takes nothing");
        assert_eq!(AccountPattern::parse("(?x)[0-9]+ # member").err(), Some(PatternError::NotRegex));
        assert_eq!(AccountPattern::parse(&"a".repeat(201)).err(), Some(PatternError::TooLong));
    }
}
