//! Journey transcripts run by the test suite: the shipped ones pass, and a wrong one
//! fails with the step, what was expected and what came, never showing a PIN.

use std::path::{Path, PathBuf};

use ussd_gateway::journeys::{Transcript, run_dir};

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn the_shipped_transcripts_pass() {
    let mut seen = Vec::new();
    let summary = run_dir(&database_url(), &root().join("menus/journeys"), &root().join("menus"), |t, _| {
        seen.push(t.file.clone())
    })
    .await
    .expect("transcripts run");
    assert!(summary.failed.is_empty(), "{}", summary.render());
    assert!(summary.passed.len() >= 8, "{:?}", summary.passed);
    assert_eq!(seen.len(), summary.passed.len());
}

/// A folder of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("ussd-journeys-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_wrong_expectation_fails_at_its_step_without_showing_the_pin() {
    let dir = TempDir::new();
    std::fs::write(
        dir.0.join("wrong.yaml"),
        "steps:\n  - dial: \"*384*2#\"\n    expect: \"Enter your PIN to see your balance\"\n  - input: \"4321\"\n    expect: { contains: \"Your balance\" }\n",
    )
    .unwrap();
    let summary = run_dir(&database_url(), &dir.0, &root().join("menus"), |_, _| {}).await.unwrap();
    assert_eq!(summary.failed.len(), 1, "{}", summary.render());
    let m = &summary.failed[0];
    assert_eq!((m.step, m.line), (2, 4));
    assert_eq!(m.got, "Wrong PIN.\nEnter your PIN to see your balance");
    let report = summary.render();
    assert!(report.contains("step 2 (input ****)"), "{report}");
    assert!(!report.contains("4321"), "the PIN leaked: {report}");
}

#[tokio::test]
async fn an_end_where_a_screen_should_continue_fails() {
    let dir = TempDir::new();
    std::fs::write(
        dir.0.join("ends.yaml"),
        "steps:\n  - dial: \"*384*2#\"\n    expect: { contains: \"PIN\" }\n  - input: \"1234\"\n    expect: { contains: \"balance\" }\n    end: false\n",
    )
    .unwrap();
    let summary = run_dir(&database_url(), &dir.0, &root().join("menus"), |_, _| {}).await.unwrap();
    assert_eq!(summary.failed.len(), 1, "{}", summary.render());
    assert_eq!(summary.failed[0].expected, "a CON screen");
    assert!(summary.failed[0].got.starts_with("END Your balance"), "{}", summary.render());
}

#[test]
fn malformed_transcripts_are_refused_with_their_line() {
    let bad =
        Transcript::parse(Path::new("bad.yaml"), "steps:\n  - input: \"1\"\n    expect: x\n").unwrap_err();
    assert!(bad[0].message.contains("first step must be a `dial`"), "{bad:?}");
    assert_eq!(bad[0].line, 2);
    let bad = Transcript::parse(
        Path::new("bad.yaml"),
        "steps:\n  - dial: \"*1#\"\n    input: \"1\"\n    expect: x\n",
    )
    .unwrap_err();
    assert!(bad[0].message.contains("either `dial` or `input`"), "{bad:?}");
    let bad = Transcript::parse(
        Path::new("bad.yaml"),
        "steps:\n  - dial: \"*1#\"\n    expect: { pattern: \"(\" }\n",
    )
    .unwrap_err();
    assert!(bad[0].message.contains("not a regular expression"), "{bad:?}");
}
