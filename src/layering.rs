//! The layering rule, checked: a top-level module of `src/` imports only from layers
//! below its own (ARCHITECTURE.md, "Layers"), so no two of them import each other,
//! directly or round a circle.

use std::path::Path;

/// Bottom to top. A module may import from modules of a lower layer only.
const LAYERS: &[&[&str]] = &[
    &["domain", "gsm", "bytes", "breaker", "telemetry", "outcome", "problems", "redis_link", "signature"],
    &["address"],
    &["segments", "money", "flags"],
    &["ops"],
    &["menu"],
    &["session"],
    &["channel"],
    &["gateway", "admin"],
    &["sms", "events"],
    &["http"],
    &["config"],
    &["app"],
    &["journeys", "loadtest"],
    &["simulate"],
    &["cli"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// `(importing module, imported module, file:line)` for every `crate::` path outside
/// comments.
fn imports(src: &Path) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let top = relative.components().next().unwrap().as_os_str().to_string_lossy();
            let top = top.trim_end_matches(".rs").to_owned();
            for (n, line) in std::fs::read_to_string(&path).unwrap().lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                for (at, _) in code.match_indices("crate::") {
                    let name: String =
                        code[at + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                    if !name.is_empty() && name != top {
                        found.push((top.clone(), name, format!("{}:{}", relative.display(), n + 1)));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn every_module_imports_only_from_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (from, to, at) in imports(&src) {
        // The crate roots declare the modules; this file quotes imports in its test.
        if matches!(from.as_str(), "lib" | "main" | "layering") {
            continue;
        }
        match (layer(&from), layer(&to)) {
            (Some(a), Some(b)) if b < a => {}
            (None, _) => {
                wrong.push(format!("{at}: `{from}` is in no layer: add it to LAYERS and ARCHITECTURE.md"))
            }
            (_, None) => {
                wrong.push(format!("{at}: `{to}` is in no layer: add it to LAYERS and ARCHITECTURE.md"))
            }
            _ => wrong.push(format!("{at}: `{from}` imports `{to}`, which is not below it")),
        }
    }
    assert!(wrong.is_empty(), "imports against the layers:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_an_import_upwards() {
    let dir = std::env::temp_dir().join(format!("layering-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("money")).unwrap();
    std::fs::write(dir.join("money/mod.rs"), "use crate::gateway::Gateway; // crate::http in a comment\n")
        .unwrap();
    let found = imports(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].0.as_str(), found[0].1.as_str()), ("money", "gateway"));
    assert!(layer("gateway") > layer("money"));
}
