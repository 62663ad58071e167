//! Bill payment and airtime: the biller catalogue, paying a bill or topping up a
//! number (hold → the biller or airtime provider → post or void) and the reconciler
//! that settles what one did not answer at once.
//!
//! Our transfer reference is the biller's idempotency key, so asking again — a
//! duplicated hop, the reconciler after a timeout — never pays twice; `bill_settle`
//! resolves each payment exactly once however many answers arrive.

pub mod client;
pub mod credentials;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use tokio::time::Instant;
use tracing::warn;

use self::client::{Answer, BillerClient, Payment, Protocol, Validation};
use self::credentials::Credentials;
use super::MoneyError;
use super::crypto::DataVault;
use super::ledger::{outcome_of, reference, request_hash};
use crate::breaker::Breaker;
use crate::domain::{AccountPattern, Amount, Msisdn};
use crate::outcome::{OpResult, Outcome};

/// A biller as the catalogue holds it.
#[derive(Clone, Debug, Serialize)]
pub struct Biller {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub account_pattern: String,
    pub account_label: String,
    pub fee_payer: String,
    pub base_url: String,
    pub timeout_ms: i32,
    pub status: String,
    /// `bill`, or `airtime` for the airtime provider.
    pub category: String,
    /// The amounts a menu offers to pick, in minor units.
    pub offer_amounts: Vec<i64>,
    /// Sealed; opened only to call the biller.
    #[serde(skip)]
    pub credentials_sealed: Option<Vec<u8>>,
}

impl Biller {
    fn timeout(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.timeout_ms).unwrap_or(3_000))
    }

    fn protocol(&self) -> Protocol {
        Protocol::of(&self.category)
    }

    fn is_bill(&self) -> bool {
        self.category == "bill"
    }

    /// Whether `account` has the shape of this biller's account numbers.
    pub fn accepts(&self, account: &str) -> bool {
        AccountPattern::admits(&self.account_pattern, account)
    }
}

/// A biller's client, and the sealed credentials it was made from.
type Partner = (Vec<u8>, Arc<BillerClient>);

/// Pays bills and settles them. Cheap to share.
#[derive(Debug)]
pub struct Bills {
    pool: PgPool,
    client: Arc<BillerClient>,
    vault: DataVault,
    /// Clients of billers with credentials, each with the sealed credentials it was
    /// made from (changed credentials make a new one).
    partners: Mutex<HashMap<i64, Partner>>,
    currency: String,
    breakers: Mutex<HashMap<i64, Arc<Breaker>>>,
}

/// Failures in a row before a biller's breaker opens, and how long it stays open.
const BREAKER_THRESHOLD: u32 = 5;
const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);
/// Pending payments one reconciler pass asks about.
const RECONCILE_BATCH: i64 = 50;

impl Bills {
    pub fn new(pool: PgPool, vault: DataVault, currency: String) -> Self {
        Bills {
            pool,
            client: Arc::new(BillerClient::new()),
            vault,
            partners: Mutex::default(),
            currency,
            breakers: Mutex::default(),
        }
    }

    /// The client that calls `biller` with its credentials, or why there is none.
    async fn client(&self, biller: &Biller) -> Result<Arc<BillerClient>, String> {
        let Some(sealed) = &biller.credentials_sealed else { return Ok(Arc::clone(&self.client)) };
        {
            let partners = self.partners.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some((_, client)) = partners.get(&biller.id).filter(|(from, _)| from == sealed) {
                return Ok(Arc::clone(client));
            }
        }
        let opened = self
            .vault
            .open(credentials::place(&biller.code), sealed)
            .await
            .map_err(|e| format!("the biller's credentials cannot be opened: {e}"))?;
        let credentials: Credentials = serde_json::from_str(&opened)
            .map_err(|_| "the biller's credentials cannot be read".to_owned())?;
        let client = Arc::new(BillerClient::with(&credentials)?);
        let mut partners = self.partners.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        partners.insert(biller.id, (sealed.clone(), Arc::clone(&client)));
        Ok(client)
    }

    fn breaker(&self, biller: &Biller) -> Arc<Breaker> {
        let mut breakers = self.breakers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(
            breakers
                .entry(biller.id)
                .or_insert_with(|| Arc::new(Breaker::new(BREAKER_THRESHOLD, BREAKER_COOLDOWN))),
        )
    }

    pub async fn biller(&self, code: &str) -> Result<Option<Biller>, sqlx::Error> {
        sqlx::query_as!(
            Biller,
            "SELECT id, code, name, account_pattern, account_label, fee_payer, base_url, timeout_ms, status,
                    category, offer_amounts, credentials_sealed
               FROM billers WHERE code = $1",
            code,
        )
        .fetch_optional(&self.pool)
        .await
    }

    /// The active billers, for a menu to list, read through `db` (a replica may serve it).
    pub async fn catalogue(&self, db: &PgPool) -> Result<OpResult, sqlx::Error> {
        let billers = sqlx::query!(
            "SELECT code, name, account_label FROM billers WHERE status = 'active' AND category = 'bill' ORDER BY name"
        )
        .fetch_all(db)
        .await?;
        let billers: Vec<_> = billers
            .into_iter()
            .map(|b| json!({ "code": b.code, "name": b.name, "label": b.account_label }))
            .collect();
        Ok(OpResult::new(Outcome::Ok, json!({ "billers": billers })))
    }

    /// Checks `account` with the biller and quotes the fee for `amount`: the holder's
    /// name, fee and total for the confirmation screen. `None` when the biller cannot
    /// be asked now.
    pub async fn validate(
        &self,
        code: &str,
        account: &str,
        amount: Amount,
    ) -> Result<Option<OpResult>, sqlx::Error> {
        let Some(biller) = self.biller(code).await?.filter(|b| b.status == "active" && b.is_bill()) else {
            return Ok(Some(OpResult::bare(Outcome::RecipientUnknown)));
        };
        if !biller.accepts(account) {
            return Ok(Some(OpResult::bare(Outcome::AccountInvalid)));
        }
        let fee = sqlx::query_scalar!(
            "SELECT fee FROM fee_bands WHERE kind = 'bill' AND $1 BETWEEN min_amount AND max_amount",
            amount.minor(),
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(fee) = fee.filter(|fee| biller.fee_payer == "customer" || *fee < amount.minor()) else {
            return Ok(Some(OpResult::bare(Outcome::LimitExceeded)));
        };
        let breaker = self.breaker(&biller);
        if breaker.is_open(Instant::now()) {
            return Ok(None);
        }
        let fee = if biller.fee_payer == "customer" { fee } else { 0 };
        let validation = match self.client(&biller).await {
            Ok(client) => client.validate(&biller.base_url, biller.timeout(), account).await,
            Err(why) => Validation::Unavailable(why),
        };
        Ok(match validation {
            Validation::Valid { holder } => {
                breaker.succeeded();
                Some(OpResult::new(
                    Outcome::Ok,
                    json!({ "holder": holder, "biller": biller.name, "fee": fee, "total": amount.minor() + fee }),
                ))
            }
            Validation::NoSuchAccount => {
                breaker.succeeded();
                Some(OpResult::bare(Outcome::AccountInvalid))
            }
            Validation::Unavailable(why) => {
                breaker.failed(Instant::now());
                warn!(biller = %biller.code, %why, "a biller could not check an account number");
                None
            }
        })
    }

    /// Pays `amount` from `from` to `account` at biller `code` under `key`: holds the
    /// money, asks the biller, and posts or voids on its answer. Without one the
    /// payment stays pending (outcome `pending`) for the reconciler.
    /// Once the hold is made, a failure of the database is [`MoneyError::Unsettled`]: the
    /// money is held and the reconciler settles it, with its receipt.
    pub async fn pay(&self, key: &str, from: &Msisdn, bill: Bill<'_>) -> Result<OpResult, MoneyError> {
        let Bill { biller: code, account, holder, amount } = bill;
        let Some(biller) = self.biller(code).await?.filter(Biller::is_bill) else {
            return Ok(OpResult::bare(Outcome::RecipientUnknown));
        };
        if !biller.accepts(account) {
            return Ok(OpResult::bare(Outcome::AccountInvalid));
        }
        self.hold_and_ask(key, from, &biller, account, holder, amount).await
    }

    /// The active airtime provider, if the operator has one.
    async fn airtime_provider(&self, db: &PgPool) -> Result<Option<Biller>, sqlx::Error> {
        sqlx::query_as!(
            Biller,
            "SELECT id, code, name, account_pattern, account_label, fee_payer, base_url, timeout_ms, status,
                    category, offer_amounts, credentials_sealed
               FROM billers WHERE category = 'airtime' AND status = 'active'",
        )
        .fetch_optional(db)
        .await
    }

    /// What airtime `to` can be bought, read through `db` (a replica may serve it): the
    /// number as the provider gets it and the amounts offered; `recipient_unknown` when
    /// no provider is active, `account_invalid` for a number it does not serve.
    pub async fn airtime_offer(&self, db: &PgPool, to: &Msisdn) -> Result<OpResult, sqlx::Error> {
        let Some(provider) = self.airtime_provider(db).await? else {
            return Ok(OpResult::bare(Outcome::RecipientUnknown));
        };
        if !provider.accepts(to.as_e164()) {
            return Ok(OpResult::bare(Outcome::AccountInvalid));
        }
        let data =
            json!({ "provider": provider.name, "to": to.as_e164(), "amounts": provider.offer_amounts });
        Ok(OpResult::new(Outcome::Ok, data))
    }

    /// Tops up `to` with `amount` of airtime from `from`'s wallet under `key`, as a bill
    /// at the airtime provider is paid (see [`Bills::pay`]). A key used before replays
    /// at the provider it went to, even one suspended or replaced since.
    pub async fn top_up(
        &self,
        key: &str,
        from: &Msisdn,
        to: &Msisdn,
        amount: Amount,
    ) -> Result<OpResult, MoneyError> {
        let earlier = sqlx::query_as!(
            Biller,
            "SELECT b.id, b.code, b.name, b.account_pattern, b.account_label, b.fee_payer, b.base_url, b.timeout_ms,
                    b.status, b.category, b.offer_amounts, b.credentials_sealed
               FROM transfers t JOIN bill_payments p ON p.transfer_id = t.id JOIN billers b ON b.id = p.biller_id
              WHERE t.idempotency_key = $1",
            key,
        )
        .fetch_optional(&self.pool)
        .await?;
        if let Some(earlier) = earlier {
            return self.hold_and_ask(key, from, &earlier, to.as_e164(), "", amount).await;
        }
        let Some(provider) = self.airtime_provider(&self.pool).await? else {
            return Ok(OpResult::bare(Outcome::RecipientUnknown));
        };
        if !provider.accepts(to.as_e164()) {
            return Ok(OpResult::bare(Outcome::AccountInvalid));
        }
        self.hold_and_ask(key, from, &provider, to.as_e164(), "", amount).await
    }

    /// Holds the money for a payment to `biller`, asks it, and posts or voids on its
    /// answer (or leaves it pending).
    async fn hold_and_ask(
        &self,
        key: &str,
        from: &Msisdn,
        biller: &Biller,
        account: &str,
        holder: &str,
        amount: Amount,
    ) -> Result<OpResult, MoneyError> {
        let row = sqlx::query!(
            r#"SELECT outcome AS "outcome!", transfer_id AS "transfer_id!", fee AS "fee!"
                 FROM bill_hold($1, $2, $3, $4, $5, $6, $7)"#,
            key,
            &request_hash("bill", &[from.as_e164(), &biller.code, account], amount),
            from.as_e164(),
            &biller.code,
            account,
            holder,
            amount.minor(),
        )
        .fetch_one(&self.pool)
        .await?;
        let (code, transfer_id, fee) = (row.outcome, row.transfer_id, row.fee);
        let fee = if biller.fee_payer == "customer" { fee } else { 0 };
        if code != "ok" {
            return Ok(OpResult::new(outcome_of(&code), json!({ "ref": reference(transfer_id) })));
        }
        let state =
            sqlx::query_scalar!("SELECT state FROM bill_payments WHERE transfer_id = $1", transfer_id)
                .fetch_one(&self.pool)
                .await
                .map_err(MoneyError::Unsettled)?;
        let settled = match state.as_str() {
            "pending" => {
                let answer = self.ask(biller, &reference(transfer_id), account, amount.minor(), false).await;
                self.settle(transfer_id, &answer).await.map_err(MoneyError::Unsettled)?
            }
            // A replay of a payment the biller has answered.
            "paid" => Settled::Paid,
            _ => Settled::Rejected,
        };
        self.answer_of(transfer_id, fee, settled).await.map_err(MoneyError::Unsettled)
    }

    /// Asks the biller to pay (or, for the reconciler, how a payment stands), through
    /// its breaker: an open breaker answers `Unknown` without calling.
    async fn ask(
        &self,
        biller: &Biller,
        reference: &str,
        account: &str,
        amount: i64,
        status_first: bool,
    ) -> Answer {
        let breaker = self.breaker(biller);
        if let Err(until) = breaker.permit(Instant::now()) {
            let wait = until.saturating_duration_since(Instant::now());
            return Answer::Unknown(format!("the biller's breaker is open for {} s", wait.as_secs()));
        }
        let payment = Payment { reference, account, amount, currency: &self.currency };
        let answer = match self.client(biller).await {
            Err(why) => Answer::Unknown(why),
            Ok(client) => {
                let (base, timeout, protocol) = (&biller.base_url, biller.timeout(), biller.protocol());
                let mut answer = if status_first {
                    client.status(base, timeout, protocol, reference).await
                } else {
                    client.pay(base, timeout, protocol, &payment).await
                };
                if answer == Answer::NotFound {
                    // Never received: send it again, under the same reference.
                    answer = client.pay(base, timeout, protocol, &payment).await;
                }
                answer
            }
        };
        match &answer {
            Answer::Unknown(why) => {
                breaker.failed(Instant::now());
                warn!(biller = %biller.code, %reference, %why, "no answer from a biller; the payment stays pending");
            }
            _ => breaker.succeeded(),
        }
        answer
    }

    /// Records a biller's answer: posts or voids, or leaves the payment pending.
    async fn settle(&self, transfer_id: i64, answer: &Answer) -> Result<Settled, sqlx::Error> {
        let (paid, receipt, token, reason) = match answer {
            Answer::Paid { receipt, token } => (true, Some(receipt.as_str()), token.as_deref(), None),
            Answer::Rejected { reason } => (false, None, None, Some(reason.as_str())),
            Answer::Pending | Answer::NotFound | Answer::Unknown(_) => return Ok(Settled::Pending),
        };
        let state = sqlx::query_scalar!(
            r#"SELECT state AS "state!" FROM bill_settle($1, $2, $3, $4, $5)"#,
            transfer_id,
            paid,
            receipt,
            token,
            reason,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(match state.as_str() {
            "paid" => Settled::Paid,
            "rejected" => Settled::Rejected,
            _ => Settled::Pending,
        })
    }

    /// The op's answer for a payment in the state `settled` left it (a replayed payment
    /// reads the state the first one recorded).
    async fn answer_of(&self, transfer_id: i64, fee: i64, settled: Settled) -> Result<OpResult, sqlx::Error> {
        let row = sqlx::query!(
            "SELECT p.token, p.biller_ref, p.reason, t.debit_balance_after
               FROM bill_payments p JOIN transfers t ON t.id = p.transfer_id WHERE p.transfer_id = $1",
            transfer_id,
        )
        .fetch_one(&self.pool)
        .await?;
        let (token, biller_ref, reason, balance) =
            (row.token, row.biller_ref, row.reason, row.debit_balance_after);
        let data = json!({
            "ref": reference(transfer_id), "fee": fee, "token": token, "receipt": biller_ref,
            "reason": reason, "balance": balance,
        });
        Ok(OpResult::new(
            match settled {
                Settled::Paid => Outcome::Ok,
                Settled::Rejected => Outcome::BillRejected,
                Settled::Pending => Outcome::Pending,
            },
            data,
        ))
    }

    /// One reconciler pass: asks the billers about the pending payments that are due,
    /// each at most once per pass, leasing them so that another replica's pass skips
    /// them; the next check backs off from 5 s to 10 min. Returns how many settled.
    pub async fn reconcile(&self) -> Result<u64, sqlx::Error> {
        let due = sqlx::query!(
            "UPDATE bill_payments p
                SET checks = p.checks + 1,
                    next_check_at = now() + least(interval '10 minutes', interval '5 seconds' * power(2, least(p.checks, 10)))
               FROM transfers t
              WHERE t.id = p.transfer_id
                AND p.transfer_id IN (SELECT q.transfer_id FROM bill_payments q
                                       WHERE q.state = 'pending' AND q.next_check_at <= now()
                                       ORDER BY q.next_check_at LIMIT $1
                                         FOR UPDATE SKIP LOCKED)
          RETURNING p.transfer_id, p.biller_id, p.account_number, t.amount",
            RECONCILE_BATCH,
        )
        .fetch_all(&self.pool)
        .await?;
        let ids: Vec<i64> = due.iter().map(|p| p.biller_id).collect();
        let billers: HashMap<i64, Biller> = sqlx::query_as!(
            Biller,
            "SELECT id, code, name, account_pattern, account_label, fee_payer, base_url, timeout_ms, status,
                    category, offer_amounts, credentials_sealed
               FROM billers WHERE id = ANY($1)",
            &ids,
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|b| (b.id, b))
        .collect();
        let mut settled = 0;
        for p in due {
            let (transfer_id, biller_id, account, amount) =
                (p.transfer_id, p.biller_id, p.account_number, p.amount);
            // Billers are never deleted, so every payment's biller is here.
            let Some(biller) = billers.get(&biller_id) else { continue };
            let answer = self.ask(biller, &reference(transfer_id), &account, amount, true).await;
            if !matches!(self.settle(transfer_id, &answer).await?, Settled::Pending) {
                settled += 1;
            }
        }
        Ok(settled)
    }
}

/// What a customer pays.
#[derive(Clone, Copy, Debug)]
pub struct Bill<'a> {
    pub biller: &'a str,
    pub account: &'a str,
    /// The holder's name the biller gave when the account was checked (for receipts).
    pub holder: &'a str,
    pub amount: Amount,
}

enum Settled {
    Paid,
    Rejected,
    Pending,
}
