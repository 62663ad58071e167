//! Agents as operators manage them: onboarding (float and commission accounts, stores),
//! what an agent holds, and float top-ups from the funding account.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::domain::{Amount, Msisdn};

/// An agent to onboard.
#[derive(Debug)]
pub struct NewAgent {
    /// The agent's phone: a registered customer, whose PIN the agent menu asks for.
    pub msisdn: Msisdn,
    pub agent_number: String,
    pub name: String,
    /// Store number and name of each place the agent trades from.
    pub stores: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "the phone must belong to a registered customer first (they set the agent PIN by registering on *384#)"
    )]
    NotACustomer,
    #[error("this customer is an agent already")]
    AlreadyAgent,
    #[error("agent number {0} is taken")]
    NumberTaken(String),
    #[error("store number {0} is taken")]
    StoreTaken(String),
    #[error("no agent has the number {0}")]
    Unknown(String),
    #[error("this Idempotency-Key was used for another top-up")]
    KeyReused,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Onboards `new` in one transaction; returns the agent as [`show`] does.
pub async fn onboard(pool: &PgPool, new: &NewAgent) -> Result<Value, AgentError> {
    let mut tx = pool.begin().await?;
    let customer: Option<(i64, String)> = sqlx::query_as(
        "SELECT c.id, a.currency::text FROM customers c JOIN accounts a ON a.customer_id = c.id AND a.kind = 'wallet'
          WHERE c.msisdn = $1",
    )
    .bind(new.msisdn.as_e164())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((customer_id, currency)) = customer else { return Err(AgentError::NotACustomer) };
    let account = |kind: &'static str| {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO accounts (customer_id, kind, currency, name) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(customer_id)
        .bind(kind)
        .bind(&currency)
        .bind(format!("{kind} {}", new.agent_number))
    };
    let float = account("agent_float").fetch_one(&mut *tx).await?;
    let commission = account("agent_commission").fetch_one(&mut *tx).await?;
    let agent: Result<i64, sqlx::Error> = sqlx::query_scalar(
        "INSERT INTO agents (customer_id, agent_number, name, float_account_id, commission_account_id)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(customer_id)
    .bind(&new.agent_number)
    .bind(&new.name)
    .bind(float)
    .bind(commission)
    .fetch_one(&mut *tx)
    .await;
    let agent = match agent {
        Ok(id) => id,
        Err(e) if violates(&e, "agents_customer_id_key") => return Err(AgentError::AlreadyAgent),
        Err(e) if violates(&e, "agents_agent_number_key") => {
            return Err(AgentError::NumberTaken(new.agent_number.clone()));
        }
        Err(e) => return Err(e.into()),
    };
    for (number, name) in &new.stores {
        let stored =
            sqlx::query("INSERT INTO agent_stores (store_number, agent_id, name) VALUES ($1, $2, $3)")
                .bind(number)
                .bind(agent)
                .bind(name)
                .execute(&mut *tx)
                .await;
        match stored {
            Err(e) if violates(&e, "agent_stores_pkey") => {
                return Err(AgentError::StoreTaken(number.clone()));
            }
            other => other?,
        };
    }
    tx.commit().await?;
    show(pool, &new.agent_number).await?.ok_or_else(|| AgentError::Unknown(new.agent_number.clone()))
}

fn violates(e: &sqlx::Error, constraint: &str) -> bool {
    e.as_database_error().and_then(|d| d.constraint()) == Some(constraint)
}

/// The agent with `agent_number`: phone, status, float, commission and stores.
pub async fn show(pool: &PgPool, agent_number: &str) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object(
                    'agent_number', g.agent_number, 'name', g.name, 'msisdn', c.msisdn, 'status', g.status,
                    'float', jsonb_build_object('account_id', f.id, 'currency', f.currency,
                                                'balance', f.balance, 'held', f.held),
                    'commission', jsonb_build_object('account_id', m.id, 'balance', m.balance),
                    'stores', coalesce((SELECT jsonb_agg(jsonb_build_object('store_number', s.store_number, 'name', s.name)
                                                          ORDER BY s.store_number)
                                          FROM agent_stores s WHERE s.agent_id = g.id), '[]'::jsonb),
                    'created_at', g.created_at)
           FROM agents g
           JOIN customers c ON c.id = g.customer_id
           JOIN accounts f ON f.id = g.float_account_id
           JOIN accounts m ON m.id = g.commission_account_id
          WHERE g.agent_number = $1",
    )
    .bind(agent_number)
    .fetch_optional(pool)
    .await
}

/// Tops up an agent's float from the funding account (the operator received the money
/// outside the ledger) under `key`: a repeat with the same key and amount is the same
/// top-up. Returns the transfer's reference and the float balance.
pub async fn top_up(
    pool: &PgPool,
    agent_number: &str,
    amount: Amount,
    key: &str,
) -> Result<Value, AgentError> {
    let float: Option<i64> =
        sqlx::query_scalar("SELECT float_account_id FROM agents WHERE agent_number = $1")
            .bind(agent_number)
            .fetch_optional(pool)
            .await?;
    let Some(float) = float else { return Err(AgentError::Unknown(agent_number.to_owned())) };
    let key = format!("float-top-up:{agent_number}:{key}");
    let id: i64 = sqlx::query_scalar("SELECT ledger_fund($1, $2, $3)")
        .bind(&key)
        .bind(float)
        .bind(amount.minor())
        .fetch_one(pool)
        .await?;
    let (credited, moved, balance): (Option<i64>, i64, i64) = sqlx::query_as(
        "SELECT t.credit_account_id, t.amount, a.balance FROM transfers t, accounts a WHERE t.id = $1 AND a.id = $2",
    )
    .bind(id)
    .bind(float)
    .fetch_one(pool)
    .await?;
    if credited != Some(float) || moved != amount.minor() {
        return Err(AgentError::KeyReused);
    }
    Ok(json!({ "ref": crate::money::reference(id), "amount": moved, "float": balance }))
}
