//! Agents as the menus see them: who is dialling, the customer a cash-in goes to, the
//! cash-in itself (one call of `agent_cash_in`), float and commission; and a customer's
//! cash-out at a store (one call of `agent_cash_out`).

use serde_json::json;

use super::lane::Db;
use super::ledger::{outcome_of, reference, request_hash, statement_of};
use crate::domain::{Amount, Msisdn};
use crate::outcome::{OpResult, Outcome};

/// The agent behind `msisdn`: business name, agent number, the phone's language.
pub async fn profile(db: impl Db, msisdn: &Msisdn) -> Result<OpResult, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT g.name, g.agent_number, c.language FROM agents g JOIN customers c ON c.id = g.customer_id
          WHERE c.msisdn = $1 AND g.status = 'active'",
        msisdn.as_e164(),
    )
    .fetch_optional(db)
    .await?
    .map(|r| (r.name, r.agent_number, r.language));
    Ok(match row {
        None => OpResult::bare(Outcome::NotAgent),
        Some((name, agent_number, language)) => OpResult::new(
            Outcome::Ok,
            json!({ "name": name, "agent_number": agent_number, "language": language }),
        ),
    })
}

/// The name of the customer a cash-in from `agent` to `to` would reach.
pub async fn quote_cash_in(db: impl Db, agent: &Msisdn, to: &Msisdn) -> Result<OpResult, sqlx::Error> {
    if agent == to {
        return Ok(OpResult::bare(Outcome::SameAccount));
    }
    let row = sqlx::query!(
        r#"SELECT EXISTS (SELECT 1 FROM agents g JOIN customers c ON c.id = g.customer_id WHERE c.msisdn = $1) AS "is_agent!",
                  (SELECT first_name || ' ' || last_name FROM customers WHERE msisdn = $2) AS name"#,
        agent.as_e164(),
        to.as_e164(),
    )
    .fetch_one(db)
    .await?;
    let (is_agent, name) = (row.is_agent, row.name);
    Ok(match (is_agent, name) {
        (false, _) => OpResult::bare(Outcome::NotAgent),
        (true, None) => OpResult::bare(Outcome::RecipientUnknown),
        (true, Some(name)) => OpResult::new(Outcome::Ok, json!({ "name": name })),
    })
}

/// Cash-in of `amount` from `agent`'s float to `to`'s wallet under `key`.
pub async fn cash_in(
    db: impl Db,
    key: &str,
    agent: &Msisdn,
    to: &Msisdn,
    amount: Amount,
) -> Result<OpResult, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", transfer_id AS "transfer_id!", float_balance FROM agent_cash_in($1, $2, $3, $4, $5)"#,
        key,
        &request_hash("cash_in", &[agent.as_e164(), to.as_e164()], amount),
        agent.as_e164(),
        to.as_e164(),
        amount.minor(),
    )
    .fetch_one(db)
    .await?;
    let (code, transfer_id, float) = (row.outcome, row.transfer_id, row.float_balance);
    let outcome = match code.as_str() {
        // The agent's phone is a customer; what it lacks here is the agent.
        "not_registered" => Outcome::NotAgent,
        other => outcome_of(other),
    };
    Ok(OpResult::new(outcome, json!({ "ref": reference(transfer_id), "balance": float })))
}

/// The agent and store a customer's cash-out of `amount` would reach, and its fee.
pub async fn quote_cash_out(
    db: impl Db,
    from: &Msisdn,
    agent: &str,
    store: &str,
    amount: Amount,
) -> Result<OpResult, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT g.name AS agent, s.name AS store, c.msisdn = $1 AS "own!",
                  (SELECT b.fee FROM fee_bands b WHERE b.kind = 'withdrawal' AND $4 BETWEEN b.min_amount AND b.max_amount) AS fee
             FROM agents g
             JOIN agent_stores s ON s.agent_id = g.id AND s.store_number = $3
             JOIN customers c ON c.id = g.customer_id
            WHERE g.agent_number = $2 AND g.status = 'active'"#,
        from.as_e164(),
        agent,
        store,
        amount.minor(),
    )
    .fetch_optional(db)
    .await?
    .map(|r| (r.agent, r.store, r.own, r.fee));
    Ok(match row {
        None => OpResult::bare(Outcome::RecipientUnknown),
        Some((_, _, true, _)) => OpResult::bare(Outcome::SameAccount),
        Some((_, _, _, None)) => OpResult::bare(Outcome::LimitExceeded),
        Some((agent, store, false, Some(fee))) => OpResult::new(
            Outcome::Ok,
            json!({ "agent": agent, "store": store, "fee": fee, "total": amount.minor() + fee }),
        ),
    })
}

/// `from` withdraws `amount` at `store` of `agent` under `key`.
pub async fn cash_out(
    db: impl Db,
    key: &str,
    from: &Msisdn,
    (agent, store): (&str, &str),
    amount: Amount,
) -> Result<OpResult, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", transfer_id AS "transfer_id!", fee AS "fee!", payer_balance
             FROM agent_cash_out($1, $2, $3, $4, $5, $6)"#,
        key,
        &request_hash("cash_out", &[from.as_e164(), agent, store], amount),
        from.as_e164(),
        agent,
        store,
        amount.minor(),
    )
    .fetch_one(db)
    .await?;
    let (code, transfer_id, fee, balance) = (row.outcome, row.transfer_id, row.fee, row.payer_balance);
    Ok(OpResult::new(
        outcome_of(&code),
        json!({ "ref": reference(transfer_id), "fee": fee, "balance": balance }),
    ))
}

/// The name of the agent `to_agent` a float transfer from `from` would reach.
pub async fn quote_float(db: impl Db, from: &Msisdn, to_agent: &str) -> Result<OpResult, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT (SELECT g.agent_number FROM agents g JOIN customers c ON c.id = g.customer_id WHERE c.msisdn = $1) AS from_agent,
                (SELECT g.name FROM agents g WHERE g.agent_number = $2 AND g.status = 'active') AS to_name",
        from.as_e164(),
        to_agent,
    )
    .fetch_one(db)
    .await?;
    let (from_agent, to) = (row.from_agent, row.to_name);
    Ok(match (from_agent, to) {
        (None, _) => OpResult::bare(Outcome::NotAgent),
        (Some(own), _) if own == to_agent => OpResult::bare(Outcome::SameAccount),
        (Some(_), None) => OpResult::bare(Outcome::RecipientUnknown),
        (Some(_), Some(name)) => OpResult::new(Outcome::Ok, json!({ "name": name })),
    })
}

/// `amount` of `from`'s float to agent `to_agent`'s under `key`.
pub async fn transfer_float(
    db: impl Db,
    key: &str,
    from: &Msisdn,
    to_agent: &str,
    amount: Amount,
) -> Result<OpResult, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", transfer_id AS "transfer_id!", float_balance
             FROM agent_float_transfer($1, $2, $3, $4, $5)"#,
        key,
        &request_hash("float_transfer", &[from.as_e164(), to_agent], amount),
        from.as_e164(),
        to_agent,
        amount.minor(),
    )
    .fetch_one(db)
    .await?;
    let (code, transfer_id, float) = (row.outcome, row.transfer_id, row.float_balance);
    let outcome = match code.as_str() {
        "not_agent" => Outcome::NotAgent,
        other => outcome_of(other),
    };
    Ok(OpResult::new(outcome, json!({ "ref": reference(transfer_id), "balance": float })))
}

/// The last five posted movements of the float of the agent whose phone is
/// `customer_id`, newest first, each with the customer or agent on the other side.
pub async fn statement(db: impl Db, customer_id: i64) -> Result<OpResult, sqlx::Error> {
    let float =
        sqlx::query_scalar!("SELECT float_account_id FROM agents WHERE customer_id = $1", customer_id)
            .fetch_optional(db)
            .await?;
    let Some(float) = float else { return Ok(OpResult::bare(Outcome::NotAgent)) };
    let rows = sqlx::query!(
        r#"SELECT to_char(t.created_at AT TIME ZONE (SELECT value FROM ledger_settings WHERE key = 'timezone'), 'DD/MM') AS "date!",
                CASE WHEN t.debit_account_id = $1 THEN -t.amount ELSE t.amount END AS "amount!",
                t.kind AS "kind!",
                CASE WHEN o.kind = 'wallet' THEN c.first_name || ' ' || left(c.last_name, 1) || '.'
                     ELSE coalesce((SELECT g.name FROM agents g WHERE g.float_account_id = o.id), '') END AS "party!",
                transfer_ref(t.id) AS "reference!"
           FROM transfers t
           LEFT JOIN accounts o ON o.id = CASE WHEN t.debit_account_id = $1 THEN t.credit_account_id
                                               ELSE t.debit_account_id END
           LEFT JOIN customers c ON c.id = o.customer_id
          WHERE (t.debit_account_id = $1 OR t.credit_account_id = $1) AND t.status = 'posted'
          ORDER BY t.id DESC
          LIMIT 5"#,
        float,
    )
    .fetch_all(db)
    .await?;
    let rows = rows.into_iter().map(|r| (r.date, r.amount, r.kind, r.party, r.reference)).collect();
    Ok(statement_of(rows))
}

/// The float and commission balances of the agent whose phone is `customer_id`.
pub async fn balances(db: impl Db, customer_id: i64) -> Result<OpResult, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT f.balance - f.held AS "float!", m.balance AS commission FROM agents g
             JOIN accounts f ON f.id = g.float_account_id
             JOIN accounts m ON m.id = g.commission_account_id
            WHERE g.customer_id = $1"#,
        customer_id,
    )
    .fetch_optional(db)
    .await?
    .map(|r| (r.float, r.commission));
    Ok(match row {
        None => OpResult::bare(Outcome::NotAgent),
        Some((float, commission)) => {
            OpResult::new(Outcome::Ok, json!({ "float": float, "commission": commission }))
        }
    })
}
