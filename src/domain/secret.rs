//! `Secret`: a value typed on a sensitive screen (a PIN, an OTP, an ID number) that
//! lives for the hop that carries it and never prints.

use std::fmt;

/// No `Display`, no `Serialize`, a redacted `Debug`, and overwritten when dropped, so it
/// cannot reach a log line, a session record or a transcript by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the op that consumes it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let zeros = "0".repeat(self.0.len());
        self.0.replace_range(.., &zeros);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("12345678");
        assert_eq!(format!("{s:?}"), "Secret(****)");
        assert_eq!(s.expose(), "12345678");
    }
}
