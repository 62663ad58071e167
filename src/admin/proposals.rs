//! Four-eyes approvals: sensitive calls written down by one token as proposals, carried
//! out when a different token approves them.

use serde_json::Value;
use sqlx::PgPool;

use crate::money::crypto::Place;
use crate::money::{DataVault, VaultError};

/// A proposal as the admin API shows it.
const SHOW: &str = "SELECT json_build_object('id', id, 'method', method, 'path', path, 'body', body,
        'proposed_by', proposed_by, 'proposed_at', proposed_at, 'expires_at', expires_at,
        'state', CASE WHEN state = 'pending' AND expires_at <= now() THEN 'expired' ELSE state END,
        'decided_by', decided_by, 'decided_at', decided_at, 'note', note,
        'outcome', CASE WHEN outcome_status IS NULL THEN NULL
                        ELSE json_build_object('status', outcome_status, 'answer', outcome) END)
     FROM admin_proposals";

/// A call to make again once approved.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub body: Option<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProposalError {
    #[error("no proposal has the id {0}")]
    Unknown(String),
    #[error("proposal {0} was decided already")]
    Decided(String),
    #[error("proposal {0} expired; propose the call again")]
    Expired(String),
    #[error(
        "the token that proposed a call cannot approve it: another token with the `approvals` scope must"
    )]
    OwnProposal,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a sensitive call would act on. A call with nothing to act on is refused by its
/// handler at once (404, or 409 for a request decided before) rather than proposed.
pub enum Subject<'a> {
    Customer(&'a str),
    Agent(&'a str),
    Transfer(i64),
    /// An open reversal request on this send.
    OpenRequest(i64),
    Biller(&'a str),

    /// A merchant by its reference (`MC…`).
    Merchant(&'a str),
}

/// Whether the subject is there to act on.
pub async fn is_there(pool: &PgPool, subject: Subject<'_>) -> Result<bool, sqlx::Error> {
    let exists = sqlx::query_scalar::<_, bool>;
    let query = match subject {
        Subject::Customer(msisdn) => exists("SELECT EXISTS (SELECT 1 FROM customers WHERE msisdn = $1)").bind(msisdn),
        Subject::Agent(number) => exists("SELECT EXISTS (SELECT 1 FROM agents WHERE agent_number = $1)").bind(number),
        Subject::Transfer(id) => exists("SELECT EXISTS (SELECT 1 FROM transfers WHERE id = $1)").bind(id),
        Subject::OpenRequest(id) => exists(
            "SELECT EXISTS (SELECT 1 FROM reversal_requests WHERE original_id = $1 AND state IN ('held', 'queued'))",
        )
        .bind(id),
        Subject::Biller(code) => exists("SELECT EXISTS (SELECT 1 FROM billers WHERE code = $1)").bind(code),
        Subject::Merchant(reference) => {
            let id = crate::money::merchants::parse_merchant_ref(reference).unwrap_or(0);
            exists("SELECT EXISTS (SELECT 1 FROM merchants WHERE id = $1)").bind(id)
        }
    };
    query.fetch_one(pool).await
}

/// Writes `call` down as proposed by `token`, pending until `ttl` from now; its id.
/// A `secret` body is sealed by `vault` and carried out in place of `call.body`, which
/// then only shows what it is.
pub async fn propose(
    pool: &PgPool,
    token: &str,
    call: &Call,
    secret: Option<(&DataVault, &Value)>,
    ttl: std::time::Duration,
) -> Result<Proposed, sqlx::Error> {
    let id = format!("pr_{:016x}", rand::random::<u64>());
    let sealed = match secret {
        Some((vault, body)) => {
            Some(vault.seal(body_place(&id), &body.to_string()).await.map_err(VaultError::into_sqlx)?)
        }
        None => None,
    };
    // What tells two secret bodies apart without keeping either in clear.
    let digest = secret.map(|(vault, body)| vault.blind_index(&body.to_string()));
    let mut tx = pool.begin().await?;
    if let Some(key) = &call.idempotency_key {
        // A call sent again with its Idempotency-Key is the proposal made the first
        // time; two sent side by side wait for each other here.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("proposal:{token}:{}:{}:{key}", call.method, call.path))
            .execute(&mut *tx)
            .await?;
        let first: Option<(String, bool)> = sqlx::query_as(
            "SELECT id, body IS NOT DISTINCT FROM $5 AND body_digest IS NOT DISTINCT FROM $6 FROM admin_proposals
              WHERE proposed_by = $1 AND method = $2 AND path = $3 AND idempotency_key = $4
              ORDER BY proposed_at LIMIT 1",
        )
        .bind(token)
        .bind(&call.method)
        .bind(&call.path)
        .bind(key)
        .bind(&call.body)
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?;
        match first {
            Some((first, true)) => {
                return Ok(Proposed::Again(show(&mut *tx, &first).await?.ok_or(sqlx::Error::RowNotFound)?));
            }
            Some((_, false)) => return Ok(Proposed::KeyReused),
            None => {}
        }
    }
    sqlx::query(
        "INSERT INTO admin_proposals (id, method, path, idempotency_key, body, body_sealed, body_digest,
                                      proposed_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))",
    )
    .bind(&id)
    .bind(&call.method)
    .bind(&call.path)
    .bind(&call.idempotency_key)
    .bind(&call.body)
    .bind(sealed)
    .bind(&digest)
    .bind(token)
    .bind(ttl.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    let proposal = show(&mut *tx, &id).await?.ok_or(sqlx::Error::RowNotFound)?;
    tx.commit().await?;
    Ok(Proposed::New(proposal))
}

/// What proposing a call did.
#[derive(Debug)]
pub enum Proposed {
    New(Value),
    /// The call was proposed before under its Idempotency-Key: that proposal, as it is now.
    Again(Value),
    /// The Idempotency-Key was proposed before with another body.
    KeyReused,
}

/// Where a proposal's secret body is sealed.
fn body_place(id: &str) -> Place<'_> {
    Place { table: "admin_proposals", column: "body_sealed", row: id }
}

/// The proposal `id` as the API shows it.
pub async fn show<'e>(db: impl sqlx::PgExecutor<'e>, id: &str) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar(&format!("{SHOW} WHERE id = $1")).bind(id).fetch_optional(db).await
}

/// Proposals waiting for a decision and not expired, oldest first.
pub async fn pending(pool: &PgPool, limit: i64) -> Result<Value, sqlx::Error> {
    let rows: Vec<Value> = sqlx::query_scalar(&format!(
        "{SHOW} WHERE state = 'pending' AND expires_at > now() ORDER BY proposed_at LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(Value::Array(rows))
}

/// Why `id` cannot be decided by `token` now, if it cannot.
async fn refusal(pool: &PgPool, id: &str, token: &str) -> Result<ProposalError, sqlx::Error> {
    let row: Option<(String, String, bool)> =
        sqlx::query_as("SELECT proposed_by, state, expires_at <= now() FROM admin_proposals WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(match row {
        None => ProposalError::Unknown(id.to_owned()),
        Some((by, _, _)) if by == token => ProposalError::OwnProposal,
        Some((_, state, _)) if state != "pending" => ProposalError::Decided(id.to_owned()),
        Some(_) => ProposalError::Expired(id.to_owned()),
    })
}

/// Marks `id` approved by `token` (another than its proposer, before it expires), in one
/// statement so that two approvals cannot both carry it out; the call and who proposed it.
/// A sealed body is opened by `vault`.
pub async fn approve(
    pool: &PgPool,
    vault: &DataVault,
    id: &str,
    token: &str,
) -> Result<(Call, String), ProposalError> {
    // A sealed body is opened before the proposal is marked: one that cannot be opened
    // leaves it pending, its approver's password unspent on it.
    let sealed: Option<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT body_sealed FROM admin_proposals WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    let opened = match sealed.flatten() {
        Some(sealed) => {
            let opened = vault.open(body_place(id), &sealed).await.map_err(VaultError::into_sqlx)?;
            Some(serde_json::from_str::<Value>(&opened).map_err(|e| sqlx::Error::Decode(Box::new(e)))?)
        }
        None => None,
    };
    // Carried out once, the secret is kept no longer.
    type Row = (String, String, Option<String>, Option<Value>, String);
    let row: Option<Row> = sqlx::query_as(
        "UPDATE admin_proposals SET state = 'approved', decided_by = $2, decided_at = now(), body_sealed = NULL
          WHERE id = $1 AND state = 'pending' AND expires_at > now() AND proposed_by <> $2
          RETURNING method, path, idempotency_key, body, proposed_by",
    )
    .bind(id)
    .bind(token)
    .fetch_optional(pool)
    .await?;
    match row {
        Some((method, path, idempotency_key, body, by)) => {
            Ok((Call { method, path, idempotency_key, body: opened.or(body) }, by))
        }
        None => Err(refusal(pool, id, token).await?),
    }
}

/// Records what carrying out `id` answered.
pub async fn carried_out(pool: &PgPool, id: &str, status: u16, answer: &Value) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE admin_proposals SET outcome_status = $2, outcome = $3 WHERE id = $1")
        .bind(id)
        .bind(i16::try_from(status).unwrap_or(i16::MAX))
        .bind(without_secrets(answer))
        .execute(pool)
        .await?;
    Ok(())
}

/// What a proposal keeps in place of a secret its answer showed once (a merchant's
/// validation or confirmation secret): the approver saw it; the proposal, which others
/// read later, keeps the rest.
pub const SHOWN_ONCE: &str = "shown once, to the approver";

/// `answer` with every `secret` (and `…_secret`) replaced by [`SHOWN_ONCE`].
fn without_secrets(answer: &Value) -> Value {
    match answer {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| {
                    let secret = key == "secret" || key.ends_with("_secret");
                    let kept = if secret && !value.is_null() {
                        Value::from(SHOWN_ONCE)
                    } else {
                        without_secrets(value)
                    };
                    (key.clone(), kept)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_secrets).collect()),
        other => other.clone(),
    }
}

/// Rejects `id`; nothing is carried out.
pub async fn reject(pool: &PgPool, id: &str, token: &str, note: &str) -> Result<Value, ProposalError> {
    let done = sqlx::query(
        "UPDATE admin_proposals SET state = 'rejected', decided_by = $2, decided_at = now(), note = $3,
                body_sealed = NULL
          WHERE id = $1 AND state = 'pending' AND expires_at > now()",
    )
    .bind(id)
    .bind(token)
    .bind(note)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        // No token is named "": whoever rejects, the refusal names the state.
        return Err(refusal(pool, id, "").await?);
    }
    show(pool, id).await?.ok_or_else(|| ProposalError::Unknown(id.to_owned()))
}
