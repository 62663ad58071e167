//! The money path runs checked queries only: `sqlx::query!` and kin, compiled against
//! `.sqlx/`, so that a renamed column or a changed function fails the build. The path
//! is `src/money/` and the one-time-code counters the SMS layer keeps on the same lane.

use std::path::Path;

/// Statements with nothing to describe (no parameters, no columns), run unchecked.
const UNCHECKED: &[&str] = &[r#"sqlx::query("SELECT 1")"#, r#"sqlx::query("LOCK TABLE data_keys"#];

#[test]
fn every_query_of_the_money_path_is_checked_at_compile_time() {
    let mut unchecked = Vec::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join("sms/codes.rs")];
    let mut dirs = vec![src.join("money")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    // This file quotes the calls it looks for.
    for path in files.iter().filter(|p| !p.ends_with("money/checked.rs")) {
        let text = std::fs::read_to_string(path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let runtime = ["sqlx::query(", "sqlx::query_as(", "sqlx::query_scalar(", "sqlx::query_as::<"]
                .iter()
                .any(|call| code.contains(call));
            if runtime && !UNCHECKED.iter().any(|allowed| code.contains(allowed)) {
                unchecked.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        unchecked.is_empty(),
        "queries built at run time; use sqlx::query! and run .ci/sqlx prepare:\n{}",
        unchecked.join("\n")
    );
}

#[test]
fn the_check_sees_a_query_built_at_run_time() {
    let line = r#"let n: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers").fetch_one(db).await?;"#;
    assert!(line.contains("sqlx::query_scalar(") && !UNCHECKED.iter().any(|a| line.contains(a)));
}
