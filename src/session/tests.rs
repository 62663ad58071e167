//! Store contract tests, run against both backends (Redis at REDIS_URL or 127.0.0.1).

use std::time::Duration;

use super::*;
use crate::menu::Journey;

fn session(screen: &str) -> Session {
    Session {
        service: "wallet".into(),
        menu_version: "abc".into(),
        journey: Journey { screen: screen.into(), lang: "en".into(), ..Journey::default() },
        seen: TextMark::default(),
        reply: None,
        pending_since_ms: None,
        claim: None,
        last_seq: None,
        answered_ms: 0,
        code: None,
        hops: 1,
    }
}

async fn stores() -> Vec<SessionStore> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("test:{}:", rand::random::<u64>());
    let redis = RedisStore::connect(&url, &prefix, Duration::from_secs(2))
        .await
        .expect("these tests need Redis: start it with `redis-server --daemonize yes` or set REDIS_URL");
    vec![SessionStore::Memory(MemoryStore::new()), SessionStore::Redis(redis)]
}

const TTL: Duration = Duration::from_secs(60);

#[tokio::test]
async fn compare_and_set_creates_then_advances_versions() {
    for store in stores().await {
        let key = SessionKey::new("at", "+254700000001", "s1");
        assert!(store.load(&key).await.unwrap().is_none(), "{}", store.kind());
        assert_eq!(store.save(&key, 0, &session("a"), TTL).await.unwrap(), Some(1));
        // A second creator loses.
        assert_eq!(store.save(&key, 0, &session("b"), TTL).await.unwrap(), None);
        let loaded = store.load(&key).await.unwrap().unwrap();
        assert_eq!((loaded.version, loaded.session.journey.screen.as_str()), (1, "a"));
        assert_eq!(store.save(&key, 1, &session("c"), TTL).await.unwrap(), Some(2));
        // A writer holding a stale version loses.
        assert_eq!(store.save(&key, 1, &session("d"), TTL).await.unwrap(), None);
        assert_eq!(store.load(&key).await.unwrap().unwrap().session, session("c"));
    }
}

#[tokio::test]
async fn many_versions_are_read_at_once_in_the_order_asked() {
    for store in stores().await {
        let (a, b) =
            (SessionKey::new("at", "+254700000003", "a"), SessionKey::new("at", "+254700000003", "b"));
        let missing = SessionKey::new("at", "+254700000003", "never");
        store.save(&a, 0, &session("first"), TTL).await.unwrap();
        store.save(&b, 0, &session("second"), TTL).await.unwrap();
        store.save(&b, 1, &session("third"), TTL).await.unwrap();
        let versions = store.versions(&[&b, &missing, &a]).await.unwrap();
        assert_eq!(versions, [Some(2), None, Some(1)], "{}", store.kind());
    }
}

#[tokio::test]
async fn a_save_unless_pointed_stands_aside_for_another_session_only() {
    for store in stores().await {
        let key = SessionKey::new("at", "+254700000004", "new");
        let old = SessionKey::new("at", "+254700000004", "old");
        let pointer = ResumePointer::new("+254700000004", "wallet");
        // No pointer: an ordinary compare-and-set.
        let saved = store.save_unless_pointed(&key, 0, &session("main"), TTL, &pointer).await.unwrap();
        assert_eq!(saved, Unless::Saved(1), "{}", store.kind());
        let lost = store.save_unless_pointed(&key, 0, &session("main"), TTL, &pointer).await.unwrap();
        assert_eq!(lost, Unless::Lost, "{}", store.kind());
        // A pointer to this very session does not stop it.
        store.save_pointing(&key, 1, &session("amount"), TTL, &pointer, Some(TTL)).await.unwrap();
        let own = store.save_unless_pointed(&key, 2, &session("confirm"), TTL, &pointer).await.unwrap();
        assert_eq!(own, Unless::Saved(3), "{}", store.kind());
        // A pointer to another session: nothing is written, and that session comes back.
        store.save_pointing(&old, 0, &session("amount"), TTL, &pointer, Some(TTL)).await.unwrap();
        let fresh = SessionKey::new("at", "+254700000004", "fresh");
        let pointed = store.save_unless_pointed(&fresh, 0, &session("main"), TTL, &pointer).await.unwrap();
        assert_eq!(pointed, Unless::Pointed(old.clone()), "{}", store.kind());
        assert!(store.load(&fresh).await.unwrap().is_none(), "{}", store.kind());
    }
}

#[tokio::test]
async fn a_save_pointing_unless_pointed_points_only_when_it_writes() {
    for store in stores().await {
        let (phone, kind) = ("+254700000005", store.kind());
        let key = SessionKey::new("at", phone, "new");
        let pointer = ResumePointer::new(phone, "wallet");
        let write = |key: &SessionKey, expected, keep| {
            let (store, key, pointer) = (store.clone(), key.clone(), pointer.clone());
            async move {
                store
                    .save_pointing_unless_pointed(&key, expected, &session("amount"), TTL, &pointer, keep)
                    .await
            }
        };
        // No pointer: written, and the pointer now leads here.
        assert_eq!(write(&key, 0, Some(TTL)).await.unwrap(), Unless::Saved(1), "{kind}");
        assert_eq!(store.recall(&pointer).await.unwrap(), Some(key.clone()), "{kind}");
        // A stale version writes nothing, the pointer included.
        assert_eq!(write(&key, 0, None).await.unwrap(), Unless::Lost, "{kind}");
        assert_eq!(store.recall(&pointer).await.unwrap(), Some(key.clone()), "{kind}");
        // Its own pointer does not stop it, and a journey that cannot be resumed drops it.
        assert_eq!(write(&key, 1, None).await.unwrap(), Unless::Saved(2), "{kind}");
        assert_eq!(store.recall(&pointer).await.unwrap(), None, "{kind}");
        // A pointer to another session: nothing is written, and that session comes back.
        store.save_pointing(&key, 2, &session("amount"), TTL, &pointer, Some(TTL)).await.unwrap();
        let fresh = SessionKey::new("at", phone, "fresh");
        assert_eq!(write(&fresh, 0, Some(TTL)).await.unwrap(), Unless::Pointed(key.clone()), "{kind}");
        assert!(store.load(&fresh).await.unwrap().is_none(), "{kind}");
        assert_eq!(store.recall(&pointer).await.unwrap(), Some(key.clone()), "{kind}");
    }
}

#[tokio::test]
async fn concurrent_writers_of_one_version_have_exactly_one_winner() {
    for store in stores().await {
        let key = SessionKey::new("at", "+254700000002", "race");
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let (store, key) = (store.clone(), key.clone());
                tokio::spawn(async move { store.save(&key, 0, &session(&format!("w{i}")), TTL).await })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            if t.await.unwrap().unwrap().is_some() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "{}", store.kind());
        assert_eq!(store.load(&key).await.unwrap().unwrap().version, 1);
    }
}

#[tokio::test]
async fn records_expire_after_their_ttl() {
    for store in stores().await {
        let key = SessionKey::new("at", "+254700000003", "ttl");
        store.save(&key, 0, &session("a"), Duration::from_millis(1)).await.unwrap();
        // Poll a bounded number of times for the expiry instead of sleeping a fixed time.
        let mut gone = false;
        for _ in 0..200 {
            if store.load(&key).await.unwrap().is_none() {
                gone = true;
                break;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(gone, "{}: record outlived its TTL", store.kind());
        // An expired record counts as absent for compare-and-set.
        assert_eq!(store.save(&key, 0, &session("b"), TTL).await.unwrap(), Some(1));
    }
}

#[tokio::test]
async fn a_session_record_is_small() {
    let mut s = session("send_amount");
    s.journey.vars.insert(
        "customer".into(),
        serde_json::json!({"first_name": "Amina", "last_name": "Otieno", "language": "en"}),
    );
    s.journey.vars.insert("to".into(), "+254712345678".into());
    s.reply = Some(crate::menu::Reply::con("x".repeat(160)));
    let bytes = serde_json::to_vec(&s).unwrap();
    assert!(bytes.len() < 512, "{} bytes: {}", bytes.len(), String::from_utf8_lossy(&bytes));
}

#[test]
fn text_marks_are_keyed() {
    let a = TextKey::new(b"one").mark("1*1234");
    let b = TextKey::new(b"two").mark("1*1234");
    assert_eq!(a.len, 6);
    assert_ne!(a.hash, b.hash);
    assert_eq!(a, TextKey::new(b"one").mark("1*1234"));
}

#[tokio::test]
async fn the_memory_store_refuses_new_sessions_when_full_and_gives_back_what_expired() {
    let store = MemoryStore::with_capacity(3);
    let memory = SessionStore::Memory(store.clone());
    let key = |n: u32| SessionKey::new("at", "+254700000004", &format!("s{n}"));
    let short = Duration::from_millis(20);
    for n in 0..3 {
        assert_eq!(memory.save(&key(n), 0, &session("a"), short).await.unwrap(), Some(1));
    }
    // Full: a new session is refused, one already there goes on.
    let refused = memory.save(&key(3), 0, &session("a"), TTL).await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(ref why)) if why.contains("REDIS_URL")),
        "{refused:?}"
    );
    assert_eq!(memory.save(&key(0), 1, &session("b"), short).await.unwrap(), Some(2));
    // Once they expire there is room again (the full store sweeps at most once a second).
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(memory.save(&key(3), 0, &session("a"), TTL).await.unwrap(), Some(1));
    assert_eq!(store.len(), 1, "the expired ones were swept");

    // A burst's room is given back once it has expired.
    let big = MemoryStore::with_capacity(100_000);
    let memory = SessionStore::Memory(big.clone());
    for n in 0..20_000 {
        memory.save(&key(n), 0, &session("a"), Duration::from_millis(1)).await.unwrap();
    }
    std::thread::sleep(Duration::from_millis(5));
    big.sweep();
    assert_eq!(big.len(), 0);
    assert!(big.capacity() < 2_000, "the map kept room for {} records", big.capacity());
}
