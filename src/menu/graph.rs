//! The compiled menu: screens by index, templates compiled, every target resolved.

use std::collections::HashMap;

use super::input::Rules;
use super::model::InputKind;
use super::template::{Templates, Tpl};
use crate::domain::{Currency, Region};
use crate::ops::{Op, Outcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScreenId(pub u16);

/// A menu that passed every check; only the compiler builds one.
#[derive(Debug)]
pub struct Menu {
    pub service: String,
    pub codes: Vec<String>,
    /// The first language is the default and the fallback.
    pub languages: Vec<String>,
    pub region: Region,
    pub currency: Currency,
    pub max_retries: u8,
    /// Hash of the file's bytes: which edition of the menu a session runs.
    pub version: String,
    pub(super) start: ScreenId,
    pub(super) screens: Vec<Node>,
    pub(super) index: HashMap<String, ScreenId>,
    pub(super) templates: Templates,
}

#[derive(Debug)]
pub(super) struct Node {
    pub name: String,
    pub kind: NodeKind,
}

#[derive(Debug)]
pub(super) enum NodeKind {
    Menu {
        text: Tpl,
        options: Vec<(Tpl, ScreenId)>,
    },
    Input {
        text: Tpl,
        kind: InputKind,
        save: String,
        next: ScreenId,
        rules: Rules,
        error: Option<Tpl>,
    },
    Pin {
        text: Tpl,
        name: String,
        next: ScreenId,
        error: Option<Tpl>,
    },
    Action {
        op: Op,
        args: Vec<(String, Tpl)>,
        save: Option<String>,
        routes: HashMap<Outcome, Route>,
        other: Option<Route>,
        lang: Option<Tpl>,
    },
    End {
        text: Tpl,
    },
}

#[derive(Debug)]
pub(super) struct Route {
    pub next: ScreenId,
    pub error: Option<Tpl>,
}

impl Menu {
    pub fn screen_count(&self) -> usize {
        self.screens.len()
    }

    /// Position of `lang` in `languages`, or the default language's.
    pub(super) fn lang_index(&self, lang: &str) -> usize {
        self.languages.iter().position(|l| l == lang).unwrap_or(0)
    }
}
