//! The ledger as the ops see it: send money, quote a transfer, balance, statement; and
//! as operators do: reverse a transfer.
//!
//! Every movement is one call of a PL/pgSQL function (see `migrations/`): one
//! transaction and one round trip, idempotent by key.

use serde_json::json;
use sha2::{Digest, Sha256};

use super::group::Send;
use super::lane::Db;
use super::pin::PinPolicy;
use super::pin::{self, PinCheck};
use crate::domain::{Amount, Msisdn};
use crate::outcome::{OpResult, Outcome};

/// What `transfer_p2p` answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub outcome: Outcome,
    pub transfer_id: i64,
    pub fee: i64,
    /// The payer's balance after the transfer (`None` when it was rejected).
    pub payer_balance: Option<i64>,
}

impl Transfer {
    pub fn reference(&self) -> String {
        reference(self.transfer_id)
    }
}

/// Binds an idempotency key to what was asked: the same key with another request is a
/// conflict. `parties` are the numbers (phone, agent, store) the movement names, in order.
pub fn request_hash(kind: &str, parties: &[&str], amount: Amount) -> Vec<u8> {
    let text = format!("{kind}|{}|{}", parties.join("|"), amount.minor());
    Sha256::digest(text.as_bytes()).to_vec()
}

pub(super) fn outcome_of(code: &str) -> Outcome {
    match code {
        "ok" => Outcome::Ok,
        "insufficient_funds" => Outcome::InsufficientFunds,
        "limit_exceeded" => Outcome::LimitExceeded,
        "recipient_unknown" => Outcome::RecipientUnknown,
        "same_account" => Outcome::SameAccount,
        "account_blocked" => Outcome::AccountBlocked,
        "not_registered" => Outcome::NotRegistered,
        "account_invalid" => Outcome::AccountInvalid,
        // `conflict`, and anything a later migration adds before this code knows it.
        _ => Outcome::Conflict,
    }
}

/// Sends `amount` from `from` to `to` under `key`; replays return the first outcome.
pub async fn transfer_p2p(
    db: impl Db,
    key: &str,
    from: &Msisdn,
    to: &Msisdn,
    amount: Amount,
) -> Result<Transfer, sqlx::Error> {
    plain(db, &Send::new(key, (from, to), amount, None, "")).await
}

/// `send`, whose PIN was checked already (or that needs none), in one call of `transfer_p2p`.
async fn plain(db: impl Db, send: &Send) -> Result<Transfer, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", transfer_id AS "transfer_id!", fee AS "fee!", payer_balance
             FROM transfer_p2p($1, $2, $3, $4, $5)"#,
        send.key,
        send.hash,
        send.from,
        send.to,
        send.amount,
    )
    .fetch_one(db)
    .await?;
    Ok(Transfer {
        outcome: outcome_of(&row.outcome),
        transfer_id: row.transfer_id,
        fee: row.fee,
        payer_balance: row.payer_balance,
    })
}

/// Spreads fees over `shards` fee revenue accounts from now on: the missing ones are
/// opened (in the currency of the first) and the ledger told, in one statement, so no
/// movement picks a shard that is not there yet. Fewer shards leave the others as they
/// are, with what they earned.
pub async fn set_fee_shards(db: impl Db, shards: i16) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "WITH opened AS (
             INSERT INTO accounts (kind, name, currency, shard)
             SELECT 'fee_revenue', 'fees', first.currency, s
               FROM generate_series(0, $1::smallint - 1) s,
                    (SELECT a.currency FROM accounts a
                      WHERE a.kind = 'fee_revenue' AND a.customer_id IS NULL AND a.shard = 0) first
             ON CONFLICT DO NOTHING)
         UPDATE ledger_settings SET value = $1::smallint::text WHERE key = 'fee_shards'",
        shards,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Spreads each biller's settlement account, and the funding account, over `shards`
/// accounts: the missing ones are opened and the count set in one transaction, so no
/// payment picks a shard that is not there.
pub async fn set_settlement_shards(db: impl Db, shards: i16) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!("SELECT settlement_shards_open($1::smallint)", shards).fetch_one(db).await?;
    Ok(())
}

/// What `transfer_p2p_pinned` answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Pinned {
    Sent(Transfer),
    /// The PIN check refused (never `PinCheck::Ok`); nothing was recorded but the failure.
    Refused(PinCheck),
    /// The PIN changed since its salt was cached: check it the long way.
    StaleSalt,
}

/// A send's answer from its row: sent (or refused by the ledger) when it has a transfer;
/// otherwise the PIN check's refusal, or a stale salt.
fn pinned(
    code: &str,
    transfer_id: Option<i64>,
    fee: i64,
    payer_balance: Option<i64>,
) -> Result<Pinned, sqlx::Error> {
    Ok(match (transfer_id, pin::pin_outcome(code, None)) {
        (Some(transfer_id), _) => {
            Pinned::Sent(Transfer { outcome: outcome_of(code), transfer_id, fee, payer_balance })
        }
        (None, Ok(None)) => Pinned::StaleSalt,
        (None, Ok(Some(check))) => Pinned::Refused(check),
        (None, Err(e)) => return Err(e),
    })
}

/// `send` posted alone: behind the payer's PIN, checked in the same transaction and
/// round trip, when it carries one; as [`transfer_p2p`] otherwise.
pub(super) async fn transfer_p2p_one(
    db: impl Db,
    send: &Send,
    policy: PinPolicy,
) -> Result<Pinned, sqlx::Error> {
    let Some(proof) = &send.pin else {
        return Ok(Pinned::Sent(plain(db, send).await?));
    };
    let (max_attempts, lock_secs) = pin::policy_args(policy);
    // The channel is for the event of a lockout, written at the commit.
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", transfer_id, fee AS "fee!", payer_balance
             FROM transfer_p2p_pinned($1, $2, $3, $4, $5, $6, $7, $8, $9), set_config('ussd.channel', $10, true)"#,
        send.key,
        send.hash,
        send.from,
        send.to,
        send.amount,
        &proof.salt[..],
        &proof.hash,
        max_attempts,
        lock_secs,
        send.channel,
    )
    .fetch_one(db)
    .await?;
    pinned(&row.outcome, row.transfer_id, row.fee, row.payer_balance)
}

/// `sends` posted together by one call in one transaction: each one's answer, in order,
/// as [`transfer_p2p_one`] would have given it.
pub(super) async fn transfer_p2p_group(
    db: impl Db,
    sends: &[&Send],
    policy: PinPolicy,
) -> Result<Vec<Pinned>, sqlx::Error> {
    let (max_attempts, lock_secs) = pin::policy_args(policy);
    let column = |f: fn(&Send) -> &str| sends.iter().map(|s| f(s).to_owned()).collect::<Vec<String>>();
    let keys = column(|s| &s.key);
    let froms = column(|s| &s.from);
    let tos = column(|s| &s.to);
    let channels = column(|s| &s.channel);
    let hashes: Vec<Vec<u8>> = sends.iter().map(|s| s.hash.clone()).collect();
    let amounts: Vec<i64> = sends.iter().map(|s| s.amount).collect();
    let salts: Vec<Option<Vec<u8>>> = sends.iter().map(|s| s.pin.as_ref().map(|p| p.salt.to_vec())).collect();
    let pins: Vec<Option<Vec<u8>>> = sends.iter().map(|s| s.pin.as_ref().map(|p| p.hash.clone())).collect();
    let rows = sqlx::query!(
        r#"SELECT item AS "item!", outcome AS "outcome!", transfer_id, fee AS "fee!", payer_balance
             FROM transfer_p2p_group($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"#,
        &keys,
        &hashes,
        &froms,
        &tos,
        &amounts,
        &salts as &[Option<Vec<u8>>],
        &pins as &[Option<Vec<u8>>],
        &channels,
        max_attempts,
        lock_secs,
    )
    .fetch_all(db)
    .await?;
    if rows.len() != sends.len() || rows.iter().enumerate().any(|(i, r)| usize::try_from(r.item) != Ok(i + 1))
    {
        return Err(sqlx::Error::Protocol(format!(
            "transfer_p2p_group answered {} rows for {} sends",
            rows.len(),
            sends.len()
        )));
    }
    rows.into_iter().map(|r| pinned(&r.outcome, r.transfer_id, r.fee, r.payer_balance)).collect()
}

/// How a reversal went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reversed {
    Done,
    /// Reversed before: the answer names that reversal.
    Already,
    NotFound,
    /// Not a posted movement between two parties (a deposit, a merchant's withdrawal, a
    /// rejected or reversing one).
    NotReversible,
    /// The payee no longer has the amount.
    InsufficientFunds,
}

/// What `transfer_reverse` answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reversal {
    pub outcome: Reversed,
    /// The reversing transfer, when there is one.
    pub transfer_id: Option<i64>,
    pub amount: i64,
    pub fee_refunded: i64,
}

/// Reverses transfer `original` — the amount back from the payee, and the fee from fee
/// revenue when `refund_fee` — as a new linked transfer with a receipt to each party;
/// at most once, however often or concurrently it is asked.
pub async fn reverse(
    db: impl Db,
    original: i64,
    refund_fee: bool,
    reason: &str,
) -> Result<Reversal, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", transfer_id, amount AS "amount!", fee_refunded AS "fee_refunded!"
             FROM transfer_reverse($1, $2, $3)"#,
        original,
        refund_fee,
        reason,
    )
    .fetch_one(db)
    .await?;
    let (transfer_id, amount, fee_refunded) = (row.transfer_id, row.amount, row.fee_refunded);
    let outcome = match row.outcome.as_str() {
        "ok" => Reversed::Done,
        "already_reversed" => Reversed::Already,
        "not_found" => Reversed::NotFound,
        "not_reversible" => Reversed::NotReversible,
        "insufficient_funds" => Reversed::InsufficientFunds,
        other => return Err(sqlx::Error::Protocol(format!("transfer_reverse answered `{other}`"))),
    };
    Ok(Reversal { outcome, transfer_id, amount, fee_refunded })
}

/// The reference of transfer `id` on receipts and statements (`TX0000002A`; the SQL
/// function `transfer_ref` writes the same).
pub fn reference(id: i64) -> String {
    format!("TX{id:08X}")
}

/// The id behind a transfer reference (`TX0000002A`, any case) or a bare id.
pub fn parse_reference(text: &str) -> Option<i64> {
    let text = text.trim();
    match text.get(..2) {
        Some(tx) if tx.eq_ignore_ascii_case("TX") => i64::from_str_radix(&text[2..], 16).ok(),
        _ => text.parse().ok(),
    }
    .filter(|id| *id > 0)
}

/// What the confirmation screen shows before the PIN: the payee's name and the fee.
/// Funds and limits are checked by the transfer itself, under its locks.
pub async fn quote(db: impl Db, from: &Msisdn, to: &Msisdn, amount: Amount) -> Result<OpResult, sqlx::Error> {
    if from == to {
        return Ok(OpResult::bare(Outcome::SameAccount));
    }
    let row = sqlx::query!(
        r#"SELECT (SELECT first_name || ' ' || last_name FROM customers WHERE msisdn = $2) AS payee,
                  (SELECT fee FROM fee_bands WHERE kind = 'p2p' AND $3 BETWEEN min_amount AND max_amount) AS fee,
                  (SELECT t.max_per_transfer FROM customers c JOIN kyc_tiers t ON t.tier = c.kyc_tier
                    WHERE c.msisdn = $1) AS max_per_transfer"#,
        from.as_e164(),
        to.as_e164(),
        amount.minor(),
    )
    .fetch_one(db)
    .await?;
    let (fee, max_per_transfer) = (row.fee, row.max_per_transfer);
    let Some(name) = row.payee else {
        return Ok(OpResult::bare(Outcome::RecipientUnknown));
    };
    match (fee, max_per_transfer) {
        (Some(fee), Some(max)) if amount.minor() <= max => {
            Ok(OpResult::new(Outcome::Ok, json!({ "name": name, "fee": fee, "total": amount.minor() + fee })))
        }
        _ => Ok(OpResult::new(Outcome::LimitExceeded, json!({ "max": max_per_transfer }))),
    }
}

/// The wallet of a customer: available balance, or why there is none to show.
pub async fn balance(db: impl Db, customer_id: i64) -> Result<OpResult, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT balance, held, currency::text AS "currency!", status
             FROM accounts WHERE customer_id = $1 AND kind = 'wallet'"#,
        customer_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(match row {
        None => OpResult::bare(Outcome::NotRegistered),
        Some(wallet) if wallet.status != "active" => OpResult::bare(Outcome::AccountBlocked),
        Some(wallet) => OpResult::new(
            Outcome::Ok,
            json!({ "balance": wallet.balance, "available": wallet.balance - wallet.held, "currency": wallet.currency }),
        ),
    })
}

/// The last five posted movements of a customer's wallet, newest first. Party names are
/// cut to 12 characters so that five lines of the longest amounts (`DD/MM -250,108.00
/// Name…`, 30 characters) fit a 160-character screen.
pub async fn statement(db: impl Db, customer_id: i64) -> Result<OpResult, sqlx::Error> {
    let rows = sqlx::query!(
        r#"WITH w AS (SELECT id FROM accounts WHERE customer_id = $1 AND kind = 'wallet'),
              t AS ((SELECT tr.* FROM transfers tr, w WHERE tr.debit_account_id = w.id AND tr.status = 'posted'
                      ORDER BY tr.id DESC LIMIT 5)
                    UNION ALL
                    (SELECT tr.* FROM transfers tr, w WHERE tr.credit_account_id = w.id AND tr.status = 'posted'
                      ORDER BY tr.id DESC LIMIT 5))
         SELECT to_char(t.created_at AT TIME ZONE (SELECT value FROM ledger_settings WHERE key = 'timezone'), 'DD/MM') AS "date!",
                -- What left the wallet, from its entries: the fee only when the customer paid it.
                CASE WHEN t.debit_account_id = w.id
                     THEN (SELECT coalesce(sum(e.amount), 0)::bigint FROM entries e WHERE e.transfer_id = t.id AND e.account_id = w.id)
                     ELSE t.amount END AS "amount!",
                t.kind AS "kind!",
                CASE WHEN o.kind = 'wallet' THEN c.first_name || ' ' || left(c.last_name, 1) || '.'
                     ELSE coalesce((SELECT g.name FROM agents g WHERE g.float_account_id = o.id),
                                   (SELECT m.display_name FROM merchant_payments p JOIN merchants m ON m.id = p.merchant_id
                                     WHERE p.transfer_id = t.id),
                                   (SELECT m.display_name FROM merchant_settlement_shards s JOIN merchants m ON m.id = s.merchant_id
                                     WHERE s.account_id = o.id),
                                   (SELECT b.name FROM bill_payments p JOIN billers b ON b.id = p.biller_id
                                     WHERE p.transfer_id = t.id), '') END AS "party!",
                transfer_ref(t.id) AS "reference!"
           FROM t CROSS JOIN w
           LEFT JOIN accounts o ON o.id = CASE WHEN t.debit_account_id = w.id THEN t.credit_account_id
                                               ELSE t.debit_account_id END
           LEFT JOIN customers c ON c.id = o.customer_id
          ORDER BY t.id DESC
          LIMIT 5"#,
        customer_id,
    )
    .fetch_all(db)
    .await?;
    let rows = rows.into_iter().map(|r| (r.date, r.amount, r.kind, r.party, r.reference)).collect();
    Ok(statement_of(rows))
}

/// A statement's lines from (date, signed amount, kind, party, reference) rows.
pub(super) fn statement_of(rows: Vec<(String, i64, String, String, String)>) -> OpResult {
    let entries: Vec<_> = rows
        .into_iter()
        .map(|(date, amount, kind, party, reference)| {
            let party: String = party.chars().take(12).collect();
            json!({ "date": date, "amount": amount, "kind": kind, "party": party, "ref": reference })
        })
        .collect();
    OpResult::new(Outcome::Ok, json!({ "entries": entries }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_read_back_to_their_ids() {
        assert_eq!(reference(42), "TX0000002A");
        assert_eq!(parse_reference("TX0000002A"), Some(42));
        assert_eq!(parse_reference("tx0000002a"), Some(42));
        assert_eq!(parse_reference(" 42 "), Some(42));
        for bad in ["TX", "TXZZ", "TX-1", "0", "-5", "", "RX0000002A"] {
            assert_eq!(parse_reference(bad), None, "{bad}");
        }
    }
}
