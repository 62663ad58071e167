//! The admin API's credentials — scoped bearer tokens kept as hashes — and its audit
//! trail; the HTTP handlers are in `src/http/admin.rs`.

pub use crate::address;
pub mod agents;
pub mod billers;
pub mod chain;
pub mod customers;
pub mod flags;
pub mod merchants;
pub mod proposals;
pub mod totp;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// What a token may do. Each endpoint needs one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Reload the menus.
    Menus,
    /// Look up customers and their transfers.
    CustomersRead,
    /// Change a customer's state (unlock a PIN).
    CustomersWrite,
    /// Reverse a transfer.
    TransfersReverse,
    /// Onboard and look up agents.
    Agents,
    /// Top up an agent's float.
    Float,
    /// Register billers and read the catalogue.
    Billers,
    /// Read the SMS channels' dead letters.
    Sms,
    /// Subscribe partners' endpoints to events, rotate their secrets, read and replay
    /// their deliveries.
    Webhooks,
    /// Read what the anomaly rules found.
    Anomalies,
    /// Onboard, change and look up merchants.
    Merchants,
    /// Walk the menus as any subscriber on the web phone (`serve --simulator`).
    Simulator,
    /// Create, change and list feature flags.
    Flags,
    /// Approve or reject what other tokens proposed (with a one-time password), and
    /// register this token's.
    Approvals,
    /// Read a proposal and what became of it.
    Proposals,
    /// Read identity checks and decide those waiting for review.
    Identity,
}

impl Scope {
    pub const ALL: [Scope; 16] = [
        Scope::Menus,
        Scope::CustomersRead,
        Scope::CustomersWrite,
        Scope::TransfersReverse,
        Scope::Agents,
        Scope::Float,
        Scope::Billers,
        Scope::Sms,
        Scope::Webhooks,
        Scope::Anomalies,
        Scope::Merchants,
        Scope::Simulator,
        Scope::Flags,
        Scope::Approvals,
        Scope::Proposals,
        Scope::Identity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Menus => "menus",
            Scope::CustomersRead => "customers:read",
            Scope::CustomersWrite => "customers:write",
            Scope::TransfersReverse => "transfers:reverse",
            Scope::Agents => "agents",
            Scope::Float => "float",
            Scope::Billers => "billers",
            Scope::Sms => "sms",
            Scope::Webhooks => "webhooks",
            Scope::Anomalies => "anomalies",
            Scope::Merchants => "merchants",
            Scope::Simulator => "simulator",
            Scope::Flags => "flags",
            Scope::Approvals => "approvals",
            Scope::Proposals => "proposals",
            Scope::Identity => "identity",
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Who called, once their token checked out.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The token's name (`ADMIN_TOKEN` for the configured root token).
    pub name: String,
    scopes: Vec<Scope>,
}

impl Principal {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// The name the configured `ADMIN_TOKEN` goes by in the trail.
pub const ROOT: &str = "ADMIN_TOKEN";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "`{0}` is not a token name: use 1 to 63 lower-case letters, digits, `.`, `_` or `-`, starting with a letter or digit"
    )]
    BadName(String),
    #[error("`{0}` is not a scope; scopes are {all}", all = Scope::ALL.map(Scope::name).join(", "))]
    BadScope(String),
    #[error("give a token at least one scope")]
    NoScope,
    #[error("a token named `{0}` exists already")]
    Taken(String),
    #[error("there is no live token named `{0}` (`ussd-gateway admin token list` shows them)")]
    Unknown(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a token with `scopes`; returns it. Only its hash is stored, so this is the
/// one time it can be read.
pub async fn create(pool: &PgPool, name: &str, scopes: &[String]) -> Result<String, TokenError> {
    let valid_name = (1..=63).contains(&name.len())
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(&b));
    if !valid_name {
        return Err(TokenError::BadName(name.to_owned()));
    }
    let mut parsed: Vec<&str> = Vec::new();
    for s in scopes.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        let scope = Scope::parse(s).ok_or_else(|| TokenError::BadScope(s.to_owned()))?;
        if !parsed.contains(&scope.name()) {
            parsed.push(scope.name());
        }
    }
    if parsed.is_empty() {
        return Err(TokenError::NoScope);
    }
    let token = format!("uga_{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()));
    let created = sqlx::query(
        "INSERT INTO admin_tokens (name, token_hash, scopes) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(digest(&token))
    .bind(&parsed)
    .execute(pool)
    .await?;
    if created.rows_affected() == 0 {
        return Err(TokenError::Taken(name.to_owned()));
    }
    Ok(token)
}

/// Revokes the token named `name`; `false` when there is no such live token.
pub async fn revoke(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE admin_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL")
            .bind(name)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// One line per token: name, scopes, created, revoked.
pub async fn list(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String, Vec<String>, String, Option<String>)> = sqlx::query_as(
        "SELECT name, scopes, to_char(created_at, 'YYYY-MM-DD HH24:MI'), to_char(revoked_at, 'YYYY-MM-DD HH24:MI')
           FROM admin_tokens ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, scopes, created, revoked)| {
            let state = revoked.map_or_else(|| "live".to_owned(), |at| format!("revoked {at}"));
            format!("{name}\t{}\tcreated {created}\t{state}", scopes.join(","))
        })
        .collect())
}

/// The caller behind a bearer token: the configured root token (every scope, compared
/// in constant time), or a live token from the database.
pub async fn authenticate(
    pool: &PgPool,
    root: Option<&str>,
    bearer: &str,
) -> Result<Option<Principal>, sqlx::Error> {
    if let Some(root) = root
        && crate::bytes::same_secret(bearer.as_bytes(), root.as_bytes())
    {
        return Ok(Some(Principal { name: ROOT.to_owned(), scopes: Scope::ALL.to_vec() }));
    }
    let row: Option<(String, Vec<String>)> =
        sqlx::query_as("SELECT name, scopes FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(digest(bearer))
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(name, scopes)| Principal {
        name,
        scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
    }))
}

/// The caller a token's name stands for, while the token is live: the root token by its
/// name when one is configured. An approval carries a proposal out as this caller.
pub async fn principal_named(
    pool: &PgPool,
    root: bool,
    name: &str,
) -> Result<Option<Principal>, sqlx::Error> {
    if name == ROOT {
        return Ok(root.then(|| Principal { name: ROOT.to_owned(), scopes: Scope::ALL.to_vec() }));
    }
    let scopes: Option<Vec<String>> =
        sqlx::query_scalar("SELECT scopes FROM admin_tokens WHERE name = $1 AND revoked_at IS NULL")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(scopes.map(|scopes| Principal {
        name: name.to_owned(),
        scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
    }))
}

/// One line of the trail.
#[derive(Clone, Debug, Default)]
pub struct Entry {
    pub token: Option<String>,
    pub method: String,
    pub route: String,
    pub target: Option<String>,
    pub status: u16,
    pub detail: Option<Value>,
}

pub async fn audit(pool: &PgPool, e: &Entry) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO admin_audit (token_name, method, route, target, status, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&e.token)
    .bind(&e.method)
    .bind(&e.route)
    .bind(&e.target)
    .bind(i16::try_from(e.status).unwrap_or(i16::MAX))
    .bind(&e.detail)
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_by_name() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.name()), Some(s));
        }
        assert_eq!(Scope::parse("customers"), None);
    }
}
