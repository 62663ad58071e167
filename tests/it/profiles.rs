//! Profiles kept in memory: served on the next dial, dropped when a change commits
//! anywhere (another replica, an operator's SQL), and never served while changes
//! cannot be heard.

use crate::common::proxy::{Proxy, spawn_behind};
use crate::common::{Store, TestApp, settings, spawn, unique_session, until};
use sqlx::PgPool;
use ussd_gateway::money::{LISTENER_NAME, Profiles};

const AMINA: &str = "+254700000001";

/// The first screen of a new session.
async fn dial(app: &TestApp) -> String {
    app.at_hop(&unique_session(), AMINA, "").await
}

fn profiles(app: &TestApp) -> Profiles {
    app.state.gateway.money().profiles().expect("profiles are kept by default").clone()
}

async fn rename(pool: &PgPool, first_name: &str) {
    sqlx::query("UPDATE customers SET first_name = $2 WHERE msisdn = $1")
        .bind(AMINA)
        .bind(first_name)
        .execute(pool)
        .await
        .unwrap();
}

/// Registers Neema on `msisdn`, with no wallet yet (so she can be removed).
async fn register_neema(pool: &PgPool, msisdn: &str) {
    sqlx::query(
        "INSERT INTO customers (msisdn, first_name, last_name, pin_salt, pin_hash) VALUES ($1, 'Neema', 'Kamau', $2, $3)",
    )
    .bind(msisdn)
    .bind(vec![0u8; 16])
    .bind(vec![0u8; 32])
    .execute(pool)
    .await
    .unwrap();
}

/// Amina's profile, read once the listener is connected, so that it is kept.
async fn kept(app: &TestApp) -> Profiles {
    let profiles = profiles(app);
    until("the listener connects", || async { profiles.listening() }).await;
    assert!(dial(app).await.starts_with("CON Welcome Amina\n"));
    assert_eq!(profiles.len(), 1, "the profile read was kept");
    profiles
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_profile_is_served_from_memory_until_a_change_commits_anywhere(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let profiles = kept(&app).await;
    // A change that announces nothing is not seen: the dial was answered from memory.
    sqlx::query("ALTER TABLE customers DISABLE TRIGGER customers_profile_changed")
        .execute(&pool)
        .await
        .unwrap();
    rename(&pool, "Silent").await;
    assert!(dial(&app).await.starts_with("CON Welcome Amina\n"), "served from memory");
    sqlx::query("ALTER TABLE customers ENABLE TRIGGER customers_profile_changed")
        .execute(&pool)
        .await
        .unwrap();
    // An operator's SQL, as another replica's op would: announced at commit.
    rename(&pool, "Zawadi").await;
    until("the change is heard", || async { profiles.is_empty() }).await;
    assert!(dial(&app).await.starts_with("CON Welcome Zawadi\n"));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_language_chosen_here_is_spoken_on_the_very_next_dial(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    kept(&app).await;
    // Without waiting for the announcement: the replica that made the change drops
    // the profile itself.
    let s = unique_session();
    app.at_hop(&s, AMINA, "").await;
    app.at_hop(&s, AMINA, "5").await;
    assert!(app.at_hop(&s, AMINA, "5*2").await.starts_with("CON Karibu Amina\n"));
    assert!(dial(&app).await.starts_with("CON Karibu Amina\n"));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_number_not_registered_is_read_again_so_a_registration_is_seen_at_once(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let profiles = profiles(&app);
    until("the listener connects", || async { profiles.listening() }).await;
    let stranger = "+254799000001";
    assert!(app.at_hop(&unique_session(), stranger, "").await.contains("Register"));
    assert!(profiles.is_empty(), "no answer kept for a number nobody holds");
    register_neema(&pool, stranger).await;
    assert!(app.at_hop(&unique_session(), stranger, "").await.starts_with("CON Welcome Neema\n"));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_lost_listener_starts_memory_over_and_hears_changes_again(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let profiles = kept(&app).await;
    // Postgres drops the listening connection (a failover, an idle timeout).
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = $1",
    )
    .bind(LISTENER_NAME)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(killed, 1, "one listener per replica");
    until("memory starts over", || async { profiles.is_empty() }).await;
    until("the listener connects again", || async { profiles.listening() }).await;
    assert!(dial(&app).await.starts_with("CON Welcome Amina\n"));
    assert_eq!(profiles.len(), 1);
    rename(&pool, "Zawadi").await;
    until("the change is heard on the new connection", || async { profiles.is_empty() }).await;
    assert!(dial(&app).await.starts_with("CON Welcome Zawadi\n"));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_listener_whose_connection_goes_silent_stops_serving_from_memory(pool: PgPool) {
    let proxy = Proxy::postgres(&pool).await;
    let app = spawn_behind(&pool, Some(&proxy), None, settings()).await;
    let profiles = kept(&app).await;
    // No FIN, no RST: the listening connection simply stops delivering, as behind a NAT
    // that forgot it. Only the listener's own heartbeat can tell.
    proxy.silence();
    until("the silent connection is found", || async { !profiles.listening() }).await;
    assert!(profiles.is_empty(), "nothing served while changes cannot be heard");
    proxy.speak();
    until("a new connection listens", || async { profiles.listening() }).await;
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_new_number_and_a_removal_are_each_heard(pool: PgPool) {
    let app = spawn(pool.clone(), Store::Memory).await;
    let profiles = kept(&app).await;
    sqlx::query("UPDATE customers SET msisdn = '+254799000002' WHERE msisdn = $1")
        .bind(AMINA)
        .execute(&pool)
        .await
        .unwrap();
    until("the old number is dropped", || async { profiles.is_empty() }).await;
    assert!(app.at_hop(&unique_session(), AMINA, "").await.contains("Register"));
    // A customer with no wallet yet can be removed.
    let neema = "+254799000003";
    register_neema(&pool, neema).await;
    assert!(app.at_hop(&unique_session(), neema, "").await.starts_with("CON Welcome Neema\n"));
    assert_eq!(profiles.len(), 1, "Neema is kept");
    sqlx::query("DELETE FROM customers WHERE msisdn = $1").bind(neema).execute(&pool).await.unwrap();
    until("the removal is heard", || async { profiles.is_empty() }).await;
    assert!(app.at_hop(&unique_session(), neema, "").await.contains("Register"));
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_healthy_listener_hears_its_heartbeats_and_keeps_what_it_kept(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    let profiles = kept(&app).await;
    let first = profiles.heartbeats();
    until("two heartbeats come back", || async { profiles.heartbeats() >= first + 2 }).await;
    assert!(profiles.listening());
    assert_eq!(profiles.len(), 1, "no heartbeat cost the profile its place");
    assert!(dial(&app).await.starts_with("CON Welcome Amina\n"));
}
