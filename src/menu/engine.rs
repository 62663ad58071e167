//! The pure step function: (menu, journey, event) → next screen or an op to run.
//!
//! No I/O happens here. When a step needs data or money the engine returns
//! [`Step::Run`]; the caller runs the op and feeds the [`OpResult`] back with
//! [`Menu::resume`].

use std::collections::BTreeMap;

use serde_json::Value;

use super::budget::{Budget, Layout, NavLines, paginate};
use super::graph::{Choice, Items, Menu, NodeKind, Route, ScreenId};
use super::input::{self, Rejected};
use super::journey::{Action, EngineError, Frame, Journey, MAX_STEPS, Reply, Step};
use super::messages::Message;
use super::template::{Tpl, one_line_value, one_line_values};
use crate::domain::{Pin, Secret};
use crate::outcome::{OpResult, Outcome};

/// A screen's lines before pagination: prose, numbered options, navigation.
pub(super) struct Parts {
    pub header: Vec<String>,
    pub options: Vec<String>,
    pub nav: NavLines,
    pub layout: Layout,
}

impl Menu {
    /// Starts a journey on the start screen in `lang` (the menu's default if `None`).
    pub fn begin(&self, lang: Option<&str>) -> Result<(Journey, Step), EngineError> {
        self.begin_within(lang, None, self.flag_defaults())
    }

    /// Starts a journey on a channel whose screens hold at most `channel` (pages are cut
    /// to the smaller of it and the menu's budget), with the flags (bits in the order of
    /// [`Menu::flags`]) on for its subscriber.
    pub fn begin_within(
        &self,
        lang: Option<&str>,
        channel: Option<Budget>,
        flags: u64,
    ) -> Result<(Journey, Step), EngineError> {
        let lang = lang.filter(|l| self.languages.iter().any(|x| x == *l)).unwrap_or(&self.languages[0]);
        let budget = channel.map(|b| b.min(self.budget)).filter(|b| *b != self.budget);
        let flags = (!self.flags.is_empty()).then_some(flags);
        let mut journey = Journey { lang: lang.to_owned(), budget, flags, ..Journey::default() };
        let step = self.go(&mut journey, self.start, None, Vec::new())?;
        Ok((journey, step))
    }

    /// Shows the screen the journey waits on again, from its first page and without an
    /// error line: for a journey continued in another session.
    pub fn show(&self, j: &mut Journey) -> Result<Step, EngineError> {
        j.page = 0;
        j.error = None;
        let id = self.current(j)?;
        // The flags were decided again for this session: a screen one now closes is not
        // shown again.
        if let Some(flag) = self.screens[id.0 as usize].when.filter(|f| !self.flag_on(j, *f)) {
            return self.switched_off(j, flag);
        }
        let pages = self.pages(j, id)?;
        Ok(self.page_reply(j, id, pages))
    }

    /// Applies what the subscriber typed on the current screen.
    pub fn input(&self, j: &mut Journey, raw: &str) -> Result<Step, EngineError> {
        if j.resuming {
            return self.answer_resume(j, raw.trim());
        }
        let id = self.current(j)?;
        let node = &self.screens[id.0 as usize];
        let paging_an_end = matches!(node.kind, NodeKind::End { .. }) && !j.done;
        if !node.kind.waits() && !paging_an_end {
            return Err(EngineError::NotAwaitingInput(j.screen.clone()));
        }
        let key = raw.trim();
        if let Some(step) = self.navigate(j, id, key)? {
            return Ok(step);
        }
        match &node.kind {
            NodeKind::Menu { items, options, .. } => {
                let list = items.as_ref().map(|it| self.list(j, it)).unwrap_or_default();
                match key.parse::<usize>().ok().filter(|n| *n >= 1) {
                    Some(n) if n <= list.len() => {
                        let it = items.as_ref().expect("a list comes from items");
                        j.vars.insert(it.save.clone(), list[n - 1].clone());
                        self.advance(j, it.next, Vec::new())
                    }
                    Some(n)
                        if n - list.len() <= options.len() && self.shows(j, &options[n - list.len() - 1]) =>
                    {
                        self.advance(j, options[n - list.len() - 1].next, Vec::new())
                    }
                    _ => self.reject(j, id, Message::InvalidChoice, None),
                }
            }
            NodeKind::Confirm { yes, no, .. } => match key {
                "1" => self.advance(j, *yes, Vec::new()),
                "2" => self.advance(j, *no, Vec::new()),
                _ => self.reject(j, id, Message::InvalidChoice, None),
            },
            NodeKind::Input { kind, save, next, rules, error, sensitive, .. } => {
                match input::parse(*kind, rules, raw, self.region, &self.currency) {
                    // A sensitive value goes to the op of this hop only, never the session.
                    Ok(value) if *sensitive => {
                        let text = match value {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        self.advance(j, *next, vec![(save.clone(), Secret::new(text))])
                    }
                    Ok(value) => {
                        j.vars.insert(save.clone(), value);
                        self.advance(j, *next, Vec::new())
                    }
                    Err(Rejected(message)) => self.reject(j, id, message, error.as_ref()),
                }
            }
            NodeKind::Pin { name, next, error, .. } => match Pin::parse(raw) {
                Ok(pin) => self.advance(j, *next, vec![(name.clone(), pin.into_secret())]),
                Err(_) => self.reject(j, id, Message::InvalidPin, error.as_ref()),
            },
            // A long `end` still showing its pages takes only More and Back.
            NodeKind::End { .. } => self.reject(j, id, Message::InvalidChoice, None),
            NodeKind::Action { .. } | NodeKind::Router { .. } | NodeKind::Call { .. } | NodeKind::Return => {
                Err(EngineError::NotAwaitingInput(j.screen.clone()))
            }
        }
    }

    /// Goes past the `pin` screen the journey is on without a PIN: the channel has
    /// vouched for the subscriber instead (SMS: the sender's registered number, and for
    /// money a one-time code). The op runs without the secret.
    pub fn vouch(&self, j: &mut Journey) -> Result<Step, EngineError> {
        let id = self.current(j)?;
        let NodeKind::Pin { next, .. } = &self.screens[id.0 as usize].kind else {
            return Err(EngineError::NotAwaitingInput(j.screen.clone()));
        };
        j.error = None;
        self.advance(j, *next, Vec::new())
    }

    /// What SMS asks instead of the PIN on the journey's `pin` screen, with `code` (and
    /// its hand-off dial string); `None` when the screen has no `sms` text.
    pub fn sms_prompt(&self, j: &Journey, code: &str) -> Result<Option<String>, EngineError> {
        let id = self.current(j)?;
        let NodeKind::Pin { sms: Some(tpl), .. } = &self.screens[id.0 as usize].kind else {
            return Ok(None);
        };
        let lang = self.lang_index(&j.lang);
        let dial = self.handoff_dial(code);
        let ctx = minijinja::context! { code => code, dial => dial, ..self.context(j) };
        self.templates
            .render(tpl, lang, &ctx)
            .map(Some)
            .map_err(|source| EngineError::Render { screen: j.screen.clone(), source })
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
        if result.outcome == Outcome::Ok && op.spec().writes {
            j.history.clear();
        }
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
        self.go(j, *next, error, Vec::new())
    }

    fn current(&self, j: &Journey) -> Result<ScreenId, EngineError> {
        self.lookup(&j.screen)
    }

    fn lookup(&self, name: &str) -> Result<ScreenId, EngineError> {
        self.index.get(name).copied().ok_or_else(|| EngineError::UnknownScreen(name.to_owned()))
    }

    /// The reserved keys: More and Back turn pages, then Back returns to the previous
    /// screen; Home starts over from the home screen.
    fn navigate(&self, j: &mut Journey, id: ScreenId, key: &str) -> Result<Option<Step>, EngineError> {
        let keys = &self.keys;
        if key == keys.more {
            let pages = self.pages(j, id)?;
            if usize::from(j.page) + 1 < pages.len() && j.page < u8::MAX {
                j.page += 1;
                return Ok(Some(self.page_reply(j, id, pages)));
            }
            // More past the last page of a paged screen shows that page again, its
            // options in sight, rather than an error over the first page.
            if pages.len() > 1 {
                return Ok(Some(self.page_reply(j, id, pages)));
            }
        } else if key == keys.back {
            if j.page > 0 {
                j.page -= 1;
                let pages = self.pages(j, id)?;
                return Ok(Some(self.page_reply(j, id, pages)));
            }
            if let Some(frame) = j.history.pop() {
                let target = self.lookup(&frame.screen)?;
                j.calls = frame.calls;
                return self.go(j, target, None, Vec::new()).map(Some);
            }
        } else if key == keys.home {
            j.history.clear();
            j.calls.clear();
            return self.go(j, self.home, None, Vec::new()).map(Some);
        }
        Ok(None)
    }

    /// Leaves a waiting screen after valid input, remembering it for Back.
    fn advance(
        &self,
        j: &mut Journey,
        next: ScreenId,
        secrets: Vec<(String, Secret)>,
    ) -> Result<Step, EngineError> {
        j.history.push(Frame { screen: j.screen.clone(), calls: j.calls.clone() });
        self.go(j, next, None, secrets)
    }

    /// Enters `id` and passes through steps that do not wait (routers, calls, returns)
    /// until a screen is shown or an op must run.
    fn go(
        &self,
        j: &mut Journey,
        id: ScreenId,
        error: Option<String>,
        secrets: Vec<(String, Secret)>,
    ) -> Result<Step, EngineError> {
        let mut id = id;
        for _ in 0..MAX_STEPS {
            let node = &self.screens[id.0 as usize];
            if let Some(flag) = node.when.filter(|f| !self.flag_on(j, *f)) {
                return self.switched_off(j, flag);
            }
            if j.screen != node.name {
                j.retries = 0;
            }
            j.screen.clone_from(&node.name);
            j.page = 0;
            match &node.kind {
                NodeKind::Action { op, args, .. } => {
                    j.error = None;
                    j.seq += 1;
                    let mut rendered = BTreeMap::new();
                    for (name, tpl) in args {
                        rendered.insert(name.clone(), self.render(j, tpl)?);
                    }
                    return Ok(Step::Run(Action { op: *op, args: rendered, secrets, seq: j.seq }));
                }
                NodeKind::Router { routes, otherwise } => {
                    id = *otherwise;
                    for (condition, next) in routes {
                        if self.render(j, condition)? == "1" {
                            id = *next;
                            break;
                        }
                    }
                }
                NodeKind::Call { journey, next } => {
                    j.calls.push(self.screens[next.0 as usize].name.clone());
                    id = *journey;
                }
                NodeKind::Return => {
                    let Some(back_to) = j.calls.pop() else {
                        return Err(EngineError::ReturnWithoutCall(j.screen.clone()));
                    };
                    id = self.lookup(&back_to)?;
                }
                NodeKind::Menu { .. }
                | NodeKind::Confirm { .. }
                | NodeKind::Input { .. }
                | NodeKind::Pin { .. }
                | NodeKind::End { .. } => {
                    // Coming back to a screen already in the history forgets the way
                    // since, so that Back leads where it led the first time.
                    if let Some(at) = j.history.iter().position(|f| f.screen == node.name) {
                        j.history.truncate(at);
                    }
                    j.error = error;
                    let pages = self.pages(j, id)?;
                    return Ok(self.page_reply(j, id, pages));
                }
            }
        }
        Err(EngineError::Loop(j.screen.clone()))
    }

    /// The current screen split into pages that each fit the budget.
    pub(super) fn pages(&self, j: &Journey, id: ScreenId) -> Result<Vec<String>, EngineError> {
        let p = self.parts(j, id)?;
        Ok(paginate(&p.header, &p.options, &p.nav, p.layout, self.budget_of(j)))
    }

    /// The budget a journey's screens are cut to.
    pub(super) fn budget_of(&self, j: &Journey) -> Budget {
        j.budget.map_or(self.budget, |b| b.min(self.budget))
    }

    /// What a screen shows before it is split into pages.
    pub(super) fn parts(&self, j: &Journey, id: ScreenId) -> Result<Parts, EngineError> {
        let node = &self.screens[id.0 as usize];
        let mut options: Vec<String> = Vec::new();
        let mut ctx = None;
        let (text, back_on_first, ends) = match &node.kind {
            NodeKind::Menu { text, items, options: static_options } => {
                let mut n = 0;
                if let Some(it) = items {
                    for item in self.list(j, it) {
                        n += 1;
                        options.push(format!("{n}. {}", self.render_item(j, &it.label, &item, &mut ctx)?));
                    }
                }
                // An option switched off leaves its number unused: the others keep the
                // numbers dial-ahead codes and SMS commands type.
                for choice in static_options {
                    n += 1;
                    if self.shows(j, choice) {
                        options.push(format!("{n}. {}", self.render_with(j, &choice.label, &mut ctx)?));
                    }
                }
                (text, !j.history.is_empty(), false)
            }
            NodeKind::Confirm { text, .. } => {
                options.push(format!("1. {}", self.message(j, Message::Yes)?));
                options.push(format!("2. {}", self.message(j, Message::No)?));
                (text, !j.history.is_empty(), false)
            }
            NodeKind::Input { text, .. } | NodeKind::Pin { text, .. } => (text, false, false),
            NodeKind::End { text } => (text, false, true),
            NodeKind::Action { .. } | NodeKind::Router { .. } | NodeKind::Call { .. } | NodeKind::Return => {
                return Err(EngineError::NotAwaitingInput(j.screen.clone()));
            }
        };
        let mut header: Vec<String> = Vec::new();
        if let Some(error) = &j.error {
            header.extend(error.lines().map(str::to_owned));
        }
        header.extend(self.render_with(j, text, &mut ctx)?.lines().map(str::to_owned));
        Ok(Parts { header, options, nav: self.nav_lines(j)?, layout: Layout { back_on_first, ends } })
    }

    /// `98. More` and `0. Back` in the journey's language, with the menu's keys.
    pub(super) fn nav_lines(&self, j: &Journey) -> Result<NavLines, EngineError> {
        Ok(NavLines {
            more: format!("{}. {}", self.keys.more, self.message(j, Message::More)?),
            back: format!("{}. {}", self.keys.back, self.message(j, Message::Back)?),
        })
    }

    /// The page the journey is on; the last page of an `end` closes the session.
    fn page_reply(&self, j: &mut Journey, id: ScreenId, mut pages: Vec<String>) -> Step {
        let last = pages.len().saturating_sub(1);
        let at = usize::from(j.page).min(last);
        j.page = u8::try_from(at).unwrap_or(u8::MAX);
        let text = if pages.is_empty() { String::new() } else { pages.swap_remove(at) };
        if matches!(self.screens[id.0 as usize].kind, NodeKind::End { .. }) && at == last {
            j.done = true;
            Step::Reply(Reply::end(text))
        } else {
            Step::Reply(Reply::con(text))
        }
    }

    fn reject(
        &self,
        j: &mut Journey,
        id: ScreenId,
        message: Message,
        custom: Option<&Tpl>,
    ) -> Result<Step, EngineError> {
        j.retries += 1;
        j.refused_on.push(j.screen.clone());
        let limit = match &self.screens[id.0 as usize].kind {
            NodeKind::Input { retries: Some(n), .. } => *n,
            _ => self.max_retries,
        };
        if j.retries >= limit {
            if let Some(target) = self.too_many_attempts {
                j.history.clear();
                j.calls.clear();
                // A fresh count, even when the target is the screen that gave up.
                j.retries = 0;
                return self.go(j, target, None, Vec::new());
            }
            j.done = true;
            let line = if j.by_sms { Message::TooManyAnswers } else { Message::TooManyAttempts };
            return Ok(Step::Reply(Reply::end(self.message(j, line)?)));
        }
        let line = match custom {
            Some(tpl) => self.render(j, tpl)?,
            None => self.message(j, message)?,
        };
        j.error = Some(line);
        j.page = 0;
        let pages = self.pages(j, id)?;
        Ok(self.page_reply(j, id, pages))
    }

    /// Whether the flag at `place` is on for the journey's subscriber.
    fn flag_on(&self, j: &Journey, place: u8) -> bool {
        j.flags.unwrap_or_else(|| self.flag_defaults()) & (1 << place) != 0
    }

    /// Whether a menu option is offered: its flag and its target's are on.
    fn shows(&self, j: &Journey, choice: &Choice) -> bool {
        let target = self.screens[choice.next.0 as usize].when;
        choice.when.into_iter().chain(target).all(|f| self.flag_on(j, f))
    }

    /// Ends the journey where a flag that is off stands in the way: a screen it keeps
    /// closed, or an op it switches off (the pipeline decides those as the op is about
    /// to run). Nothing ran.
    pub fn switched_off(&self, j: &mut Journey, place: u8) -> Result<Step, EngineError> {
        j.done = true;
        let text = match self.flags.get(usize::from(place)).and_then(|f| f.unavailable.as_ref()) {
            Some(tpl) => self.render(j, tpl)?,
            None => self.message(j, Message::NotAvailable)?,
        };
        Ok(Step::Reply(Reply::end(text)))
    }

    /// A built-in line in the journey's language, as the menu overrides it.
    pub fn message(&self, j: &Journey, message: Message) -> Result<String, EngineError> {
        let unworded = !self.texts.has_lines(&j.lang);
        let own = self
            .messages
            .get(&message)
            .or_else(|| message.stand_in().filter(|_| unworded).and_then(|other| self.messages.get(&other)));
        match own {
            Some(tpl) => self.render(j, tpl),
            None => Ok(self.line(&j.lang, message).to_owned()),
        }
    }

    /// A built-in line as the bundle's texts word it, without the menu's own wording:
    /// what is said when the menu's cannot be rendered.
    pub fn line(&self, lang: &str, message: Message) -> &str {
        self.texts.line(lang, message)
    }

    /// The elements of an `items` list, at most `max` of them.
    fn list(&self, j: &Journey, items: &Items) -> Vec<Value> {
        let mut path = items.from.iter();
        let first = path.next().and_then(|k| j.vars.get(k));
        let found = path.fold(first, |v, k| v.and_then(|v| v.get(k)));
        match found {
            Some(Value::Array(list)) => list.iter().take(items.max).cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Renders over the session variables plus `lang`, the session's language.
    pub(super) fn render(&self, j: &Journey, tpl: &Tpl) -> Result<String, EngineError> {
        let mut ctx = None;
        self.render_with(j, tpl, &mut ctx)
    }

    /// Renders with a context built at most once for several texts of one screen.
    fn render_with(
        &self,
        j: &Journey,
        tpl: &Tpl,
        ctx: &mut Option<minijinja::Value>,
    ) -> Result<String, EngineError> {
        let lang = self.lang_index(&j.lang);
        if let Some(text) = self.templates.plain(tpl, lang) {
            return Ok(text.to_owned());
        }
        if let Some(text) = self.templates.printed(tpl, lang, &j.vars, &j.lang) {
            // Every test run checks the direct way against minijinja's.
            debug_assert_eq!(Some(&text), self.templates.render(tpl, lang, &self.context(j)).ok().as_ref());
            return Ok(text);
        }
        let ctx = ctx.get_or_insert_with(|| self.context(j));
        self.templates
            .render(tpl, lang, ctx)
            .map_err(|source| EngineError::Render { screen: j.screen.clone(), source })
    }

    /// Renders an item label, with the element as `item`.
    fn render_item(
        &self,
        j: &Journey,
        tpl: &Tpl,
        item: &Value,
        ctx: &mut Option<minijinja::Value>,
    ) -> Result<String, EngineError> {
        let lang = self.lang_index(&j.lang);
        if let Some(text) = self.templates.plain(tpl, lang) {
            return Ok(text.to_owned());
        }
        let base = ctx.get_or_insert_with(|| self.context(j)).clone();
        let item = minijinja::Value::from_serialize(&*one_line_value(item));
        let ctx = minijinja::context! { item => item, ..base };
        self.templates
            .render(tpl, lang, &ctx)
            .map_err(|source| EngineError::Render { screen: j.screen.clone(), source })
    }
}

impl Menu {
    /// What templates see: the session variables, each string one visible line, `lang`,
    /// the session's language, and `flag`, whether each declared flag is on.
    fn context(&self, j: &Journey) -> minijinja::Value {
        let vars = minijinja::Value::from_serialize(&*one_line_values(&j.vars));
        if self.flags.is_empty() {
            return minijinja::context! { lang => j.lang.as_str(), ..vars };
        }
        let flag: BTreeMap<&str, bool> =
            self.flags.iter().enumerate().map(|(i, f)| (f.name.as_str(), self.flag_on(j, i as u8))).collect();
        minijinja::context! { lang => j.lang.as_str(), flag => flag, ..vars }
    }
}
