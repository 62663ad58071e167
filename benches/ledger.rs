//! Transfers per second of the ledger function alone (`transfer_p2p`, one round trip),
//! at several concurrency levels, with the fee-revenue account in 1 shard and in 8.
//!
//! `cargo bench --bench ledger` — creates a throw-away database on the server of
//! BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), seeds
//! 1,000 verified wallets, runs each combination for BENCH_SECONDS (default 5), prints a
//! table and drops the database.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use ussd_gateway::domain::{Amount, Msisdn, Region};
use ussd_gateway::money::transfer_p2p;
use ussd_gateway::outcome::Outcome;

const ACCOUNTS: i64 = 1_000;
const CLIENTS: [usize; 4] = [1, 4, 16, 64];
const SHARDS: [u32; 2] = [1, 8];

fn msisdn(n: i64) -> String {
    format!("+2547{:08}", 20_000_000 + n)
}

struct Run {
    transfers: u64,
    rejected: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn run(pool: &PgPool, clients: usize, seconds: u64, tag: &str) -> Run {
    let region = Region::parse("KE").expect("region");
    let numbers: Vec<Msisdn> =
        (0..ACCOUNTS).map(|n| Msisdn::parse(&msisdn(n), region).expect("msisdn")).collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (pool, numbers, tag) = (pool.clone(), numbers.clone(), tag.to_owned());
            tokio::spawn(async move {
                let (mut latencies, mut rejected, mut i) = (Vec::new(), 0u64, 0u64);
                while Instant::now() < deadline {
                    let from = rand::random_range(0..numbers.len());
                    let to = (from + rand::random_range(1..numbers.len())) % numbers.len();
                    // KES 101–1,000: every transfer pays a fee, so the fee account is hot.
                    let amount = Amount::from_minor(rand::random_range(101_00..=1_000_00)).expect("amount");
                    let key = format!("bench:{tag}:{c}:{i}");
                    let t0 = Instant::now();
                    let t = transfer_p2p(&pool, &key, &numbers[from], &numbers[to], amount)
                        .await
                        .expect("transfer");
                    latencies.push(t0.elapsed());
                    if t.outcome != Outcome::Ok {
                        rejected += 1;
                    }
                    i += 1;
                }
                (latencies, rejected)
            })
        })
        .collect();
    let mut all = Run { transfers: 0, rejected: 0, elapsed: Duration::ZERO, latencies: Vec::new() };
    for t in tasks {
        let (latencies, rejected) = t.await.expect("client");
        all.transfers += latencies.len() as u64;
        all.rejected += rejected;
        all.latencies.extend(latencies);
    }
    all.elapsed = started.elapsed();
    all.latencies.sort_unstable();
    all
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1_000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let admin_url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("ussd_bench_{}", std::process::id());
    let mut admin = PgConnection::connect(&admin_url).await.map_err(|e| {
        format!("cannot reach PostgreSQL at {admin_url}: {e} (start it, or set BENCH_DATABASE_URL)")
    })?;
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut admin).await?;
    let url = match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => return Err("BENCH_DATABASE_URL must end with /<database>".into()),
    };
    let result = bench(&url, seconds).await;
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)")).execute(&mut admin).await?;
    result
}

async fn bench(url: &str, seconds: u64) -> Result<(), Box<dyn std::error::Error>> {
    let pool = PgPoolOptions::new()
        .max_connections(*CLIENTS.iter().max().unwrap_or(&1) as u32 + 2)
        .connect(url)
        .await?;
    ussd_gateway::app::MIGRATOR.run(&pool).await?;
    eprintln!("seeding {ACCOUNTS} verified wallets…");
    sqlx::query(
        "INSERT INTO customers (msisdn, first_name, last_name, pin_salt, pin_hash, kyc_tier)
         SELECT '+2547' || lpad((20000000 + n)::text, 8, '0'), 'Bench', 'Customer',
                '\\x00000000000000000000000000000000', sha256('x'), 2
           FROM generate_series(0, $1 - 1) AS n",
    )
    .bind(ACCOUNTS)
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO accounts (customer_id, kind, currency) SELECT id, 'wallet', 'KES' FROM customers",
    )
    .execute(&pool)
    .await?;
    sqlx::query("SELECT ledger_fund('seed:' || id, id, 40000000) FROM accounts WHERE kind = 'wallet'")
        .execute(&pool)
        .await?;
    let version: String = sqlx::query_scalar("SHOW server_version").fetch_one(&pool).await?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\nledger transfer_p2p: {ACCOUNTS} wallets, {seconds} s per run, PostgreSQL {version}, {cpus} CPUs (client and server share them)\n"
    );
    println!(
        "{:>10} {:>8} {:>13} {:>8} {:>8} {:>9}",
        "fee shards", "clients", "transfers/s", "p50 ms", "p99 ms", "rejected"
    );
    for shards in SHARDS {
        sqlx::query("UPDATE ledger_settings SET value = $1 WHERE key = 'fee_shards'")
            .bind(shards.to_string())
            .execute(&pool)
            .await?;
        for clients in CLIENTS {
            if std::io::stderr().is_terminal() {
                eprint!("  running {shards} shard(s), {clients} client(s)…\r");
            }
            let r = run(&pool, clients, seconds, &format!("{shards}:{clients}")).await;
            println!(
                "{:>10} {:>8} {:>13.0} {:>8.2} {:>8.2} {:>9}",
                shards,
                clients,
                r.transfers as f64 / r.elapsed.as_secs_f64(),
                percentile(&r.latencies, 0.50),
                percentile(&r.latencies, 0.99),
                r.rejected
            );
        }
    }
    let total: i64 = sqlx::query_scalar("SELECT sum(balance)::bigint FROM accounts").fetch_one(&pool).await?;
    println!("\nconservation check after the runs: sum of all balances = {total} (must be 0)");
    pool.close().await;
    Ok(())
}
