//! Demo data for `serve --demo`: ten subscribers with a known PIN and balance.

use sqlx::PgPool;

use super::{MoneyError, PinHasher};
use crate::domain::Pin;

/// The PIN of every demo subscriber.
pub const DEMO_PIN: &str = "1234";

#[derive(Clone, Debug, PartialEq, Eq)]
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

/// `+254700000001` … : subscriber *n* ≤ 10 holds KES *n*,000.00 (the README's table);
/// the ones after (for load tests) hold KES 50,000.00 each.
pub fn demo_subscribers(count: u32) -> Vec<DemoSubscriber> {
    (1..=i64::from(count))
        .map(|n| {
            let i = (n - 1) as usize;
            DemoSubscriber {
                msisdn: format!("+2547{n:08}"),
                first_name: NAMES[i % NAMES.len()].0,
                // The first ten keep their pairs; later ones mix first and last names.
                last_name: NAMES[(i + i / NAMES.len()) % NAMES.len()].1,
                balance: if n <= 10 { n * 1_000_00 } else { 50_000_00 },
            }
        })
        .collect()
}

/// Creates the demo subscribers that do not exist yet, verified (KYC tier 2) and funded
/// through the ledger from the funding account, so that every balance is the sum of its
/// entries. Existing subscribers keep their balance. Returns how many were created.
pub async fn seed_demo(
    pool: &PgPool,
    pins: &PinHasher,
    currency: &str,
    count: u32,
) -> Result<usize, MoneyError> {
    let pin = Pin::parse(DEMO_PIN).expect("the demo PIN is valid");
    let mut tx = pool.begin().await?;
    let mut created = 0;
    for s in demo_subscribers(count) {
        let salt = PinHasher::new_salt();
        let id = sqlx::query_scalar!(
            "INSERT INTO customers (msisdn, first_name, last_name, pin_salt, pin_hash, kyc_tier)
             VALUES ($1, $2, $3, $4, $5, 2)
             ON CONFLICT (msisdn) DO NOTHING
             RETURNING id",
            &s.msisdn,
            s.first_name,
            s.last_name,
            &salt[..],
            &pins.hash(&salt, &pin),
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = id {
            let account = sqlx::query_scalar!(
                "INSERT INTO accounts (customer_id, kind, currency) VALUES ($1, 'wallet', $2) RETURNING id",
                id,
                currency,
            )
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query!(
                "SELECT ledger_fund($1, $2, $3)",
                format!("demo-opening:{}", s.msisdn),
                account,
                s.balance
            )
            .fetch_one(&mut *tx)
            .await?;
            created += 1;
        }
    }
    tx.commit().await?;
    Ok(created)
}

/// The demo agent: James Odhiambo's phone (+254700000010) runs it.
pub const DEMO_AGENT: &str = "123456";
/// The demo agent's store.
pub const DEMO_STORE: &str = "1001";
/// The float the demo agent starts with: KES 100,000.
const DEMO_FLOAT: i64 = 100_000_00;

/// Makes the tenth demo subscriber the demo agent, with float, unless it is one
/// already. Returns whether it was created.
pub async fn seed_demo_agent(pool: &PgPool) -> Result<bool, MoneyError> {
    let mut tx = pool.begin().await?;
    let float = sqlx::query_scalar!(
        r#"WITH c AS (SELECT c.id, a.currency FROM customers c JOIN accounts a ON a.customer_id = c.id AND a.kind = 'wallet'
                     WHERE c.msisdn = '+254700000010'),
              f AS (INSERT INTO accounts (customer_id, kind, currency, name)
                    SELECT id, 'agent_float', currency, 'agent_float ' || $1 FROM c
                     WHERE NOT EXISTS (SELECT 1 FROM agents WHERE agent_number = $1) RETURNING id, customer_id, currency),
              m AS (INSERT INTO accounts (customer_id, kind, currency, name)
                    SELECT customer_id, 'agent_commission', currency, 'agent_commission ' || $1 FROM f RETURNING id),
              g AS (INSERT INTO agents (customer_id, agent_number, name, float_account_id, commission_account_id)
                    SELECT f.customer_id, $1, 'Duka la Demo', f.id, m.id FROM f, m RETURNING id, float_account_id)
         SELECT float_account_id AS "float_account_id!" FROM g"#,
        DEMO_AGENT,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(float) = float else { return Ok(false) };
    sqlx::query!(
        "INSERT INTO agent_stores (store_number, agent_id, name) SELECT $1, id, 'Demo Street' FROM agents WHERE agent_number = $2",
        DEMO_STORE,
        DEMO_AGENT,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("SELECT ledger_fund($1, $2, $3)", format!("demo-float:{DEMO_AGENT}"), float, DEMO_FLOAT)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// The sandbox partners of `--demo` (prepaid power with a token, the customer paying
/// the fee; water, the biller paying it; an airtime provider for Kenyan mobile numbers
/// offering KES 20 to 500), pointed at `sandbox` (`http://…/sandbox`) on every start,
/// since the port may change.
pub async fn seed_demo_billers(pool: &PgPool, sandbox: &str, currency: &str) -> Result<(), MoneyError> {
    for (code, name, pattern, label, fee_payer) in [
        ("KPLC", "Kenya Power prepaid", "[0-9]{11}", "meter number", "customer"),
        ("WATER", "Nairobi Water", "[0-9]{6,10}", "account number", "biller"),
    ] {
        let url = format!("{sandbox}/billers/{code}");
        sqlx::query!(
            "WITH a AS (INSERT INTO accounts (kind, currency, name)
                        SELECT 'biller_settlement', $7, 'biller ' || $1 WHERE NOT EXISTS (SELECT 1 FROM billers WHERE code = $1)
                        RETURNING id)
             INSERT INTO billers (code, name, account_pattern, account_label, fee_payer, settlement_account_id, base_url)
             SELECT $1, $2, $3, $4, $5, a.id, $6 FROM a, set_config('ussd.actor', 'demo', true)
             ON CONFLICT (code) DO NOTHING",
            code,
            name,
            pattern,
            label,
            fee_payer,
            url,
            currency,
        )
        .execute(pool)
        .await?;
        sqlx::query!(
            "UPDATE billers SET base_url = $2 FROM set_config('ussd.actor', 'demo', true) WHERE code = $1",
            code,
            url,
        )
        .execute(pool)
        .await?;
    }
    sqlx::query!(
        r"WITH a AS (INSERT INTO accounts (kind, currency, name)
                    SELECT 'biller_settlement', $2, 'biller AIRTIME' WHERE NOT EXISTS (SELECT 1 FROM billers WHERE code = 'AIRTIME')
                    RETURNING id)
         INSERT INTO billers (code, name, account_pattern, account_label, fee_payer, settlement_account_id, base_url,
                              timeout_ms, category, offer_amounts)
         SELECT 'AIRTIME', 'Airtime', '\+254[17][0-9]{8}', 'phone number', 'biller', a.id, $1, 2000, 'airtime',
                '{2000, 5000, 10000, 20000, 50000}'
           FROM a, set_config('ussd.actor', 'demo', true)
          WHERE NOT EXISTS (SELECT 1 FROM billers WHERE category = 'airtime' AND status = 'active')
         ON CONFLICT (code) DO NOTHING",
        format!("{sandbox}/airtime"),
        currency,
    )
    .execute(pool)
    .await?;
    sqlx::query!(
        "UPDATE billers SET base_url = $1 FROM set_config('ussd.actor', 'demo', true) WHERE code = 'AIRTIME'",
        format!("{sandbox}/airtime"),
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The demo till merchant's tills: Mama Mboga's two counters at Westlands.
pub const DEMO_TILLS: [&str; 2] = ["512345", "512346"];

/// The demo merchants, unless they exist: a till merchant (Irene Chebet's shop, the
/// merchant paying 0.5%), and two paybills, one whose customers pay the tariff's fee
/// (a sacco, member numbers) and one that pays 0.5% itself (a school, admission numbers).
pub async fn seed_demo_merchants(pool: &PgPool, currency: &str) -> Result<(), MoneyError> {
    let mut tx = pool.begin().await?;
    type Demo<'a> =
        (&'a str, Option<&'a str>, &'a str, &'a str, &'a str, &'a str, Option<(&'a str, &'a str)>);
    let merchants: [Demo<'_>; 3] = [
        ("till", None, "Mama Mboga Groceries Ltd", "Mama Mboga", "+254700000009", "merchant", None),
        (
            "paybill",
            Some("888880"),
            "Jijenge Savings Sacco",
            "Jijenge Sacco",
            "+254700000008",
            "customer",
            Some(("[0-9]{4,8}", "member number")),
        ),
        (
            "paybill",
            Some("222222"),
            "Faraja Academy",
            "Faraja School",
            "+254700000007",
            "merchant",
            Some(("[A-Z]{2}[0-9]{3,6}", "admission number")),
        ),
    ];
    for (kind, business, legal, display, owner, payer, account) in merchants {
        let id = sqlx::query_scalar!(
            r#"WITH a AS (INSERT INTO accounts (kind, currency, name)
                          SELECT 'merchant_settlement', $9, 'merchant'
                           WHERE NOT EXISTS (SELECT 1 FROM merchants WHERE legal_name = $3)
                             AND EXISTS (SELECT 1 FROM customers WHERE msisdn = $5)
                          RETURNING id)
               INSERT INTO merchants (kind, business_number, legal_name, display_name, owner_id, notify_msisdn,
                                      fee_class, fee_payer, account_pattern, account_label, settlement_account_id)
               SELECT $1, $2, $3, $4, c.id, c.msisdn, CASE $6 WHEN 'customer' THEN 'tariff' ELSE 'standard' END,
                      $6, $7, $8, a.id
                 FROM a, customers c WHERE c.msisdn = $5
               RETURNING id"#,
            kind,
            business,
            legal,
            display,
            owner,
            payer,
            account.map(|(pattern, _)| pattern),
            account.map(|(_, label)| label),
            currency,
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let (Some(id), "till") = (id, kind) {
            sqlx::query!(
                "WITH s AS (INSERT INTO merchant_stores (merchant_id, store_number, name) VALUES ($1, '1001', 'Westlands')
                            RETURNING id)
                 INSERT INTO merchant_tills (till_number, store_id) SELECT unnest($2::text[]), s.id FROM s",
                id,
                &DEMO_TILLS.map(str::to_owned)[..],
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_ten_are_the_readme_table() {
        let all = demo_subscribers(12);
        assert_eq!(all.len(), 12);
        assert_eq!(
            (all[0].msisdn.as_str(), all[0].first_name, all[0].last_name),
            ("+254700000001", "Amina", "Otieno")
        );
        assert_eq!((all[1].first_name, all[1].last_name, all[1].balance), ("Brian", "Kamau", 2_000_00));
        assert_eq!(
            (all[9].msisdn.as_str(), all[9].last_name, all[9].balance),
            ("+254700000010", "Odhiambo", 10_000_00)
        );
        assert_eq!((all[10].msisdn.as_str(), all[10].balance), ("+254700000011", 50_000_00));
        assert_ne!((all[10].first_name, all[10].last_name), (all[0].first_name, all[0].last_name));
    }
}
