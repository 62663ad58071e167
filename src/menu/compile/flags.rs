//! The feature flags a menu declares, and every `when:` and `flag.<name>` that tests one.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_saphyr::Spanned;

use super::screens::Builder;
use super::suggest;
use crate::menu::budget::Budget;
use crate::menu::graph::{FlagGate, MAX_FLAGS};
use crate::menu::model::{FlagDecl, When};
use crate::ops::Op;

/// `flag.<name>` in a router's condition (not a field `flag` of a variable: `x.flag.y`).
static TESTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^.\w])flag\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)").expect("a valid pattern")
});

/// The places flags will take, by name: known before any screen is compiled.
pub(super) fn places(decls: &BTreeMap<String, Spanned<FlagDecl>>) -> std::collections::HashMap<String, u8> {
    decls.keys().take(MAX_FLAGS).enumerate().map(|(i, name)| (name.clone(), i as u8)).collect()
}

/// The declared flags, checked: their names, how many, their ops and texts.
pub(super) fn declare(b: &mut Builder, decls: &BTreeMap<String, Spanned<FlagDecl>>) -> Vec<FlagGate> {
    if decls.len() > MAX_FLAGS {
        b.cx.error_at_key(
            "flags",
            format!("{} flags are declared; a menu may use at most {MAX_FLAGS}", decls.len()),
            Some("split the menu, or retire flags that are on for everyone".into()),
        );
    }
    let mut gates = Vec::with_capacity(decls.len().min(MAX_FLAGS));
    for (name, decl) in decls.iter().take(MAX_FLAGS) {
        let what = format!("flag `{name}`");
        if !crate::domain::shape::FLAG_NAME.fits(name) {
            b.cx.error(
                decl.referenced,
                format!("{what}: not a flag name"),
                Some("lower-case letters, digits and `_`, starting with a letter, at most 40".into()),
            );
        }
        let mut ops = Vec::new();
        for op in &decl.value.ops {
            match Op::from_name(&op.value) {
                Some(known) => ops.push(known),
                None => {
                    let known: Vec<_> = Op::all().map(Op::name).collect();
                    b.cx.error(
                        op.referenced,
                        format!("{what}: unknown op `{}`", op.value),
                        Some(format!("known ops: {}", known.join(", "))),
                    );
                }
            }
        }
        let unavailable = decl.value.unavailable.as_ref().map(|t| b.tpl(t, &format!("{what} (unavailable)")));
        gates.push(FlagGate { name: name.clone(), default: decl.value.default, ops, unavailable });
    }
    gates
}

/// A flag's `unavailable` text ends a session on its own: fixed words that fit one
/// screen in every language.
pub(super) fn check_texts(b: &mut Builder, decls: &BTreeMap<String, Spanned<FlagDecl>>, budget: Budget) {
    for (name, decl) in decls {
        let Some(text) = &decl.value.unavailable else { continue };
        let what = format!("flag `{name}`: `unavailable`");
        for (lang, source) in b.cx.languages.to_vec().iter().zip(b.cx.sources(text, &what)) {
            let Some(source) = source else { continue };
            if source.contains("{{") || source.contains("{%") {
                b.cx.error(
                    text.referenced,
                    format!("{what} in `{lang}` is a template"),
                    Some("write the words themselves: the session may have saved nothing yet".into()),
                );
            } else if !budget.fits(&source) {
                b.cx.error(
                    text.referenced,
                    format!(
                        "{what} in `{lang}` does not fit one screen ({} GSM-7 / {} UCS-2)",
                        budget.gsm7, budget.ucs2
                    ),
                    Some("shorten it".into()),
                );
            }
        }
    }
}

impl Builder<'_> {
    /// The place of the flag a `when:` names, or a diagnostic.
    pub fn when(&mut self, when: Option<&When>, what: &str) -> Option<u8> {
        let flag = &when?.flag;
        let place = self.flags.get(&flag.value).copied();
        if place.is_none() {
            self.unknown_flag(flag, what);
        }
        place
    }

    /// Every `flag.<name>` a router's condition tests must be declared.
    pub fn tested_flags(&mut self, condition: &Spanned<String>, what: &str) {
        for name in TESTED.captures_iter(&condition.value).filter_map(|c| c.get(1)) {
            if !self.flags.contains_key(name.as_str()) {
                let named = Spanned::new(name.as_str().to_owned(), condition.referenced, condition.defined);
                self.unknown_flag(&named, what);
            }
        }
    }

    fn unknown_flag(&mut self, flag: &Spanned<String>, what: &str) {
        let hint = if self.flags.is_empty() {
            Some(format!("declare it: flags: {{ {}: {{ about: \"…\", default: true }} }}", flag.value))
        } else {
            suggest(&flag.value, self.flags.keys())
                .map(|h| h.replace("screens in this file", "flags declared"))
        };
        self.cx.error(
            flag.referenced,
            format!("{what}: no flag named `{}` is declared under `flags:`", flag.value),
            hint,
        );
    }
}
