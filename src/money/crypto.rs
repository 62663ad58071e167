//! Personal data at rest: envelope encryption (AES-256-GCM under data keys that are
//! kept wrapped by key-encryption keys), key rotation, and a keyed blind index.
//!
//! A sealed value is `E5 02 · data key id (4 bytes) · nonce (12) · ciphertext and tag`,
//! its header and its place (table, column, row) the associated data: copied to
//! another row or column it does not open. Values sealed before envelopes (`nonce ·
//! ciphertext` under a key derived from the first configured key) still open.

use std::collections::HashMap;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use arc_swap::ArcSwap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgPool;
use tracing::{info, warn};

use super::kek::{KekError, KeyEncryption};

const MAGIC: [u8; 2] = [0xE5, 0x02];
const HEADER: usize = MAGIC.len() + 4;
const NONCE: usize = 12;

/// Where a sealed value lives. Bound into its ciphertext.
#[derive(Clone, Copy, Debug)]
pub struct Place<'a> {
    pub table: &'static str,
    pub column: &'static str,
    /// What names the row for good (a phone number, a provider's message id), known
    /// before the row is written.
    pub row: &'a str,
}

impl Place<'_> {
    fn aad(&self, header: &[u8]) -> Vec<u8> {
        [header, self.table.as_bytes(), b"\x1f", self.column.as_bytes(), b"\x1f", self.row.as_bytes()]
            .concat()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("data keys unavailable: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Key(#[from] KekError),
    #[error(
        "no data key can be used: every one is wrapped with a key-encryption key this gateway does not hold"
    )]
    NoUsableKey,
    #[error("data key {0} is not known here (wrapped with a key this gateway does not hold?)")]
    UnknownDataKey(u32),
    #[error("a stored value could not be decrypted (another DATA_KEYS, or copied from another place)")]
    Unreadable,
}

impl VaultError {
    /// For callers whose boundary speaks `sqlx::Error`: a database failure stays one;
    /// a key problem is the gateway's configuration.
    pub fn into_sqlx(self) -> sqlx::Error {
        match self {
            VaultError::Database(e) => e,
            other => sqlx::Error::Configuration(Box::new(other)),
        }
    }
}

/// Data keys unwrapped in this process, by id, and the one new values are sealed with.
#[derive(Default)]
struct DataKeys {
    keys: HashMap<u32, Aes256Gcm>,
    active: Option<u32>,
}

/// Seals values such as national IDs and indexes them for uniqueness without storing
/// them in clear. Cheap to clone.
#[derive(Clone)]
pub struct DataVault {
    inner: Arc<Inner>,
}

struct Inner {
    keks: Arc<dyn KeyEncryption>,
    index: Hmac<Sha256>,
    legacy: Aes256Gcm,
    pool: PgPool,
    keys: ArcSwap<DataKeys>,
    refreshing: tokio::sync::Mutex<()>,
}

/// A sub-key of `root` for one purpose.
pub fn derive(root: &[u8; 32], purpose: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(root).expect("HMAC takes keys of any length");
    mac.update(purpose);
    mac.finalize().into_bytes().into()
}

impl DataVault {
    /// `index_key` keys the blind index, which never rotates (an index under another key
    /// would no longer find the values it indexes); `legacy_root` is the first configured
    /// key, under which values sealed before envelopes were encrypted.
    pub fn new(
        pool: PgPool,
        keks: Arc<dyn KeyEncryption>,
        index_key: &[u8; 32],
        legacy_root: &[u8; 32],
    ) -> Self {
        let index = <Hmac<Sha256> as Mac>::new_from_slice(index_key).expect("HMAC takes keys of any length");
        let legacy = Aes256Gcm::new_from_slice(&derive(legacy_root, b"encrypt")).expect("32-byte key");
        DataVault {
            inner: Arc::new(Inner {
                keks,
                index,
                legacy,
                pool,
                keys: ArcSwap::default(),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Seals `plaintext` for `place` under the active data key.
    pub async fn seal(&self, place: Place<'_>, plaintext: &str) -> Result<Vec<u8>, VaultError> {
        let mut keys = self.inner.keys.load_full();
        if keys.active.is_none() {
            self.refresh().await?;
            keys = self.inner.keys.load_full();
        }
        let id = keys.active.ok_or(VaultError::NoUsableKey)?;
        let cipher = &keys.keys[&id];
        let mut out = Vec::with_capacity(HEADER + NONCE + plaintext.len() + 16);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&id.to_be_bytes());
        let nonce: [u8; NONCE] = rand::random();
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext.as_bytes(), aad: &place.aad(&out) })
            .expect("AES-GCM encryption of a short value cannot fail");
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The value sealed for `place`.
    pub async fn open(&self, place: Place<'_>, stored: &[u8]) -> Result<String, VaultError> {
        let Some(id) = envelope_key(stored) else { return self.open_legacy(stored) };
        let mut keys = self.inner.keys.load_full();
        if !keys.keys.contains_key(&id) {
            self.refresh().await?;
            keys = self.inner.keys.load_full();
        }
        let Some(cipher) = keys.keys.get(&id) else {
            // One in 65,536 nonces of the old format starts like an envelope.
            return self.open_legacy(stored).map_err(|_| VaultError::UnknownDataKey(id));
        };
        let (header, rest) = stored.split_at(HEADER);
        let (nonce, sealed) = rest.split_at(NONCE);
        match cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &place.aad(header) }) {
            Ok(plain) => String::from_utf8(plain).map_err(|_| VaultError::Unreadable),
            Err(_) => self.open_legacy(stored),
        }
    }

    fn open_legacy(&self, stored: &[u8]) -> Result<String, VaultError> {
        if stored.len() < NONCE {
            return Err(VaultError::Unreadable);
        }
        let (nonce, sealed) = stored.split_at(NONCE);
        let plain = self
            .inner
            .legacy
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| VaultError::Unreadable)?;
        String::from_utf8(plain).map_err(|_| VaultError::Unreadable)
    }

    /// Loads the data keys written since the last look (the first is made if there is
    /// none), and seals from now on with the newest this gateway can unwrap. Replicas
    /// call it periodically, so a rotation reaches all of them without a restart.
    pub async fn refresh(&self) -> Result<(), VaultError> {
        let _one_at_a_time = self.inner.refreshing.lock().await;
        let pool = &self.inner.pool;
        let mut rows = stored_keys(pool).await?;
        if rows.is_empty() {
            let kek = self.inner.keks.newest();
            let wrapped = self.inner.keks.wrap(kek, &rand::random()).await?;
            // Replicas starting together may each add one; any of them serves.
            sqlx::query!(
                "INSERT INTO data_keys (kek_id, wrapped) SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM data_keys)",
                kek,
                &wrapped,
            )
            .execute(pool)
            .await?;
            rows = stored_keys(pool).await?;
        }
        let current = self.inner.keys.load_full();
        let mut keys = HashMap::with_capacity(rows.len());
        let mut active = None;
        for (id, kek, wrapped) in rows {
            let id = id as u32;
            if let Some(cipher) = current.keys.get(&id) {
                keys.insert(id, cipher.clone());
            } else {
                match self.inner.keks.unwrap(&kek, &wrapped).await {
                    Ok(key) => {
                        keys.insert(id, Aes256Gcm::new_from_slice(&key).expect("32-byte key"));
                    }
                    Err(e) => {
                        warn!(data_key = id, kek = %kek, error = %e, "a data key cannot be unwrapped here");
                        continue;
                    }
                }
            }
            active = Some(id);
        }
        if active.is_some() && active != current.active {
            info!(data_key = active, "sealing with data key");
        }
        self.inner.keys.store(Arc::new(DataKeys { keys, active }));
        Ok(())
    }

    /// The data key new values are sealed with, once one is loaded.
    pub fn sealing_with(&self) -> Option<u32> {
        self.inner.keys.load().active
    }

    /// The same value always gives the same index; without the key it reveals nothing.
    pub fn blind_index(&self, value: &str) -> Vec<u8> {
        let mut mac = self.inner.index.clone();
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The data key a sealed value names, if it is an envelope.
    pub fn data_key_of(stored: &[u8]) -> Option<u32> {
        envelope_key(stored)
    }
}

fn envelope_key(stored: &[u8]) -> Option<u32> {
    (stored.len() >= HEADER + NONCE + 16 && stored[..2] == MAGIC)
        .then(|| u32::from_be_bytes(stored[2..HEADER].try_into().expect("4 bytes")))
}

async fn stored_keys(pool: &PgPool) -> Result<Vec<(i32, String, Vec<u8>)>, sqlx::Error> {
    let rows = sqlx::query!("SELECT id, kek_id, wrapped FROM data_keys ORDER BY id").fetch_all(pool).await?;
    Ok(rows.into_iter().map(|r| (r.id, r.kek_id, r.wrapped)).collect())
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    /// The key-encryption key every data key is now wrapped with.
    pub kek: String,
    /// Data keys re-wrapped (their values stay sealed as they are, and open as before).
    pub rewrapped: usize,
    /// The data key new values are sealed with from now on.
    pub new_data_key: u32,
}

/// Re-wraps every data key under the key-encryption key `to` (default: the newest
/// configured) and adds a new data key under it, in one transaction. Replicas go on
/// sealing and opening meanwhile: the data keys they hold unwrapped do not change, and
/// their next [`DataVault::refresh`] seals with the new one. Once this is done, the
/// older key-encryption keys may leave DATA_KEYS.
pub async fn rotate(
    pool: &PgPool,
    keks: &dyn KeyEncryption,
    to: Option<&str>,
) -> Result<Rotation, VaultError> {
    let to = to.unwrap_or(keks.newest()).to_owned();
    if !keks.holds(&to) {
        return Err(KekError::Unknown(to).into());
    }
    let mut tx = pool.begin().await?;
    // Two rotations at once would each re-wrap from what the other replaced.
    sqlx::query("LOCK TABLE data_keys IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
    let rows =
        sqlx::query!("SELECT id, kek_id, wrapped FROM data_keys ORDER BY id").fetch_all(&mut *tx).await?;
    let rewrapped = rows.len();
    for row in rows {
        let (id, kek, wrapped) = (row.id, row.kek_id, row.wrapped);
        let key = keks.unwrap(&kek, &wrapped).await?;
        let again = keks.wrap(&to, &key).await?;
        sqlx::query!(
            "UPDATE data_keys SET kek_id = $2, wrapped = $3, rewrapped_at = now() WHERE id = $1",
            id,
            &to,
            &again,
        )
        .execute(&mut *tx)
        .await?;
    }
    let wrapped = keks.wrap(&to, &rand::random()).await?;
    let new = sqlx::query_scalar!(
        "INSERT INTO data_keys (kek_id, wrapped) VALUES ($1, $2) RETURNING id",
        &to,
        &wrapped
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Rotation { kek: to, rewrapped, new_data_key: new as u32 })
}

/// The data keys, oldest first: id, the key-encryption key wrapping it, when made and
/// when last re-wrapped.
pub async fn data_keys(pool: &PgPool) -> Result<Vec<(i32, String, String, Option<String>)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT id, kek_id, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS') AS "created!",
                  to_char(rewrapped_at, 'YYYY-MM-DD HH24:MI:SS') AS rewrapped
             FROM data_keys ORDER BY id"#,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.kek_id, r.created, r.rewrapped)).collect())
}

impl std::fmt::Debug for DataVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataVault({:?})", self.inner.keks)
    }
}
