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
use crate::domain::{AccountPattern, Amount, MerchantNumber, Msisdn};
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

/// What a quote keeps back from its hop's budget for its answer after the business's.
const VALIDATION_MARGIN: Duration = Duration::from_millis(100);

/// Where a paybill's validation secret is sealed: bound to its business number.
pub fn validation_place(business_number: &str) -> Place<'_> {
    Place { table: "merchants", column: "validation_secret", row: business_number }
}

/// What the confirmation screen shows: the merchant's name, the fee the customer pays
/// and the total; or why the payment cannot be made (a paybill account of the wrong
/// shape, an amount no band of the merchant's takes or over the customer's tier, the
/// business refusing it).
/// `budget`: when the answer is no longer waited for; the business is given what is
/// left of it (less a margin for the answer's way back), at most its own timeout.
pub async fn quote(
    money: &Money,
    payment: &MerchantPayment<'_>,
    budget: Option<tokio::time::Instant>,
) -> Result<OpResult, MoneyError> {
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
        && !AccountPattern::admits(pattern, account.unwrap_or_default())
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
    // One id per question (the op's key, the business, the account, the amount): a
    // retried hop asks again under the same id.
    let account = payment.account.unwrap_or_default();
    let id = format!(
        "val_{}",
        to_hex(&request_hash("validation", &[payment.key, business, account], payment.amount)[..8])
    );
    let own = Duration::from_millis(u64::try_from(m.validation_timeout_ms).unwrap_or(2_000));
    let left = budget.map_or(own, |b| b.saturating_duration_since(tokio::time::Instant::now()));
    let timeout = own.min(left.saturating_sub(VALIDATION_MARGIN));
    let asked = Asked {
        url,
        timeout,
        business_number: business,
        account,
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
        account_ok = pattern.is_none_or(|p| AccountPattern::admits(&p, account.unwrap_or_default()));
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

/// The id behind a merchant's reference (`MC0000002A`).
pub fn parse_merchant_ref(text: &str) -> Option<i64> {
    let hex = text.strip_prefix("MC")?;
    let digits = hex.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
    (digits && (8..=16).contains(&hex.len()))
        .then(|| i64::from_str_radix(hex, 16).ok())
        .flatten()
        .filter(|id| *id > 0)
}

/// The merchants `owner` owns, for the merchant menu to choose from: `{ref, name,
/// kind, number}` each (a till merchant's number is its first till).
pub async fn owned(db: impl Db, owner: &Msisdn) -> Result<OpResult, sqlx::Error> {
    let merchants = sqlx::query_scalar!(
        r#"SELECT jsonb_build_object('ref', merchant_ref(m.id), 'name', m.display_name, 'kind', m.kind,
                                     'number', coalesce(m.business_number,
                                         (SELECT min(t.till_number) FROM merchant_stores s
                                            JOIN merchant_tills t ON t.store_id = s.id WHERE s.merchant_id = m.id), ''))
                  AS "merchant!"
             FROM merchants m JOIN customers c ON c.id = m.owner_id
            WHERE c.msisdn = $1
            ORDER BY m.id
            LIMIT 9"#,
        owner.as_e164(),
    )
    .fetch_all(db)
    .await?;
    Ok(OpResult::new(Outcome::Ok, json!({ "merchants": merchants })))
}

/// A merchant of `owner`'s: its settlement balance (the sum of its shards) and today's
/// payments, in the ledger's time zone.
pub async fn balance(db: impl Db, owner: &Msisdn, merchant: i64) -> Result<OpResult, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT (SELECT coalesce(sum(a.balance - a.held), 0)::bigint FROM merchant_settlement_shards s
                    JOIN accounts a ON a.id = s.account_id WHERE s.merchant_id = m.id) AS "balance!",
                  (SELECT count(*) FROM merchant_payments p JOIN transfers t ON t.id = p.transfer_id
                    WHERE p.merchant_id = m.id AND t.created_at >= today.start) AS "count!",
                  (SELECT coalesce(sum(t.amount), 0)::bigint FROM merchant_payments p JOIN transfers t ON t.id = p.transfer_id
                    WHERE p.merchant_id = m.id AND t.created_at >= today.start) AS "total!"
             FROM merchants m JOIN customers c ON c.id = m.owner_id,
                  (SELECT date_trunc('day', now() AT TIME ZONE z.value) AT TIME ZONE z.value AS start
                     FROM ledger_settings z WHERE z.key = 'timezone') today
            WHERE m.id = $1 AND c.msisdn = $2"#,
        merchant,
        owner.as_e164(),
    )
    .fetch_optional(db)
    .await?;
    Ok(match row {
        None => OpResult::bare(Outcome::RecipientUnknown),
        Some(r) => OpResult::new(
            Outcome::Ok,
            json!({ "balance": r.balance, "today_count": r.count, "today_total": r.total }),
        ),
    })
}

/// A merchant of `owner`'s: its last five payments, newest first (`{date, amount,
/// number, customer, ref}`: the till or account, and the customer's masked number).
pub async fn payments(db: impl Db, owner: &Msisdn, merchant: i64) -> Result<OpResult, sqlx::Error> {
    let owns = sqlx::query_scalar!(
        r#"SELECT true AS "owns!" FROM merchants m JOIN customers c ON c.id = m.owner_id
            WHERE m.id = $1 AND c.msisdn = $2"#,
        merchant,
        owner.as_e164(),
    )
    .fetch_optional(db)
    .await?;
    if owns.is_none() {
        return Ok(OpResult::bare(Outcome::RecipientUnknown));
    }
    let entries = sqlx::query_scalar!(
        r#"SELECT jsonb_build_object(
                      'date', to_char(t.created_at AT TIME ZONE (SELECT value FROM ledger_settings WHERE key = 'timezone'), 'DD/MM'),
                      'amount', t.amount, 'number', coalesce(p.till_number, p.account_reference),
                      'customer', masked(c.msisdn), 'ref', transfer_ref(t.id)) AS "entry!"
             FROM merchant_payments p
             JOIN transfers t ON t.id = p.transfer_id
             JOIN accounts a ON a.id = t.debit_account_id
             JOIN customers c ON c.id = a.customer_id
            WHERE p.merchant_id = $1
            ORDER BY p.transfer_id DESC
            LIMIT 5"#,
        merchant,
    )
    .fetch_all(db)
    .await?;
    Ok(OpResult::new(Outcome::Ok, json!({ "entries": entries })))
}

/// Moves `amount` of merchant `merchant`'s settlement to its owner's wallet, under
/// `key`; a replay answers as the first call did.
pub async fn withdraw(
    db: impl Db,
    key: &str,
    owner: &Msisdn,
    merchant: i64,
    amount: Amount,
) -> Result<OpResult, sqlx::Error> {
    let target = merchant_ref(merchant);
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", transfer_id AS "transfer_id!", settlement_balance, wallet_balance
             FROM merchant_withdraw($1, $2, $3, $4, $5)"#,
        key,
        &request_hash("merchant_withdrawal", &[owner.as_e164(), &target], amount),
        owner.as_e164(),
        merchant,
        amount.minor(),
    )
    .fetch_one(db)
    .await?;
    let outcome = outcome_of(&row.outcome);
    Ok(match outcome {
        Outcome::Ok => OpResult::new(
            outcome,
            json!({ "ref": reference(row.transfer_id), "settlement": row.settlement_balance, "balance": row.wallet_balance }),
        ),
        _ => OpResult::bare(outcome),
    })
}

/// A merchant's reference (`MC0000002A`; the SQL function `merchant_ref` writes the same).
pub fn merchant_ref(id: i64) -> String {
    format!("MC{id:08X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_read_back_to_ids() {
        assert_eq!(merchant_ref(42), "MC0000002A");
        assert_eq!(parse_merchant_ref("MC0000002A"), Some(42));
        for bad in ["TX0000002A", "MC", "MC00000000", "MCZZ", "MC+000002A", "MC0000002a"] {
            assert_eq!(parse_merchant_ref(bad), None, "{bad}");
        }
    }
}
