//! `PersonName`: a first or last name as typed on a keypad, tidied into title case.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct PersonName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a name is 2 to {} letters (spaces, hyphens and apostrophes allowed)", PersonName::MAX)]
pub struct NameError;

impl PersonName {
    pub const MAX: usize = 30;

    /// `"  mary-ANNE "` → `Mary-Anne`.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let words: Vec<&str> = input.split_whitespace().collect();
        let joined = words.join(" ");
        let letters = joined.chars().filter(|c| c.is_alphabetic()).count();
        let allowed = joined.chars().all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '\''));
        if !allowed || letters < 2 || joined.chars().count() > Self::MAX {
            return Err(NameError);
        }
        let mut out = String::with_capacity(joined.len());
        let mut start = true;
        for c in joined.chars() {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = matches!(c, ' ' | '-' | '\'');
        }
        // Changing case can lengthen a name (`ﬃ` is `FFI` in capitals): the limit holds
        // for what is stored.
        if out.chars().count() > Self::MAX {
            return Err(NameError);
        }
        Ok(PersonName(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonName({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_grows_past_the_limit_in_title_case_is_refused() {
        let input = format!("\u{FB03}{}", "\u{130}".repeat(29));
        assert_eq!(input.chars().count(), PersonName::MAX);
        assert_eq!(PersonName::parse(&input), Err(NameError));
    }

    #[test]
    fn tidies_case_and_spaces() {
        assert_eq!(PersonName::parse("  mary-ANNE ").unwrap().as_str(), "Mary-Anne");
        assert_eq!(PersonName::parse("o'neil  wa  kamau").unwrap().as_str(), "O'Neil Wa Kamau");
        assert_eq!(PersonName::parse("WANJIRŨ").unwrap().as_str(), "Wanjirũ");
    }

    #[test]
    fn refuses_digits_symbols_and_extremes() {
        for bad in ["", "a", "j0hn", "x@y", "--", &"a".repeat(31)] {
            assert_eq!(PersonName::parse(bad), Err(NameError), "{bad}");
        }
    }
}
