//! `DisplayText`: text from outside (billers, partners, operators) made fit for a screen
//! or an SMS: one line of printable characters, nothing that reorders or hides text.

use std::borrow::Cow;
use std::fmt;

/// One line of visible text, at most a given number of characters: no control
/// characters (a newline could draw a fake menu, a NUL breaks a database), no bidi
/// overrides or isolates (which reorder what is shown), no zero-width characters.
#[derive(Clone, PartialEq, Eq)]
pub struct DisplayText(String);

/// Why operator-supplied text was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("must be one line of visible characters (no line breaks, control or direction characters)")]
    Invisible,
}

/// Characters that change how text around them is shown without being seen: bidi
/// marks, embeddings, overrides and isolates, zero-width ones, the byte-order mark.
fn is_hidden(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{061C}' | '\u{FEFF}')
}

/// What [`DisplayText::parse`] takes, as a regular expression both ECMA-262 (JSON
/// Schema) and Python read alike: optional white space at the ends, and between them
/// visible characters and plain spaces, starting and ending with a visible one.
pub const DISPLAY_TEXT_PATTERN: &str = concat!(
    r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
    r"[^\u0000-\u0020\u007F-\u00A0\u061C\u1680\u2000-\u200F\u2028-\u202F\u205F-\u2069\u3000\uFEFF]",
    r"(?:[^\u0000-\u001F\u007F-\u00A0\u061C\u1680\u2000-\u200F\u2028-\u202F\u205F-\u2069\u3000\uFEFF]*",
    r"[^\u0000-\u0020\u007F-\u00A0\u061C\u1680\u2000-\u200F\u2028-\u202F\u205F-\u2069\u3000\uFEFF])?",
    r"[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$",
);

impl DisplayText {
    /// Makes text from a party we cannot refuse (a biller's answer) fit: control
    /// characters become spaces, hidden ones go, spaces are collapsed and the ends
    /// trimmed, and it is cut to `max` characters.
    pub fn clean(raw: &str, max: usize) -> DisplayText {
        let mut out = String::with_capacity(raw.len().min(max.saturating_mul(4)));
        let mut count = 0;
        let mut space = false;
        for c in raw.chars() {
            if is_hidden(c) {
                continue;
            }
            if c.is_control() || c.is_whitespace() {
                space = !out.is_empty();
                continue;
            }
            let extra = usize::from(space) + 1;
            if count + extra > max {
                break;
            }
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
            count += extra;
        }
        DisplayText(out)
    }

    /// Takes text an operator sends (a name in the admin API) only as it is: at most
    /// `max` characters as sent (so that a JSON Schema `maxLength` says the same), and
    /// trimmed, one visible line of at least one character ([`DISPLAY_TEXT_PATTERN`]).
    pub fn parse(raw: &str, max: usize) -> Result<DisplayText, TextError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(TextError::Empty);
        }
        if text.chars().any(|c| c.is_control() || is_hidden(c) || (c.is_whitespace() && c != ' ')) {
            return Err(TextError::Invisible);
        }
        if raw.chars().count() > max {
            return Err(TextError::TooLong(max));
        }
        Ok(DisplayText(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// `raw` as one visible line, borrowed when it is one already (screens and SMS render
/// every value through this as a last line of defence).
pub fn one_line(raw: &str) -> Cow<'_, str> {
    if raw.chars().any(|c| c.is_control() || is_hidden(c) || (c.is_whitespace() && c != ' ')) {
        Cow::Owned(DisplayText::clean(raw, usize::MAX).into_string())
    } else {
        Cow::Borrowed(raw)
    }
}

impl fmt::Display for DisplayText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DisplayText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DisplayText({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fake_menu_from_outside_becomes_one_line() {
        let fake = "John\n1. Yes\r\n2. No\nEND\0";
        assert_eq!(DisplayText::clean(fake, 60).as_str(), "John 1. Yes 2. No END");
        assert_eq!(DisplayText::parse(fake, 60), Err(TextError::Invisible));
    }

    #[test]
    fn direction_and_zero_width_characters_are_dropped_or_refused() {
        let spoof = "Kenya\u{202E}rewoP\u{200B} Ltd\u{2066}x\u{2069}";
        assert_eq!(DisplayText::clean(spoof, 60).as_str(), "KenyarewoP Ltdx");
        assert_eq!(DisplayText::parse(spoof, 60), Err(TextError::Invisible));
        assert_eq!(DisplayText::parse("\u{FEFF}Duka", 60), Err(TextError::Invisible));
    }

    #[test]
    fn cut_to_length_on_characters_and_trimmed() {
        assert_eq!(DisplayText::clean("  Mama   Mboga  ", 60).as_str(), "Mama Mboga");
        assert_eq!(DisplayText::clean("Ñandú Ñandú", 7).as_str(), "Ñandú Ñ");
        assert_eq!(DisplayText::clean("ab  cd", 3).as_str(), "ab");
        assert_eq!(DisplayText::clean("\n\t", 10).as_str(), "");
        assert_eq!(DisplayText::parse(&"x".repeat(31), 30), Err(TextError::TooLong(30)));
        assert_eq!(DisplayText::parse("   ", 30), Err(TextError::Empty));
        assert_eq!(DisplayText::parse(" Duka la Demo ", 30).unwrap().as_str(), "Duka la Demo");
    }

    #[test]
    fn length_counts_what_was_sent() {
        assert_eq!(DisplayText::parse(" Duka ", 5), Err(TextError::TooLong(5)));
        assert_eq!(DisplayText::parse(" Duka ", 6).unwrap().as_str(), "Duka");
    }

    proptest::proptest! {
        /// The pattern the OpenAPI document states is exactly what `parse` takes.
        #[test]
        fn the_pattern_says_what_parse_takes(
            text in r"[ a-z\t\n\u{0}\u{7f}\u{85}\u{a0}\u{61c}\u{1680}\u{2000}-\u{2070}\u{3000}\u{feff}Ñ]{0,6}"
        ) {
            let pattern = regex::Regex::new(DISPLAY_TEXT_PATTERN).unwrap();
            proptest::prop_assert_eq!(pattern.is_match(&text), DisplayText::parse(&text, 100).is_ok(), "{:?}", text);
        }
    }

    #[test]
    fn one_line_borrows_what_is_clean_already() {
        assert!(matches!(one_line("Brian Kamau"), Cow::Borrowed(_)));
        assert_eq!(one_line("Brian\nKamau"), "Brian Kamau");
    }
}
