//! Customers: who is dialling, registration, and the remembered language.

use serde_json::json;
use sqlx::PgPool;

use super::crypto::{DataVault, Place, VaultError};
use super::identity::{self, Identity};
use super::lane::Db;
use super::pin::StagedPin;
use super::profiles::Profile;
use crate::domain::{Msisdn, PersonName};
use crate::outcome::{OpResult, Outcome};

/// The profile of the customer on `msisdn`, if one is registered there.
pub async fn read_profile(db: impl Db, msisdn: &Msisdn) -> Result<Option<Profile>, sqlx::Error> {
    let row = sqlx::query_as!(
        Profile,
        r#"SELECT first_name, last_name, language, kyc_tier >= verified_tier() AS "verified!"
             FROM customers WHERE msisdn = $1"#,
        msisdn.as_e164()
    )
    .fetch_optional(db)
    .await?;
    Ok(row)
}

/// What `customer.profile` answers for `msisdn` and the profile found there;
/// `upgradable` when not verified and an identity provider can verify them.
pub fn profile_answer(msisdn: &Msisdn, profile: Option<&Profile>, provider: bool) -> OpResult {
    match profile {
        None => OpResult::bare(Outcome::NotRegistered),
        Some(Profile { first_name, last_name, language, verified }) => OpResult::new(
            Outcome::Ok,
            json!({
                "first_name": first_name, "last_name": last_name, "language": language,
                "verified": verified, "upgradable": provider && !verified,
                "msisdn": msisdn.as_e164(),
            }),
        ),
    }
}

/// An ID number sealed for the session (AES-256-GCM, hex) between the screen that asks
/// for it and registration or an identity check, unless another customer holds it.
pub async fn seal_id(
    db: impl Db,
    vault: &DataVault,
    msisdn: &Msisdn,
    national_id: &str,
) -> Result<OpResult, sqlx::Error> {
    // The caller's own ID is theirs to give again ("Upgrade my account").
    let taken = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM customers WHERE national_id_index = $1 AND msisdn <> $2) AS "taken!""#,
        &vault.blind_index(national_id),
        msisdn.as_e164(),
    )
    .fetch_one(db)
    .await?;
    if taken {
        return Ok(OpResult::bare(Outcome::IdTaken));
    }
    let sealed = vault.seal(id_in_session(msisdn), national_id).await.map_err(VaultError::into_sqlx)?;
    Ok(OpResult::new(Outcome::Ok, json!({ "sealed": crate::bytes::to_hex(&sealed) })))
}

/// Where an ID waits, sealed, between its screen and registration: the subscriber's
/// session, so that it opens for no other number.
pub fn id_in_session(msisdn: &Msisdn) -> Place<'_> {
    Place { table: "sessions", column: "sealed_id", row: msisdn.as_e164() }
}

/// A new customer at the lowest KYC tier, with an empty wallet.
pub struct Registration<'a> {
    pub msisdn: &'a Msisdn,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub national_id: &'a str,
    pub pin: &'a StagedPin,
    pub language: &'a str,
    pub currency: &'a str,
}

/// The new customer's ID goes to `identity`, when a provider is configured, in a check
/// written in the same transaction: the SMS its answer brings is as sure as the wallet.
pub async fn register(
    pool: &PgPool,
    vault: &DataVault,
    identity: Option<&Identity>,
    r: Registration<'_>,
) -> Result<OpResult, sqlx::Error> {
    let place = Place { table: "customers", column: "national_id_enc", row: r.msisdn.as_e164() };
    let sealed_id = vault.seal(place, r.national_id).await.map_err(VaultError::into_sqlx)?;
    let check = match identity {
        Some(identity) => Some(identity.checks().seal(r.national_id).await.map_err(VaultError::into_sqlx)?),
        None => None,
    };
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query_scalar!(
        "INSERT INTO customers (msisdn, first_name, last_name, language, pin_salt, pin_hash,
                                national_id_enc, national_id_index)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (msisdn) DO NOTHING
         RETURNING id",
        r.msisdn.as_e164(),
        r.first_name.as_str(),
        r.last_name.as_str(),
        r.language,
        &r.pin.salt[..],
        &r.pin.hash,
        &sealed_id,
        &vault.blind_index(r.national_id),
    )
    .fetch_optional(&mut *tx)
    .await;
    let id = match inserted {
        Ok(Some(id)) => id,
        Ok(None) => return Ok(OpResult::bare(Outcome::AlreadyRegistered)),
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("customers_national_id_index_key") => {
            return Ok(OpResult::bare(Outcome::IdTaken));
        }
        Err(e) => return Err(e),
    };
    sqlx::query!(
        "INSERT INTO accounts (customer_id, kind, currency) VALUES ($1, 'wallet', $2)",
        id,
        r.currency
    )
    .execute(&mut *tx)
    .await?;
    if let Some(check) = &check {
        identity::queue(&mut tx, id, r.first_name.as_str(), r.last_name.as_str(), check).await?;
    }
    tx.commit().await?;
    Ok(OpResult::new(
        Outcome::Ok,
        json!({ "first_name": r.first_name.as_str(), "verifying": check.is_some() }),
    ))
}

pub async fn set_language(db: impl Db, msisdn: &Msisdn, language: &str) -> Result<OpResult, sqlx::Error> {
    let updated =
        sqlx::query!("UPDATE customers SET language = $2 WHERE msisdn = $1", msisdn.as_e164(), language)
            .execute(db)
            .await?;
    Ok(if updated.rows_affected() == 1 {
        OpResult::new(Outcome::Ok, json!({ "language": language }))
    } else {
        OpResult::bare(Outcome::NotRegistered)
    })
}
