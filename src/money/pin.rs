//! PINs: keyed hashes, staging between "choose" and "confirm", weak-PIN refusal, and
//! the lockout after repeated wrong entries.
//!
//! HMAC-SHA-256 over a per-customer salt and the PIN, keyed by a pepper. With 10⁴
//! possible PINs a slow hash adds nothing; what protects a stolen table is the pepper,
//! kept in configuration and never in the database, and the lockout.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgPool;

use crate::config::PinPolicy;
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
        super::crypto::to_hex(&bytes)
    }

    pub fn decode(text: &str) -> Option<StagedPin> {
        let bytes = super::crypto::from_hex(text)?;
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

#[derive(sqlx::FromRow)]
struct PinRow {
    id: i64,
    pin_salt: Vec<u8>,
    pin_hash: Vec<u8>,
    pin_failures: i32,
    locked: bool,
    lock_recorded: bool,
}

/// Verifies `pin` for `msisdn`, counting failures in the database so that the count
/// survives restarts and holds across replicas; a correct PIN resets it.
pub async fn check(
    pool: &PgPool,
    hasher: &PinHasher,
    policy: PinPolicy,
    msisdn: &Msisdn,
    pin: Option<&Pin>,
) -> Result<PinCheck, sqlx::Error> {
    let row: Option<PinRow> = sqlx::query_as(
        "SELECT id, pin_salt, pin_hash, pin_failures,
                coalesce(pin_locked_until > now(), false) AS locked,
                pin_locked_until IS NOT NULL AS lock_recorded
           FROM customers WHERE msisdn = $1",
    )
    .bind(msisdn.as_e164())
    .fetch_optional(pool)
    .await?;
    let Some(PinRow { id, pin_salt, pin_hash, pin_failures, locked, lock_recorded }) = row else {
        return Ok(PinCheck::NotRegistered);
    };
    if locked {
        return Ok(PinCheck::Locked);
    }
    if pin.is_some_and(|p| hasher.verify(&pin_salt, p, &pin_hash)) {
        if pin_failures > 0 || lock_recorded {
            sqlx::query("UPDATE customers SET pin_failures = 0, pin_locked_until = NULL WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
        }
        return Ok(PinCheck::Ok { customer_id: id });
    }
    // One statement, so concurrent wrong PINs all count. An expired lock starts a new count.
    let now_locked: bool = sqlx::query_scalar(
        "UPDATE customers
            SET pin_failures = CASE WHEN pin_locked_until <= now() THEN 1 ELSE pin_failures + 1 END,
                pin_locked_until = CASE
                    WHEN (CASE WHEN pin_locked_until <= now() THEN 1 ELSE pin_failures + 1 END) >= $2
                    THEN now() + make_interval(secs => $3)
                END
          WHERE id = $1
      RETURNING pin_locked_until IS NOT NULL",
    )
    .bind(id)
    .bind(i32::try_from(policy.max_attempts).unwrap_or(i32::MAX))
    .bind(policy.lock.as_secs_f64())
    .fetch_one(pool)
    .await?;
    Ok(if now_locked { PinCheck::Locked } else { PinCheck::Invalid })
}

/// The customer behind `msisdn` when the channel vouched for them instead of a PIN: a
/// lock from wrong PINs still holds, since it may mean the phone is in other hands.
pub async fn vouched(pool: &PgPool, msisdn: &Msisdn) -> Result<PinCheck, sqlx::Error> {
    let row: Option<(i64, bool)> = sqlx::query_as(
        "SELECT id, coalesce(pin_locked_until > now(), false) FROM customers WHERE msisdn = $1",
    )
    .bind(msisdn.as_e164())
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        None => PinCheck::NotRegistered,
        Some((_, true)) => PinCheck::Locked,
        Some((customer_id, false)) => PinCheck::Ok { customer_id },
    })
}

/// How long wrong one-time codes of one number are added up.
const CODE_FAILURE_WINDOW: &str = "1 day";

/// Counts a wrong one-time code from `msisdn`; returns the wrong codes of its current
/// day (which starts with the first of them). One statement, so that concurrent
/// conversations cannot each see a count below the cap.
pub async fn code_failed(pool: &PgPool, msisdn: &Msisdn) -> Result<u32, sqlx::Error> {
    let failures: i32 = sqlx::query_scalar(
        "INSERT INTO sms_code_failures AS f (msisdn, failures) VALUES ($1, 1)
         ON CONFLICT (msisdn) DO UPDATE SET
             failures = CASE WHEN f.since < now() - $2::interval THEN 1 ELSE f.failures + 1 END,
             since = CASE WHEN f.since < now() - $2::interval THEN now() ELSE f.since END
         RETURNING failures",
    )
    .bind(msisdn.as_e164())
    .bind(CODE_FAILURE_WINDOW)
    .fetch_one(pool)
    .await?;
    Ok(u32::try_from(failures).unwrap_or(0))
}

/// The wrong one-time codes from `msisdn` in its current day.
pub async fn code_failures(pool: &PgPool, msisdn: &Msisdn) -> Result<u32, sqlx::Error> {
    let failures: Option<i32> = sqlx::query_scalar(
        "SELECT failures FROM sms_code_failures WHERE msisdn = $1 AND since >= now() - $2::interval",
    )
    .bind(msisdn.as_e164())
    .bind(CODE_FAILURE_WINDOW)
    .fetch_optional(pool)
    .await?;
    Ok(failures.and_then(|n| u32::try_from(n).ok()).unwrap_or(0))
}

/// Stores a confirmed new PIN and clears any lock.
pub async fn store(pool: &PgPool, msisdn: &Msisdn, staged: &StagedPin) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE customers SET pin_salt = $2, pin_hash = $3, pin_failures = 0, pin_locked_until = NULL
          WHERE msisdn = $1",
    )
    .bind(msisdn.as_e164())
    .bind(&staged.salt[..])
    .bind(&staged.hash)
    .execute(pool)
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
