//! What an operator sees of a customer: profile, PIN state, wallet and latest
//! transfers; and the PIN unlock.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::domain::Msisdn;

/// The customer behind `msisdn` with their `limit` latest transfers, or `None`.
pub async fn lookup(pool: &PgPool, msisdn: &Msisdn, limit: i64) -> Result<Option<Value>, sqlx::Error> {
    let customer: Option<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object(
                    'msisdn', c.msisdn, 'first_name', c.first_name, 'last_name', c.last_name,
                    'language', c.language, 'kyc_tier', c.kyc_tier, 'created_at', c.created_at,
                    'pin', jsonb_build_object(
                        'failures', c.pin_failures,
                        'locked_until', CASE WHEN c.pin_locked_until > now() THEN c.pin_locked_until END),
                    'wallet', (SELECT jsonb_build_object('account_id', a.id, 'currency', a.currency,
                                   'balance', a.balance, 'held', a.held, 'status', a.status)
                                 FROM accounts a WHERE a.customer_id = c.id AND a.kind = 'wallet'))
           FROM customers c WHERE c.msisdn = $1",
    )
    .bind(msisdn.as_e164())
    .fetch_optional(pool)
    .await?;
    let Some(mut customer) = customer else { return Ok(None) };
    let transfers: Vec<Value> = sqlx::query_scalar(
        "WITH w AS (SELECT a.id FROM accounts a JOIN customers c ON c.id = a.customer_id
                     WHERE c.msisdn = $1 AND a.kind = 'wallet'),
              t AS ((SELECT tr.* FROM transfers tr, w WHERE tr.debit_account_id = w.id ORDER BY tr.id DESC LIMIT $2)
                    UNION ALL
                    (SELECT tr.* FROM transfers tr, w WHERE tr.credit_account_id = w.id ORDER BY tr.id DESC LIMIT $2))
         SELECT jsonb_build_object(
                    'id', t.id, 'ref', transfer_ref(t.id), 'kind', t.kind, 'status', t.status,
                    'reject_code', t.reject_code,
                    'direction', CASE WHEN t.debit_account_id = w.id THEN 'out' ELSE 'in' END,
                    'amount', t.amount, 'fee', t.fee, 'reverses', t.reverses,
                    'counterparty', coalesce(c.msisdn,
                                             (SELECT m.display_name || ' (' || merchant_ref(m.id) || ')'
                                                FROM merchant_settlement_shards s JOIN merchants m ON m.id = s.merchant_id
                                               WHERE s.account_id = o.id),
                                             o.name, o.kind),
                    'created_at', t.created_at)
           FROM t CROSS JOIN w
           LEFT JOIN accounts o ON o.id = CASE WHEN t.debit_account_id = w.id THEN t.credit_account_id
                                               ELSE t.debit_account_id END
           LEFT JOIN customers c ON c.id = o.customer_id
          ORDER BY t.id DESC
          LIMIT $2",
    )
    .bind(msisdn.as_e164())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    customer["transfers"] = Value::Array(transfers);
    Ok(Some(customer))
}

/// Clears a customer's wrong-PIN count and lock. `None` when there is no such
/// customer; otherwise whether a lock was in force.
pub async fn unlock_pin(pool: &PgPool, msisdn: &Msisdn) -> Result<Option<Value>, sqlx::Error> {
    let was: Option<(bool, i32)> = sqlx::query_as(
        "UPDATE customers c SET pin_failures = 0, pin_locked_until = NULL
           FROM (SELECT id, coalesce(pin_locked_until > now(), false) AS locked, pin_failures
                   FROM customers WHERE msisdn = $1 FOR UPDATE) old, set_config('ussd.actor', 'admin', true)
          WHERE c.id = old.id
      RETURNING old.locked, old.pin_failures",
    )
    .bind(msisdn.as_e164())
    .fetch_optional(pool)
    .await?;
    Ok(was.map(|(locked, failures)| json!({ "was_locked": locked, "failures_cleared": failures })))
}
