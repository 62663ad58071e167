//! PINs: keyed hashes, staging between "choose" and "confirm", weak-PIN refusal, and
//! the lockout after repeated wrong entries.
//!
//! HMAC-SHA-256 over a per-customer salt and the PIN, keyed by a pepper. With 10⁴
//! possible PINs a slow hash adds nothing; what protects a stolen table is the pepper,
//! kept in configuration and never in the database, and the lockout.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Caller;
use super::lane::Db;
use crate::domain::{Msisdn, Pin};

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

    /// Salts and hashes a newly chosen PIN, ready to store once it is confirmed.
    pub fn stage(&self, pin: &Pin) -> StagedPin {
        let salt = Self::new_salt();
        StagedPin { hash: self.hash(&salt, pin), salt }
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

/// When wrong PINs lock a subscriber's money operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinPolicy {
    pub max_attempts: u32,
    pub lock: std::time::Duration,
}

/// A chosen PIN between the "choose" and the "confirm" hop. It travels in the session
/// as its salted, peppered hash — exactly what the database will store — never as digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedPin {
    pub salt: [u8; 16],
    pub hash: Vec<u8>,
}

impl StagedPin {
    pub fn encode(&self) -> String {
        let bytes: Vec<u8> = self.salt.iter().chain(&self.hash).copied().collect();
        crate::bytes::to_hex(&bytes)
    }

    pub fn decode(text: &str) -> Option<StagedPin> {
        let bytes = crate::bytes::from_hex(text)?;
        if bytes.len() != 48 {
            return None;
        }
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&bytes[..16]);
        Some(StagedPin { salt, hash: bytes[16..].to_vec() })
    }

    pub fn matches(&self, hasher: &PinHasher, pin: &Pin) -> bool {
        hasher.verify(&self.salt, pin, &self.hash)
    }
}

/// PINs a thief would try first: one digit repeated, or a straight run (1234, 9876).
pub fn is_weak(pin: &Pin) -> bool {
    let d: Vec<i16> = pin.expose().iter().map(|b| i16::from(b - b'0')).collect();
    let steps: Vec<i16> = d.windows(2).map(|w| w[1] - w[0]).collect();
    steps.iter().all(|s| *s == steps[0] && s.abs() <= 1)
}

/// The result of checking a subscriber's PIN against the lockout.
#[derive(Debug, PartialEq, Eq)]
pub enum PinCheck {
    Ok {
        customer_id: i64,
    },
    Invalid,
    /// Too many wrong PINs in a row: money operations wait until the lock expires.
    Locked,
    NotRegistered,
}

/// Each number's PIN salt as last read, so that the entered PIN can travel to the
/// database as its keyed hash and be checked there in the same round trip as the
/// operation it guards. A salt gone stale (a new PIN, perhaps set through another
/// replica) is caught by the database, never trusted.
#[derive(Debug, Default)]
pub struct SaltCache {
    salts: Mutex<HashMap<Box<str>, [u8; 16]>>,
}

impl SaltCache {
    /// Beyond this many numbers the cache starts over: a miss costs one read.
    const CAPACITY: usize = 200_000;

    pub fn get(&self, msisdn: &Msisdn) -> Option<[u8; 16]> {
        self.lock().get(msisdn.as_e164()).copied()
    }

    pub fn put(&self, msisdn: &Msisdn, salt: [u8; 16]) {
        let mut salts = self.lock();
        if salts.len() >= Self::CAPACITY {
            salts.clear();
        }
        salts.insert(msisdn.as_e164().into(), salt);
    }

    pub fn forget(&self, msisdn: &Msisdn) {
        self.lock().remove(msisdn.as_e164());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, [u8; 16]>> {
        // A panic elsewhere cannot leave a half-written salt: recover the map.
        self.salts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The entered PIN as the database checks it: its keyed hash under the salt the
/// gateway believes current. No PIN at all hashes to nothing, which never matches.
pub struct PinProof {
    pub salt: [u8; 16],
    pub hash: Vec<u8>,
}

impl PinProof {
    pub fn new(hasher: &PinHasher, salt: [u8; 16], pin: Option<&Pin>) -> Self {
        PinProof { salt, hash: pin.map(|p| hasher.hash(&salt, p)).unwrap_or_default() }
    }
}

/// What the database's `pin_check` answered; `None` for a stale salt.
pub(super) fn pin_outcome(code: &str, customer_id: Option<i64>) -> Result<Option<PinCheck>, sqlx::Error> {
    Ok(Some(match (code, customer_id) {
        ("ok", Some(customer_id)) => PinCheck::Ok { customer_id },
        ("pin_invalid", _) => PinCheck::Invalid,
        ("pin_locked", _) => PinCheck::Locked,
        ("not_registered", _) => PinCheck::NotRegistered,
        ("stale_salt", _) => return Ok(None),
        (other, _) => return Err(sqlx::Error::Protocol(format!("pin_check answered `{other}`"))),
    }))
}

/// The lockout policy as `pin_check` takes it.
pub(super) fn policy_args(policy: PinPolicy) -> (i32, f64) {
    (i32::try_from(policy.max_attempts).unwrap_or(i32::MAX), policy.lock.as_secs_f64())
}

/// Verifies `pin` for the caller, counting failures in the database so that the count
/// survives restarts and holds across replicas; a correct PIN resets it. One round
/// trip when the salt is cached.
pub async fn check(
    db: impl Db,
    hasher: &PinHasher,
    policy: PinPolicy,
    salts: &SaltCache,
    caller: Caller<'_>,
    pin: Option<&Pin>,
) -> Result<PinCheck, sqlx::Error> {
    let msisdn = caller.msisdn;
    let (max_attempts, lock_secs) = policy_args(policy);
    // A second stale salt means the PIN changed again while we looked.
    for _ in 0..2 {
        let salt = match salts.get(msisdn) {
            Some(salt) => salt,
            None => {
                let salt =
                    sqlx::query_scalar!("SELECT pin_salt FROM customers WHERE msisdn = $1", msisdn.as_e164())
                        .fetch_optional(db)
                        .await?;
                let Some(salt) = salt.and_then(|s| <[u8; 16]>::try_from(s).ok()) else {
                    return Ok(PinCheck::NotRegistered);
                };
                salts.put(msisdn, salt);
                salt
            }
        };
        let proof = PinProof::new(hasher, salt, pin);
        // The channel is for the event of a lockout, written at the commit.
        let row = sqlx::query!(
            r#"SELECT outcome AS "outcome!", customer_id
                 FROM pin_check($1, $2, $3, $4, $5), set_config('ussd.channel', $6, true)"#,
            msisdn.as_e164(),
            &proof.salt[..],
            &proof.hash,
            max_attempts,
            lock_secs,
            caller.channel,
        )
        .fetch_one(db)
        .await?;
        let (code, customer_id) = (row.outcome, row.customer_id);
        match pin_outcome(&code, customer_id)? {
            Some(checked) => return Ok(checked),
            None => salts.forget(msisdn),
        }
    }
    Ok(PinCheck::Invalid)
}

/// The customer behind `msisdn` when the channel vouched for them instead of a PIN: a
/// lock from wrong PINs still holds, since it may mean the phone is in other hands.
pub async fn vouched(db: impl Db, msisdn: &Msisdn) -> Result<PinCheck, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT id, coalesce(pin_locked_until > now(), false) AS "locked!" FROM customers WHERE msisdn = $1"#,
        msisdn.as_e164(),
    )
    .fetch_optional(db)
    .await?
    .map(|r| (r.id, r.locked));
    Ok(match row {
        None => PinCheck::NotRegistered,
        Some((_, true)) => PinCheck::Locked,
        Some((customer_id, false)) => PinCheck::Ok { customer_id },
    })
}

/// Stores a confirmed new PIN and clears any lock.
pub async fn store(db: impl Db, msisdn: &Msisdn, staged: &StagedPin) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query!(
        "UPDATE customers SET pin_salt = $2, pin_hash = $3, pin_failures = 0, pin_locked_until = NULL
           FROM set_config('ussd.actor', 'pin_change', true)
          WHERE msisdn = $1",
        msisdn.as_e164(),
        &staged.salt[..],
        &staged.hash,
    )
    .execute(db)
    .await?;
    Ok(updated.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(s: &str) -> Pin {
        Pin::parse(s).unwrap()
    }

    #[test]
    fn verifies_the_right_pin_only_under_the_same_pepper_and_salt() {
        let h = PinHasher::new(b"pepper");
        let salt = PinHasher::new_salt();
        let stored = h.hash(&salt, &pin("1234"));
        assert!(h.verify(&salt, &pin("1234"), &stored));
        assert!(!h.verify(&salt, &pin("1235"), &stored));
        assert!(!PinHasher::new(b"other").verify(&salt, &pin("1234"), &stored));
        assert!(!h.verify(&PinHasher::new_salt(), &pin("1234"), &stored));
    }

    #[test]
    fn a_staged_pin_round_trips_and_matches_only_its_pin() {
        let h = PinHasher::new(b"pepper");
        let staged = h.stage(&pin("4821"));
        let encoded = staged.encode();
        assert_eq!(encoded.len(), 96);
        let decoded = StagedPin::decode(&encoded).unwrap();
        assert_eq!(decoded, staged);
        assert!(decoded.matches(&h, &pin("4821")));
        assert!(!decoded.matches(&h, &pin("4822")));
        assert!(StagedPin::decode("zz").is_none());
        assert!(StagedPin::decode(&encoded[..94]).is_none());
    }

    #[test]
    fn weak_pins_are_runs_and_repeats() {
        for weak in ["0000", "7777", "1234", "6789", "9876", "3210"] {
            assert!(is_weak(&pin(weak)), "{weak}");
        }
        for fine in ["4821", "1357", "1123", "0987", "2468", "9012"] {
            assert!(!is_weak(&pin(fine)), "{fine}");
        }
    }
}
