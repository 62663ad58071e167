//! Billers as operators manage them — the airtime provider among them: registering one
//! (with its settlement account), changing or suspending it, and the catalogue.

use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use utoipa::ToSchema;

use super::address;
use crate::domain::shape::{self, Schemas};
use crate::domain::{AccountPattern, DisplayText, PatternError};
use crate::money::DataVault;
use crate::money::bills::client::BillerClient;
use crate::money::bills::credentials::{self, Credentials};

/// A biller to register, as the admin API takes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBiller {
    #[schema(schema_with = Schemas::biller_code)]
    pub code: String,
    #[schema(schema_with = Schemas::name30)]
    pub name: String,
    /// A regular expression the whole account number must match: `[0-9]{11}`.
    #[schema(schema_with = Schemas::account_pattern)]
    pub account_pattern: String,
    /// What subscribers are asked for: "meter number".
    #[schema(schema_with = Schemas::name30)]
    pub account_label: String,
    /// `customer` (on top of the amount) or `biller` (out of it).
    #[schema(schema_with = Schemas::fee_payer)]
    pub fee_payer: String,
    /// Where the biller's API answers (the protocol in `money::bills::client`).
    #[schema(schema_with = Schemas::base_url)]
    pub base_url: String,
    #[serde(default = "default_timeout", deserialize_with = "shape::whole")]
    #[schema(schema_with = Schemas::timeout_ms)]
    pub timeout_ms: i32,
    /// `bill`, or `airtime` for the airtime provider; it cannot change.
    #[serde(default = "default_category")]
    #[schema(schema_with = Schemas::biller_category)]
    pub category: String,
    #[serde(default, deserialize_with = "shape::wholes")]
    #[schema(schema_with = Schemas::offer_amounts)]
    pub offer_amounts: Vec<i64>,
}

fn default_category() -> String {
    "bill".into()
}

fn default_timeout() -> i32 {
    3_000
}

#[derive(Debug, thiserror::Error)]
pub enum BillerError {
    /// The request breaks the admin API's document (a 400).
    #[error("{0}")]
    Invalid(String),
    /// The request keeps to the document but cannot be done (a 422): a pattern that
    /// does not compile, an address a biller cannot have.
    #[error("{0}")]
    Unacceptable(String),
    #[error("biller code {0} is taken")]
    CodeTaken(String),
    #[error("no biller has the code {0}")]
    Unknown(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What may change of a registered biller: any of these, the rest stays.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BillerChange {
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::name30)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::account_pattern)]
    pub account_pattern: Option<String>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::name30)]
    pub account_label: Option<String>,
    /// Payments already held settle as they were held.
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::fee_payer)]
    pub fee_payer: Option<String>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::base_url)]
    pub base_url: Option<String>,
    #[serde(default, deserialize_with = "shape::whole_opt")]
    #[schema(schema_with = Schemas::timeout_ms)]
    pub timeout_ms: Option<i32>,
    /// `active`, or `suspended`: out of the menu, and new payments refused; payments
    /// pending with it are still reconciled.
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::biller_status)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "shape::wholes_opt")]
    #[schema(schema_with = Schemas::offer_amounts)]
    pub offer_amounts: Option<Vec<i64>>,
}

/// What subscribers read on screens and in receipts: one visible line of 1 to 30.
fn name_problem(name: &str) -> Option<BillerError> {
    DisplayText::parse(name, 30).err().map(|e| BillerError::Invalid(format!("`name` {e}")))
}

fn pattern_problem(pattern: &str) -> Option<BillerError> {
    AccountPattern::parse(pattern).err().map(|e| match e {
        PatternError::TooLong => BillerError::Invalid(format!("`account_pattern` {e}")),
        PatternError::NotRegex => BillerError::Unacceptable(format!("`account_pattern` `{pattern}` {e}")),
    })
}

fn label_problem(label: &str) -> Option<BillerError> {
    DisplayText::parse(label, 30).err().map(|e| BillerError::Invalid(format!("`account_label` {e}")))
}

fn fee_payer_problem(payer: &str) -> Option<BillerError> {
    (!matches!(payer, "customer" | "biller"))
        .then(|| BillerError::Invalid(format!("`fee_payer` `{payer}` must be `customer` or `biller`")))
}

/// A biller's address: http(s), of an address a server may be made to call.
fn url_problem(url: &str) -> Option<BillerError> {
    match address::problem("base_url", url, address::Schemes::HttpOrHttps)? {
        address::Problem::Invalid(why) => Some(BillerError::Invalid(why)),
        address::Problem::Unacceptable(why) => Some(BillerError::Unacceptable(why)),
    }
}

fn offer_problem(amounts: &[i64]) -> Option<BillerError> {
    if amounts.len() > 8 {
        return Some(BillerError::Invalid("`offer_amounts` holds at most 8 amounts".into()));
    }
    amounts.iter().find(|a| !(1..=shape::MAX_OFFER).contains(*a)).map(|a| {
        BillerError::Invalid(format!(
            "`offer_amounts` must be 1 to {} minor units (got {a})",
            shape::MAX_OFFER
        ))
    })
}

fn timeout_problem(ms: i32) -> Option<BillerError> {
    (!(100..=30_000).contains(&ms))
        .then(|| BillerError::Invalid(format!("`timeout_ms` must be 100 to 30000 (got {ms})")))
}

impl NewBiller {
    /// The first thing wrong with this request, if any.
    /// What is wrong with the request before anything is looked up, if anything.
    pub fn problem(&self) -> Option<BillerError> {
        if !shape::BILLER_CODE.fits(&self.code) {
            return Some(BillerError::Invalid(format!(
                "`code` `{}` must be 2 to 12 capital letters or digits, starting with a letter",
                self.code
            )));
        }
        name_problem(&self.name)
            .or_else(|| pattern_problem(&self.account_pattern))
            .or_else(|| label_problem(&self.account_label))
            .or_else(|| fee_payer_problem(&self.fee_payer))
            .or_else(|| url_problem(&self.base_url))
            .or_else(|| timeout_problem(self.timeout_ms))
            .or_else(|| offer_problem(&self.offer_amounts))
            .or_else(|| match self.category.as_str() {
                "bill" => None,
                "airtime" if self.fee_payer == "biller" => None,
                "airtime" => Some(BillerError::Unacceptable(AIRTIME_FEE.into())),
                other => {
                    Some(BillerError::Invalid(format!("`category` `{other}` must be `bill` or `airtime`")))
                }
            })
    }
}

const AIRTIME_FEE: &str =
    "an airtime provider's `fee_payer` is `biller`: airtime costs the customer its face value";
const AIRTIME_TAKEN: &str = "another airtime provider is active: suspend it first";

/// The refusals the database makes for airtime providers, as the admin API words them.
fn airtime_refusal(e: sqlx::Error) -> BillerError {
    match e.as_database_error().and_then(|d| d.constraint()) {
        Some("billers_one_airtime") => BillerError::Unacceptable(AIRTIME_TAKEN.into()),
        Some("billers_airtime_fee") => BillerError::Unacceptable(AIRTIME_FEE.into()),
        _ => BillerError::Database(e),
    }
}

impl BillerChange {
    /// What is wrong with the request before anything is looked up, if anything.
    pub fn problem(&self) -> Option<BillerError> {
        let status = self.status.as_deref().and_then(|s| {
            (!matches!(s, "active" | "suspended"))
                .then(|| BillerError::Invalid(format!("`status` `{s}` must be `active` or `suspended`")))
        });
        self.name
            .as_deref()
            .and_then(name_problem)
            .or_else(|| self.account_pattern.as_deref().and_then(pattern_problem))
            .or_else(|| self.account_label.as_deref().and_then(label_problem))
            .or_else(|| self.fee_payer.as_deref().and_then(fee_payer_problem))
            .or_else(|| self.base_url.as_deref().and_then(url_problem))
            .or_else(|| self.timeout_ms.and_then(timeout_problem))
            .or_else(|| self.offer_amounts.as_deref().and_then(offer_problem))
            .or(status)
    }
}

const SHOW: &str = "SELECT jsonb_build_object('code', b.code, 'name', b.name, 'account_pattern', b.account_pattern,
                           'account_label', b.account_label, 'fee_payer', b.fee_payer, 'base_url', b.base_url,
                           'timeout_ms', b.timeout_ms, 'status', b.status, 'credentials', b.credentials_sealed IS NOT NULL,
                           'category', b.category, 'offer_amounts', b.offer_amounts,
                           'settlement', jsonb_build_object('account', a.id,
                               'balance', (SELECT coalesce(sum(sa.balance), 0)::bigint FROM biller_settlement_shards s
                                             JOIN accounts sa ON sa.id = s.account_id WHERE s.biller_id = b.id),
                               'shards', (SELECT count(*) FROM biller_settlement_shards s WHERE s.biller_id = b.id)),
                           'pending_payments', (SELECT count(*) FROM bill_payments p WHERE p.biller_id = b.id AND p.state = 'pending'))
                      FROM billers b JOIN accounts a ON a.id = b.settlement_account_id";

/// Registers `new` with a settlement account of `currency`; returns it as [`list`] shows it.
pub async fn register(pool: &PgPool, new: &NewBiller, currency: &str) -> Result<Value, BillerError> {
    if let Some(problem) = new.problem() {
        return Err(problem);
    }
    let inserted: Option<i64> = sqlx::query_scalar(
        "WITH a AS (INSERT INTO accounts (kind, currency, name)
                    SELECT 'biller_settlement', $8, 'biller ' || $1 WHERE NOT EXISTS (SELECT 1 FROM billers WHERE code = $1)
                    RETURNING id)
         INSERT INTO billers (code, name, account_pattern, account_label, fee_payer, settlement_account_id, base_url,
                              timeout_ms, category, offer_amounts)
         SELECT $1, $2, $3, $4, $5, a.id, $6, $7, $9, $10 FROM a, set_config('ussd.actor', 'admin', true)
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
    .bind(&new.category)
    .bind(&new.offer_amounts)
    .fetch_optional(pool)
    .await
    .map_err(airtime_refusal)?;
    let Some(id) = inserted else { return Err(BillerError::CodeTaken(new.code.clone())) };
    Ok(sqlx::query_scalar(&format!("{SHOW} WHERE b.id = $1")).bind(id).fetch_one(pool).await?)
}

/// Applies `change` to biller `code`; returns it as [`list`] shows it.
pub async fn change(pool: &PgPool, code: &str, change: &BillerChange) -> Result<Value, BillerError> {
    if let Some(problem) = change.problem() {
        return Err(problem);
    }
    let updated: Option<i64> = sqlx::query_scalar(
        "UPDATE billers SET name = coalesce($2, name), account_pattern = coalesce($3, account_pattern),
                account_label = coalesce($4, account_label), fee_payer = coalesce($5, fee_payer),
                base_url = coalesce($6, base_url), timeout_ms = coalesce($7, timeout_ms), status = coalesce($8, status),
                offer_amounts = coalesce($9, offer_amounts)
           FROM set_config('ussd.actor', 'admin', true)
          WHERE code = $1
      RETURNING id",
    )
    .bind(code)
    .bind(change.name.as_deref().map(str::trim))
    .bind(&change.account_pattern)
    .bind(change.account_label.as_deref().map(str::trim))
    .bind(&change.fee_payer)
    .bind(&change.base_url)
    .bind(change.timeout_ms)
    .bind(&change.status)
    .bind(&change.offer_amounts)
    .fetch_optional(pool)
    .await
    .map_err(airtime_refusal)?;
    let Some(id) = updated else { return Err(BillerError::Unknown(code.to_owned())) };
    Ok(sqlx::query_scalar(&format!("{SHOW} WHERE b.id = $1")).bind(id).fetch_one(pool).await?)
}

/// The first thing wrong with a biller's credentials, if any: breaking the document
/// (400) or unusable as they are (422).
pub fn credentials_problem(credentials: &Credentials) -> Option<BillerError> {
    let invalid = |what: &str| Some(BillerError::Invalid(what.to_owned()));
    if let Some(key) = &credentials.api_key {
        if !shape::HEADER_NAME.fits(&key.header) {
            return invalid("`api_key.header` must be a header name: letters, digits and -, at most 64");
        }
        if !shape::API_KEY.fits(&key.value) {
            return invalid("`api_key.value` must be 8 to 512 visible ASCII characters");
        }
        let header = key.header.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&header.as_str()) || header.starts_with("x-gateway-") {
            return Some(BillerError::Unacceptable(format!(
                "`api_key.header` `{}` is a header the gateway sets itself",
                key.header
            )));
        }
    }
    if let Some(signing) = &credentials.hmac {
        if !shape::KEY_ID.fits(&signing.key_id) {
            return invalid("`hmac.key_id` must be 1 to 64 letters, digits, ., _ or -");
        }
        if !shape::SIGNING_SECRET.fits(&signing.secret) {
            return invalid("`hmac.secret` must be 16 to 256 visible ASCII characters");
        }
    }
    let pems = [
        credentials.mtls.as_ref().map(|m| ("mtls.certificate", &m.certificate)),
        credentials.mtls.as_ref().map(|m| ("mtls.private_key", &m.private_key)),
        credentials.ca_certificate.as_ref().map(|ca| ("ca_certificate", ca)),
    ];
    for (field, pem) in pems.into_iter().flatten() {
        if pem.len() > 8_000 || !shape::PEM.fits(pem) {
            return Some(BillerError::Invalid(format!("`{field}` must be PEM, at most 8000 characters")));
        }
    }
    BillerClient::with(credentials).err().map(BillerError::Unacceptable)
}

/// Headers a partner's API key cannot take: the gateway writes them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "trailer",
];

/// Replaces biller `code`'s credentials (all of them; none clears them), sealed for its
/// row. Answers which are set, never what they are.
pub async fn set_credentials(
    pool: &PgPool,
    vault: &DataVault,
    code: &str,
    credentials: &Credentials,
) -> Result<Value, BillerError> {
    if let Some(problem) = credentials_problem(credentials) {
        return Err(problem);
    }
    let sealed = if credentials.is_empty() {
        None
    } else {
        let json = serde_json::to_string(credentials).expect("credentials serialise");
        Some(
            vault
                .seal(credentials::place(code), &json)
                .await
                .map_err(|e| BillerError::Database(e.into_sqlx()))?,
        )
    };
    let updated = sqlx::query("UPDATE billers SET credentials_sealed = $2 FROM set_config('ussd.actor', 'admin', true) WHERE code = $1")
        .bind(code)
        .bind(sealed)
        .execute(pool)
        .await?;
    if updated.rows_affected() == 0 {
        return Err(BillerError::Unknown(code.to_owned()));
    }
    Ok(json!({ "code": code, "credentials": credentials.summary() }))
}

/// Every biller, with its settlement balance and the payments still pending with it.
pub async fn list(pool: &PgPool) -> Result<Value, sqlx::Error> {
    let billers: Vec<Value> = sqlx::query_scalar(&format!("{SHOW} ORDER BY b.code")).fetch_all(pool).await?;
    Ok(json!({ "billers": billers }))
}
