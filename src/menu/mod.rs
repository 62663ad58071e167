//! Menu files: the format, the compiler and linter, templates, and the pure engine.

mod budget;
mod compile;
mod engine;
mod graph;
mod input;
mod journey;
mod lint;
mod messages;
pub mod model;
mod picture;
mod resume;
mod sms;
mod template;
pub mod texts;
pub mod words;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use budget::{Budget, Encoding, Layout, NavLines, cost as screen_cost, paginate};
pub use compile::{Compiled, Diagnostic, compile, compile_all, compile_with};
pub use graph::{Command, Menu};
pub use journey::{Action, EngineError, Journey, Reply, Step};
pub use messages::Message;
pub use picture::{Drawing, Format as PictureFormat};
pub use texts::{OwnReply, Texts};

/// Every menu served at once, looked up by USSD service code; plus the editions a
/// reload replaced, kept for the sessions that started on them; and the gateway's own
/// words (`texts/`).
#[derive(Debug, Default)]
pub struct Bundle {
    menus: Vec<Arc<Menu>>,
    /// `None`: the shipped texts.
    texts: Option<Arc<Texts>>,
    by_code: HashMap<String, usize>,
    retired: Vec<Retired>,
}

/// A menu edition replaced by a reload, and when.
#[derive(Debug, Clone)]
struct Retired {
    menu: Arc<Menu>,
    since: Instant,
}

/// A dial string resolved to a menu and the extra segments dialled after its code.
#[derive(Debug)]
pub struct Dialled<'a> {
    pub menu: &'a Arc<Menu>,
    /// The registered code it matched (`*384#`).
    pub code: String,
    /// `*384*1*2#` on the menu of `*384#` gives `["1", "2"]`.
    pub jump: Vec<String>,
}

/// The YAML files (`*.yaml`, `*.yml`) of a folder, sorted by name.
pub fn yaml_files(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// The menu files (`*.yaml`, `*.yml`) of a folder, sorted; an error says what is wrong
/// with the folder.
pub fn menu_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    let paths = yaml_files(dir).map_err(|e| format!("cannot read the menu folder: {e}"))?;
    if paths.is_empty() {
        return Err("no menu files (*.yaml) in the menu folder".into());
    }
    Ok(paths)
}

impl Bundle {
    /// Loads and compiles every `*.yaml`/`*.yml` file in `dir`, reporting all problems
    /// at once; a bundle with any error is refused whole.
    pub fn load_dir(dir: &Path) -> Result<Bundle, Vec<Diagnostic>> {
        let io_error = |message: String| {
            vec![Diagnostic {
                file: dir.to_path_buf(),
                line: 0,
                column: 0,
                message,
                hint: Some("set MENUS_DIR to the folder holding the menu files".into()),
            }]
        };
        let paths = menu_files(dir).map_err(io_error)?;
        let mut files = Vec::new();
        for path in paths {
            let source = std::fs::read_to_string(&path)
                .map_err(|e| io_error(format!("cannot read {}: {e}", path.display())))?;
            files.push((path, source));
        }
        // The menus are compiled against the texts that could be read even when some
        // are wrong: one pass reports the problems of both.
        let (texts, mut problems) = Texts::read_dir(dir);
        let texts = Arc::new(texts);
        match Self::compile_sources(files.iter().map(|(p, s)| (p.as_path(), s.as_str())), &texts) {
            Ok(mut bundle) if problems.is_empty() => {
                bundle.texts = Some(texts);
                Ok(bundle)
            }
            Ok(_) => Err(problems),
            Err(mut more) => {
                problems.append(&mut more);
                problems.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
                Err(problems)
            }
        }
    }

    /// The gateway's own words: receipts, its SMS replies, why a request was not completed.
    pub fn texts(&self) -> &Texts {
        self.texts.as_deref().unwrap_or(Texts::shipped())
    }

    /// Compiles menus from (file name, text) pairs against the shipped texts; every
    /// problem of every file at once, sorted by file and line.
    pub fn from_sources<'a>(
        files: impl IntoIterator<Item = (&'a Path, &'a str)>,
    ) -> Result<Bundle, Vec<Diagnostic>> {
        Self::compile_sources(files, Texts::shipped())
    }

    fn compile_sources<'a>(
        files: impl IntoIterator<Item = (&'a Path, &'a str)>,
        texts: &Arc<Texts>,
    ) -> Result<Bundle, Vec<Diagnostic>> {
        let mut bundle = Bundle::default();
        let mut diagnostics = Vec::new();
        let mut claimed: HashMap<String, &Path> = HashMap::new();
        let mut defaults: HashMap<String, (bool, &Path)> = HashMap::new();
        for (path, source) in files {
            match compile_with(path, source, texts) {
                Ok(menu) => {
                    // One flag is one switch: menus that share it must agree on what
                    // holds until an operator sets it.
                    for flag in &menu.flags {
                        let Some((default, other)) = defaults.insert(flag.name.clone(), (flag.default, path))
                        else {
                            continue;
                        };
                        if default != flag.default {
                            let line = source
                                .lines()
                                .position(|l| l.trim_start().starts_with(&format!("{}:", flag.name)))
                                .map_or(1, |n| n + 1);
                            diagnostics.push(Diagnostic {
                                file: path.to_path_buf(),
                                line: line as u64,
                                column: 1,
                                message: format!(
                                    "flag `{}` defaults to {} here and to {default} in {}",
                                    flag.name,
                                    flag.default,
                                    other.display()
                                ),
                                hint: Some("a flag is one switch for every menu: give it one default".into()),
                            });
                        }
                    }
                    for code in &menu.codes {
                        if let Some(other) = claimed.insert(code.clone(), path) {
                            // At the `codes:` line, naming the file that has the code too.
                            let line = source
                                .lines()
                                .position(|l| l.starts_with("codes:") && l.contains(code.as_str()))
                                .or_else(|| source.lines().position(|l| l.starts_with("codes:")))
                                .map_or(1, |n| n + 1);
                            // (Twice in one file is the file's own problem, reported by
                            // its compile.)
                            diagnostics.push(Diagnostic {
                                file: path.to_path_buf(),
                                line: line as u64,
                                column: 1,
                                message: format!("service code {code} is claimed by {} too", other.display()),
                                hint: Some(
                                    "each code belongs to exactly one menu: remove it from one of them"
                                        .into(),
                                ),
                            });
                        }
                        bundle.by_code.entry(code.clone()).or_insert(bundle.menus.len());
                    }
                    bundle.menus.push(Arc::new(menu));
                }
                Err(mut d) => diagnostics.append(&mut d),
            }
        }
        diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        if diagnostics.is_empty() { Ok(bundle) } else { Err(diagnostics) }
    }

    pub fn menus(&self) -> &[Arc<Menu>] {
        &self.menus
    }

    /// Finds the menu for a service code, longest registered code first, so that
    /// `*384*1*2#` reaches `*384#` with the jump-ahead inputs `1` and `2`.
    pub fn resolve(&self, dialled: &str) -> Option<Dialled<'_>> {
        let (i, code, rest) = self.longest_code(dialled)?;
        let jump = rest.split('*').filter(|s| !s.is_empty()).map(str::to_owned).collect();
        Some(Dialled { menu: &self.menus[i], code, jump })
    }

    /// Splits a dial string into its registered code and the inputs after it, as
    /// cumulative text: `*384*1*2#` → (`*384#`, `1*2`).
    pub fn split_dial(&self, dialled: &str) -> Option<(String, String)> {
        self.longest_code(dialled).map(|(_, code, rest)| (code, rest))
    }

    /// The menu index and code of the longest registered prefix of a dial string, and
    /// what follows it.
    fn longest_code(&self, dialled: &str) -> Option<(usize, String, String)> {
        let body = dialled.trim().strip_suffix('#').unwrap_or(dialled.trim());
        let parts: Vec<&str> = body.split('*').collect();
        // parts[0] is the empty string before the leading `*`.
        (2..=parts.len()).rev().find_map(|cut| {
            let code = format!("{}#", parts[..cut].join("*"));
            self.by_code.get(&code).map(|&i| (i, code, parts[cut..].join("*")))
        })
    }

    pub fn get(&self, service: &str) -> Option<&Arc<Menu>> {
        self.menus.iter().find(|m| m.service == service)
    }

    /// The menu a session runs: the edition it started on, even after a reload.
    pub fn for_session(&self, service: &str, version: &str) -> Option<&Arc<Menu>> {
        let same = |m: &Arc<Menu>| m.service == service && m.version == version;
        self.menus.iter().find(|m| same(m)).or_else(|| self.retired.iter().map(|r| &r.menu).find(|m| same(m)))
    }

    /// Replaced editions still kept for their sessions.
    pub fn retired(&self) -> usize {
        self.retired.len()
    }

    /// This bundle taking over from `old`: every edition `old` served that this one does
    /// not stays available to its sessions for `keep` (the session lifetime).
    pub fn succeeding(mut self, old: &Bundle, now: Instant, keep: Duration) -> Bundle {
        let serves = |menu: &Menu, menus: &[Arc<Menu>]| {
            menus.iter().any(|m| m.service == menu.service && m.version == menu.version)
        };
        for m in &old.menus {
            if !serves(m, &self.menus) {
                self.retired.push(Retired { menu: Arc::clone(m), since: now });
            }
        }
        for r in &old.retired {
            if now.duration_since(r.since) < keep && !serves(&r.menu, &self.menus) {
                self.retired.push(r.clone());
            }
        }
        self
    }
}

/// Diagnostics as printed: one per line (with its hint under it).
pub fn report(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// The JSON Schema of menu files, generated from [`model::MenuFile`]; shipped as
/// `menus/menu.schema.json` for editors (`ussd-gateway menus schema` prints it).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(model::MenuFile);
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

/// A short, stable fingerprint of a menu file's bytes.
pub(crate) fn content_version(source: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(source.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_flags;
#[cfg(test)]
mod tests_flow;
