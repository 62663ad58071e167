//! Secrets and signatures as the Standard Webhooks convention has them (webhook
//! deliveries, a paybill's validation requests): a
//! secret is `whsec_` and base64 of 32 random bytes; a delivery is signed with
//! `v1,` and base64 of HMAC-SHA256 over `id.timestamp.body` keyed by those bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// A new secret.
pub fn new_secret() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(format!("{PREFIX}{}", STANDARD.encode(bytes)))
}

/// The `webhook-signature` header's value: one `v1,…` per secret, space-separated (two
/// while a rotation's grace lasts, so a receiver holding either secret accepts it);
/// `None` when a secret is not one this module made.
pub fn signature(secrets: &[&SecretString], id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let mut signatures = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let key =
            STANDARD.decode(secret.expose_secret().strip_prefix(PREFIX)?).ok().filter(|k| !k.is_empty())?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        signatures.push(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())));
    }
    Some(signatures.join(" "))
}

/// How far a signed delivery's timestamp may be from now, either way: older ones are
/// replays.
pub const TOLERANCE_SECS: i64 = 300;

/// Whether `header` (a `webhook-signature` value: space-separated `v1,…`) holds the
/// signature of `body` under `secret` for `id` and `timestamp`, and the timestamp is
/// within [`TOLERANCE_SECS`] of `now`.
pub fn verify(secret: &SecretString, id: &str, timestamp: i64, body: &[u8], header: &str, now: i64) -> bool {
    // abs_diff: a timestamp sent as i64::MIN must not wrap into the window.
    if now.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return false;
    }
    let Some(key) = secret.expose_secret().strip_prefix(PREFIX).and_then(|k| STANDARD.decode(k).ok()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else { return false };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    // Compared in constant time by the MAC itself.
    header
        .split(' ')
        .filter_map(|given| STANDARD.decode(given.strip_prefix("v1,")?).ok())
        .any(|given| mac.clone().verify_slice(&given).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&[&secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(signature(&[&SecretString::from("not-a-secret")], "id", 1, body), None);
    }

    #[test]
    fn verify_takes_one_good_signature_in_time_and_nothing_else() {
        let (secret, other) = (new_secret(), new_secret());
        let signed = signature(&[&secret], "msg_1", 1_000, b"{}").unwrap();
        let both = signature(&[&other, &secret], "msg_1", 1_000, b"{}").unwrap();
        assert!(verify(&secret, "msg_1", 1_000, b"{}", &signed, 1_000));
        assert!(verify(&secret, "msg_1", 1_000, b"{}", &both, 1_000 + TOLERANCE_SECS));
        assert!(!verify(&secret, "msg_1", 1_000, b"{} ", &signed, 1_000), "another body");
        assert!(!verify(&secret, "msg_2", 1_000, b"{}", &signed, 1_000), "another id");
        assert!(!verify(&other, "msg_1", 1_000, b"{}", &signed, 1_000), "another secret");
        assert!(!verify(&secret, "msg_1", 1_000, b"{}", &signed, 1_001 + TOLERANCE_SECS), "too old");
        assert!(!verify(&secret, "msg_1", 1_000, b"{}", "", 1_000));
        assert!(!verify(&secret, "msg_1", i64::MIN, b"{}", &signed, 1_000), "no overflow into the window");
    }

    #[test]
    fn a_rotation_signs_with_both_and_secrets_differ() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(a.expose_secret().starts_with("whsec_") && a.expose_secret().len() == 6 + 44);
        let both = signature(&[&a, &b], "id", 1, b"{}").unwrap();
        let parts: Vec<&str> = both.split(' ').collect();
        let one = |s: &SecretString| signature(&[s], "id", 1, b"{}").unwrap();
        assert_eq!(parts, [one(&a), one(&b)]);
    }
}
