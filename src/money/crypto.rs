//! Personal data at rest: AES-256-GCM encryption and a keyed blind index for lookups.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Encrypts values such as national IDs, and indexes them for uniqueness without
/// storing them in clear. Both keys derive from the configured 32-byte data key.
#[derive(Clone)]
pub struct DataVault {
    cipher: Aes256Gcm,
    index: Hmac<Sha256>,
}

#[derive(Debug, thiserror::Error)]
#[error("a stored value could not be decrypted (wrong DATA_KEY?)")]
pub struct DecryptError;

impl DataVault {
    pub fn new(key: &[u8; 32]) -> Self {
        let derive = |purpose: &[u8]| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(purpose);
            mac.finalize().into_bytes()
        };
        let cipher = Aes256Gcm::new_from_slice(&derive(b"encrypt")).expect("32-byte key");
        let index = <Hmac<Sha256> as Mac>::new_from_slice(&derive(b"blind-index"))
            .expect("HMAC takes keys of any length");
        DataVault { cipher, index }
    }

    /// `nonce (12 bytes) || ciphertext+tag`.
    pub fn encrypt(&self, plaintext: &str) -> Vec<u8> {
        let nonce: [u8; 12] = rand::random();
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("AES-GCM encryption of a short value cannot fail");
        [nonce.as_slice(), &sealed].concat()
    }

    pub fn decrypt(&self, stored: &[u8]) -> Result<String, DecryptError> {
        if stored.len() < 12 {
            return Err(DecryptError);
        }
        let (nonce, sealed) = stored.split_at(12);
        let plain = self.cipher.decrypt(Nonce::from_slice(nonce), sealed).map_err(|_| DecryptError)?;
        String::from_utf8(plain).map_err(|_| DecryptError)
    }

    /// The same value always gives the same index; without the key it reveals nothing.
    pub fn blind_index(&self, value: &str) -> Vec<u8> {
        let mut mac = self.index.clone();
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// Bytes as lower-case hex, for values that travel through session variables.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a hex string, or `None` if it is not one.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

impl std::fmt::Debug for DataVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataVault(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_never_repeats_a_ciphertext() {
        let v = DataVault::new(&[7; 32]);
        let a = v.encrypt("12345678");
        let b = v.encrypt("12345678");
        assert_ne!(a, b, "fresh nonce each time");
        assert_eq!(v.decrypt(&a).unwrap(), "12345678");
        assert!(!a.windows(8).any(|w| w == b"12345678"));
    }

    #[test]
    fn tampering_or_another_key_fails() {
        let v = DataVault::new(&[7; 32]);
        let mut sealed = v.encrypt("12345678");
        assert!(DataVault::new(&[8; 32]).decrypt(&sealed).is_err());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(v.decrypt(&sealed).is_err());
        assert!(v.decrypt(b"short").is_err());
    }

    #[test]
    fn blind_index_is_deterministic_and_keyed() {
        let v = DataVault::new(&[7; 32]);
        assert_eq!(v.blind_index("123"), v.blind_index("123"));
        assert_ne!(v.blind_index("123"), v.blind_index("124"));
        assert_ne!(v.blind_index("123"), DataVault::new(&[8; 32]).blind_index("123"));
    }
}
