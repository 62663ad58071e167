//! Throwaway databases for transcripts: one template seeded with the demo subscribers,
//! cloned fresh for every transcript so that no run sees another's money movements, and
//! the sandbox billers and airtime provider of `--demo` on a loopback port.

use std::str::FromStr;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::app::MIGRATOR;
use crate::money::{PinHasher, seed_demo, seed_demo_agent, seed_demo_billers, seed_demo_merchants};
use crate::telemetry::redact_url;

/// The pepper `serve --demo` uses; transcripts log in with the demo PIN.
fn demo_pepper() -> String {
    crate::config::Settings::default()
        .validate(None, true)
        .map(|c| c.money.pin_pepper.expose_secret().to_owned())
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error(
        "cannot prepare a scratch database on {url}: {reason}\n\
         Transcripts need PostgreSQL (DATABASE_URL) and the right to CREATE DATABASE there."
    )]
    Postgres { url: String, reason: String },
    #[error("cannot serve the sandbox billers on a loopback port: {0}")]
    Sandbox(String),
}

/// A template database on one server, and the clones made from it.
pub struct Scratch {
    server: PgConnectOptions,
    url: String,
    template: String,
    prefix: String,
    made: std::sync::atomic::AtomicU32,
    /// The sandbox partners the template's billers point at, served while this lives.
    _sandbox: tokio_util::task::AbortOnDropHandle<()>,
}

impl Scratch {
    /// Creates, migrates and seeds the template on the server of `database_url`.
    pub async fn create(database_url: &str) -> Result<Scratch, ScratchError> {
        let url = redact_url(database_url);
        let fail =
            |e: &dyn std::fmt::Display| ScratchError::Postgres { url: url.clone(), reason: e.to_string() };
        let server = PgConnectOptions::from_str(database_url).map_err(|e| fail(&e))?.database("postgres");
        let prefix = format!("ussd_journeys_{}_{:08x}", std::process::id(), rand::random::<u32>());
        let (sandbox, sandbox_server) =
            crate::http::sandbox_server().await.map_err(|e| ScratchError::Sandbox(e.to_string()))?;
        let scratch = Scratch {
            server,
            url: url.clone(),
            template: format!("{prefix}_template"),
            prefix,
            made: std::sync::atomic::AtomicU32::new(0),
            _sandbox: sandbox_server,
        };
        scratch.admin(&format!("CREATE DATABASE {}", scratch.template)).await?;
        let pool = match scratch.pool(&scratch.template).await {
            Ok(pool) => pool,
            Err(e) => {
                let _ = scratch.remove().await;
                return Err(e);
            }
        };
        let seeded = async {
            MIGRATOR.run(&pool).await.map_err(|e| fail(&e))?;
            let pins = PinHasher::new(demo_pepper().as_bytes());
            seed_demo(&pool, &pins, "KES", 10).await.map_err(|e| fail(&e))?;
            seed_demo_agent(&pool).await.map_err(|e| fail(&e))?;
            seed_demo_merchants(&pool, "KES").await.map_err(|e| fail(&e))?;
            seed_demo_billers(&pool, &sandbox, "KES").await.map_err(|e| fail(&e))?;
            Ok::<(), ScratchError>(())
        }
        .await;
        // A template must have no sessions when it is cloned.
        pool.close().await;
        if let Err(e) = seeded {
            let _ = scratch.remove().await;
            return Err(e);
        }
        Ok(scratch)
    }

    /// A new database cloned from the template, and its name.
    pub async fn fresh(&self) -> Result<(PgPool, String), ScratchError> {
        let n = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{}_{n}", self.prefix);
        self.admin(&format!("CREATE DATABASE {name} TEMPLATE {}", self.template)).await?;
        Ok((self.pool(&name).await?, name))
    }

    pub async fn discard(&self, name: &str) -> Result<(), ScratchError> {
        self.admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await
    }

    /// Drops the template and any clone left behind, trying every one before it
    /// reports the first failure.
    pub async fn remove(&self) -> Result<(), ScratchError> {
        let made = self.made.load(std::sync::atomic::Ordering::Relaxed);
        let mut first_failure = None;
        let names = (0..made).map(|n| format!("{}_{n}", self.prefix)).chain([self.template.clone()]);
        for name in names {
            if let Err(e) = self.discard(&name).await {
                first_failure.get_or_insert(e);
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    async fn pool(&self, name: &str) -> Result<PgPool, ScratchError> {
        PgPoolOptions::new()
            .max_connections(4)
            .connect_with(self.server.clone().database(name))
            .await
            .map_err(|e| self.fail(&e))
    }

    async fn admin(&self, sql: &str) -> Result<(), ScratchError> {
        let mut conn: PgConnection = self.server.connect().await.map_err(|e| self.fail(&e))?;
        let result = sqlx::raw_sql(sql).execute(&mut conn).await.map(drop).map_err(|e| self.fail(&e));
        let _ = conn.close().await;
        result
    }

    fn fail(&self, e: &dyn std::fmt::Display) -> ScratchError {
        ScratchError::Postgres { url: self.url.clone(), reason: e.to_string() }
    }
}
