//! Envelope encryption of personal data: values open only where they were sealed, the
//! values sealed before envelopes still open, and `keys rotate` twice under load loses
//! nothing, so that afterwards the newest key-encryption key alone opens everything.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::database_url;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use sqlx::PgPool;
use ussd_gateway::money::crypto::{self, DataVault, Place, VaultError};
use ussd_gateway::money::kek::ConfiguredKeys;
use ussd_gateway::sms::inbound::{text_place, text_row};

const K1: [u8; 32] = [0x11; 32];
const K2: [u8; 32] = [0x22; 32];
const K3: [u8; 32] = [0x33; 32];

fn vault(pool: &PgPool, ring: &[(&str, [u8; 32])]) -> DataVault {
    let ring: Vec<(String, [u8; 32])> = ring.iter().map(|(id, key)| ((*id).to_owned(), *key)).collect();
    let index = crypto::derive(&K1, b"blind-index");
    DataVault::new(pool.clone(), Arc::new(ConfiguredKeys::new(&ring)), &index, &K1)
}

fn national_id(row: &str) -> Place<'_> {
    Place { table: "customers", column: "national_id_enc", row }
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_sealed_value_opens_only_where_it_was_sealed(pool: PgPool) {
    let v = vault(&pool, &[("k1", K1)]);
    let a = v.seal(national_id("+254700000001"), "12345678").await.unwrap();
    let b = v.seal(national_id("+254700000001"), "12345678").await.unwrap();
    assert_ne!(a, b, "a fresh nonce each time");
    assert!(!a.windows(8).any(|w| w == b"12345678"));
    assert_eq!(DataVault::data_key_of(&a), Some(1), "the first data key, made on first use");
    assert_eq!(v.open(national_id("+254700000001"), &a).await.unwrap(), "12345678");

    // Copied to another row, or another column, it does not open.
    assert!(matches!(v.open(national_id("+254700000002"), &a).await, Err(VaultError::Unreadable)));
    let other_column = Place { column: "first_name", ..national_id("+254700000001") };
    assert!(matches!(v.open(other_column, &a).await, Err(VaultError::Unreadable)));
    let mut tampered = a.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(matches!(v.open(national_id("+254700000001"), &tampered).await, Err(VaultError::Unreadable)));

    // The data key is kept wrapped: its row never holds it in clear.
    let (kek, wrapped): (String, Vec<u8>) =
        sqlx::query_as("SELECT kek_id, wrapped FROM data_keys").fetch_one(&pool).await.unwrap();
    assert_eq!(kek, "k1");
    assert_eq!(wrapped.len(), 12 + 32 + 16);
    // Another configuration, with other key material under the same id, opens nothing.
    let stranger = vault(&pool, &[("k1", K2)]);
    assert!(stranger.open(national_id("+254700000001"), &a).await.is_err());

    // The blind index is deterministic, keyed, and unaffected by the data keys.
    assert_eq!(v.blind_index("123"), stranger.blind_index("123"));
    assert_ne!(v.blind_index("123"), v.blind_index("124"));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn values_sealed_before_envelopes_still_open(pool: PgPool) {
    // As the gateway sealed under DATA_KEY before: nonce || AES-256-GCM under a sub-key.
    let legacy = Aes256Gcm::new_from_slice(&crypto::derive(&K1, b"encrypt")).unwrap();
    let nonce = [7u8; 12];
    let old = [nonce.as_slice(), &legacy.encrypt(Nonce::from_slice(&nonce), b"A1234567".as_slice()).unwrap()]
        .concat();
    let v = vault(&pool, &[("k1", K1), ("k2", K2)]);
    assert_eq!(v.open(national_id("+254700000003"), &old).await.unwrap(), "A1234567");
    assert_eq!(DataVault::data_key_of(&old), None);
}

/// One replica's worth of writers: seals a text per message into `sms_inbound`, and
/// looks for new data keys every few writes as the replica's timer would.
async fn write(pool: PgPool, vault: DataVault, writer: usize, count: usize, written: Arc<AtomicUsize>) {
    for i in 0..count {
        let message_id = format!("w{writer}-{i}");
        let row = text_row("demo", &message_id);
        let sealed = vault.seal(text_place(&row), &format!("BAL {writer} {i}")).await.unwrap();
        sqlx::query(
            "INSERT INTO sms_inbound (channel, provider, message_id, msisdn, text_sealed)
             VALUES ('sms', 'demo', $1, '+254700000001', $2)",
        )
        .bind(&message_id)
        .bind(sealed)
        .execute(&pool)
        .await
        .unwrap();
        written.fetch_add(1, Ordering::SeqCst);
        if i % 10 == 0 {
            vault.refresh().await.unwrap();
        }
    }
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn rotating_twice_under_load_loses_nothing(pool: PgPool) {
    // The gateway first ran with k1 alone: its data key is wrapped with k1.
    vault(&pool, &[("k1", K1)]).refresh().await.unwrap();
    // Then every replica was given k2 and k3 beside it, and the operator rotates twice
    // while they write.
    let ring = [("k1", K1), ("k2", K2), ("k3", K3)];
    let (writers, each) = (8, 120);
    let written = Arc::new(AtomicUsize::new(0));
    let mut load = tokio::task::JoinSet::new();
    for writer in 0..writers {
        load.spawn(write(pool.clone(), vault(&pool, &ring), writer, each, Arc::clone(&written)));
    }
    let keks = ConfiguredKeys::new(&ring.map(|(id, key)| (id.to_owned(), key)));
    let wait_for = |n: usize| {
        let written = Arc::clone(&written);
        async move {
            while written.load(Ordering::SeqCst) < n {
                tokio::task::yield_now().await;
            }
        }
    };
    wait_for(writers * each / 4).await;
    let first = crypto::rotate(&pool, &keks, Some("k2")).await.unwrap();
    assert_eq!((first.kek.as_str(), first.rewrapped, first.new_data_key), ("k2", 1, 2));
    wait_for(writers * each / 2).await;
    let second = crypto::rotate(&pool, &keks, None).await.unwrap();
    assert_eq!((second.kek.as_str(), second.rewrapped, second.new_data_key), ("k3", 2, 3));
    while let Some(done) = load.join_next().await {
        done.unwrap();
    }

    // Every data key is wrapped with k3 now, and values were sealed under each of them.
    let keks_now: Vec<String> =
        sqlx::query_scalar("SELECT kek_id FROM data_keys ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(keks_now, ["k3", "k3", "k3"]);
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT message_id, text_sealed FROM sms_inbound ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), writers * each, "every write landed");
    for key in 1..=3 {
        assert!(
            rows.iter().any(|(_, sealed)| DataVault::data_key_of(sealed) == Some(key)),
            "some values sealed under data key {key}"
        );
    }

    // k1 and k2 leave the configuration: k3 alone opens every value, in its place.
    let after = vault(&pool, &[("k3", K3)]);
    for (message_id, sealed) in &rows {
        let (writer, i) = message_id[1..].split_once('-').unwrap();
        let row = text_row("demo", message_id);
        assert_eq!(after.open(text_place(&row), sealed).await.unwrap(), format!("BAL {writer} {i}"));
    }
    // A replica still without k3 goes on with the data keys it holds, and says so.
    let behind = vault(&pool, &[("k1", K1)]);
    assert!(matches!(behind.seal(national_id("+254700000001"), "x").await, Err(VaultError::NoUsableKey)));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn the_command_line_rotates_and_lists(pool: PgPool) {
    let url = database_url(&pool);
    vault(&pool, &[("k1", K1)]).refresh().await.unwrap();
    let hex = |key: [u8; 32]| key.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let cli = |args: &[&str], ring: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
            .args(args)
            .env("DATABASE_URL", &url)
            .env("DATA_KEYS", ring)
            .env_remove("DATA_KEY")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ring = format!("k1:{},k2:{}", hex(K1), hex(K2));
    let (ok, out, err) = cli(&["keys", "rotate"], &ring);
    assert!(ok, "{err}");
    assert!(out.contains("re-wrapped 1 data key(s) under `k2`"), "{out}");
    let (ok, out, _) = cli(&["keys", "list"], &ring);
    assert!(ok);
    assert!(
        out.contains("data key 1: wrapped with `k2`") && out.contains("data key 2: wrapped with `k2`"),
        "{out}"
    );
    // A key-encryption key that is not configured is refused, and nothing changes.
    let (ok, _, err) = cli(&["keys", "rotate", "--to", "k9"], &ring);
    assert!(!ok);
    assert!(err.contains("`k9` is not configured"), "{err}");
    let (ok, _, err) = cli(&["keys", "list"], "k1:nothex");
    assert!(!ok);
    assert!(err.contains("DATA_KEYS entry"), "{err}");
}
