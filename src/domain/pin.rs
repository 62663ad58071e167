//! `Pin`: four digits that exist only for the hop that carries them and never print.

use std::fmt;

use super::Secret;

/// A syntactically valid PIN: a [`Secret`] of four digits. No `Display`, no `Serialize`,
/// a redacted `Debug`, overwritten when dropped, so it cannot reach a log line, a
/// session record or a transcript by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(Secret);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a PIN is exactly {} digits", Pin::LEN)]
pub struct PinError;

impl Pin {
    pub const LEN: usize = 4;

    pub fn parse(input: &str) -> Result<Self, PinError> {
        let input = input.trim();
        if input.len() == Self::LEN && input.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Pin(Secret::new(input)))
        } else {
            Err(PinError)
        }
    }

    /// The digits, for hashing only.
    pub fn expose(&self) -> &[u8] {
        self.0.expose().as_bytes()
    }

    /// The PIN as the secret an op receives.
    pub fn into_secret(self) -> Secret {
        self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_four_digits_only() {
        assert!(Pin::parse("1234").is_ok());
        assert!(Pin::parse(" 0000 ").is_ok());
        for bad in ["123", "12345", "12a4", "", "١٢٣٤"] {
            assert_eq!(Pin::parse(bad), Err(PinError), "{bad}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", Pin::parse("4821").unwrap()), "Pin(****)");
    }
}
