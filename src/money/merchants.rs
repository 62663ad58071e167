//! Paying merchants: Buy Goods at a till, Paybill with the customer's account at the
//! business. One movement each (`merchant_pay`), posted at once.

use serde_json::json;

use super::lane::Db;
use super::ledger::{outcome_of, reference, request_hash};
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

/// Whether `account` is whole a match of a paybill's `pattern` (Rust's syntax, as the
/// admin API checked it).
fn accepts(pattern: &str, account: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(account))
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

/// What the confirmation screen shows: the merchant's name, the fee the customer pays
/// and the total; or why the payment cannot be made (a paybill account of the wrong
/// shape, an amount no band of the merchant's takes or over the customer's tier).
pub async fn quote(db: impl Db, payment: &MerchantPayment<'_>) -> Result<OpResult, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT t.display_name AS "name!", t.status AS "status!", m.account_pattern,
                  merchant_fee(t.fee_class, $3) AS fee,
                  merchant_customer_fee(t.fee_payer, merchant_fee(t.fee_class, $3)) AS customer_fee,
                  (SELECT k.max_per_transfer FROM customers c JOIN kyc_tiers k ON k.tier = c.kyc_tier
                    WHERE c.msisdn = $4) AS max_per_transfer
             FROM merchant_target($1, $2) t JOIN merchants m ON m.id = t.merchant_id"#,
        payment.kind.as_str(),
        payment.number.as_str(),
        payment.amount.minor(),
        payment.from.as_e164(),
    )
    .fetch_optional(db)
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
    match (m.fee, m.customer_fee, m.max_per_transfer) {
        (Some(fee), Some(customer_fee), Some(max)) if fee - customer_fee < amount && amount <= max => {
            Ok(OpResult::new(
                Outcome::Ok,
                json!({ "name": m.name, "fee": customer_fee, "total": amount + customer_fee }),
            ))
        }
        (_, _, max) => Ok(OpResult::new(Outcome::LimitExceeded, json!({ "max": max }))),
    }
}

/// Pays the merchant: the customer's wallet to the merchant's settlement account, with
/// a receipt to each; a replay under the same key answers as the first call did.
pub async fn pay(db: impl Db, payment: &MerchantPayment<'_>) -> Result<OpResult, sqlx::Error> {
    let MerchantPayment { key, from, kind, number, account, amount } = *payment;
    if kind == MerchantKind::Paybill {
        let pattern = sqlx::query_scalar!(
            "SELECT account_pattern FROM merchants WHERE kind = 'paybill' AND business_number = $1",
            number.as_str(),
        )
        .fetch_optional(db)
        .await?
        .flatten();
        // An unknown business is the movement's to refuse, with its own code.
        if pattern.is_some_and(|p| !accepts(&p, account.unwrap_or_default())) {
            return Ok(OpResult::bare(Outcome::AccountInvalid));
        }
    }
    let target = format!("{}:{}", kind.as_str(), number.as_str());
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", transfer_id AS "transfer_id!", fee AS "fee!", payer_balance
             FROM merchant_pay($1, $2, $3, $4, $5, $6, $7)"#,
        key,
        &request_hash("merchant", &[from.as_e164(), &target, account.unwrap_or_default()], amount),
        from.as_e164(),
        kind.as_str(),
        number.as_str(),
        account,
        amount.minor(),
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
