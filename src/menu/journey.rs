//! What the engine keeps and answers: a subscriber's place in a menu, the reply to
//! show, the op to run, and what can go wrong.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::budget::Budget;
use crate::domain::{Pin, Secret};
use crate::ops::Op;

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
    /// Screens behind this one, for Back; cleared when a committing op succeeds, so
    /// that Back never returns across a movement of money.
    #[serde(rename = "b", default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Frame>,
    /// Where each open sub-journey returns to, innermost last.
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
    /// The page of the current screen being shown.
    #[serde(rename = "g", default, skip_serializing_if = "is_zero")]
    pub page: u8,
    /// The channel's screen budget, when smaller than the menu's.
    #[serde(rename = "w", default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// The error line over the current screen, kept while its pages are turned.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The subscriber is being asked whether to continue this journey after a drop.
    #[serde(rename = "o", default, skip_serializing_if = "std::ops::Not::not")]
    pub resuming: bool,
    /// The journey is an SMS conversation: what ends it says to send the command
    /// again, not to dial.
    #[serde(rename = "m", default, skip_serializing_if = "std::ops::Not::not")]
    pub by_sms: bool,
    /// The menu's flags on for this subscriber, as bits in the order the menu declares
    /// them: decided when the session starts, so that its menus never change under it.
    /// `None` in a session started before flags were kept: the menu's defaults.
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<u64>,
    /// Screens that refused an input since the caller last took this list (funnel
    /// metrics); never stored.
    #[serde(skip)]
    pub refused_on: Vec<String>,
}

/// Steps one event may pass through (actions, routers, calls) before it must show a
/// screen; the compiler refuses loops without input, this guards the rest.
pub(super) const MAX_STEPS: usize = 64;

/// A screen in the history, with the sub-journeys that were open on it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    #[serde(rename = "s")]
    pub screen: String,
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
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
    /// The screen asks for a secret (a PIN, a sensitive input): providers that can
    /// mask the next answer in their logs are told to.
    #[serde(rename = "s", default, skip_serializing_if = "std::ops::Not::not")]
    pub secret_next: bool,
}

impl Reply {
    pub fn con(text: impl Into<String>) -> Self {
        Reply { end: false, text: text.into(), secret_next: false }
    }

    pub fn end(text: impl Into<String>) -> Self {
        Reply { end: true, text: text.into(), secret_next: false }
    }
}

/// An op the caller must run before the journey can go on.
#[derive(Debug)]
pub struct Action {
    pub op: Op,
    pub args: BTreeMap<String, String>,
    /// Sensitive values typed in this same hop (a `pin` step, a `sensitive` input).
    pub secrets: Vec<(String, Secret)>,
    /// The journey's op counter: the caller builds the idempotency key from it.
    pub seq: u32,
}

impl Action {
    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// The secret `name` as a PIN, if it is one.
    pub fn pin(&self, name: &str) -> Option<Pin> {
        self.secret(name).and_then(|s| Pin::parse(s.expose()).ok())
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
    #[error("screen `{0}` returns from a sub-journey, but none was called")]
    ReturnWithoutCall(String),
    #[error("more than {MAX_STEPS} steps without waiting for input, at screen `{0}`")]
    Loop(String),
}
