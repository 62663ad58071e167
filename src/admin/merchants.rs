//! Merchants as operators manage them: onboarding one (its settlement account, and its
//! stores and tills or its business number), changing or suspending it, and looking
//! them up with their settlement balances.

use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::{PartialSchema, ToSchema};

use secrecy::ExposeSecret;

use super::address;
use crate::domain::shape::{self, Schemas};
use crate::domain::{AccountPattern, DisplayText, Msisdn, PatternError, Region};
use crate::money::DataVault;
use crate::money::events::webhook_place;
use crate::money::merchants::{parse_merchant_ref as merchant_id, validation_place};
use crate::signature;

/// A merchant to onboard, as the admin API takes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMerchant {
    /// `till` (Buy Goods: paid at its stores' tills, the merchant pays the fee) or
    /// `paybill` (a business number and the customer's account with the business).
    #[schema(schema_with = Schemas::merchant_kind)]
    pub kind: String,
    /// A paybill's number (5 to 7 digits); none for a till merchant.
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::merchant_number)]
    pub business_number: Option<String>,
    #[schema(schema_with = Schemas::name100)]
    pub legal_name: String,
    /// What subscribers see before they pay, and on their receipts.
    #[schema(schema_with = Schemas::name30)]
    pub display_name: String,
    /// The registered customer whose wallet the settlement is withdrawn to.
    #[schema(schema_with = Schemas::msisdn)]
    pub owner: String,
    /// Who is told of each payment (a store may name its own).
    #[schema(schema_with = Schemas::msisdn)]
    pub notify_msisdn: String,
    #[serde(default = "english")]
    #[schema(schema_with = Schemas::language)]
    pub language: String,
    /// A class of `merchant_fee_bands` (`standard`, `tariff`, `free` ship).
    #[serde(default = "standard")]
    #[schema(schema_with = Schemas::fee_class)]
    pub fee_class: String,
    /// A paybill's choice: `customer` (on top of the amount), `merchant` (out of it) or
    /// `split` (half each); a till's is always `merchant`.
    #[serde(default = "merchant")]
    #[schema(schema_with = Schemas::merchant_fee_payer)]
    pub fee_payer: String,
    /// A paybill's account numbers, as a regular expression matched whole.
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::account_pattern)]
    pub account_pattern: Option<String>,
    /// What a paybill's customers are asked for: "account number" (at most 20, to fit
    /// the screen beside the business's name).
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::name20)]
    pub account_label: Option<String>,
    /// A paybill's server, asked about each payment before the customer confirms
    /// (README, "Validation"); the answer to onboarding shows the secret its calls are
    /// signed with, this once.
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::base_url)]
    pub validation_url: Option<String>,
    /// What applies when the validation URL does not answer in time: `accept` or `reject`.
    #[serde(default = "accept")]
    #[schema(schema_with = Schemas::validation_default)]
    pub validation_default: String,
    #[serde(default = "validation_timeout", deserialize_with = "shape::whole")]
    #[schema(schema_with = Schemas::validation_timeout_ms)]
    pub validation_timeout_ms: i32,
    /// Where every payment to the merchant is confirmed: a webhook of its own (README,
    /// "Confirmations"), https outside a demo; the answer shows its id and secret, the
    /// secret this once.
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::webhook_url)]
    pub confirmation_url: Option<String>,
    /// A till merchant's stores, each with its tills.
    #[serde(default)]
    #[schema(schema_with = stores)]
    pub stores: Vec<NewStore>,
}

fn accept() -> String {
    "accept".into()
}

fn validation_timeout() -> i32 {
    2_000
}

/// A store of a till merchant and the tills at its counters.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStore {
    #[schema(schema_with = Schemas::store_number)]
    pub store_number: String,
    #[schema(schema_with = Schemas::name30)]
    pub name: String,
    /// Told of the payments at this store instead of the merchant's number.
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::msisdn)]
    pub notify_msisdn: Option<String>,
    #[schema(schema_with = tills)]
    pub tills: Vec<String>,
}

/// The most stores one request names, and tills per store: the largest request the
/// document allows fits the body limit.
pub const MAX_STORES: usize = 20;
pub const MAX_TILLS: usize = 10;

fn stores() -> RefOr<Schema> {
    ArrayBuilder::new().items(NewStore::schema()).max_items(Some(MAX_STORES)).into()
}

fn tills() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(shape::MERCHANT_NUMBER.schema())
        .min_items(Some(1))
        .max_items(Some(MAX_TILLS))
        .into()
}

fn english() -> String {
    "en".into()
}

fn standard() -> String {
    "standard".into()
}

fn merchant() -> String {
    "merchant".into()
}

/// What may change of an onboarded merchant: any of these, the rest stays.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantChange {
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::name100)]
    pub legal_name: Option<String>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::name30)]
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::msisdn)]
    pub notify_msisdn: Option<String>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::language)]
    pub language: Option<String>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::fee_class)]
    pub fee_class: Option<String>,
    /// A paybill's only.
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::merchant_fee_payer)]
    pub fee_payer: Option<String>,
    /// A paybill's only.
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::account_pattern)]
    pub account_pattern: Option<String>,
    /// A paybill's only.
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::name20)]
    pub account_label: Option<String>,
    /// A paybill's only: where it is asked about each payment (a first one gets a secret,
    /// shown this once).
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::base_url)]
    pub validation_url: Option<String>,
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::validation_default)]
    pub validation_default: Option<String>,
    #[serde(default, deserialize_with = "shape::whole_opt")]
    #[schema(schema_with = Schemas::validation_timeout_ms)]
    pub validation_timeout_ms: Option<i32>,
    /// Where payments are confirmed (a first one gets a secret, shown this once).
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::webhook_url)]
    pub confirmation_url: Option<String>,
    /// `active`, or `suspended`: payments refused, the merchant shown as unable to take them.
    #[serde(default, deserialize_with = "shape::present")]
    #[schema(schema_with = Schemas::biller_status)]
    pub status: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MerchantError {
    /// The request breaks the admin API's document (a 400).
    #[error("{0}")]
    Invalid(String),
    /// The request keeps to the document but cannot be done (a 422).
    #[error("{0}")]
    Unacceptable(String),
    /// A number it would take is taken (a 409).
    #[error("{0}")]
    Taken(String),
    #[error("no merchant is {0}")]
    Unknown(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn text(field: &str, raw: &str, max: usize) -> Result<String, MerchantError> {
    DisplayText::parse(raw, max)
        .map(DisplayText::into_string)
        .map_err(|e| MerchantError::Invalid(format!("`{field}` {e}")))
}

fn shaped(field: &str, value: &str, shape: &shape::Shape, what: &str) -> Result<(), MerchantError> {
    if shape.fits(value) {
        Ok(())
    } else {
        Err(MerchantError::Invalid(format!("`{field}` `{value}` must be {what}")))
    }
}

fn phone(field: &str, raw: &str, region: Region) -> Result<Msisdn, MerchantError> {
    shaped(field, raw, &shape::MSISDN, "written +254712345678 or 0712345678")?;
    Msisdn::parse(raw, region).map_err(|e| MerchantError::Unacceptable(format!("`{field}` `{raw}` is {e}")))
}

fn one_of(field: &str, value: &str, words: &[&str]) -> Result<(), MerchantError> {
    if words.contains(&value) {
        Ok(())
    } else {
        Err(MerchantError::Invalid(format!("`{field}` `{value}` must be one of {}", words.join(", "))))
    }
}

fn validation(
    url: Option<&str>,
    default: Option<&str>,
    timeout_ms: Option<i32>,
    demo: bool,
) -> Result<(), MerchantError> {
    // A partner's server, as a webhook's: https, and never a private address outside a demo.
    partner_url("validation_url", url, demo)?;
    if let Some(default) = default {
        one_of("validation_default", default, &["accept", "reject"])?;
    }
    match timeout_ms {
        Some(ms) if !(100..=5_000).contains(&ms) => {
            Err(MerchantError::Invalid(format!("`validation_timeout_ms` must be 100 to 5000 (got {ms})")))
        }
        _ => Ok(()),
    }
}

fn pattern(raw: &str) -> Result<(), MerchantError> {
    AccountPattern::parse(raw).map(drop).map_err(|e| match e {
        PatternError::TooLong => MerchantError::Invalid(format!("`account_pattern` {e}")),
        PatternError::NotRegex => MerchantError::Unacceptable(format!("`account_pattern` `{raw}` {e}")),
    })
}

/// A store, checked, with its numbers in E.164.
struct Store {
    number: String,
    name: String,
    notify: Option<String>,
    tills: Vec<String>,
}

/// `new` checked field by field (the first problem is the answer): the stores of a till
/// merchant, with numbers read in `region`.
fn checked(
    new: &NewMerchant,
    region: Region,
    demo: bool,
) -> Result<(Msisdn, Msisdn, Vec<Store>), MerchantError> {
    one_of("kind", &new.kind, &["till", "paybill"])?;
    if let Some(number) = &new.business_number {
        shaped("business_number", number, &shape::MERCHANT_NUMBER, "5 to 7 digits")?;
    }
    text("legal_name", &new.legal_name, 100)?;
    text("display_name", &new.display_name, 30)?;
    shaped("language", &new.language, &shape::LANGUAGE, "a language code: 2 or 3 small letters")?;
    shaped("fee_class", &new.fee_class, &shape::FEE_CLASS, "a fee class's name")?;
    one_of("fee_payer", &new.fee_payer, &["customer", "merchant", "split"])?;
    if let Some(p) = &new.account_pattern {
        pattern(p)?;
    }
    if let Some(label) = &new.account_label {
        text("account_label", label, 20)?;
    }
    validation(
        new.validation_url.as_deref(),
        Some(&new.validation_default),
        Some(new.validation_timeout_ms),
        demo,
    )?;
    if new.stores.len() > MAX_STORES {
        return Err(MerchantError::Invalid(format!(
            "a merchant has at most {MAX_STORES} stores in one request"
        )));
    }
    let mut stores = Vec::with_capacity(new.stores.len());
    for s in &new.stores {
        shaped("store_number", &s.store_number, &shape::STORE_NUMBER, "3 to 7 digits")?;
        let name = text(&format!("store {}: name", s.store_number), &s.name, 30)?;
        if s.tills.is_empty() || s.tills.len() > MAX_TILLS {
            return Err(MerchantError::Invalid(format!(
                "store {} must have 1 to {MAX_TILLS} tills",
                s.store_number
            )));
        }
        for till in &s.tills {
            shaped("tills", till, &shape::MERCHANT_NUMBER, "5 to 7 digits")?;
        }
        let notify = match &s.notify_msisdn {
            Some(raw) => Some(phone("notify_msisdn", raw, region)?.as_e164().to_owned()),
            None => None,
        };
        stores.push(Store { number: s.store_number.clone(), name, notify, tills: s.tills.clone() });
    }
    let owner = phone("owner", &new.owner, region)?;
    let notify = phone("notify_msisdn", &new.notify_msisdn, region)?;
    // What the document cannot say: which fields go with which kind.
    let unacceptable = |why: &str| Err(MerchantError::Unacceptable(why.to_owned()));
    match new.kind.as_str() {
        "paybill" => {
            if new.business_number.is_none() || new.account_pattern.is_none() || new.account_label.is_none() {
                return unacceptable(
                    "a paybill needs `business_number`, `account_pattern` and `account_label`",
                );
            }
            if !stores.is_empty() {
                return unacceptable("a paybill has no stores: customers pay its business number");
            }
        }
        _ => {
            if new.business_number.is_some()
                || new.account_pattern.is_some()
                || new.account_label.is_some()
                || new.validation_url.is_some()
            {
                return unacceptable(
                    "a till merchant has no `business_number`, `account_pattern`, `account_label` or `validation_url`",
                );
            }
            if new.fee_payer != "merchant" {
                return unacceptable(
                    "Buy Goods costs the customer nothing: a till merchant's `fee_payer` is `merchant`",
                );
            }
            if stores.is_empty() {
                return unacceptable("a till merchant needs at least one store with a till");
            }
        }
    }
    let mut tills: Vec<&str> = stores.iter().flat_map(|s| s.tills.iter().map(String::as_str)).collect();
    tills.sort_unstable();
    if let Some(twice) = tills.windows(2).find(|w| w[0] == w[1]) {
        return Err(MerchantError::Unacceptable(format!("till {} is listed twice", twice[0])));
    }
    let mut numbers: Vec<&str> = stores.iter().map(|s| s.number.as_str()).collect();
    numbers.sort_unstable();
    if let Some(twice) = numbers.windows(2).find(|w| w[0] == w[1]) {
        return Err(MerchantError::Unacceptable(format!("store {} is listed twice", twice[0])));
    }
    Ok((owner, notify, stores))
}

/// A merchant as the API shows it: who it is, how it is paid, its settlement balance
/// (the sum of its shards) and stores.
const SHOW: &str = "SELECT jsonb_build_object(
        'merchant', merchant_ref(m.id), 'kind', m.kind,
        'business_number', m.business_number, 'legal_name', m.legal_name, 'display_name', m.display_name,
        'owner', c.msisdn, 'notify_msisdn', m.notify_msisdn, 'language', m.language,
        'fee_class', m.fee_class, 'fee_payer', m.fee_payer,
        'account_pattern', m.account_pattern, 'account_label', m.account_label, 'status', m.status,
        'validation', CASE WHEN m.validation_url IS NOT NULL THEN jsonb_build_object('url', m.validation_url,
                          'default', m.validation_default, 'timeout_ms', m.validation_timeout_ms) END,
        'confirmation', (SELECT jsonb_build_object('webhook', w.id, 'url', w.url, 'status', w.status)
                           FROM webhooks w WHERE w.merchant_id = m.id),
        'settlement', jsonb_build_object('account', m.settlement_account_id,
            'balance', (SELECT coalesce(sum(a.balance), 0)::bigint FROM merchant_settlement_shards s
                          JOIN accounts a ON a.id = s.account_id WHERE s.merchant_id = m.id),
            'shards', (SELECT count(*) FROM merchant_settlement_shards s WHERE s.merchant_id = m.id)),
        'stores', coalesce((SELECT jsonb_agg(jsonb_build_object('store_number', st.store_number, 'name', st.name,
                                    'notify_msisdn', st.notify_msisdn,
                                    'tills', (SELECT jsonb_agg(t.till_number ORDER BY t.till_number)
                                                FROM merchant_tills t WHERE t.store_id = st.id))
                                  ORDER BY st.store_number)
                              FROM merchant_stores st WHERE st.merchant_id = m.id), '[]'::jsonb))
      FROM merchants m JOIN customers c ON c.id = m.owner_id";

/// Which constraint a refused insert broke, if it is one of `names`.
fn broke<'a>(e: &sqlx::Error, names: &[&'a str]) -> Option<&'a str> {
    let constraint = e.as_database_error()?.constraint()?;
    names.iter().copied().find(|n| *n == constraint)
}

/// Where a merchant is onboarded: numbers read in `region`, the settlement account in
/// `currency`, a validation secret sealed by `vault`.
#[derive(Clone, Copy)]
pub struct Onboarding<'a> {
    pub region: Region,
    pub currency: &'a str,
    pub vault: &'a DataVault,
    /// `serve --demo`: a confirmation URL may be plain http, as a webhook's may.
    pub demo: bool,
}

/// Subscribes merchant `merchant`'s confirmation endpoint at `url`, or moves it there
/// (a fresh start: its failures forgotten, and enabled again unless an operator
/// disabled it); the secret of a new one, shown this once.
async fn confirmations(
    tx: &mut sqlx::PgConnection,
    vault: &DataVault,
    merchant: i64,
    url: &str,
) -> Result<Option<String>, MerchantError> {
    let id = format!("wh_{:016x}", rand::random::<u64>());
    let secret = signature::new_secret();
    let sealed = vault
        .seal(webhook_place(&id), secret.expose_secret())
        .await
        .map_err(|e| MerchantError::Database(e.into_sqlx()))?;
    let inserted: bool = sqlx::query_scalar(
        "INSERT INTO webhooks (id, url, types, secret_sealed, merchant_id) VALUES ($1, $2, '{merchant.posted}', $3, $4)
         ON CONFLICT (merchant_id) DO UPDATE
            SET url = excluded.url, failures_in_row = 0, failing_since = NULL, breaker_until = NULL,
                status = CASE WHEN webhooks.disabled_reason = 'disabled by an operator' THEN webhooks.status
                              ELSE 'active' END,
                disabled_reason = CASE WHEN webhooks.disabled_reason = 'disabled by an operator'
                                       THEN webhooks.disabled_reason END
         RETURNING xmax = 0",
    )
    .bind(&id)
    .bind(url)
    .bind(sealed)
    .bind(merchant)
    .fetch_one(&mut *tx)
    .await?;
    Ok(inserted.then(|| secret.expose_secret().to_owned()))
}

fn partner_url(field: &str, url: Option<&str>, demo: bool) -> Result<(), MerchantError> {
    let Some(url) = url else { return Ok(()) };
    let schemes = if demo { address::Schemes::HttpOrHttps } else { address::Schemes::HttpsOnly };
    match address::problem(field, url, schemes) {
        Some(address::Problem::Invalid(why)) => Err(MerchantError::Invalid(why)),
        Some(address::Problem::Unacceptable(why)) => Err(MerchantError::Unacceptable(why)),
        None => Ok(()),
    }
}

/// A new validation secret for `business_number`, and it sealed.
async fn validation_secret(
    vault: &DataVault,
    business_number: &str,
) -> Result<(String, Vec<u8>), MerchantError> {
    let secret = signature::new_secret();
    let sealed = vault
        .seal(validation_place(business_number), secret.expose_secret())
        .await
        .map_err(|e| MerchantError::Database(e.into_sqlx()))?;
    Ok((secret.expose_secret().to_owned(), sealed))
}

/// What is wrong with onboarding `new` before anything is looked up, if anything: what
/// four eyes check before proposing it.
pub fn onboarding_problem(new: &NewMerchant, region: Region, demo: bool) -> Result<(), MerchantError> {
    checked(new, region, demo)?;
    partner_url("confirmation_url", new.confirmation_url.as_deref(), demo)
}

/// Onboards `new` in one transaction; returns it as [`show`] does, with the secret its
/// validation calls are signed with, if it has a validation URL.
pub async fn onboard(pool: &PgPool, new: &NewMerchant, at: Onboarding<'_>) -> Result<Value, MerchantError> {
    let (owner, notify, stores) = checked(new, at.region, at.demo)?;
    partner_url("confirmation_url", new.confirmation_url.as_deref(), at.demo)?;
    let secret = match (&new.validation_url, &new.business_number) {
        (Some(_), Some(business)) => Some(validation_secret(at.vault, business).await?),
        _ => None,
    };
    let mut tx = pool.begin().await?;
    let owner_id: Option<i64> = sqlx::query_scalar(
        "SELECT c.id FROM customers c JOIN accounts a ON a.customer_id = c.id AND a.kind = 'wallet' WHERE c.msisdn = $1",
    )
    .bind(owner.as_e164())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(owner_id) = owner_id else {
        return Err(MerchantError::Unacceptable(format!(
            "the owner {} must be a registered customer first: the merchant's settlement is theirs",
            owner.as_e164()
        )));
    };
    let class: Option<String> = sqlx::query_scalar("SELECT class FROM merchant_fee_classes WHERE class = $1")
        .bind(&new.fee_class)
        .fetch_optional(&mut *tx)
        .await?;
    if class.is_none() {
        return Err(MerchantError::Unacceptable(format!("there is no fee class `{}`", new.fee_class)));
    }
    let inserted: Result<i64, sqlx::Error> = sqlx::query_scalar(
        "WITH a AS (INSERT INTO accounts (kind, currency, name) VALUES ('merchant_settlement', $12, 'merchant') RETURNING id)
         INSERT INTO merchants (kind, business_number, legal_name, display_name, owner_id, notify_msisdn, language,
                                fee_class, fee_payer, account_pattern, account_label, settlement_account_id,
                                validation_url, validation_default, validation_timeout_ms, validation_secret_sealed)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, a.id, $13, $14, $15, $16 FROM a
         RETURNING id",
    )
    .bind(&new.kind)
    .bind(&new.business_number)
    .bind(new.legal_name.trim())
    .bind(new.display_name.trim())
    .bind(owner_id)
    .bind(notify.as_e164())
    .bind(&new.language)
    .bind(&new.fee_class)
    .bind(&new.fee_payer)
    .bind(&new.account_pattern)
    .bind(new.account_label.as_deref().map(str::trim))
    .bind(at.currency)
    .bind(&new.validation_url)
    .bind(&new.validation_default)
    .bind(new.validation_timeout_ms)
    .bind(secret.as_ref().map(|(_, sealed)| sealed))
    .fetch_one(&mut *tx)
    .await;
    let id = match inserted {
        Ok(id) => id,
        Err(e) if broke(&e, &["merchants_business_number_key"]).is_some() => {
            return Err(MerchantError::Taken(format!(
                "business number {} is taken",
                new.business_number.as_deref().unwrap_or_default()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    add_stores(&mut tx, id, &stores).await?;
    let confirmation = match &new.confirmation_url {
        Some(url) => confirmations(&mut tx, at.vault, id, url).await?,
        None => None,
    };
    // The answer is read before the commit: a secret is never stored unshown.
    let mut shown = show_id(&mut *tx, id).await?;
    tx.commit().await?;
    if let Some((secret, _)) = secret {
        shown["validation"]["secret"] = Value::String(secret);
    }
    if let Some(secret) = confirmation {
        shown["confirmation"]["secret"] = Value::String(secret);
    }
    Ok(shown)
}

async fn add_stores(
    tx: &mut sqlx::PgConnection,
    merchant: i64,
    stores: &[Store],
) -> Result<(), MerchantError> {
    // A till taken already is named; the constraint still catches one taken meanwhile.
    let tills: Vec<&str> = stores.iter().flat_map(|s| s.tills.iter().map(String::as_str)).collect();
    let taken: Option<String> = sqlx::query_scalar(
        "SELECT till_number FROM merchant_tills WHERE till_number = ANY($1) ORDER BY 1 LIMIT 1",
    )
    .bind(&tills)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(till) = taken {
        return Err(MerchantError::Taken(format!("till {till} is taken")));
    }
    for store in stores {
        let store_id: i64 = sqlx::query_scalar(
            "INSERT INTO merchant_stores (merchant_id, store_number, name, notify_msisdn) VALUES ($1, $2, $3, $4)
             RETURNING id",
        )
        .bind(merchant)
        .bind(&store.number)
        .bind(&store.name)
        .bind(&store.notify)
        .fetch_one(&mut *tx)
        .await?;
        let added =
            sqlx::query("INSERT INTO merchant_tills (till_number, store_id) SELECT unnest($1::text[]), $2")
                .bind(&store.tills)
                .bind(store_id)
                .execute(&mut *tx)
                .await;
        if let Err(e) = added {
            if broke(&e, &["merchant_tills_pkey"]).is_some() {
                return Err(MerchantError::Taken(format!("a till of store {} is taken", store.number)));
            }
            return Err(e.into());
        }
    }
    Ok(())
}

async fn show_id(db: impl sqlx::PgExecutor<'_>, id: i64) -> Result<Value, MerchantError> {
    Ok(sqlx::query_scalar(&format!("{SHOW} WHERE m.id = $1")).bind(id).fetch_one(db).await?)
}

/// Merchant `reference` (`MC0000002A`) as the API shows it.
pub async fn show(db: &PgPool, reference: &str) -> Result<Value, MerchantError> {
    let unknown = || MerchantError::Unknown(reference.to_owned());
    let id = merchant_id(reference).ok_or_else(unknown)?;
    let found: Option<Value> =
        sqlx::query_scalar(&format!("{SHOW} WHERE m.id = $1")).bind(id).fetch_optional(db).await?;
    found.ok_or_else(unknown)
}

/// Every merchant, newest first, at most `limit`.
pub async fn list(db: &PgPool, limit: i64) -> Result<Value, MerchantError> {
    let merchants: Vec<Value> =
        sqlx::query_scalar(&format!("{SHOW} ORDER BY m.id DESC LIMIT $1")).bind(limit).fetch_all(db).await?;
    Ok(serde_json::json!({ "merchants": merchants }))
}

/// What is wrong with `c` before anything is looked up, if anything (what four eyes
/// check before proposing it); the number to notify, in E.164, when it names one.
pub fn change_checked(
    c: &MerchantChange,
    region: Region,
    demo: bool,
) -> Result<Option<String>, MerchantError> {
    validation(c.validation_url.as_deref(), c.validation_default.as_deref(), c.validation_timeout_ms, demo)?;
    partner_url("confirmation_url", c.confirmation_url.as_deref(), demo)?;
    if let Some(name) = &c.legal_name {
        text("legal_name", name, 100)?;
    }
    if let Some(name) = &c.display_name {
        text("display_name", name, 30)?;
    }
    if let Some(label) = &c.account_label {
        text("account_label", label, 20)?;
    }
    if let Some(language) = &c.language {
        shaped("language", language, &shape::LANGUAGE, "a language code: 2 or 3 small letters")?;
    }
    if let Some(class) = &c.fee_class {
        shaped("fee_class", class, &shape::FEE_CLASS, "a fee class's name")?;
    }
    if let Some(payer) = &c.fee_payer {
        one_of("fee_payer", payer, &["customer", "merchant", "split"])?;
    }
    if let Some(status) = &c.status {
        one_of("status", status, &["active", "suspended"])?;
    }
    if let Some(p) = &c.account_pattern {
        pattern(p)?;
    }
    match &c.notify_msisdn {
        Some(raw) => Ok(Some(phone("notify_msisdn", raw, region)?.as_e164().to_owned())),
        None => Ok(None),
    }
}

/// Applies `change` to merchant `reference`; returns it as [`show`] does.
pub async fn change(
    pool: &PgPool,
    reference: &str,
    change: &MerchantChange,
    at: Onboarding<'_>,
) -> Result<Value, MerchantError> {
    let c = change;
    let notify = change_checked(c, at.region, at.demo)?;
    let unknown = || MerchantError::Unknown(reference.to_owned());
    let id = merchant_id(reference).ok_or_else(unknown)?;
    let found: Option<(String, Option<String>, bool)> = sqlx::query_as(
        "SELECT kind, business_number, validation_secret_sealed IS NOT NULL FROM merchants WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let (kind, business, has_secret) = found.ok_or_else(unknown)?;
    let paybill_only = c.fee_payer.is_some()
        || c.account_pattern.is_some()
        || c.account_label.is_some()
        || c.validation_url.is_some()
        || c.validation_default.is_some()
        || c.validation_timeout_ms.is_some();
    if kind == "till" && paybill_only {
        return Err(MerchantError::Unacceptable(
            "a till merchant has no `account_pattern`, `account_label` or validation, and its `fee_payer` is `merchant`"
                .into(),
        ));
    }
    // A first validation URL gets a secret; a changed one keeps the secret it had.
    let secret = match (&c.validation_url, business) {
        (Some(_), Some(business)) if !has_secret => Some(validation_secret(at.vault, &business).await?),
        _ => None,
    };
    let mut tx = pool.begin().await?;
    let updated: Result<bool, sqlx::Error> = sqlx::query_scalar(
        "UPDATE merchants SET legal_name = coalesce($2, legal_name), display_name = coalesce($3, display_name),
                notify_msisdn = coalesce($4, notify_msisdn), language = coalesce($5, language),
                fee_class = coalesce($6, fee_class), fee_payer = coalesce($7, fee_payer),
                account_pattern = coalesce($8, account_pattern), account_label = coalesce($9, account_label),
                status = coalesce($10, status), validation_url = coalesce($11, validation_url),
                validation_default = coalesce($12, validation_default),
                validation_timeout_ms = coalesce($13, validation_timeout_ms),
                validation_secret_sealed = coalesce(validation_secret_sealed, $14)
          WHERE id = $1
      RETURNING $14::bytea IS NOT NULL AND validation_secret_sealed = $14",
    )
    .bind(id)
    .bind(c.legal_name.as_deref().map(str::trim))
    .bind(c.display_name.as_deref().map(str::trim))
    .bind(notify)
    .bind(&c.language)
    .bind(&c.fee_class)
    .bind(&c.fee_payer)
    .bind(&c.account_pattern)
    .bind(c.account_label.as_deref().map(str::trim))
    .bind(&c.status)
    .bind(&c.validation_url)
    .bind(&c.validation_default)
    .bind(c.validation_timeout_ms)
    .bind(secret.as_ref().map(|(_, sealed)| sealed))
    .fetch_one(&mut *tx)
    .await;
    match updated {
        // Ours is the secret stored only if no concurrent change stored one first.
        Ok(ours) => {
            let confirmation = match &c.confirmation_url {
                Some(url) => confirmations(&mut tx, at.vault, id, url).await?,
                None => None,
            };
            // The answer is read before the commit: a secret is never stored unshown.
            let mut shown = show_id(&mut *tx, id).await?;
            tx.commit().await?;
            if let (Some((secret, _)), true) = (secret, ours) {
                shown["validation"]["secret"] = Value::String(secret);
            }
            if let Some(secret) = confirmation {
                shown["confirmation"]["secret"] = Value::String(secret);
            }
            Ok(shown)
        }
        Err(e) if broke(&e, &["merchants_fee_class_fkey"]).is_some() => Err(MerchantError::Unacceptable(
            format!("there is no fee class `{}`", c.fee_class.as_deref().unwrap_or_default()),
        )),
        Err(e) => Err(e.into()),
    }
}
