//! PIN hashing: HMAC-SHA-256 over a per-customer salt and the PIN, keyed by a pepper.
//!
//! With 10⁴ possible PINs a slow hash adds nothing; what protects a stolen table is the
//! pepper, kept in configuration and never in the database, and the lockout.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::Pin;

#[derive(Clone)]
pub struct PinHasher {
    pepper: Hmac<Sha256>,
}

impl PinHasher {
    pub fn new(pepper: &[u8]) -> Self {
        PinHasher { pepper: Hmac::new_from_slice(pepper).expect("HMAC takes keys of any length") }
    }

    pub fn new_salt() -> [u8; 16] {
        rand::random()
    }

    pub fn hash(&self, salt: &[u8], pin: &Pin) -> Vec<u8> {
        self.mac(salt, pin).finalize().into_bytes().to_vec()
    }

    /// Constant-time comparison with the stored hash.
    pub fn verify(&self, salt: &[u8], pin: &Pin, stored: &[u8]) -> bool {
        self.mac(salt, pin).verify_slice(stored).is_ok()
    }

    fn mac(&self, salt: &[u8], pin: &Pin) -> Hmac<Sha256> {
        let mut mac = self.pepper.clone();
        mac.update(salt);
        mac.update(pin.expose());
        mac
    }
}

impl std::fmt::Debug for PinHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinHasher(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_the_right_pin_only_under_the_same_pepper_and_salt() {
        let h = PinHasher::new(b"pepper");
        let salt = PinHasher::new_salt();
        let stored = h.hash(&salt, &Pin::parse("1234").unwrap());
        assert!(h.verify(&salt, &Pin::parse("1234").unwrap(), &stored));
        assert!(!h.verify(&salt, &Pin::parse("1235").unwrap(), &stored));
        assert!(!PinHasher::new(b"other").verify(&salt, &Pin::parse("1234").unwrap(), &stored));
        assert!(!h.verify(&PinHasher::new_salt(), &Pin::parse("1234").unwrap(), &stored));
    }
}
