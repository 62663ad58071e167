//! The compiled menu: screens by index, templates compiled, every target resolved.

use std::collections::HashMap;
use std::sync::Arc;

use super::budget::Budget;
use super::input::Rules;
use super::messages::Message;
use super::model::InputKind;
use super::template::{Templates, Tpl};
use super::texts::Texts;
use crate::domain::{Currency, Region};
use crate::ops::Op;
use crate::outcome::Outcome;

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
    pub(super) home: ScreenId,
    /// Where too many invalid inputs lead; `None` ends the session.
    pub(super) too_many_attempts: Option<ScreenId>,
    pub(super) keys: Keys,
    pub budget: Budget,
    /// How long after a drop a new dial is offered to continue, and from which screens.
    pub resume: Option<Resume>,
    /// The menu's own texts for built-in lines.
    pub(super) messages: HashMap<Message, Tpl>,
    /// The bundle's texts it was compiled against: the built-in lines it did not reword.
    pub(super) texts: Arc<Texts>,
    pub(super) screens: Vec<Node>,
    pub(super) index: HashMap<String, ScreenId>,
    pub(super) templates: Templates,
    /// SMS commands, in the order of the help reply.
    pub commands: Vec<Command>,
    /// The inputs after the menu's code that start a USSD hand-off (`*384*9#` → `["9"]`),
    /// and that code as dialled.
    pub(super) handoff: Option<Handoff>,
    /// The feature flags the menu declares, at most [`MAX_FLAGS`]; a journey holds which
    /// are on for its subscriber as bits in this order.
    pub flags: Vec<FlagGate>,
}

/// The most flags one menu may declare: a journey keeps them as the bits of a `u64`.
pub const MAX_FLAGS: usize = 64;

/// A feature flag as the menu uses it.
#[derive(Debug)]
pub struct FlagGate {
    pub name: String,
    /// On while the database has no row for it.
    pub default: bool,
    /// Ops that do not run while it is off.
    pub ops: Vec<Op>,
    /// What a subscriber who reaches what it switched off is told.
    pub(super) unavailable: Option<Tpl>,
}

/// Where an SMS movement goes on over USSD.
#[derive(Debug)]
pub(super) struct Handoff {
    /// `*384*9#`.
    pub code: String,
    /// `["9"]`: what follows one of the menu's codes.
    pub after: Vec<String>,
}

/// An SMS command, compiled.
#[derive(Debug)]
pub struct Command {
    /// The keyword, upper-case.
    pub word: String,
    /// Other words, upper-case, with the language each belongs to.
    pub aliases: Vec<(String, String)>,
    pub(super) dial: Vec<DialPart>,
    pub args: Vec<String>,
    pub(super) help: Tpl,
}

/// One element of a command's dial path.
#[derive(Debug)]
pub(super) enum DialPart {
    Typed(String),
    /// The n-th argument, from 0.
    Arg(usize),
}

/// A menu's offer to continue a dropped journey.
#[derive(Debug)]
pub struct Resume {
    pub within: std::time::Duration,
    pub(super) screens: Vec<ScreenId>,
}

/// The reserved keys of a menu.
#[derive(Debug)]
pub(super) struct Keys {
    pub back: String,
    pub home: String,
    pub more: String,
}

#[derive(Debug)]
pub(super) struct Node {
    pub name: String,
    pub kind: NodeKind,
    /// The flag (its place in [`Menu::flags`]) the screen may be entered under.
    pub when: Option<u8>,
}

/// A menu option, shown only while its flag and its target's are on.
#[derive(Debug)]
pub(super) struct Choice {
    pub label: Tpl,
    pub next: ScreenId,
    pub when: Option<u8>,
}

#[derive(Debug)]
pub(super) enum NodeKind {
    Menu {
        text: Tpl,
        items: Option<Items>,
        options: Vec<Choice>,
    },
    Confirm {
        text: Tpl,
        yes: ScreenId,
        no: ScreenId,
    },
    Input {
        text: Tpl,
        kind: InputKind,
        save: String,
        next: ScreenId,
        rules: Rules,
        error: Option<Tpl>,
        retries: Option<u8>,
        /// The value goes to the next op as a secret, not to the session.
        sensitive: bool,
    },
    Pin {
        text: Tpl,
        name: String,
        next: ScreenId,
        error: Option<Tpl>,
        /// What SMS asks instead, with `code` and `dial`.
        sms: Option<Tpl>,
        /// Whether the `sms` text offers to reply with the code, and to dial it.
        by_reply: bool,
        by_dial: bool,
    },
    Action {
        op: Op,
        args: Vec<(String, Tpl)>,
        save: Option<String>,
        routes: HashMap<Outcome, Route>,
        other: Option<Route>,
        lang: Option<Tpl>,
    },
    /// Conditions (compiled as templates that render `1` when true), first match wins.
    Router {
        routes: Vec<(Tpl, ScreenId)>,
        otherwise: ScreenId,
    },
    Call {
        journey: ScreenId,
        next: ScreenId,
    },
    Return,
    End {
        text: Tpl,
    },
}

impl NodeKind {
    /// Whether the screen is shown and waits for the subscriber (an `end` is shown but
    /// waits only while it has pages left).
    pub fn waits(&self) -> bool {
        matches!(
            self,
            NodeKind::Menu { .. } | NodeKind::Confirm { .. } | NodeKind::Input { .. } | NodeKind::Pin { .. }
        )
    }
}

/// Menu options drawn from a list in the session.
#[derive(Debug)]
pub(super) struct Items {
    /// Path of the list: `result.entries` → `["result", "entries"]`.
    pub from: Vec<String>,
    pub label: Tpl,
    pub save: String,
    pub next: ScreenId,
    pub max: usize,
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

    /// Whether what is typed on this screen is a secret (a PIN, a sensitive input) that
    /// must not be shown.
    pub fn is_sensitive(&self, screen: &str) -> bool {
        self.index.get(screen).is_some_and(|id| {
            matches!(
                self.screens[id.0 as usize].kind,
                NodeKind::Pin { .. } | NodeKind::Input { sensitive: true, .. }
            )
        })
    }

    /// Whether this screen asks the subscriber to confirm a step (yes or no).
    pub fn is_confirm(&self, screen: &str) -> bool {
        self.index
            .get(screen)
            .is_some_and(|id| matches!(self.screens[id.0 as usize].kind, NodeKind::Confirm { .. }))
    }

    /// The bits of the flags on when no row names them: what a journey started before
    /// flags were kept in sessions goes by.
    pub fn flag_defaults(&self) -> u64 {
        self.flag_bits(|_, default| default)
    }

    /// The bits of the menu's flags that `on(name, default)` says are on.
    pub fn flag_bits(&self, on: impl Fn(&str, bool) -> bool) -> u64 {
        self.flags
            .iter()
            .enumerate()
            .filter(|(_, f)| on(&f.name, f.default))
            .fold(0, |bits, (i, _)| bits | 1 << i)
    }

    /// The flags that switch `op` off, with their places.
    pub fn gates(&self, op: Op) -> impl Iterator<Item = (u8, &FlagGate)> {
        self.flags.iter().enumerate().filter(move |(_, f)| f.ops.contains(&op)).map(|(i, f)| (i as u8, f))
    }

    /// Position of `lang` in `languages`, or the default language's.
    pub(super) fn lang_index(&self, lang: &str) -> usize {
        self.languages.iter().position(|l| l == lang).unwrap_or(0)
    }
}
