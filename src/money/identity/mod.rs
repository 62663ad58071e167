//! Identity checks: a customer's national ID and names sent to the identity provider
//! (`client`), its answer settled once — a match moves the customer to the verified
//! tier, anything else waits in the operators' review queue — with an SMS either way.
//!
//! A check is written in the transaction of the registration or upgrade that asks for
//! it; a worker on every replica claims the due ones (a lease, `SKIP LOCKED`) and
//! submits or polls them, with backoff, so that no provider answer, slow or absent,
//! ever holds up a subscriber's session. The provider's signed callback settles a check
//! at once; the poll settles it when the callback is lost. Settling and reviewing need
//! no provider ([`Checks`]): what was promised is kept after one is removed.

pub mod client;
pub mod settings;

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use tracing::{info, warn};

use self::client::{Answer, IdentityClient, Submission};
use super::crypto::{DataVault, Place, VaultError};
use crate::domain::shape;

/// A check's id: `idc_` and 16 hex digits.
pub fn new_id() -> String {
    format!("idc_{:016x}", rand::random::<u64>())
}

/// Whether `id` has the shape of a check's id.
pub fn is_check_id(id: &str) -> bool {
    shape::CHECK_ID.fits(id)
}

/// Where a check's ID number is sealed: bound to its row.
fn check_place(id: &str) -> Place<'_> {
    Place { table: "identity_checks", column: "national_id_enc", row: id }
}

/// After this long without a final answer a check goes to review as `no_answer`.
pub const GIVE_UP: Duration = Duration::from_secs(2 * 86_400);
/// How long a worker holds the checks it claimed before another may take them: longer
/// than its look at all of them takes (two rounds of a status call and a submit, 10 s
/// each at most).
const LEASE: Duration = Duration::from_secs(120);
/// The most checks one pass of the worker claims.
const BATCH: i64 = 8;
/// The most of them asked about at once: each settles on a connection of the pool the
/// registrations' transactions use too.
const AT_ONCE: usize = 4;

/// How long to wait before asking again after `attempts` tries: 5 s doubling to 10
/// minutes, give or take a fifth, so that checks failed together do not return together.
pub fn backoff(attempts: i32) -> Duration {
    let base = 5.0 * 2f64.powi(attempts.clamp(1, 16) - 1);
    Duration::from_secs_f64(base.min(600.0) * rand::random_range(0.8..1.2))
}

/// The identity provider as configured (IDENTITY_URL and its companions).
#[derive(Clone, Debug)]
pub struct ProviderSpec {
    pub base_url: String,
    pub api_key: Option<SecretString>,
    /// Signs the provider's callbacks.
    pub webhook_secret: SecretString,
    /// Where the provider calls back, when it can reach us.
    pub callback_url: Option<String>,
}

/// A check's ID sealed for its row, ready to be written with it.
pub struct Sealed {
    pub id: String,
    enc: Vec<u8>,
    index: Vec<u8>,
}

/// What a review decides.
#[derive(Clone, Copy, Debug)]
pub enum Decision<'a> {
    /// Verified by operators against the provider's answer (four eyes).
    Override {
        by: &'a str,
        note: &'a str,
    },
    Reject {
        by: &'a str,
        note: &'a str,
    },
}

/// What became of a check asked to be settled.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// Settled now, in this state.
    Now(String),
    /// Already in a state this settlement cannot leave.
    Before(String),
    NoSuchCheck,
    /// Not verified: another customer's wallet holds the ID.
    HeldElsewhere,
    /// Not verified: no KYC tier is named `verified`.
    NoVerifiedTier,
}

/// What asking for a check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    Queued(String),
    /// A check is open already.
    Waiting,
    AlreadyVerified,
    IdTaken,
    /// The wallet is blocked or closed.
    Blocked,
}

/// How a check ends, or waits.
enum Verdict<'a> {
    Verified,
    Review { reason: &'static str, note: Option<String> },
    Overridden { note: &'a str },
    Rejected { note: &'a str },
}

impl Verdict<'_> {
    /// The provider's final answer as a verdict; `None` for one that is not final.
    fn of(answer: Answer) -> Option<Self> {
        Some(match answer {
            Answer::Match => Verdict::Verified,
            Answer::Mismatch => Verdict::Review { reason: "mismatch", note: None },
            Answer::Duplicate => Verdict::Review { reason: "duplicate", note: None },
            Answer::Refused(why) => Verdict::Review { reason: "refused", note: Some(why) },
            Answer::Pending | Answer::NotFound | Answer::Unavailable(_) => return None,
        })
    }

    fn verifies(&self) -> bool {
        matches!(self, Verdict::Verified | Verdict::Overridden { .. })
    }

    fn is_operators(&self) -> bool {
        matches!(self, Verdict::Overridden { .. } | Verdict::Rejected { .. })
    }
}

/// The checks in the database: written, settled and reviewed. Cheap to make.
#[derive(Clone, Debug)]
pub struct Checks {
    pool: PgPool,
    vault: DataVault,
}

impl Checks {
    pub fn new(pool: PgPool, vault: DataVault) -> Self {
        Checks { pool, vault }
    }

    /// `national_id` sealed for a new check's row.
    pub async fn seal(&self, national_id: &str) -> Result<Sealed, VaultError> {
        let id = new_id();
        let enc = self.vault.seal(check_place(&id), national_id).await?;
        Ok(Sealed { index: self.vault.blind_index(national_id), id, enc })
    }

    /// An operator's decision on a check waiting for review.
    pub async fn decide(&self, id: &str, decision: Decision<'_>) -> Result<Settled, sqlx::Error> {
        match decision {
            Decision::Override { by, note } => self.settle(id, Verdict::Overridden { note }, by).await,
            Decision::Reject { by, note } => self.settle(id, Verdict::Rejected { note }, by).await,
        }
    }

    /// `customer.verify`: a new check for customer `customer_id` (the PIN checked), unless
    /// one is open, the customer is verified already or their wallet is not active.
    pub async fn ask(
        &self,
        customer_id: i64,
        first_name: &str,
        last_name: &str,
        national_id: &str,
    ) -> Result<Asked, sqlx::Error> {
        let sealed = self.seal(national_id).await.map_err(VaultError::into_sqlx)?;
        let mut tx = self.pool.begin().await?;
        // Verified by a check, or placed in the tier by other means (an agent's
        // registration, a migration): nothing to upgrade.
        let customer = sqlx::query!(
            r#"SELECT c.kyc_tier >= verified_tier() AS "verified!",
                      coalesce((SELECT a.status = 'active' FROM accounts a
                                 WHERE a.customer_id = c.id AND a.kind = 'wallet'), false) AS "active!"
                 FROM customers c WHERE c.id = $1 FOR UPDATE OF c"#,
            customer_id,
        )
        .fetch_one(&mut *tx)
        .await?;
        if customer.verified {
            return Ok(Asked::AlreadyVerified);
        }
        if !customer.active {
            return Ok(Asked::Blocked);
        }
        if held_elsewhere(&mut tx, &sealed.index, customer_id).await? {
            return Ok(Asked::IdTaken);
        }
        if !queue(&mut tx, customer_id, first_name, last_name, &sealed).await? {
            return Ok(Asked::Waiting);
        }
        tx.commit().await?;
        Ok(Asked::Queued(sealed.id))
    }

    /// The state of check `id`, if there is one.
    async fn state_of(&self, id: &str) -> Result<Settled, sqlx::Error> {
        let state = sqlx::query_scalar!("SELECT state FROM identity_checks WHERE id = $1", id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(state.map_or(Settled::NoSuchCheck, Settled::Before))
    }

    /// Settles check `id` once, in one transaction with its SMS (and, verified, the
    /// customer's tier). The provider settles a check still `queued` or `submitted`, or
    /// one it had left unanswered (`review` as `no_answer`); an operator one under
    /// `review`. A provider's match is not taken alone when the ID differs from the one
    /// the wallet holds, or the wallet is not active: those go to review.
    async fn settle(&self, id: &str, verdict: Verdict<'_>, by: &str) -> Result<Settled, sqlx::Error> {
        // The ID resealed for the customer's row before any lock is taken: the vault
        // may need a connection of the same pool.
        let resealed = if verdict.verifies() { self.resealed(id).await? } else { None };
        let mut tx = self.pool.begin().await?;
        let Some(check) = sqlx::query!(
            r#"SELECT c.state, c.reason, c.customer_id, c.first_name, c.last_name, c.national_id_index,
                      cu.msisdn, cu.language, cu.national_id_index AS held_index,
                      coalesce((SELECT a.status = 'active' FROM accounts a
                                 WHERE a.customer_id = cu.id AND a.kind = 'wallet'), false) AS "active!",
                      EXISTS (SELECT 1 FROM kyc_tiers WHERE name = 'verified') AS "tiered!"
                 FROM identity_checks c JOIN customers cu ON cu.id = c.customer_id
                WHERE c.id = $1 FOR UPDATE OF c"#,
            id,
        )
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(Settled::NoSuchCheck);
        };
        let open = if verdict.is_operators() {
            check.state == "review"
        } else {
            matches!(check.state.as_str(), "queued" | "submitted")
                || (check.state == "review" && check.reason.as_deref() == Some("no_answer"))
        };
        if !open {
            return Ok(Settled::Before(check.state));
        }
        let (customer_id, index) = (check.customer_id, &check.national_id_index);
        let mut verdict = verdict;
        if verdict.verifies() && !check.tiered {
            // A deployment that named no tier `verified` verifies nobody.
            if verdict.is_operators() {
                return Ok(Settled::NoVerifiedTier);
            }
            verdict = review("refused", "no KYC tier is named verified");
        }
        if verdict.verifies() {
            // One verified wallet per ID: checks of two customers for one ID settle one
            // after the other, and another customer holding it makes this one a
            // duplicate, whatever the provider said (an override included).
            sqlx::query!("SELECT pg_advisory_xact_lock(hashtextextended(encode($1, 'hex'), 0))", index)
                .execute(&mut *tx)
                .await?;
            if held_elsewhere(&mut tx, index, customer_id).await? {
                if verdict.is_operators() {
                    return Ok(Settled::HeldElsewhere);
                }
                verdict = review("duplicate", "another wallet holds this ID");
            } else if matches!(verdict, Verdict::Verified) {
                if check.held_index.as_ref().is_some_and(|held| held != index) {
                    verdict = review("id_changed", "the wallet was registered with another ID");
                } else if !check.active {
                    verdict = review("refused", "the wallet is blocked or closed");
                }
            }
        }
        let (state, template, reason, note) = match &verdict {
            Verdict::Verified => ("verified", "identity_verified", None, None),
            Verdict::Overridden { note } => ("overridden", "identity_verified", None, Some(*note)),
            Verdict::Review { reason, note } => ("review", "identity_review", Some(*reason), note.as_deref()),
            Verdict::Rejected { note } => ("rejected", "identity_rejected", None, Some(*note)),
        };
        let mut data = json!({ "name": check.first_name });
        if verdict.verifies() {
            let Some((resealed, _)) = resealed.filter(|(_, sealed_for)| *sealed_for == check.msisdn) else {
                // The number changed since the ID was resealed for it: settled next time.
                return Err(sqlx::Error::RowNotFound);
            };
            let daily = sqlx::query_scalar!(
                r#"UPDATE customers c
                      SET kyc_tier = greatest(c.kyc_tier, verified_tier()), verified_at = now(),
                          first_name = $2, last_name = $3, national_id_enc = $4, national_id_index = $5
                    WHERE c.id = $1
                RETURNING (SELECT max_daily_debit FROM kyc_tiers WHERE tier = c.kyc_tier) AS "daily!""#,
                customer_id,
                check.first_name,
                check.last_name,
                resealed,
                index,
            )
            .fetch_one(&mut *tx)
            .await?;
            data["amount"] = json!(daily);
        }
        // A decided check keeps no ID: the customer's row holds the one verified.
        sqlx::query!(
            "UPDATE identity_checks
                SET state = $2, reason = coalesce($3, reason), note = coalesce($4, note), last_error = NULL,
                    decided_at = CASE WHEN $5 THEN now() END, decided_by = CASE WHEN $5 THEN $6 END,
                    national_id_enc = CASE WHEN $5 THEN NULL ELSE national_id_enc END
              WHERE id = $1",
            id,
            state,
            reason,
            note,
            state != "review",
            by,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO outbox (op_key, role, msisdn, language, template, data)
             VALUES ($1, 'identity', $2, $3, $4, $5) ON CONFLICT (op_key) DO NOTHING",
            format!("identity:{id}:{state}"),
            check.msisdn,
            check.language,
            template,
            data,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        info!(check = %id, state, "identity check settled");
        Ok(Settled::Now(state.to_owned()))
    }

    /// The check's ID sealed for its customer's row, and the number it is sealed for.
    async fn resealed(&self, id: &str) -> Result<Option<(Vec<u8>, String)>, sqlx::Error> {
        let found = sqlx::query!(
            r#"SELECT c.national_id_enc AS "national_id_enc!", cu.msisdn
                 FROM identity_checks c JOIN customers cu ON cu.id = c.customer_id
                WHERE c.id = $1 AND c.national_id_enc IS NOT NULL"#,
            id,
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(found) = found else { return Ok(None) };
        let national_id =
            self.vault.open(check_place(id), &found.national_id_enc).await.map_err(VaultError::into_sqlx)?;
        let at_rest = Place { table: "customers", column: "national_id_enc", row: &found.msisdn };
        let sealed = self.vault.seal(at_rest, &national_id).await.map_err(VaultError::into_sqlx)?;
        Ok(Some((sealed, found.msisdn)))
    }
}

fn review(reason: &'static str, note: &str) -> Verdict<'static> {
    Verdict::Review { reason, note: Some(note.to_owned()) }
}

/// Checks identities against the provider. Cheap to share.
#[derive(Debug)]
pub struct Identity {
    checks: Checks,
    client: IdentityClient,
    spec: ProviderSpec,
}

impl Identity {
    pub fn new(pool: PgPool, vault: DataVault, spec: ProviderSpec) -> Self {
        let client = IdentityClient::new(&spec.base_url, spec.api_key.clone(), spec.callback_url.clone());
        Identity { checks: Checks::new(pool, vault), client, spec }
    }

    pub fn checks(&self) -> &Checks {
        &self.checks
    }

    /// The secret the provider's callbacks are signed with.
    pub fn webhook_secret(&self) -> &SecretString {
        &self.spec.webhook_secret
    }

    /// One pass of the worker: the due checks submitted or polled. How many were settled.
    pub async fn run_due(&self) -> Result<u64, sqlx::Error> {
        let due = sqlx::query_as!(
            Due,
            r#"UPDATE identity_checks c
                  SET next_attempt_at = now() + make_interval(secs => $1), attempts = c.attempts + 1
                 FROM (SELECT id FROM identity_checks
                        WHERE state IN ('queued', 'submitted') AND next_attempt_at <= now()
                        ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) d
                WHERE c.id = d.id
            RETURNING c.id, c.state, c.first_name, c.last_name, c.national_id_enc AS "national_id_enc!",
                      c.attempts, now() - c.created_at > make_interval(secs => $3) AS "overdue!""#,
            LEASE.as_secs_f64(),
            BATCH,
            GIVE_UP.as_secs_f64(),
        )
        .fetch_all(&self.checks.pool)
        .await?;
        let mut settled = Vec::with_capacity(due.len());
        for some in due.chunks(AT_ONCE) {
            settled.extend(futures_util::future::join_all(some.iter().map(|due| self.look(due))).await);
        }
        let mut count = 0;
        for result in settled {
            match result {
                Ok(true) => count += 1,
                Ok(false) => {}
                Err(e) => {
                    warn!(error = %e, "an identity check could not be recorded; it is tried again after its lease")
                }
            }
        }
        Ok(count)
    }

    /// Asks the provider about one claimed check and records what it said.
    async fn look(&self, due: &Due) -> Result<bool, sqlx::Error> {
        let (id, attempts) = (&due.id, due.attempts);
        let mut answer =
            if due.state == "submitted" { self.client.status(id).await } else { Answer::NotFound };
        if answer == Answer::NotFound {
            let national_id = self
                .checks
                .vault
                .open(check_place(id), &due.national_id_enc)
                .await
                .map_err(VaultError::into_sqlx)?;
            let check = Submission {
                reference: id,
                id_number: &national_id,
                first_name: &due.first_name,
                last_name: &due.last_name,
            };
            answer = self.client.submit(&check).await;
        }
        let verdict = match (answer, due.overdue) {
            (answer @ (Answer::Match | Answer::Mismatch | Answer::Duplicate | Answer::Refused(_)), _) => {
                Verdict::of(answer)
            }
            // Two days without a final answer: an operator looks, and the customer is told.
            (Answer::Unavailable(why), true) => Some(review("no_answer", &why)),
            (Answer::Pending | Answer::NotFound, true) => Some(review("no_answer", "still pending")),
            (Answer::Pending | Answer::NotFound, false) => {
                sqlx::query!(
                    "UPDATE identity_checks
                        SET state = 'submitted', submitted_at = coalesce(submitted_at, now()),
                            next_attempt_at = now() + make_interval(secs => $2), last_error = NULL
                      WHERE id = $1 AND state IN ('queued', 'submitted')",
                    id,
                    backoff(attempts).as_secs_f64(),
                )
                .execute(&self.checks.pool)
                .await?;
                None
            }
            (Answer::Unavailable(why), false) => {
                warn!(check = %id, attempts, error = %why, "the identity provider did not answer; asking again later");
                sqlx::query!(
                    "UPDATE identity_checks SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3
                      WHERE id = $1 AND state IN ('queued', 'submitted')",
                    id,
                    backoff(attempts).as_secs_f64(),
                    why,
                )
                .execute(&self.checks.pool)
                .await?;
                None
            }
        };
        match verdict {
            Some(verdict) => {
                Ok(matches!(self.checks.settle(id, verdict, "provider").await?, Settled::Now(_)))
            }
            None => Ok(false),
        }
    }

    /// The provider's answer for check `reference`, from its callback: a final one
    /// settles it; `pending` leaves it as it is.
    pub async fn answered(&self, reference: &str, answer: Answer) -> Result<Settled, sqlx::Error> {
        match Verdict::of(answer) {
            Some(verdict) => self.checks.settle(reference, verdict, "provider").await,
            None => self.checks.state_of(reference).await,
        }
    }
}

/// Writes a check for `customer_id` in the caller's transaction; `false` when one is
/// open already (nothing written).
pub async fn queue(
    tx: &mut PgConnection,
    customer_id: i64,
    first_name: &str,
    last_name: &str,
    sealed: &Sealed,
) -> Result<bool, sqlx::Error> {
    let written = sqlx::query!(
        "INSERT INTO identity_checks (id, customer_id, first_name, last_name, national_id_enc, national_id_index)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (customer_id) WHERE state IN ('queued', 'submitted', 'review') DO NOTHING",
        sealed.id,
        customer_id,
        first_name,
        last_name,
        sealed.enc,
        sealed.index,
    )
    .execute(tx)
    .await?;
    Ok(written.rows_affected() == 1)
}

/// The checks waiting for an operator, oldest first (never the ID number).
pub async fn reviews(pool: &PgPool, limit: i64) -> Result<Value, sqlx::Error> {
    let rows = sqlx::query_scalar!(
        r#"SELECT identity_check_shown(c) AS "check!" FROM identity_checks c
            WHERE c.state = 'review' ORDER BY c.created_at LIMIT $1"#,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(json!({ "checks": rows }))
}

/// One check as an operator sees it.
pub async fn show(pool: &PgPool, id: &str) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT identity_check_shown(c) AS "check!" FROM identity_checks c WHERE c.id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await
}

/// Whether a customer other than `customer_id` holds the ID of blind index `index`.
async fn held_elsewhere(tx: &mut PgConnection, index: &[u8], customer_id: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM customers WHERE national_id_index = $1 AND id <> $2) AS "held!""#,
        index,
        customer_id,
    )
    .fetch_one(tx)
    .await
}

/// A claimed check, as the worker asks the provider about it.
struct Due {
    id: String,
    state: String,
    first_name: String,
    last_name: String,
    national_id_enc: Vec<u8>,
    attempts: i32,
    overdue: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_from_five_seconds_to_ten_minutes_give_or_take_a_fifth() {
        for (attempts, base) in [(1, 5.0), (2, 10.0), (3, 20.0), (8, 600.0), (40, 600.0)] {
            for _ in 0..50 {
                let wait = backoff(attempts).as_secs_f64();
                assert!((base * 0.8..base * 1.2).contains(&wait), "{attempts} tries: {wait} s");
            }
        }
    }

    #[test]
    fn check_ids_have_one_shape() {
        let id = new_id();
        assert!(is_check_id(&id), "{id}");
        for not in ["idc_0123", "pr_0123456789abcdef", "idc_0123456789ABCDEF", "idc_0123456789abcdeg"] {
            assert!(!is_check_id(not), "{not}");
        }
    }
}
