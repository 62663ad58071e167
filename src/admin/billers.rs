//! Billers as operators manage them: registering one (with its settlement account) and
//! the catalogue.

use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;

/// A biller to register, as the admin API takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBiller {
    pub code: String,
    pub name: String,
    /// A regular expression the whole account number must match: `[0-9]{11}`.
    pub account_pattern: String,
    /// What subscribers are asked for: "meter number".
    pub account_label: String,
    /// `customer` (on top of the amount) or `biller` (out of it).
    pub fee_payer: String,
    /// Where the biller's API answers (the protocol in `money::bills::client`).
    pub base_url: String,
    #[serde(default = "default_timeout")]
    pub timeout_ms: i32,
}

fn default_timeout() -> i32 {
    3_000
}

#[derive(Debug, thiserror::Error)]
pub enum BillerError {
    #[error("{0}")]
    Invalid(String),
    #[error("biller code {0} is taken")]
    CodeTaken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl NewBiller {
    /// The first thing wrong with this request, if any.
    fn problem(&self) -> Option<String> {
        let code_ok = (2..=12).contains(&self.code.len())
            && self.code.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
            && self.code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !code_ok {
            return Some(format!(
                "`code` `{}` must be 2 to 12 capital letters or digits, starting with a letter",
                self.code
            ));
        }
        if !(1..=30).contains(&self.name.trim().chars().count()) {
            return Some("`name` must be 1 to 30 characters".into());
        }
        if self.account_pattern.len() > 200 || regex::Regex::new(&self.account_pattern).is_err() {
            return Some(format!(
                "`account_pattern` `{}` is not a regular expression (at most 200 characters)",
                self.account_pattern
            ));
        }
        if !(1..=30).contains(&self.account_label.trim().chars().count()) {
            return Some("`account_label` must be 1 to 30 characters".into());
        }
        if !matches!(self.fee_payer.as_str(), "customer" | "biller") {
            return Some(format!("`fee_payer` `{}` must be `customer` or `biller`", self.fee_payer));
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Some(format!("`base_url` `{}` must start with http:// or https://", self.base_url));
        }
        if !(100..=30_000).contains(&self.timeout_ms) {
            return Some(format!("`timeout_ms` must be 100 to 30000 (got {})", self.timeout_ms));
        }
        None
    }
}

const SHOW: &str = "SELECT jsonb_build_object('code', b.code, 'name', b.name, 'account_pattern', b.account_pattern,
                           'account_label', b.account_label, 'fee_payer', b.fee_payer, 'base_url', b.base_url,
                           'timeout_ms', b.timeout_ms, 'status', b.status,
                           'settlement', jsonb_build_object('account', a.id, 'balance', a.balance),
                           'pending_payments', (SELECT count(*) FROM bill_payments p WHERE p.biller_id = b.id AND p.state = 'pending'))
                      FROM billers b JOIN accounts a ON a.id = b.settlement_account_id";

/// Registers `new` with a settlement account of `currency`; returns it as [`list`] shows it.
pub async fn register(pool: &PgPool, new: &NewBiller, currency: &str) -> Result<Value, BillerError> {
    if let Some(problem) = new.problem() {
        return Err(BillerError::Invalid(problem));
    }
    let inserted: Option<i64> = sqlx::query_scalar(
        "WITH a AS (INSERT INTO accounts (kind, currency, name)
                    SELECT 'biller_settlement', $8, 'biller ' || $1 WHERE NOT EXISTS (SELECT 1 FROM billers WHERE code = $1)
                    RETURNING id)
         INSERT INTO billers (code, name, account_pattern, account_label, fee_payer, settlement_account_id, base_url, timeout_ms)
         SELECT $1, $2, $3, $4, $5, a.id, $6, $7 FROM a
         ON CONFLICT (code) DO NOTHING
         RETURNING id",
    )
    .bind(&new.code)
    .bind(new.name.trim())
    .bind(&new.account_pattern)
    .bind(new.account_label.trim())
    .bind(&new.fee_payer)
    .bind(&new.base_url)
    .bind(new.timeout_ms)
    .bind(currency)
    .fetch_optional(pool)
    .await?;
    let Some(id) = inserted else { return Err(BillerError::CodeTaken(new.code.clone())) };
    Ok(sqlx::query_scalar(&format!("{SHOW} WHERE b.id = $1")).bind(id).fetch_one(pool).await?)
}

/// Every biller, with its settlement balance and the payments still pending with it.
pub async fn list(pool: &PgPool) -> Result<Value, sqlx::Error> {
    let billers: Vec<Value> = sqlx::query_scalar(&format!("{SHOW} ORDER BY b.code")).fetch_all(pool).await?;
    Ok(json!({ "billers": billers }))
}
