//! A sender asks for a send back: the sends they may ask about, the request (a hold on
//! the recipient's wallet, or the operators' queue when the money is spent; for a
//! merchant payment, the merchant's consent), the recipient's answer (give it back now,
//! or dispute), the merchant's (refund, or decline), the sweeper that runs undisputed
//! reversals, and the operators' decisions.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;

use super::lane::Db;
use super::ledger::reference;
use crate::domain::Msisdn;
use crate::outcome::{OpResult, Outcome};

/// How long after a send its sender may ask for it back.
pub const WITHIN: Duration = Duration::from_secs(24 * 3_600);

/// The caller's sends and merchant payments of the last [`WITHIN`] that may be asked
/// back (none asked about before, none reversed), newest first: `{ref, date, amount,
/// name}`, at most five.
pub async fn sends(db: impl Db, from: &Msisdn) -> Result<OpResult, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT transfer_ref(t.id) AS "reference!", t.amount,
                  to_char(t.created_at AT TIME ZONE (SELECT value FROM ledger_settings WHERE key = 'timezone'), 'DD/MM HH24:MI') AS "date!",
                  left(coalesce(c.first_name || ' ' || left(c.last_name, 1) || '.', m.display_name, ''), 12) AS "name!"
             FROM customers me
             JOIN accounts w ON w.customer_id = me.id AND w.kind = 'wallet'
             JOIN transfers t ON t.debit_account_id = w.id
             JOIN accounts o ON o.id = t.credit_account_id
             LEFT JOIN customers c ON c.id = o.customer_id AND o.kind = 'wallet'
             LEFT JOIN merchant_payments mp ON mp.transfer_id = t.id
             LEFT JOIN merchants m ON m.id = mp.merchant_id
            WHERE me.msisdn = $1 AND t.kind IN ('p2p', 'merchant') AND t.status = 'posted'
              AND t.created_at > now() - make_interval(secs => $2)
              AND NOT EXISTS (SELECT 1 FROM reversal_requests r WHERE r.original_id = t.id)
              AND NOT EXISTS (SELECT 1 FROM transfers x WHERE x.reverses = t.id)
            ORDER BY t.id DESC
            LIMIT 5"#,
        from.as_e164(),
        WITHIN.as_secs_f64(),
    )
    .fetch_all(db)
    .await?;
    let entries: Vec<Value> = rows
        .into_iter()
        .map(|r| json!({ "ref": r.reference, "date": r.date, "amount": r.amount, "name": r.name }))
        .collect();
    Ok(OpResult::new(Outcome::Ok, json!({ "entries": entries })))
}

/// `from` asks for send `original` back; the recipient may dispute within `window`
/// and is told to dial `dial`. `ok` with `state` `held` (and the `hours` left) or
/// `queued` (`because` it was spent or disputed), or how a request made before ended;
/// `recipient_unknown` when it is no send of theirs that may be asked back,
/// `account_blocked` when a wallet is blocked (an operator reverses it, if anyone).
pub async fn request(
    pool: &PgPool,
    from: &Msisdn,
    original: i64,
    window: Duration,
    dial: &str,
) -> Result<OpResult, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", state, because, amount AS "amount!",
                  ceil(extract(epoch FROM until - now()) / 3600)::int AS hours
             FROM reversal_request($1, $2, make_interval(secs => $3), make_interval(secs => $4), $5)"#,
        from.as_e164(),
        original,
        WITHIN.as_secs_f64(),
        window.as_secs_f64(),
        dial,
    )
    .fetch_one(pool)
    .await?;
    Ok(match (row.outcome.as_str(), row.state) {
        ("ok", Some(state)) => OpResult::new(
            Outcome::Ok,
            json!({
                "ref": reference(original), "state": state, "because": row.because, "amount": row.amount,
                "hours": row.hours.unwrap_or(0).max(0),
            }),
        ),
        ("account_blocked", _) => OpResult::bare(Outcome::AccountBlocked),
        _ => OpResult::bare(Outcome::RecipientUnknown),
    })
}

/// The held requests against `to`'s wallet, oldest first: `count`, and `first`
/// (`{ref, amount, name, until}`) or null.
pub async fn waiting(db: impl Db, to: &Msisdn) -> Result<OpResult, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT transfer_ref(t.id) AS "reference!", t.amount,
                  c.first_name || ' ' || c.last_name AS "name!",
                  to_char(r.dispute_until AT TIME ZONE (SELECT value FROM ledger_settings WHERE key = 'timezone'), 'DD/MM HH24:MI') AS "until!"
             FROM customers me
             JOIN accounts w ON w.customer_id = me.id AND w.kind = 'wallet'
             JOIN transfers t ON t.credit_account_id = w.id
             JOIN reversal_requests r ON r.original_id = t.id AND r.state = 'held'
             JOIN accounts o ON o.id = t.debit_account_id
             JOIN customers c ON c.id = o.customer_id
            WHERE me.msisdn = $1 AND r.dispute_until > now()
            ORDER BY r.id"#,
        to.as_e164(),
    )
    .fetch_all(db)
    .await?;
    let first = rows
        .first()
        .map(|r| json!({ "ref": r.reference, "amount": r.amount, "name": r.name, "until": r.until }));
    Ok(OpResult::new(Outcome::Ok, json!({ "count": rows.len(), "first": first })))
}

/// The open request about send `original`, if `recipient` is the one it was sent to.
async fn asked_of(pool: &PgPool, recipient: &Msisdn, original: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT r.id FROM reversal_requests r
           JOIN transfers t ON t.id = r.original_id
           JOIN accounts a ON a.id = t.credit_account_id
           JOIN customers c ON c.id = a.customer_id
          WHERE r.original_id = $1 AND c.msisdn = $2 AND r.state IN ('held', 'queued')",
        original,
        recipient.as_e164(),
    )
    .fetch_optional(pool)
    .await
}

/// The recipient gives send `original` back now, without waiting for the window:
/// `ok` with the reversal's `ref`, `expired` when the request has ended,
/// `account_blocked` when a wallet is blocked (the request goes to an operator).
pub async fn give_back(pool: &PgPool, recipient: &Msisdn, original: i64) -> Result<OpResult, sqlx::Error> {
    let Some(request) = asked_of(pool, recipient, original).await? else {
        return Ok(OpResult::bare(Outcome::Expired));
    };
    // Disputed or ended since it was read: `reversal_run` under its lock says which.
    let ran = run(pool, request, "recipient").await?;
    Ok(match ran {
        Ran::Reversed(id) => OpResult::new(Outcome::Ok, json!({ "ref": reference(id) })),
        Ran::Not(state) if state == "queued" => OpResult::bare(Outcome::AccountBlocked),
        Ran::Not(_) => OpResult::bare(Outcome::Expired),
    })
}

/// The recipient disputes the request about send `original`: it waits for an operator,
/// the amount still held. `ok`, or `expired` when the request has ended.
pub async fn dispute(pool: &PgPool, recipient: &Msisdn, original: i64) -> Result<OpResult, sqlx::Error> {
    let Some(request) = asked_of(pool, recipient, original).await? else {
        return Ok(OpResult::bare(Outcome::Expired));
    };
    let answer =
        sqlx::query_scalar!(r#"SELECT reversal_dispute($1, $2) AS "answer!""#, recipient.as_e164(), request)
            .fetch_one(pool)
            .await?;
    Ok(if answer == "queued" {
        OpResult::new(Outcome::Ok, json!({ "ref": reference(original) }))
    } else {
        OpResult::bare(Outcome::Expired)
    })
}

/// The refunds `owner`'s merchant `merchant` is asked for, oldest first: `count`, and
/// `first` (`{ref, amount, customer, date}`) or null; `recipient_unknown` when the
/// number does not own it.
pub async fn refunds(db: impl Db, owner: &Msisdn, merchant: i64) -> Result<OpResult, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT transfer_ref(t.id) AS "reference!", t.amount, c.first_name || ' ' || left(c.last_name, 1) || '.' AS "customer!",
                  to_char(t.created_at AT TIME ZONE (SELECT value FROM ledger_settings WHERE key = 'timezone'), 'DD/MM HH24:MI') AS "date!"
             FROM merchants m
             JOIN customers o ON o.id = m.owner_id
             JOIN merchant_payments p ON p.merchant_id = m.id
             JOIN reversal_requests r ON r.original_id = p.transfer_id AND r.state = 'queued' AND r.queued_because = 'merchant'
             JOIN transfers t ON t.id = p.transfer_id
             JOIN accounts a ON a.id = t.debit_account_id
             JOIN customers c ON c.id = a.customer_id
            WHERE m.id = $1 AND o.msisdn = $2
            ORDER BY r.id"#,
        merchant,
        owner.as_e164(),
    )
    .fetch_all(db)
    .await?;
    if rows.is_empty() && !owns(db, owner, merchant).await? {
        return Ok(OpResult::bare(Outcome::RecipientUnknown));
    }
    let first = rows
        .first()
        .map(|r| json!({ "ref": r.reference, "amount": r.amount, "customer": r.customer, "date": r.date }));
    Ok(OpResult::new(Outcome::Ok, json!({ "count": rows.len(), "first": first })))
}

async fn owns(db: impl Db, owner: &Msisdn, merchant: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM merchants m JOIN customers c ON c.id = m.owner_id
                           WHERE m.id = $1 AND c.msisdn = $2) AS "owns!""#,
        merchant,
        owner.as_e164(),
    )
    .fetch_one(db)
    .await
}

/// `owner`'s merchant `merchant` refunds payment `original` (`approve`) or declines to:
/// `ok` (with the refund's `ref`), `insufficient_funds` (its settlement does not hold
/// the amount), `account_blocked` (the merchant is suspended, or a wallet or shard is
/// blocked: an operator decides), `expired` (no such request waits for it).
pub async fn merchant_decides(
    pool: &PgPool,
    owner: &Msisdn,
    merchant: i64,
    original: i64,
    approve: bool,
) -> Result<OpResult, sqlx::Error> {
    let request = sqlx::query_scalar!(
        "SELECT r.id FROM reversal_requests r
           JOIN merchant_payments p ON p.transfer_id = r.original_id
           JOIN merchants m ON m.id = p.merchant_id
           JOIN customers o ON o.id = m.owner_id
          WHERE r.original_id = $1 AND m.id = $2 AND o.msisdn = $3
            AND r.state = 'queued' AND r.queued_because = 'merchant'",
        original,
        merchant,
        owner.as_e164(),
    )
    .fetch_optional(pool)
    .await?;
    let Some(request) = request else { return Ok(OpResult::bare(Outcome::Expired)) };
    let active = sqlx::query_scalar!(
        r#"SELECT status = 'active' AS "active!" FROM merchants WHERE id = $1"#,
        merchant
    )
    .fetch_one(pool)
    .await?;
    if approve && !active {
        // A suspended merchant's settlement stays where it is.
        return Ok(OpResult::bare(Outcome::AccountBlocked));
    }
    if !approve {
        let state = sqlx::query_scalar!(
            r#"SELECT reversal_reject($1, 'merchant', 'declined by the merchant') AS "state!""#,
            request
        )
        .fetch_one(pool)
        .await?;
        return Ok(if state == "rejected" {
            OpResult::new(Outcome::Ok, json!({ "ref": reference(original) }))
        } else {
            OpResult::bare(Outcome::Expired)
        });
    }
    Ok(match run(pool, request, "merchant").await? {
        Ran::Reversed(id) => OpResult::new(Outcome::Ok, json!({ "ref": reference(id) })),
        Ran::Not(why) if why == "insufficient_funds" => OpResult::bare(Outcome::InsufficientFunds),
        // A wallet or shard blocked: an operator decides now.
        Ran::Not(why) if why == "queued" => OpResult::bare(Outcome::AccountBlocked),
        Ran::Not(_) => OpResult::bare(Outcome::Expired),
    })
}

/// How running a request's reversal went.
#[derive(Debug, PartialEq, Eq)]
pub enum Ran {
    /// Reversed, now or before: the reversing transfer.
    Reversed(i64),
    /// Not reversed: `rejected` (ended so before) or `insufficient_funds` (spent, and
    /// not there yet).
    Not(String),
}

async fn run(pool: &PgPool, request: i64, by: &str) -> Result<Ran, sqlx::Error> {
    let row =
        sqlx::query!(r#"SELECT outcome AS "outcome!", reversal_id FROM reversal_run($1, $2)"#, request, by,)
            .fetch_one(pool)
            .await?;
    Ok(match (row.outcome.as_str(), row.reversal_id) {
        ("reversed", Some(id)) => Ran::Reversed(id),
        (other, _) => Ran::Not(other.to_owned()),
    })
}

/// One sweeper pass: runs the held requests whose window has passed undisputed, at
/// most `batch`. Each is checked again under its lock (another replica's pass waits,
/// then finds it done; one disputed meanwhile is left). Returns how many ran; a request
/// that fails is logged and left for the next pass, not in the way of the others.
pub async fn sweep(pool: &PgPool, batch: i64) -> Result<u64, sqlx::Error> {
    let due = sqlx::query_scalar!(
        "SELECT id FROM reversal_requests WHERE state = 'held' AND dispute_until <= now()
          ORDER BY dispute_until LIMIT $1",
        batch,
    )
    .fetch_all(pool)
    .await?;
    let mut ran = 0;
    for request in due {
        match run(pool, request, "sweeper").await {
            Ok(Ran::Reversed(_)) => ran += 1,
            Ok(Ran::Not(_)) => {}
            Err(e) => {
                tracing::warn!(request, error = %e, "a reversal request could not be swept; it is tried again")
            }
        }
    }
    Ok(ran)
}

/// What an operator decides about a queued (or held) request.
#[derive(Clone, Copy, Debug)]
pub enum Decision<'a> {
    /// Run the reversal.
    Approve,
    /// Release the hold; `note` says why.
    Reject { note: Option<&'a str> },
}

/// An operator's decision about the request on send `original`, as `by`: the request
/// as [`queue`] shows it, `None` when there is none.
pub async fn decide(
    pool: &PgPool,
    original: i64,
    decision: Decision<'_>,
    by: &str,
) -> Result<Option<Result<Value, String>>, sqlx::Error> {
    let Some(row) = sqlx::query!("SELECT id, state FROM reversal_requests WHERE original_id = $1", original)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    let request = row.id;
    if !matches!(row.state.as_str(), "held" | "queued") {
        // Decided before: the functions below would answer so too, but an approval would
        // read as done now.
        return Ok(Some(Err(row.state)));
    }
    let refused = match decision {
        Decision::Approve => match run(pool, request, by).await? {
            Ran::Reversed(_) => None,
            Ran::Not(why) => Some(why),
        },
        Decision::Reject { note } => {
            let state =
                sqlx::query_scalar!(r#"SELECT reversal_reject($1, $2, $3) AS "state!""#, request, by, note)
                    .fetch_one(pool)
                    .await?;
            (state != "rejected").then_some(state)
        }
    };
    let shown = show(pool, Some(request)).await?.into_iter().next().unwrap_or(Value::Null);
    Ok(Some(match refused {
        None => Ok(shown),
        Some(why) => Err(why),
    }))
}

/// Whether a request on send `original` is open (held or queued): its reversal goes
/// through the request, which holds the amount.
pub async fn open_on(pool: &PgPool, original: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM reversal_requests WHERE original_id = $1 AND state IN ('held', 'queued')) AS "open!""#,
        original,
    )
    .fetch_one(pool)
    .await
}

/// The open requests, oldest first: `queued` ones wait for an operator, `held` ones
/// for their window.
pub async fn queue(pool: &PgPool) -> Result<Value, sqlx::Error> {
    Ok(json!({ "requests": show(pool, None).await? }))
}

/// Request `request` as the admin API shows it, or every open one.
async fn show(pool: &PgPool, request: Option<i64>) -> Result<Vec<Value>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT jsonb_build_object(
                   'send', transfer_ref(t.id), 'amount', t.amount, 'sent_at', t.created_at,
                   'sender', jsonb_build_object('name', pc.first_name || ' ' || pc.last_name, 'msisdn', pc.msisdn),
                   'recipient', jsonb_build_object('name', rp.name, 'msisdn', rp.msisdn),
                   'state', r.state, 'because', r.queued_because, 'held', r.hold_id IS NOT NULL AND r.state IN ('held', 'queued'),
                   'dispute_until', r.dispute_until, 'reversal', CASE WHEN r.reversal_id IS NOT NULL THEN transfer_ref(r.reversal_id) END,
                   'decided_by', r.decided_by, 'note', r.note, 'asked_at', r.created_at, 'resolved_at', r.resolved_at) AS "request!"
             FROM reversal_requests r
             JOIN transfers t ON t.id = r.original_id
             JOIN accounts pa ON pa.id = t.debit_account_id JOIN customers pc ON pc.id = pa.customer_id
             -- The recipient: a customer, or a merchant (its name, the number it is told on).
             CROSS JOIN LATERAL account_party(t.credit_account_id) rp
            WHERE CASE WHEN $1::bigint IS NULL THEN r.state IN ('held', 'queued') ELSE r.id = $1 END
            ORDER BY r.id
            LIMIT 500"#,
        request,
    )
    .fetch_all(pool)
    .await
}
