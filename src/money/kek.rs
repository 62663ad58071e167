//! Key-encryption keys: the interface a KMS or a Vault transit backend implements, and
//! the backend that holds them from configuration (`DATA_KEYS`).

use std::future::Future;
use std::pin::Pin;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use secrecy::ExposeSecret;

use super::DataKey;

/// Why a data key could not be wrapped or unwrapped.
#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("the key-encryption key `{0}` is not configured (DATA_KEYS holds the keys this gateway may use)")]
    Unknown(String),
    #[error("a data key wrapped with `{0}` does not open with it (a changed key, or a damaged row)")]
    Damaged(String),
    #[error("the key service failed: {0}")]
    Service(String),
}

pub type KekFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, KekError>> + Send + 'a>>;

/// Wraps and unwraps data keys under named key-encryption keys. Callers never see a
/// key-encryption key, so a backend may keep them where they cannot be read (a KMS,
/// Vault's transit engine) and answer over the network.
pub trait KeyEncryption: Send + Sync + std::fmt::Debug {
    /// The key new data keys are wrapped with unless told otherwise: the newest.
    fn newest(&self) -> &str;
    /// Whether this backend holds the key `id`.
    fn holds(&self, id: &str) -> bool;
    fn wrap<'a>(&'a self, id: &'a str, data_key: &'a [u8; 32]) -> KekFuture<'a, Vec<u8>>;
    fn unwrap<'a>(&'a self, id: &'a str, wrapped: &'a [u8]) -> KekFuture<'a, [u8; 32]>;
}

/// Key-encryption keys from configuration, oldest first; data keys are wrapped with
/// AES-256-GCM under them, the key's id as associated data.
pub struct ConfiguredKeys {
    keys: Vec<(String, Aes256Gcm)>,
}

impl ConfiguredKeys {
    /// `keys` oldest first; at least one.
    pub fn new(keys: &[(String, [u8; 32])]) -> Self {
        Self::from_keys(keys.iter().map(|(id, key)| (id, key)))
    }

    /// The keys configuration checked, oldest first; at least one.
    pub fn configured(keys: &[(String, DataKey)]) -> Self {
        Self::from_keys(keys.iter().map(|(id, key)| (id, key.expose_secret())))
    }

    fn from_keys<'a>(keys: impl Iterator<Item = (&'a String, &'a [u8; 32])>) -> Self {
        let keys: Vec<_> = keys
            .map(|(id, key)| (id.clone(), Aes256Gcm::new_from_slice(key).expect("a 32-byte key")))
            .collect();
        assert!(!keys.is_empty(), "at least one key-encryption key");
        ConfiguredKeys { keys }
    }

    fn cipher(&self, id: &str) -> Result<&Aes256Gcm, KekError> {
        self.keys
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, c)| c)
            .ok_or_else(|| KekError::Unknown(id.to_owned()))
    }
}

impl KeyEncryption for ConfiguredKeys {
    fn newest(&self) -> &str {
        &self.keys.last().expect("at least one key").0
    }

    fn holds(&self, id: &str) -> bool {
        self.keys.iter().any(|(k, _)| k == id)
    }

    fn wrap<'a>(&'a self, id: &'a str, data_key: &'a [u8; 32]) -> KekFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let cipher = self.cipher(id)?;
            let nonce: [u8; 12] = rand::random();
            let sealed = cipher
                .encrypt(Nonce::from_slice(&nonce), Payload { msg: data_key, aad: id.as_bytes() })
                .map_err(|_| KekError::Damaged(id.to_owned()))?;
            Ok([nonce.as_slice(), &sealed].concat())
        })
    }

    fn unwrap<'a>(&'a self, id: &'a str, wrapped: &'a [u8]) -> KekFuture<'a, [u8; 32]> {
        Box::pin(async move {
            let cipher = self.cipher(id)?;
            let damaged = || KekError::Damaged(id.to_owned());
            if wrapped.len() < 12 {
                return Err(damaged());
            }
            let (nonce, sealed) = wrapped.split_at(12);
            let plain = cipher
                .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: id.as_bytes() })
                .map_err(|_| damaged())?;
            plain.try_into().map_err(|_| damaged())
        })
    }
}

impl std::fmt::Debug for ConfiguredKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "ConfiguredKeys({ids:?})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_data_key_opens_only_under_the_key_and_id_that_wrapped_it() {
        let keys = ConfiguredKeys::new(&[("k1".into(), [1; 32]), ("k2".into(), [2; 32])]);
        assert_eq!(keys.newest(), "k2");
        let wrapped = keys.wrap("k1", &[9; 32]).await.unwrap();
        assert_eq!(keys.unwrap("k1", &wrapped).await.unwrap(), [9; 32]);
        assert!(matches!(keys.unwrap("k2", &wrapped).await, Err(KekError::Damaged(_))));
        assert!(matches!(keys.unwrap("k3", &wrapped).await, Err(KekError::Unknown(_))));
        // The same key material under another id is another key.
        let renamed = ConfiguredKeys::new(&[("other".into(), [1; 32])]);
        assert!(renamed.unwrap("other", &wrapped).await.is_err());
    }
}
