//! The pure step function: (menu, journey, event) → next screen or an op to run.
//!
//! No I/O happens here. When a step needs data or money the engine returns
//! [`Step::Run`]; the caller runs the op and feeds the [`OpResult`] back with
//! [`Menu::resume`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::graph::{Menu, NodeKind, Route, ScreenId};
use super::input::{self, Rejected};
use super::messages::Message;
use super::template::Tpl;
use crate::domain::Pin;
use crate::ops::{Op, OpResult, Outcome};

/// Where a subscriber is in a menu. Persisted in the session between hops; it never
/// holds a PIN.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Journey {
    #[serde(rename = "s")]
    pub screen: String,
    #[serde(rename = "l")]
    pub lang: String,
    #[serde(rename = "v", default, skip_serializing_if = "Map::is_empty")]
    pub vars: Map<String, Value>,
    /// Invalid inputs on the current screen.
    #[serde(rename = "r", default, skip_serializing_if = "is_zero")]
    pub retries: u8,
    /// Ops started so far; part of each op's idempotency key.
    #[serde(rename = "q", default, skip_serializing_if = "is_zero_u32")]
    pub seq: u32,
    #[serde(rename = "d", default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// The screen to show: `CON` (continue) or `END`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(rename = "e")]
    pub end: bool,
    #[serde(rename = "t")]
    pub text: String,
}

impl Reply {
    pub fn con(text: impl Into<String>) -> Self {
        Reply { end: false, text: text.into() }
    }

    pub fn end(text: impl Into<String>) -> Self {
        Reply { end: true, text: text.into() }
    }
}

/// An op the caller must run before the journey can go on.
#[derive(Debug)]
pub struct Action {
    pub op: Op,
    pub args: BTreeMap<String, String>,
    /// Sensitive values from the `pin` step of this same hop.
    pub secrets: Vec<(String, Pin)>,
    /// The journey's op counter: the caller builds the idempotency key from it.
    pub seq: u32,
}

impl Action {
    pub fn secret(&self, name: &str) -> Option<&Pin> {
        self.secrets.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }
}

#[derive(Debug)]
pub enum Step {
    Reply(Reply),
    Run(Action),
}

/// A journey the engine cannot go on with; the caller ends the session politely.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the session is on screen `{0}`, which this menu does not have")]
    UnknownScreen(String),
    #[error("input arrived while screen `{0}` waits for an op result")]
    NotAwaitingInput(String),
    #[error("an op result arrived while screen `{0}` waits for input")]
    NotAwaitingResult(String),
    #[error("outcome `{outcome}` of `{op}` is not routed on screen `{screen}`")]
    Unrouted { screen: String, op: Op, outcome: String },
    #[error("screen `{screen}`: {source}")]
    Render { screen: String, source: minijinja::Error },
}

impl Menu {
    /// Starts a journey on the start screen in `lang` (the menu's default if `None`).
    pub fn begin(&self, lang: Option<&str>) -> Result<(Journey, Step), EngineError> {
        let lang = lang.filter(|l| self.languages.iter().any(|x| x == *l)).unwrap_or(&self.languages[0]);
        let mut journey = Journey { lang: lang.to_owned(), ..Journey::default() };
        let step = self.enter(&mut journey, self.start, None, Vec::new())?;
        Ok((journey, step))
    }

    /// Applies what the subscriber typed on the current screen.
    pub fn input(&self, j: &mut Journey, raw: &str) -> Result<Step, EngineError> {
        let id = self.current(j)?;
        let node = &self.screens[id.0 as usize];
        match &node.kind {
            NodeKind::Menu { options, .. } => {
                let choice = raw.trim().parse::<usize>().ok().filter(|n| (1..=options.len()).contains(n));
                match choice {
                    Some(n) => self.enter(j, options[n - 1].1, None, Vec::new()),
                    None => self.reject(j, id, Message::InvalidChoice, None),
                }
            }
            NodeKind::Input { kind, save, next, rules, error, .. } => {
                match input::parse(*kind, rules, raw, self.region, &self.currency) {
                    Ok(value) => {
                        j.vars.insert(save.clone(), value);
                        self.enter(j, *next, None, Vec::new())
                    }
                    Err(Rejected(message)) => self.reject(j, id, message, error.as_ref()),
                }
            }
            NodeKind::Pin { name, next, error, .. } => match Pin::parse(raw) {
                Ok(pin) => self.enter(j, *next, None, vec![(name.clone(), pin)]),
                Err(_) => self.reject(j, id, Message::InvalidPin, error.as_ref()),
            },
            NodeKind::Action { .. } | NodeKind::End { .. } => {
                Err(EngineError::NotAwaitingInput(j.screen.clone()))
            }
        }
    }

    /// Routes the journey on the outcome of the op it asked for.
    pub fn resume(&self, j: &mut Journey, result: OpResult) -> Result<Step, EngineError> {
        let id = self.current(j)?;
        let NodeKind::Action { op, save, routes, other, lang, .. } = &self.screens[id.0 as usize].kind else {
            return Err(EngineError::NotAwaitingResult(j.screen.clone()));
        };
        let Some(Route { next, error }) = routes.get(&result.outcome).or(other.as_ref()) else {
            return Err(EngineError::Unrouted {
                screen: j.screen.clone(),
                op: *op,
                outcome: result.outcome.to_string(),
            });
        };
        let key = save.as_deref().unwrap_or("result");
        j.vars.insert(key.to_owned(), result.data);
        if let (Outcome::Ok, Some(tpl)) = (result.outcome, lang) {
            let wanted = self.render(j, tpl)?;
            if self.languages.contains(&wanted) {
                j.lang = wanted;
            }
        }
        let error = match error {
            Some(tpl) => Some(self.render(j, tpl)?),
            None => None,
        };
        self.enter(j, *next, error, Vec::new())
    }

    fn current(&self, j: &Journey) -> Result<ScreenId, EngineError> {
        self.index.get(&j.screen).copied().ok_or_else(|| EngineError::UnknownScreen(j.screen.clone()))
    }

    fn enter(
        &self,
        j: &mut Journey,
        id: ScreenId,
        error: Option<String>,
        secrets: Vec<(String, Pin)>,
    ) -> Result<Step, EngineError> {
        let node = &self.screens[id.0 as usize];
        if j.screen != node.name {
            j.retries = 0;
        }
        j.screen.clone_from(&node.name);
        match &node.kind {
            NodeKind::Action { op, args, .. } => {
                j.seq += 1;
                let mut rendered = BTreeMap::new();
                for (name, tpl) in args {
                    rendered.insert(name.clone(), self.render(j, tpl)?);
                }
                Ok(Step::Run(Action { op: *op, args: rendered, secrets, seq: j.seq }))
            }
            NodeKind::End { text } => {
                j.done = true;
                Ok(Step::Reply(Reply::end(self.render(j, text)?)))
            }
            _ => self.show(j, id, error),
        }
    }

    /// Renders a screen that waits for input (menu, input, pin), with an error line
    /// above it if any.
    fn show(&self, j: &Journey, id: ScreenId, error: Option<String>) -> Result<Step, EngineError> {
        let (text, options): (&Tpl, &[(Tpl, ScreenId)]) = match &self.screens[id.0 as usize].kind {
            NodeKind::Menu { text, options } => (text, options),
            NodeKind::Input { text, .. } | NodeKind::Pin { text, .. } => (text, &[]),
            NodeKind::Action { .. } | NodeKind::End { .. } => {
                return Err(EngineError::NotAwaitingInput(j.screen.clone()));
            }
        };
        let mut out = error.map(|e| e + "\n").unwrap_or_default();
        out.push_str(&self.render(j, text)?);
        for (i, (label, _)) in options.iter().enumerate() {
            out.push_str(&format!("\n{}. {}", i + 1, self.render(j, label)?));
        }
        Ok(Step::Reply(Reply::con(out)))
    }

    fn reject(
        &self,
        j: &mut Journey,
        id: ScreenId,
        message: Message,
        custom: Option<&Tpl>,
    ) -> Result<Step, EngineError> {
        j.retries += 1;
        if j.retries >= self.max_retries {
            j.done = true;
            return Ok(Step::Reply(Reply::end(Message::TooManyAttempts.text(&j.lang))));
        }
        let line = match custom {
            Some(tpl) => self.render(j, tpl)?,
            None => message.text(&j.lang).to_owned(),
        };
        self.show(j, id, Some(line))
    }

    /// Renders over the session variables plus `lang`, the session's language.
    fn render(&self, j: &Journey, tpl: &Tpl) -> Result<String, EngineError> {
        let vars = minijinja::Value::from_serialize(&j.vars);
        let ctx = minijinja::context! { lang => j.lang.as_str(), ..vars };
        self.templates
            .render(tpl, self.lang_index(&j.lang), &ctx)
            .map_err(|source| EngineError::Render { screen: j.screen.clone(), source })
    }
}
