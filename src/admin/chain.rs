//! `ussd-gateway audit verify`: walks the hash chains of the event log and the audit
//! trail (`migrations/20261206000005_chains.sql`), recomputing each link from its row's
//! columns, and names the first link that does not match — a row changed or removed,
//! a link missing, links cut from the end — and the first row in no chain.

use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// A chain that checked out, and how many links it has.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub chain: String,
    pub links: i64,
    /// The last link's hash (hex): kept outside the database, it shows a later rewrite
    /// of the chain itself.
    pub head: String,
}

/// The first thing found wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct Break {
    pub chain: String,
    pub link: i64,
    pub why: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "chain `{}`, link {}: {}", self.chain, self.link, self.why)
    }
}

/// How many links are read at once.
const PAGE: i64 = 5_000;

/// One link with its row's canonical text, if the row is still there.
#[derive(sqlx::FromRow)]
struct Link {
    link: i64,
    row_id: i64,
    hash: Vec<u8>,
    canonical: Option<String>,
}

/// The canonical text of the row each link vouches for, written from its columns as
/// `event_canonical` and `audit_canonical` write it.
const EVENTS: &str = r"
SELECT l.link, l.row_id, l.hash,
       CASE WHEN e.id IS NOT NULL THEN
           jsonb_build_array(e.id, e.type, e.subject, e.account_id, e.sequence,
                             (extract(epoch FROM e.time) * 1000000)::bigint, e.data)::text END AS canonical
  FROM chain_links l LEFT JOIN events e ON e.id = l.row_id
 WHERE l.chain = $1 AND l.link > $2 ORDER BY l.link LIMIT $3";

const AUDIT: &str = r"
SELECT l.link, l.row_id, l.hash,
       CASE WHEN a.id IS NOT NULL THEN
           jsonb_build_array(a.id, (extract(epoch FROM a.at) * 1000000)::bigint, a.token_name, a.method,
                             a.route, a.target, a.status, a.detail)::text END AS canonical
  FROM chain_links l LEFT JOIN admin_audit a ON a.id = l.row_id
 WHERE l.chain = $1 AND l.link > $2 ORDER BY l.link LIMIT $3";

/// Verifies every chain, reporting each with `progress` as it is done; the chains that
/// checked out, or the first break.
pub async fn verify(
    pool: &PgPool,
    mut progress: impl FnMut(&Verified),
) -> Result<Result<Vec<Verified>, Break>, sqlx::Error> {
    // One snapshot for the whole walk: links added while it runs (the relays publish,
    // every admin call is audited) are neither seen nor missed.
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let heads: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT chain, link, hash FROM chain_heads ORDER BY chain <> 'audit', length(chain), chain",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut verified = Vec::new();
    for (chain, link, hash) in heads {
        match walk(&mut tx, Head { chain, link, hash }).await? {
            Ok(report) => {
                progress(&report);
                verified.push(report);
            }
            Err(broken) => return Ok(Err(broken)),
        }
    }
    Ok(match unchained(&mut tx).await? {
        Some(broken) => Err(broken),
        None => Ok(verified),
    })
}

/// A chain as its head row says it ends.
struct Head {
    chain: String,
    link: i64,
    hash: Vec<u8>,
}

type Snapshot = sqlx::Transaction<'static, sqlx::Postgres>;

/// Recomputes one chain's links from their rows, from its start (link 1, or its
/// checkpoint) to its head.
async fn walk(tx: &mut Snapshot, head: Head) -> Result<Result<Verified, Break>, sqlx::Error> {
    let Head { chain, link: head_link, hash: head_hash } = head;
    let (rows, what) = if chain == "audit" { (AUDIT, "audit row") } else { (EVENTS, "event") };
    let broken = |link: i64, why: String| Ok(Err(Break { chain: chain.clone(), link, why }));
    let (mut last, mut prev) = match start(tx, &chain).await? {
        Ok(start) => start,
        Err(gone) => {
            return broken(
                1,
                format!("links 1 to {gone} are gone and no checkpoint says where the chain resumes"),
            );
        }
    };
    loop {
        let page: Vec<Link> =
            sqlx::query_as(rows).bind(&chain).bind(last).bind(PAGE).fetch_all(&mut **tx).await?;
        if page.is_empty() {
            break;
        }
        for link in page {
            if link.link != last + 1 {
                return broken(last + 1, "the link is missing".into());
            }
            let Some(canonical) = link.canonical else {
                return broken(link.link, format!("the {what} it vouches for ({}) is gone", link.row_id));
            };
            let expected = Sha256::new().chain_update(&prev).chain_update(canonical.as_bytes()).finalize();
            if expected.as_slice() != link.hash.as_slice() {
                let why = format!(
                    "{what} {} does not match its hash: it changed after it was written, or a link before it did",
                    link.row_id
                );
                return broken(link.link, why);
            }
            (last, prev) = (link.link, link.hash);
        }
    }
    if (last, &prev) != (head_link, &head_hash) {
        let why = format!(
            "the chain's head is at link {head_link} but its links end at {last}: links were cut from the end"
        );
        return broken(last + 1, why);
    }
    let head = prev.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Ok(Verified { chain, links: last, head }))
}

/// Where a chain's walk starts: before link 1, or at the checkpoint its archived part
/// left; the last link gone when neither is there.
async fn start(tx: &mut Snapshot, chain: &str) -> Result<Result<(i64, Vec<u8>), i64>, sqlx::Error> {
    let first: Option<i64> = sqlx::query_scalar("SELECT min(link) FROM chain_links WHERE chain = $1")
        .bind(chain)
        .fetch_one(&mut **tx)
        .await?;
    let Some(first) = first.filter(|&f| f > 1) else { return Ok(Ok((0, vec![0u8; 32]))) };
    let checkpoint: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT hash FROM chain_checkpoints WHERE chain = $1 AND link = $2")
            .bind(chain)
            .bind(first - 1)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(checkpoint.map(|hash| (first - 1, hash)).ok_or(first - 1))
}

/// The first row in no chain (written around it), if any.
async fn unchained(tx: &mut Snapshot) -> Result<Option<Break>, sqlx::Error> {
    let event: Option<i64> = sqlx::query_scalar(
        "SELECT min(e.id) FROM events e
          WHERE NOT EXISTS (SELECT 1 FROM event_outbox o WHERE o.event_id = e.id)
            AND NOT EXISTS (SELECT 1 FROM chain_links l WHERE l.chain = 'events:' || (e.account_id % 16) AND l.row_id = e.id)",
    )
    .fetch_one(&mut **tx)
    .await?;
    if let Some(id) = event {
        let why = format!("event {id} is published but in no chain");
        return Ok(Some(Break { chain: "events".into(), link: 0, why }));
    }
    let audit: Option<i64> = sqlx::query_scalar(
        "SELECT min(a.id) FROM admin_audit a WHERE NOT EXISTS (SELECT 1 FROM chain_links l WHERE l.chain = 'audit' AND l.row_id = a.id)",
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(audit.map(|id| Break {
        chain: "audit".into(),
        link: 0,
        why: format!("audit row {id} is in no chain"),
    }))
}
