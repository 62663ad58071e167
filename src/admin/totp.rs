//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), the
//! second factor an approver gives with each approval; each token registers its own.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sqlx::PgPool;

use crate::money::{DataVault, Place, VaultError};

/// Seconds one code stands for.
const STEP: u64 = 30;

/// Steps either side of now a code is still taken from (a phone's clock a little off).
const DRIFT: u64 = 1;

/// Wrong codes in a row that lock a token's approvals for 15 minutes.
const MAX_WRONG: i32 = 5;

/// Where a secret is sealed.
fn place(token: &str) -> Place<'_> {
    Place { table: "approver_totp", column: "secret", row: token }
}

/// The code for `step` (RFC 4226's dynamic truncation, 6 digits).
pub fn code(secret: &[u8], step: u64) -> u32 {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let at = usize::from(digest[19] & 0x0f);
    let bits = u32::from_be_bytes([digest[at] & 0x7f, digest[at + 1], digest[at + 2], digest[at + 3]]);
    bits % 1_000_000
}

/// The step a typed code stands for at `unix` seconds, if it is one of the steps around now.
pub fn matching_step(secret: &[u8], typed: &str, unix: u64) -> Option<u64> {
    if typed.len() != 6 || !typed.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let typed: u32 = typed.parse().ok()?;
    let now = unix / STEP;
    (now.saturating_sub(DRIFT)..=now + DRIFT)
        .find(|step| crate::bytes::same_secret(&code(secret, *step).to_be_bytes(), &typed.to_be_bytes()))
}

/// RFC 4648 base32 without padding: how authenticator apps take a secret.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            out.push(char::from(ALPHABET[((buffer >> (bits - 5)) & 31) as usize]));
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("the token `{0}` has a one-time password already; it is registered once")]
    Registered(String),
    #[error("the token `{0}` has no one-time password; register one with POST /admin/approvals/totp")]
    NotRegistered(String),
    #[error("the one-time password is wrong, expired, or used already")]
    Wrong,
    #[error("too many wrong one-time passwords in a row: this token may approve again in 15 minutes")]
    Locked,
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A new secret for `token`, sealed at rest; returned once, base32, with the
/// `otpauth://` address an authenticator app reads from a QR code.
pub async fn register(
    pool: &PgPool,
    vault: &DataVault,
    token: &str,
    issuer: &str,
) -> Result<(String, String), TotpError> {
    let secret: [u8; 20] = rand::random();
    let encoded = base32(&secret);
    let sealed = vault.seal(place(token), &encoded).await?;
    let inserted =
        sqlx::query("INSERT INTO approver_totp (token_name, secret) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(token)
            .bind(sealed)
            .execute(pool)
            .await?;
    if inserted.rows_affected() == 0 {
        return Err(TotpError::Registered(token.to_owned()));
    }
    let label = format!("{issuer}:{token}");
    let label = percent_encoding::utf8_percent_encode(&label, percent_encoding::NON_ALPHANUMERIC);
    let uri = format!(
        "otpauth://totp/{label}?secret={encoded}&issuer={issuer}&algorithm=SHA1&digits=6&period={STEP}"
    );
    Ok((encoded, uri))
}

/// Checks `typed` against `token`'s secret at `unix` seconds; a code is taken once.
pub async fn check(
    pool: &PgPool,
    vault: &DataVault,
    token: &str,
    typed: &str,
    unix: u64,
) -> Result<(), TotpError> {
    let found: Option<(Vec<u8>, bool)> = sqlx::query_as(
        "SELECT secret, coalesce(locked_until > now(), false) FROM approver_totp WHERE token_name = $1",
    )
    .bind(token)
    .fetch_optional(pool)
    .await?;
    let (sealed, locked) = found.ok_or_else(|| TotpError::NotRegistered(token.to_owned()))?;
    if locked {
        return Err(TotpError::Locked);
    }
    let secret = decode(&vault.open(place(token), &sealed).await?);
    let step = matching_step(&secret, typed, unix).map_or(-1, |s| i64::try_from(s).unwrap_or(i64::MAX));
    // Later than the last step used, and not locked, in one statement: two approvals
    // with one code (a replay, or a race) cannot both pass, nor can guesses sent side by
    // side slip past a lock the others earned. Three steps pass at any moment, so wrong
    // codes are counted, and a run of them locks the token a while; the count starts
    // again when a lock ends.
    let used = sqlx::query(
        "UPDATE approver_totp SET last_step = $2, failures = 0, locked_until = NULL
          WHERE token_name = $1 AND $2 > last_step AND coalesce(locked_until <= now(), true)",
    )
    .bind(token)
    .bind(step)
    .execute(pool)
    .await?;
    if used.rows_affected() == 1 {
        return Ok(());
    }
    sqlx::query(
        "UPDATE approver_totp
            SET failures = CASE WHEN locked_until <= now() THEN 1 ELSE failures + 1 END,
                locked_until = CASE WHEN locked_until > now() THEN locked_until
                                    WHEN (CASE WHEN locked_until <= now() THEN 1 ELSE failures + 1 END) >= $2
                                    THEN now() + interval '15 minutes' END
          WHERE token_name = $1",
    )
    .bind(token)
    .bind(MAX_WRONG)
    .execute(pool)
    .await?;
    Err(TotpError::Wrong)
}

/// The bytes of a base32 secret as [`base32`] wrote it (what an authenticator app does).
pub fn decode(text: &str) -> Vec<u8> {
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in text.bytes() {
        let Some(value) = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".iter().position(|a| *a == c) else { continue };
        buffer = (buffer << 5) | value as u32;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_of_rfc_6238s_sha1_vectors() {
        // RFC 6238 appendix B, the SHA-1 key, its 8-digit codes cut to 6.
        let secret = b"12345678901234567890";
        for (unix, eight) in [
            (59, 94_287_082),
            (1_111_111_109, 7_081_804),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
        ] {
            assert_eq!(code(secret, unix / STEP), eight % 1_000_000, "at {unix}");
        }
    }

    #[test]
    fn a_code_is_taken_one_step_either_side_and_no_further() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_109;
        let current = format!("{:06}", code(secret, now / STEP));
        assert_eq!(matching_step(secret, &current, now), Some(now / STEP));
        assert_eq!(matching_step(secret, &current, now + STEP), Some(now / STEP));
        assert_eq!(matching_step(secret, &current, now + 2 * STEP), None);
        assert_eq!(matching_step(secret, "12345", now), None);
        assert_eq!(matching_step(secret, "abcdef", now), None);
    }

    #[test]
    fn base32_round_trips_as_rfc_4648_spells_it() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        let secret: [u8; 20] = rand::random();
        assert_eq!(decode(&base32(&secret)), secret);
    }
}
