//! The tamper-evident history: the event log's and the audit trail's hash chains check
//! out after ordinary work, and `audit verify` names the first link that does not
//! match when a row is changed, removed, or links are cut from the end; a chain whose
//! older part was archived resumes from its checkpoint.

use sqlx::PgPool;
use ussd_gateway::admin::{self, chain};
use ussd_gateway::domain::Amount;
use ussd_gateway::events::Relay;
use ussd_gateway::money::{PinHasher, seed_demo, transfer_p2p};

use crate::common::database_url;
use crate::common::sms::msisdn;

async fn history(pool: &PgPool) {
    seed_demo(pool, &PinHasher::new(b"pepper"), "KES", 10).await.unwrap();
    for i in 0..12u32 {
        let key = format!("ch:{i}");
        let amount = Amount::from_minor(if i % 4 == 0 { 90_000_000 } else { 500 }).unwrap();
        transfer_p2p(pool, &key, &msisdn(i % 10 + 1), &msisdn((i + 3) % 10 + 1), amount).await.unwrap();
    }
    for status in [200, 403, 404] {
        let entry = admin::Entry {
            token: Some("ops".into()),
            method: "GET".into(),
            route: "/admin/customers/{msisdn}".into(),
            target: Some("+254700000001".into()),
            status,
            detail: None,
        };
        admin::audit(pool, &entry).await.unwrap();
    }
    let relay = Relay::new(pool.clone(), None, 5);
    while relay.pass().await.unwrap() > 0 {}
}

async fn verify(pool: &PgPool) -> Result<Vec<chain::Verified>, chain::Break> {
    chain::verify(pool, |_| {}).await.unwrap()
}

/// Runs `sql` as the owner would, with the append-only triggers of `tables` off.
async fn tamper(pool: &PgPool, tables: &[&str], sql: &str) {
    let mut tx = pool.begin().await.unwrap();
    for t in tables {
        sqlx::query(&format!("ALTER TABLE {t} DISABLE TRIGGER USER")).execute(&mut *tx).await.unwrap();
    }
    sqlx::query(sql).execute(&mut *tx).await.unwrap();
    for t in tables {
        sqlx::query(&format!("ALTER TABLE {t} ENABLE TRIGGER USER")).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

fn cli(pool: &PgPool) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
        .args(["audit", "verify"])
        .env("DATABASE_URL", database_url(pool))
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_chains_vouch_for_every_row(pool: PgPool) {
    history(&pool).await;
    let verified = verify(&pool).await.expect("the chains match their rows");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.unwrap();
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_audit").fetch_one(&pool).await.unwrap();
    let linked: i64 = verified.iter().filter(|v| v.chain.starts_with("events:")).map(|v| v.links).sum();
    assert_eq!(linked, events);
    assert_eq!(verified.iter().find(|v| v.chain == "audit").unwrap().links, audited);
    let (ok, said) = cli(&pool);
    assert!(
        ok && said.contains("every chain matches its rows") && said.contains("audit: 3 link(s)"),
        "{said}"
    );
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_changed_event_is_named(pool: PgPool) {
    history(&pool).await;
    let (id, part): (i64, i64) = sqlx::query_as(
        "SELECT id, account_id % 16 FROM events WHERE type = 'transfer.posted' ORDER BY id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let link: i64 =
        sqlx::query_scalar("SELECT link FROM chain_links WHERE row_id = $1 AND chain LIKE 'events:%'")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    tamper(
        &pool,
        &["events"],
        &format!("UPDATE events SET data = jsonb_set(data, '{{amount}}', '1') WHERE id = {id}"),
    )
    .await;
    let broken = verify(&pool).await.unwrap_err();
    assert_eq!((broken.chain.as_str(), broken.link), (format!("events:{part}").as_str(), link), "{broken}");
    assert!(broken.why.contains(&format!("event {id} does not match its hash")), "{broken}");
    let (ok, said) = cli(&pool);
    assert!(!ok && said.contains("BROKEN") && said.contains(&format!("event {id}")), "{said}");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_removed_audit_row_and_a_cut_chain_are_named(pool: PgPool) {
    history(&pool).await;
    tamper(&pool, &["admin_audit"], "DELETE FROM admin_audit WHERE status = 403").await;
    let broken = verify(&pool).await.unwrap_err();
    assert_eq!((broken.chain.as_str(), broken.link), ("audit", 2), "{broken}");
    assert!(broken.why.contains("is gone"), "{broken}");

    // Cutting the row's link as well leaves the chain one link short of its head.
    tamper(&pool, &["chain_links"], "DELETE FROM chain_links WHERE chain = 'audit' AND link >= 2").await;
    let broken = verify(&pool).await.unwrap_err();
    assert!(broken.chain == "audit" && broken.why.contains("cut from the end"), "{broken}");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn an_archived_part_resumes_from_its_checkpoint(pool: PgPool) {
    history(&pool).await;
    // Archive the first two audit rows: keep where the chain resumes, then remove them.
    let archive = "DELETE FROM chain_links WHERE chain = 'audit' AND link <= 2;
                   DELETE FROM admin_audit WHERE id IN (SELECT id FROM admin_audit ORDER BY id LIMIT 2)";
    sqlx::query(
        "INSERT INTO chain_checkpoints (chain, link, hash) SELECT chain, link, hash FROM chain_links WHERE chain = 'audit' AND link = 2",
    )
    .execute(&pool)
    .await
    .unwrap();
    for sql in archive.split(';') {
        tamper(&pool, &["chain_links", "admin_audit"], sql).await;
    }
    assert!(verify(&pool).await.is_ok(), "the chain resumes from its checkpoint");
    sqlx::query("DELETE FROM chain_checkpoints").execute(&pool).await.unwrap();
    let broken = verify(&pool).await.unwrap_err();
    assert!(broken.why.contains("no checkpoint"), "{broken}");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn verify_holds_while_the_chains_grow(pool: PgPool) {
    history(&pool).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            let relay = Relay::new(pool.clone(), None, 3);
            let mut i = 0u32;
            while !stop.is_cancelled() {
                i += 1;
                let key = format!("grow:{i}");
                transfer_p2p(
                    &pool,
                    &key,
                    &msisdn(i % 10 + 1),
                    &msisdn((i + 1) % 10 + 1),
                    Amount::from_minor(100).unwrap(),
                )
                .await
                .unwrap();
                let entry = admin::Entry {
                    method: "GET".into(),
                    route: "/admin/x".into(),
                    status: 200,
                    ..Default::default()
                };
                admin::audit(&pool, &entry).await.unwrap();
                relay.pass().await.unwrap();
            }
            i
        })
    };
    for _ in 0..5 {
        assert!(verify(&pool).await.is_ok(), "a chain growing while it is walked is not broken");
    }
    stop.cancel();
    assert!(writer.await.unwrap() > 0);
    assert!(verify(&pool).await.is_ok());
}
