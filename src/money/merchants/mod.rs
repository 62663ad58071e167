//! Paying merchants: Buy Goods at a till, Paybill with the customer's account at the
//! business (asked of the business first, where it has a validation URL). One
//! movement each (`merchant_pay`), posted at once.

pub mod validation;

use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use tracing::warn;

use self::validation::{Asked, Verdict};
use super::crypto::Place;
use super::lane::Db;
use super::ledger::{outcome_of, reference, request_hash};
use super::{Money, MoneyError};
use crate::bytes::to_hex;
use crate::domain::{Amount, MerchantNumber, Msisdn};
use crate::outcome::{OpResult, Outcome};

/// How a merchant is paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MerchantKind {
    /// Buy Goods: the number of a till at a store's counter.
    Till,
    /// A business number, and the customer's account with the business.
    Paybill,
}

impl MerchantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MerchantKind::Till => "till",
            MerchantKind::Paybill => "paybill",
        }
    }
}

/// A payment to a merchant under an idempotency key. `account` is the customer's
/// account with a paybill (none for a till).
#[derive(Clone, Copy, Debug)]
pub struct MerchantPayment<'a> {
    pub key: &'a str,
    pub from: &'a Msisdn,
    pub kind: MerchantKind,
    pub number: &'a MerchantNumber,
    pub account: Option<&'a str>,
    pub amount: Amount,
}

/// A paybill's `pattern` (Rust's syntax) as it is matched: against the whole account.
/// The admin API refuses one this does not compile.
pub fn account_regex(pattern: &str) -> Option<regex::Regex> {
    regex::Regex::new(&format!("^(?:{pattern})$")).ok()
}

/// Whether `account` is whole a match of a paybill's `pattern`.
fn accepts(pattern: &str, account: &str) -> bool {
    account_regex(pattern).is_some_and(|re| re.is_match(account))
}

/// Who a payment to `number` would go to, before the amount is asked: the merchant's
/// name (and store, for a till) and what a paybill calls its customers' accounts.
pub async fn find(db: impl Db, kind: MerchantKind, number: &MerchantNumber) -> Result<OpResult, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT t.display_name AS "name!", t.store, t.status AS "status!", m.account_label
             FROM merchant_target($1, $2) t JOIN merchants m ON m.id = t.merchant_id"#,
        kind.as_str(),
        number.as_str(),
    )
    .fetch_optional(db)
    .await?;
    Ok(match row {
        None => OpResult::bare(Outcome::RecipientUnknown),
        Some(m) if m.status != "active" => OpResult::new(Outcome::AccountBlocked, json!({ "name": m.name })),
        Some(m) => OpResult::new(
            Outcome::Ok,
            json!({
                "name": m.name,
                "store": m.store.unwrap_or_default(),
                "label": m.account_label.unwrap_or_default(),
            }),
        ),
    })
}

/// Where a paybill's validation secret is sealed: bound to its business number.
pub fn validation_place(business_number: &str) -> Place<'_> {
    Place { table: "merchants", column: "validation_secret", row: business_number }
}

/// What the confirmation screen shows: the merchant's name, the fee the customer pays
/// and the total; or why the payment cannot be made (a paybill account of the wrong
/// shape, an amount no band of the merchant's takes or over the customer's tier, the
/// business refusing it).
pub async fn quote(money: &Money, payment: &MerchantPayment<'_>) -> Result<OpResult, MoneyError> {
    let row = sqlx::query!(
        r#"SELECT t.display_name AS "name!", t.status AS "status!", m.account_pattern, m.business_number,
                  merchant_fee(t.fee_class, $3) AS fee,
                  merchant_customer_fee(t.fee_payer, merchant_fee(t.fee_class, $3)) AS customer_fee,
                  m.validation_url, m.validation_default, m.validation_timeout_ms, m.validation_secret_sealed,
                  (SELECT k.max_per_transfer FROM customers c JOIN kyc_tiers k ON k.tier = c.kyc_tier
                    WHERE c.msisdn = $4) AS max_per_transfer,
                  (SELECT c.first_name || ' ' || c.last_name FROM customers c WHERE c.msisdn = $4) AS payer
             FROM merchant_target($1, $2) t JOIN merchants m ON m.id = t.merchant_id"#,
        payment.kind.as_str(),
        payment.number.as_str(),
        payment.amount.minor(),
        payment.from.as_e164(),
    )
    .fetch_optional(money.lane())
    .await?;
    let Some(m) = row else { return Ok(OpResult::bare(Outcome::RecipientUnknown)) };
    if m.status != "active" {
        return Ok(OpResult::new(Outcome::AccountBlocked, json!({ "name": m.name })));
    }
    if let (Some(pattern), account) = (&m.account_pattern, payment.account)
        && !accepts(pattern, account.unwrap_or_default())
    {
        return Ok(OpResult::bare(Outcome::AccountInvalid));
    }
    let amount = payment.amount.minor();
    let quoted = match (m.fee, m.customer_fee, m.max_per_transfer) {
        (Some(fee), Some(customer_fee), Some(max)) if fee - customer_fee < amount && amount <= max => {
            OpResult::new(
                Outcome::Ok,
                json!({ "name": m.name, "fee": customer_fee, "total": amount + customer_fee }),
            )
        }
        (_, _, max) => return Ok(OpResult::new(Outcome::LimitExceeded, json!({ "max": max }))),
    };
    let (Some(url), Some(sealed), Some(business)) =
        (&m.validation_url, &m.validation_secret_sealed, &m.business_number)
    else {
        return Ok(quoted);
    };
    let secret =
        money.vault().open(validation_place(business), sealed).await.map_err(|e| {
            MoneyError::Unavailable(format!("the validation secret of business {business}: {e}"))
        })?;
    // One id per quote (its op's key): a retried hop asks under the same id.
    let id = format!("val_{}", to_hex(&request_hash("validation", &[payment.key], payment.amount)[..8]));
    let asked = Asked {
        url,
        timeout: Duration::from_millis(u64::try_from(m.validation_timeout_ms).unwrap_or(2_000)),
        business_number: business,
        account: payment.account.unwrap_or_default(),
        amount,
        currency: money.currency(),
        customer_name: m.payer.as_deref().unwrap_or_default(),
        masked_msisdn: &payment.from.masked(),
        id: &id,
    };
    let refused =
        |reason: String| OpResult::new(Outcome::BillRejected, json!({ "name": m.name, "reason": reason }));
    Ok(match money.validator().ask(&asked, &SecretString::from(secret)).await {
        Verdict::Accept => quoted,
        Verdict::Reject { reason } => refused(reason),
        Verdict::Silent(why) => {
            warn!(business = %business, why = %why, default = %m.validation_default, "a paybill's validation URL did not answer");
            if m.validation_default == "accept" {
                quoted
            } else {
                refused("it could not confirm the account now".into())
            }
        }
    })
}

/// Pays the merchant: the customer's wallet to the merchant's settlement account, with
/// a receipt to each; a replay under the same key answers as the first call did.
pub async fn pay(db: impl Db, payment: &MerchantPayment<'_>) -> Result<OpResult, sqlx::Error> {
    let MerchantPayment { key, from, kind, number, account, amount } = *payment;
    let mut account_ok = true;
    if kind == MerchantKind::Paybill {
        let pattern = sqlx::query_scalar!(
            "SELECT account_pattern FROM merchants WHERE kind = 'paybill' AND business_number = $1",
            number.as_str(),
        )
        .fetch_optional(db)
        .await?
        .flatten();
        // An unknown business is the movement's to refuse, with its own code.
        account_ok = pattern.is_none_or(|p| accepts(&p, account.unwrap_or_default()));
    }
    let target = format!("{}:{}", kind.as_str(), number.as_str());
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", transfer_id AS "transfer_id!", fee AS "fee!", payer_balance
             FROM merchant_pay($1, $2, $3, $4, $5, $6, $7, $8)"#,
        key,
        &request_hash("merchant", &[from.as_e164(), &target, account.unwrap_or_default()], amount),
        from.as_e164(),
        kind.as_str(),
        number.as_str(),
        account,
        amount.minor(),
        account_ok,
    )
    .fetch_one(db)
    .await?;
    let outcome = outcome_of(&row.outcome);
    Ok(match outcome {
        Outcome::Ok => OpResult::new(
            outcome,
            json!({ "ref": reference(row.transfer_id), "fee": row.fee, "balance": row.payer_balance }),
        ),
        _ => OpResult::bare(outcome),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_the_whole_account() {
        assert!(accepts("[0-9]{4,8}", "123456"));
        assert!(!accepts("[0-9]{4,8}", "123456789"));
        assert!(!accepts("[0-9]{4,8}", "x1234"));
        assert!(accepts("A|B", "B") && !accepts("A|B", "AB"));
        assert!(!accepts("(", "("), "a pattern that does not compile takes nothing");
    }
}
