//! `menus check` and `menus graph` as a menu author runs them: on a folder or on one
//! file, and on a menu with problems.

use std::process::Command;

fn menus(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ussd-gateway"))
        .arg("menus")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_and_graph_take_a_folder_or_a_file() {
    let (ok, out, err) = menus(&["check", "menus/wallet.yaml"]);
    assert!(ok && out.starts_with("ok  wallet"), "{out}{err}");
    let (ok, out, err) = menus(&["check", "menus"]);
    assert!(ok && out.lines().count() == 4, "{out}{err}");
    assert!(out.starts_with("ok  texts: receipts, SMS replies and built-in lines in en, fr, sw\n"), "{out}");
    let (ok, out, err) = menus(&["graph", "menus"]);
    assert!(ok, "{err}");
    assert_eq!(out.matches("```mermaid\n").count(), 3, "one fenced picture per menu file");
    let (ok, out, _) = menus(&["graph", "menus/agent.yaml", "--format", "dot"]);
    assert!(ok && out.starts_with("digraph"), "{out}");
}

#[test]
fn a_menu_with_problems_is_drawn_and_its_problems_listed() {
    let dir = std::env::temp_dir().join(format!("menus-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shop.yaml");
    std::fs::write(
        &file,
        "service: shop\ncodes: [\"*9#\"]\nlanguages: [en]\nstart: a\nscreens:\n  a:\n    menu:\n      text: \"Hi {{ nme }}\"\n      options:\n        - { label: X, next: b }\n  b:\n    action: { op: wallet.balanse, on: { ok: c } }\n  c:\n    end: { text: Bye }\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (ok, out, err) = menus(&["graph", path]);
    let (checked, _, check_err) = menus(&["check", path]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!ok && !checked);
    assert!(out.contains("flowchart TD") && out.contains("class a,b broken"), "{out}");
    assert!(err.contains("shop.yaml:8:20: error: screen `a` in `en`: a text reads `nme`"), "{err}");
    assert!(err.contains("did you mean `wallet.balance`?"), "{err}");
    assert!(check_err.contains("2 problem(s)"), "{check_err}");
}

/// A language is a file in `texts/`: a mistake in it is named at its line, in the same
/// pass as the menus' own.
#[test]
fn a_texts_file_with_problems_is_refused_at_its_lines() {
    let dir = std::env::temp_dir().join(format!("menus-texts-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("texts")).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("menus");
    std::fs::copy(root.join("wallet.yaml"), dir.join("wallet.yaml")).unwrap();
    let french = std::fs::read_to_string(root.join("texts/fr.yaml")).unwrap();
    let broken = french.replace(
        "Frais {fee}. Nouveau solde {balance}.\"\n  p2p_received",
        "Frais {frais}.\"\n  p2p_received",
    );
    std::fs::write(dir.join("texts/fr.yaml"), &broken).unwrap();
    let (ok, _, err) = menus(&["check", dir.to_str().unwrap()]);
    let line = broken.lines().position(|l| l.trim_start().starts_with("p2p_sent:")).unwrap() + 1;
    assert!(!ok, "{err}");
    assert!(
        err.contains(&format!("fr.yaml:{line}:1: error: receipts `p2p_sent`: no value for `{{frais}}`")),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
