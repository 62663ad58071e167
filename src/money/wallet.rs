//! Read-only wallet ops: who is dialling, and their balance.

use serde_json::json;
use sqlx::PgPool;

use super::{MoneyError, PinHasher};
use crate::domain::{Msisdn, Pin};
use crate::ops::{OpResult, Outcome};

pub async fn profile(pool: &PgPool, msisdn: &Msisdn) -> Result<OpResult, MoneyError> {
    let row: Option<(String, String, String)> =
        sqlx::query_as("SELECT first_name, last_name, language FROM customers WHERE msisdn = $1")
            .bind(msisdn.as_e164())
            .fetch_optional(pool)
            .await?;
    Ok(match row {
        None => OpResult::bare(Outcome::NotRegistered),
        Some((first_name, last_name, language)) => OpResult::new(
            Outcome::Ok,
            json!({ "first_name": first_name, "last_name": last_name, "language": language }),
        ),
    })
}

#[derive(sqlx::FromRow)]
struct WalletRow {
    pin_salt: Vec<u8>,
    pin_hash: Vec<u8>,
    balance: i64,
    held: i64,
    currency: String,
    status: String,
}

pub async fn balance(
    pool: &PgPool,
    pins: &PinHasher,
    msisdn: &Msisdn,
    pin: Option<&Pin>,
) -> Result<OpResult, MoneyError> {
    let row: Option<WalletRow> = sqlx::query_as(
        "SELECT c.pin_salt, c.pin_hash, a.balance, a.held, a.currency::text AS currency, a.status
           FROM customers c
           JOIN accounts a ON a.customer_id = c.id AND a.kind = 'wallet'
          WHERE c.msisdn = $1",
    )
    .bind(msisdn.as_e164())
    .fetch_optional(pool)
    .await?;
    let Some(WalletRow { pin_salt, pin_hash, balance, held, currency, status }) = row else {
        return Ok(OpResult::bare(Outcome::NotRegistered));
    };
    if status != "active" {
        return Ok(OpResult::bare(Outcome::AccountBlocked));
    }
    if !pin.is_some_and(|p| pins.verify(&pin_salt, p, &pin_hash)) {
        return Ok(OpResult::bare(Outcome::PinInvalid));
    }
    Ok(OpResult::new(
        Outcome::Ok,
        json!({ "balance": balance, "available": balance - held, "currency": currency }),
    ))
}
