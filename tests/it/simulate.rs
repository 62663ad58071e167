//! The terminal phone, scripted: in process on a scratch database, and over HTTP against
//! a gateway listening on loopback.

use crate::common::*;
use sqlx::PgPool;
use ussd_gateway::simulate::{Line, run};

fn script(lines: &[&str]) -> impl Iterator<Item = String> {
    lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>().into_iter()
}

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[tokio::test]
async fn in_process_the_phone_walks_the_menu_and_redials() {
    let menus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("menus");
    let line = Line::in_process(&database_url(), &menus).await.expect("a scratch gateway");
    let mut out = Vec::new();
    let walked = run(
        &line,
        script(&["2", "1234", "", ":dial *384*2#", "1234", ":quit"]),
        &mut out,
        "+254700000001",
        "*384#",
    )
    .await;
    line.close().await.unwrap();
    walked.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("│ Welcome Amina"), "{out}");
    assert_eq!(out.matches("Your balance is KES 1,000.00.").count(), 2, "{out}");
    assert!(out.contains("END: the session is over · 29/160 GSM-7"), "{out}");
    assert!(out.contains("☎ *384*2# as +254700000001"), "{out}");
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn over_http_the_phone_talks_africas_talking(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, app.router.clone()).into_future());
    let line = Line::http(&format!("http://{addr}/ussd/africastalking"));
    let mut out = Vec::new();
    run(&line, script(&["42", ":as +254700000002", "2", "1234"]), &mut out, "+254700000001", "*384#")
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("│ Invalid choice."), "{out}");
    assert!(out.contains("☎ *384# as +254700000002"), "{out}");
    assert!(out.contains("Your balance is KES 2,000.00."), "{out}");

    // A URL that is not a gateway is a clear error, not a hang or a panic.
    let nowhere = Line::http(&format!("http://{addr}/nowhere"));
    let err = run(&nowhere, script(&[]), &mut Vec::new(), "+254700000001", "*384#").await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    server.abort();
}

/// Run from another folder, the phone finds its menus where `serve` would: MENUS_DIR.
#[test]
fn the_command_reads_menus_dir_like_serve() {
    use std::io::Write;
    let menus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("menus");
    let elsewhere = std::env::temp_dir();
    let phone = |menus_dir: Option<&std::path::Path>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ussd-gateway"));
        command
            .arg("simulate")
            .current_dir(&elsewhere)
            .env("DATABASE_URL", database_url())
            .env_remove("MENUS_DIR")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(dir) = menus_dir {
            command.env("MENUS_DIR", dir);
        }
        let mut child = command.spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"2\n1234\n").unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = phone(Some(&menus));
    assert!(ok, "{err}");
    assert!(out.contains("Your balance is KES 1,000.00."), "{out}");
    // Without it, the folder it looked in is ./menus, and the hint names MENUS_DIR.
    let (ok, _, err) = phone(None);
    assert!(!ok);
    assert!(err.contains("MENUS_DIR"), "{err}");
}
