//! Cash-out started by an agent and approved by the customer: the request that holds
//! the money, the customer's waiting requests, the decision, and the hold sweeper.

use std::time::Duration;

use serde_json::json;

use super::lane::Db;
use super::ledger::{outcome_of, reference, request_hash};
use crate::domain::{Amount, Msisdn};
use crate::outcome::{OpResult, Outcome};

/// The customer's name and the fee, for the agent's confirmation of a request that
/// `agent` (the phone dialling) would send to `customer` from its `store`.
pub async fn quote(
    db: impl Db,
    agent: &Msisdn,
    customer: &Msisdn,
    store: &str,
    amount: Amount,
) -> Result<OpResult, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT EXISTS (SELECT 1 FROM agents g JOIN customers c ON c.id = g.customer_id WHERE c.msisdn = $1) AS "is_agent!",
                  EXISTS (SELECT 1 FROM agents g JOIN customers c ON c.id = g.customer_id
                            JOIN agent_stores s ON s.agent_id = g.id
                           WHERE c.msisdn = $1 AND s.store_number = $3) AS "own_store!",
                  (SELECT first_name || ' ' || last_name FROM customers WHERE msisdn = $2) AS name,
                  (SELECT b.fee FROM fee_bands b WHERE b.kind = 'withdrawal' AND $4 BETWEEN b.min_amount AND b.max_amount) AS fee"#,
        agent.as_e164(),
        customer.as_e164(),
        store,
        amount.minor(),
    )
    .fetch_one(db)
    .await?;
    let (is_agent, own_store, name, fee) = (row.is_agent, row.own_store, row.name, row.fee);
    Ok(match (is_agent, own_store, name, fee) {
        (false, ..) => OpResult::bare(Outcome::NotAgent),
        (_, false, ..) => OpResult::bare(Outcome::StoreUnknown),
        _ if agent == customer => OpResult::bare(Outcome::SameAccount),
        (_, _, None, _) => OpResult::bare(Outcome::RecipientUnknown),
        (_, _, _, None) => OpResult::bare(Outcome::LimitExceeded),
        (_, _, Some(name), Some(fee)) => {
            OpResult::new(Outcome::Ok, json!({ "name": name, "fee": fee, "total": amount.minor() + fee }))
        }
    })
}

/// What an agent asks of a customer.
pub struct Request<'a> {
    pub customer: &'a Msisdn,
    pub store: &'a str,
    pub amount: Amount,
    /// Where the customer approves, for the SMS asking them to (`*384*7#`).
    pub dial: &'a str,
}

/// `agent` asks a customer to approve a withdrawal under `key`: the amount and fee are
/// held on the wallet until approved, declined or `ttl` passes.
pub async fn request(
    db: impl Db,
    key: &str,
    agent: &Msisdn,
    Request { customer, store, amount, dial }: Request<'_>,
    ttl: Duration,
) -> Result<OpResult, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", transfer_id AS "transfer_id!", fee AS "fee!"
             FROM agent_cash_out_request($1, $2, $3, $4, $5, $6, $7, $8)"#,
        key,
        &request_hash("cash_out_request", &[agent.as_e164(), store, customer.as_e164()], amount),
        agent.as_e164(),
        store,
        customer.as_e164(),
        amount.minor(),
        i32::try_from(ttl.as_secs()).unwrap_or(i32::MAX),
        dial,
    )
    .fetch_one(db)
    .await?;
    let (code, transfer_id, fee) = (row.outcome, row.transfer_id, row.fee);
    let outcome = match code.as_str() {
        "not_registered" => Outcome::NotAgent,
        "store_unknown" => Outcome::StoreUnknown,
        other => outcome_of(other),
    };
    let minutes = ttl.as_secs().div_ceil(60);
    Ok(OpResult::new(outcome, json!({ "ref": reference(transfer_id), "fee": fee, "minutes": minutes })))
}

/// The requests waiting for `customer`'s answer, oldest first: how many, and the
/// first of them in full (the one a menu asks about).
pub async fn waiting(db: impl Db, customer: &Msisdn) -> Result<OpResult, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT transfer_ref(t.id) AS "reference!", t.amount, t.fee, g.name AS agent, g.agent_number, s.name AS store
           FROM customers c
           JOIN accounts w ON w.customer_id = c.id AND w.kind = 'wallet'
           JOIN holds h ON h.account_id = w.id AND h.resolution IS NULL AND h.expires_at > now()
           JOIN transfers t ON t.id = h.transfer_id AND t.kind = 'cash_out'
           JOIN agents g ON g.float_account_id = t.credit_account_id
           JOIN agent_stores s ON s.store_number = t.store_number
          WHERE c.msisdn = $1
          ORDER BY h.transfer_id"#,
        customer.as_e164(),
    )
    .fetch_all(db)
    .await?;
    let rows: Vec<_> =
        rows.into_iter().map(|r| (r.reference, r.amount, r.fee, r.agent, r.agent_number, r.store)).collect();
    let first = rows.first().map(|(reference, amount, fee, agent, agent_number, store)| {
        json!({
            "ref": reference, "amount": amount, "fee": fee, "total": amount + fee,
            "agent": agent, "agent_number": agent_number, "store": store,
        })
    });
    Ok(OpResult::new(Outcome::Ok, json!({ "count": rows.len(), "first": first })))
}

/// `customer` approves (`approve`) or declines the request `transfer_id` under `key`;
/// exactly once, however it races another decision or the sweeper. A request no longer
/// waiting (it expired, was declined, or is not theirs) answers `expired`; a key the
/// promise keeper closed (the subscriber was told it did not arrive) answers `conflict`.
pub async fn decide(
    db: impl Db,
    key: &str,
    customer: &Msisdn,
    transfer_id: i64,
    approve: bool,
) -> Result<OpResult, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", transfer_id, fee AS "fee!", payer_balance
             FROM cash_out_decide_keyed($1, $2, $3, $4)"#,
        key,
        transfer_id,
        customer.as_e164(),
        approve,
    )
    .fetch_one(db)
    .await?;
    let (code, id, fee, balance) = (row.outcome, row.transfer_id, row.fee, row.payer_balance);
    let outcome = match (code.as_str(), approve) {
        ("ok", true) | ("declined", false) => Outcome::Ok,
        ("ok" | "declined" | "expired" | "not_found", _) => Outcome::Expired,
        ("not_arrived", _) => Outcome::Conflict,
        (other, _) => outcome_of(other),
    };
    Ok(OpResult::new(outcome, json!({ "ref": id.map(reference), "fee": fee, "balance": balance })))
}

/// Expires the holds past their time, `batch` at a time; returns how many.
pub async fn sweep(db: impl Db, batch: u16) -> Result<u64, sqlx::Error> {
    let mut expired = 0;
    loop {
        let n =
            sqlx::query_scalar!(r#"SELECT holds_expire($1) AS "n!""#, i32::from(batch)).fetch_one(db).await?;
        expired += u64::try_from(n).unwrap_or(0);
        if n < i32::from(batch) {
            return Ok(expired);
        }
    }
}
