//! Turns a parsed menu file into a checked, index-based graph, or into diagnostics that
//! name the file, line and column of every problem.

mod flags;
mod screens;
mod settings;
mod sms;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_saphyr::{Location, Spanned};

use super::graph::{Menu, Node, ScreenId};
use super::model::{MenuFile, Screen, Text};
use super::template::Templates;
use super::texts::Texts;
use screens::Builder;

/// One problem in a menu file, with where it is and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: error: {}", self.file.display(), self.line, self.column, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

struct Ctx<'a> {
    file: &'a Path,
    /// The file's text, to place problems with top-level settings.
    source: &'a str,
    languages: &'a [String],
    diagnostics: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn error(&mut self, at: Location, message: impl Into<String>, hint: Option<String>) {
        self.diagnostics.push(Diagnostic {
            file: self.file.to_path_buf(),
            line: at.line(),
            column: at.column(),
            message: message.into(),
            hint,
        });
    }

    /// A problem with a top-level setting, placed at its key (or at the top of the file
    /// when the setting is left to its default).
    fn error_at_key(&mut self, key: &str, message: impl Into<String>, hint: Option<String>) {
        let line = self
            .source
            .lines()
            .position(|l| l.strip_prefix(key).is_some_and(|rest| rest.starts_with(':')))
            .map_or(1, |i| i as u64 + 1);
        self.diagnostics.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column: 1,
            message: message.into(),
            hint,
        });
    }

    /// Per-language sources of a text, in the order of `languages`.
    fn sources(&mut self, text: &Spanned<Text>, what: &str) -> Vec<Option<String>> {
        match &text.value {
            Text::Same(s) => vec![Some(s.clone()); self.languages.len()],
            Text::PerLanguage(map) => {
                for lang in map.keys() {
                    if !self.languages.contains(lang) {
                        self.error(
                            text.referenced,
                            format!("{what} has a text in `{lang}`, which is not in `languages`"),
                            Some(format!("add `{lang}` to `languages` or remove this text")),
                        );
                    }
                }
                let sources: Vec<_> = self.languages.iter().map(|l| map.get(l).cloned()).collect();
                let missing: Vec<&str> = self
                    .languages
                    .iter()
                    .zip(&sources)
                    .filter(|(_, s)| s.is_none())
                    .map(|(l, _)| l.as_str())
                    .collect();
                if !missing.is_empty() {
                    self.error(
                        text.referenced,
                        format!("{what} has no text in `{}` (missing translation)", missing.join("`, `")),
                        Some(
                            "translate it, or write one plain string if it reads the same in every language"
                                .into(),
                        ),
                    );
                }
                sources
            }
        }
    }
}

/// A menu file compiled as far as it goes: the menu whenever its text parsed, even with
/// problems (for `menus graph` to draw), every problem, and the screens they are on.
pub struct Compiled {
    pub menu: Option<Menu>,
    pub diagnostics: Vec<Diagnostic>,
    /// Indices of the screens a problem was found in.
    pub broken: Vec<usize>,
}

/// Parses and compiles one menu file's text against the shipped texts.
pub fn compile(file: &Path, source: &str) -> Result<Menu, Vec<Diagnostic>> {
    compile_with(file, source, Texts::shipped())
}

/// Parses and compiles one menu file's text against its folder's texts.
pub fn compile_with(file: &Path, source: &str, texts: &Arc<Texts>) -> Result<Menu, Vec<Diagnostic>> {
    match compile_all(file, source, texts) {
        Compiled { menu: Some(menu), diagnostics, .. } if diagnostics.is_empty() => Ok(menu),
        Compiled { diagnostics, .. } => Err(diagnostics),
    }
}

/// Parses and compiles one menu file's text, keeping what compiled beside what did not.
pub fn compile_all(file: &Path, source: &str, texts: &Arc<Texts>) -> Compiled {
    let failed = |diagnostics| Compiled { menu: None, diagnostics, broken: Vec::new() };
    let parsed: MenuFile = match serde_saphyr::from_str(source).map_err(|e| {
        let at = e.location().unwrap_or(Location::UNKNOWN);
        let message = first_line(&e.to_string());
        // The location is printed in front already.
        let message = message.strip_prefix("error: ").unwrap_or(&message);
        let message = match message.split_once(": ") {
            Some((place, rest)) if place.starts_with("line ") => rest.to_owned(),
            _ => message.to_owned(),
        };
        let hint = if message.contains("enum Text") {
            "a text is a string, or a map from language to string; quote words YAML reads as \
             booleans or numbers (yes, no, on, off, y, n, 1.5)"
        } else {
            "see docs/menus.md for the menu file format"
        };
        vec![Diagnostic {
            file: file.to_path_buf(),
            line: at.line(),
            column: at.column(),
            message,
            hint: Some(hint.into()),
        }]
    }) {
        Ok(parsed) => parsed,
        Err(diagnostics) => return failed(diagnostics),
    };
    let version = crate::menu::content_version(source);
    build(file, source, parsed, version, texts)
}

/// The screens `diagnostics` fall in: each problem belongs to the screen whose key is
/// the last one above it, if it is inside the `screens:` block at all.
fn broken_screens(source: &str, spans: &[(usize, u64)], diagnostics: &[Diagnostic]) -> Vec<usize> {
    let lines: Vec<&str> = source.lines().collect();
    let Some(start) = lines.iter().position(|l| l.starts_with("screens:")) else { return Vec::new() };
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with(|c: char| !c.is_whitespace() && c != '#'))
        .map_or(lines.len(), |n| start + 1 + n);
    let mut broken: Vec<usize> = diagnostics
        .iter()
        .filter(|d| (start as u64) < d.line && d.line <= end as u64)
        .filter_map(|d| spans.iter().filter(|(_, line)| *line <= d.line).max_by_key(|(_, line)| *line))
        .map(|(id, _)| *id)
        .collect();
    broken.sort_unstable();
    broken.dedup();
    broken
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_owned()
}

fn build(file: &Path, source: &str, m: MenuFile, version: String, texts: &Arc<Texts>) -> Compiled {
    let languages = m.languages.clone();
    let mut cx = Ctx { file, source, languages: &languages, diagnostics: Vec::new() };
    if languages.is_empty() {
        cx.error_at_key(
            "languages",
            "`languages` is empty",
            Some("list at least one language, e.g. `languages: [en]`".into()),
        );
        return Compiled { menu: None, diagnostics: cx.diagnostics, broken: Vec::new() };
    }
    let (region, currency) = settings::header(&mut cx, &m);
    let index: HashMap<String, ScreenId> =
        m.screens.keys().enumerate().map(|(i, name)| (name.clone(), ScreenId(i as u16))).collect();
    let mut b = Builder {
        cx,
        screens: &m.screens,
        sms: m.sms.as_ref(),
        index,
        templates: Templates::new(currency.clone()),
        currency: currency.clone(),
        flags: flags::places(&m.flags),
        unresolved: false,
    };
    let declared = flags::declare(&mut b, &m.flags);
    let screens: Vec<Node> = m
        .screens
        .iter()
        .map(|(name, screen)| Node {
            name: name.clone(),
            kind: b.screen(name, screen),
            when: b.when(screen.value.when(), &format!("screen `{name}`")),
        })
        .collect();
    let start = b.resolve(&m.start);
    let home = m.home.as_ref().map_or(start, |h| b.resolve(h));
    let too_many_attempts = m.too_many_attempts.as_ref().map(|t| b.resolve(t));
    let messages = settings::messages(&mut b, &m.messages, &languages, texts);
    let budget = settings::budget(&mut b.cx, &m.budget);
    flags::check_texts(&mut b, &m.flags, budget);
    let resume = m.resume.as_ref().map(|r| settings::resume(&mut b, r));
    let keys = settings::keys(&mut b.cx, &m.navigation);
    let commands = m.sms.as_ref().map_or_else(Vec::new, |d| sms::commands(&mut b, d, &languages));
    let handoff =
        m.sms.as_ref().and_then(|d| d.handoff.as_ref()).and_then(|h| sms::handoff(&mut b.cx, h, &m.codes));
    let Builder { cx, index, templates, unresolved, .. } = b;
    let refused = cx.diagnostics;
    let spans: HashMap<String, Location> =
        m.screens.iter().map(|(name, screen)| (name.clone(), screen.referenced)).collect();
    let menu = Menu {
        service: m.service,
        codes: m.codes.into_iter().map(|c| c.value).collect(),
        languages,
        region,
        currency,
        max_retries: m.max_retries.max(1),
        version,
        start,
        home,
        too_many_attempts,
        keys,
        budget,
        resume,
        messages,
        texts: Arc::clone(texts),
        screens,
        index,
        templates,
        commands,
        handoff,
        flags: declared,
    };
    // The graph is whole even when parts were refused (an unknown screen resolves to the
    // first, a broken text to an empty one), so its checks run too: one pass reports
    // every problem, not the next stage's only after the first is fixed. Only what
    // follows from ways that lead nowhere is left out.
    let mut diagnostics = refused;
    // Without screens there is no graph to check (nor to draw).
    if menu.screens.is_empty() {
        diagnostics.push(Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            message: "`screens` is empty".into(),
            hint: Some("a menu needs at least its `start` screen".into()),
        });
        diagnostics.sort_by_key(|d| (d.line, d.column));
        return Compiled { menu: None, diagnostics, broken: Vec::new() };
    }
    let ways = super::lint::Ways { whole: !unresolved, saved: saved(&m.screens) };
    diagnostics.extend(super::lint::lint(&menu, file, source, &spans, &ways));
    diagnostics.sort_by_key(|d| (d.line, d.column));
    let at: Vec<(usize, u64)> =
        menu.screens.iter().enumerate().filter_map(|(i, n)| Some((i, spans.get(&n.name)?.line()))).collect();
    let broken = broken_screens(source, &at, &diagnostics);
    Compiled { menu: Some(menu), diagnostics, broken }
}

/// Every variable some screen of the file saves for texts to read, whether or not the
/// screen compiled.
fn saved(screens: &std::collections::BTreeMap<String, Spanned<Screen>>) -> HashSet<String> {
    let mut names = HashSet::new();
    for screen in screens.values() {
        match &screen.value {
            // A sensitive value is never a variable a text can read.
            Screen::Input(i) if !i.sensitive => {
                names.insert(i.save.clone());
            }
            Screen::Action(a) => {
                names.insert(a.save.clone().unwrap_or_else(|| "result".into()));
            }
            Screen::Menu(m) => names.extend(m.items.as_ref().map(|i| i.save.clone())),
            _ => {}
        }
    }
    names
}

fn clone_text(t: &Text) -> Text {
    match t {
        Text::Same(s) => Text::Same(s.clone()),
        Text::PerLanguage(m) => Text::PerLanguage(m.clone()),
    }
}

fn check_var_name(cx: &mut Ctx, at: Location, name: &str, what: &str) {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        cx.error(
            at,
            format!("{what}: `{name}` is not a valid variable name"),
            Some("use lower-case letters, digits and `_`, starting with a letter".into()),
        );
    } else if name == "result" || name == "flag" || name == "lang" {
        let reserved = match name {
            "result" => "the data of the last op",
            "flag" => "the menu's feature flags (`flag.<name>`)",
            _ => "the session's language",
        };
        cx.error(
            at,
            format!("{what}: `{name}` is reserved for {reserved}"),
            Some("pick another name".into()),
        );
    }
}

fn suggest<'a>(wanted: &str, names: impl Iterator<Item = &'a String>) -> Option<String> {
    let mut names: Vec<_> = names.map(String::as_str).collect();
    names.sort_unstable();
    let close: Vec<_> = names
        .iter()
        .filter(|n| n.contains(wanted) || wanted.contains(**n) || edit_distance(n, wanted) <= 2)
        .collect();
    if let Some(best) = close.first() {
        Some(format!("did you mean `{best}`?"))
    } else {
        Some(format!("screens in this file: {}", names.join(", ")))
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
