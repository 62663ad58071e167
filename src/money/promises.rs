//! Promises of an SMS: written down before a hop says one will follow, kept exactly once
//! by whoever learns the op's outcome first — the process running it, or any replica's
//! sweeper once the promise is due.

use std::time::Duration;

use sqlx::PgPool;

use crate::domain::Msisdn;
use crate::outcome::Outcome;

/// Where the outcome of a money op is found once the op itself cannot say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Movement {
    /// A transfer of `kind` under the op's idempotency key. `held_tells`: whether the
    /// dialler has an SMS while the transfer is held (an agent's cash-out request tells
    /// only the customer until it is decided).
    Transfer { kind: &'static str, held_tells: bool },
    /// The decision on the hold of the transfer the `request` argument names.
    Hold,
}

impl Movement {
    /// The name the promise keeper knows it by: the transfer kind, or `hold`.
    pub fn name(self) -> &'static str {
        match self {
            Movement::Transfer { kind, .. } => kind,
            Movement::Hold => "hold",
        }
    }

    pub fn held_tells(self) -> bool {
        match self {
            Movement::Transfer { held_tells, .. } => held_tells,
            Movement::Hold => true,
        }
    }
}

/// What a hop promised: an SMS to `msisdn` saying what became of the op under `op_key`.
#[derive(Debug)]
pub struct Promise<'a> {
    /// The op's name, and how it moves money.
    pub op: &'static str,
    pub movement: Movement,
    pub op_key: &'a str,
    /// For a decision on a hold: the transfer it decides.
    pub request: Option<i64>,
    pub msisdn: &'a Msisdn,
    pub language: &'a str,
    /// Left to the process running the op for this long; any sweeper keeps it after.
    pub due_in: Duration,
}

/// How a promise was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    /// The movement's own receipt tells the dialler.
    Receipt,
    /// A notice was queued: why it did not happen, or that it did.
    Notice,
    /// Kept before, or another keeper has it now.
    Already,
    /// There is no such promise.
    Missing,
}

/// Writes `promise` down, once per op key. A second promise on the same op (the hop
/// that runs it overran after a copy of it had promised) only leaves it to its runner
/// for longer.
pub async fn make(pool: &PgPool, promise: &Promise<'_>) -> Result<(), sqlx::Error> {
    let movement = promise.movement;
    sqlx::query!(
        "INSERT INTO op_promises AS p (op_key, op, movement, request, held_tells, msisdn, language, due_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))
         ON CONFLICT (op_key) DO UPDATE SET due_at = greatest(p.due_at, excluded.due_at)
          WHERE p.kept_at IS NULL",
        promise.op_key,
        promise.op,
        movement.name(),
        promise.request,
        movement.held_tells(),
        promise.msisdn.as_e164(),
        promise.language,
        promise.due_in.as_secs_f64(),
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Keeps the promise under `op_key`; `hint` is the op's outcome where the caller knows
/// it (a refusal that wrote no row, such as a wrong PIN, is then named in the notice).
pub async fn keep(pool: &PgPool, op_key: &str, hint: Option<Outcome>) -> Result<Kept, sqlx::Error> {
    let hint = hint.filter(|o| *o != Outcome::Ok).map(Outcome::as_str);
    let kept = sqlx::query_scalar!(r#"SELECT op_promise_keep($1, $2) AS "kept!""#, op_key, hint)
        .fetch_one(pool)
        .await?;
    Ok(match kept.as_str() {
        "receipt" => Kept::Receipt,
        "notice" => Kept::Notice,
        "none" => Kept::Missing,
        _ => Kept::Already,
    })
}

/// Due promises taken per sweep.
const SWEEP_BATCH: i64 = 100;

/// The sweeper's pass: keeps every promise that is due, whatever process made it.
/// A promise that cannot be kept yet (a statement still holds its key, the database
/// failed) is tried again later, backing off. Returns how many were kept.
pub async fn sweep(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let due = sqlx::query_scalar!(
        "SELECT op_key FROM op_promises WHERE kept_at IS NULL AND due_at <= now() ORDER BY due_at LIMIT $1",
        SWEEP_BATCH,
    )
    .fetch_all(pool)
    .await?;
    let mut kept = 0;
    for op_key in due {
        match keep(pool, &op_key, None).await {
            Ok(Kept::Receipt | Kept::Notice) => kept += 1,
            Ok(Kept::Already | Kept::Missing) => {}
            Err(e) => {
                metrics::counter!("ussd_promises_deferred_total").increment(1);
                tracing::warn!(error = %e, "a promised SMS could not be settled yet; trying again later");
                sqlx::query!(
                    "UPDATE op_promises SET attempts = attempts + 1, last_error = left($2, 300),
                            due_at = now() + make_interval(secs => least(60, 2 ^ least(attempts, 6)))
                      WHERE op_key = $1 AND kept_at IS NULL",
                    &op_key,
                    e.to_string(),
                )
                .execute(pool)
                .await?;
            }
        }
    }
    Ok(kept)
}

/// Promises not kept yet, and the age of the oldest in seconds (for the metrics).
pub async fn open(pool: &PgPool) -> Result<(i64, f64), sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "open!", coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS "oldest!"
             FROM op_promises WHERE kept_at IS NULL"#,
    )
    .fetch_one(pool)
    .await?;
    Ok((row.open, row.oldest))
}
