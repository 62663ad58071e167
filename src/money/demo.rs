//! Demo data for `serve --demo`: ten subscribers with a known PIN and balance.

use sqlx::PgPool;

use super::{MoneyError, PinHasher};
use crate::domain::Pin;

/// The PIN of every demo subscriber.
pub const DEMO_PIN: &str = "1234";

#[derive(Clone, Debug)]
pub struct DemoSubscriber {
    pub msisdn: String,
    pub first_name: &'static str,
    pub last_name: &'static str,
    /// Opening wallet balance in minor units.
    pub balance: i64,
}

const NAMES: [(&str, &str); 10] = [
    ("Amina", "Otieno"),
    ("Brian", "Kamau"),
    ("Cynthia", "Wanjiru"),
    ("David", "Mwangi"),
    ("Esther", "Akinyi"),
    ("Felix", "Kiprop"),
    ("Grace", "Njeri"),
    ("Hassan", "Abdi"),
    ("Irene", "Chebet"),
    ("James", "Odhiambo"),
];

/// `+254700000001` … `+254700000010`; subscriber *n* holds KES *n*,000.00.
pub fn demo_subscribers() -> Vec<DemoSubscriber> {
    NAMES
        .iter()
        .enumerate()
        .map(|(i, (first_name, last_name))| {
            let n = i as i64 + 1;
            DemoSubscriber {
                msisdn: format!("+2547000000{n:02}"),
                first_name,
                last_name,
                balance: n * 1_000 * 100,
            }
        })
        .collect()
}

/// Creates the demo subscribers that do not exist yet, verified (KYC tier 2) and funded
/// through the ledger from the funding account, so that every balance is the sum of its
/// entries. Existing subscribers keep their balance. Returns how many were created.
pub async fn seed_demo(pool: &PgPool, pins: &PinHasher, currency: &str) -> Result<usize, MoneyError> {
    let pin = Pin::parse(DEMO_PIN).expect("the demo PIN is valid");
    let mut tx = pool.begin().await?;
    let mut created = 0;
    for s in demo_subscribers() {
        let salt = PinHasher::new_salt();
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO customers (msisdn, first_name, last_name, pin_salt, pin_hash, kyc_tier)
             VALUES ($1, $2, $3, $4, $5, 2)
             ON CONFLICT (msisdn) DO NOTHING
             RETURNING id",
        )
        .bind(&s.msisdn)
        .bind(s.first_name)
        .bind(s.last_name)
        .bind(&salt[..])
        .bind(pins.hash(&salt, &pin))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = id {
            let account: i64 = sqlx::query_scalar(
                "INSERT INTO accounts (customer_id, kind, currency) VALUES ($1, 'wallet', $2) RETURNING id",
            )
            .bind(id)
            .bind(currency)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("SELECT ledger_fund($1, $2, $3)")
                .bind(format!("demo-opening:{}", s.msisdn))
                .bind(account)
                .bind(s.balance)
                .execute(&mut *tx)
                .await?;
            created += 1;
        }
    }
    tx.commit().await?;
    Ok(created)
}
