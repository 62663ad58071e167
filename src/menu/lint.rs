//! Checks on a compiled menu's graph and screens: reachability, exits, sub-journeys,
//! reserved keys, and the proof that every screen fits the budget in every language.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::{Map, Value};
use serde_saphyr::Location;

use super::budget::{Encoding, cost};
use super::compile::Diagnostic;
use super::graph::{Menu, NodeKind, ScreenId};
use super::input;
use super::journey::{EngineError, Frame, Journey};
use super::messages::Message;
use super::model::InputKind;
use crate::domain::{PersonName, Pin};
use crate::ops::Op;

struct Lints<'a> {
    menu: &'a Menu,
    file: &'a Path,
    /// The file's text, to place a problem at the line it is about.
    source: &'a str,
    ways: &'a Ways,
    spans: &'a HashMap<String, Location>,
    /// Where each screen leads, before `return`s are resolved.
    plain: Vec<Vec<usize>>,
    out: Vec<Diagnostic>,
}

/// What the compiler knows of the menu's ways beside its graph.
pub(super) struct Ways {
    /// Whether every name led somewhere; if not, what follows from the ways is not
    /// reported (it would blame the author for the placeholder's).
    pub whole: bool,
    /// Every variable a screen of the file saves, compiled or not.
    pub saved: HashSet<String>,
}

/// Every problem the graph and the budget show; empty when the menu may serve.
pub(super) fn lint(
    menu: &Menu,
    file: &Path,
    source: &str,
    spans: &HashMap<String, Location>,
    ways: &Ways,
) -> Vec<Diagnostic> {
    let ways_whole = ways.whole;
    let mut l = Lints { menu, file, source, ways, spans, plain: Vec::new(), out: Vec::new() };
    l.plain = l.edges(&HashMap::new());
    let reported = l.out.len();
    let returns_to = l.sub_journeys();
    if !ways_whole {
        l.out.truncate(reported);
    }
    let edges = l.edges(&returns_to);
    if ways_whole {
        l.reachability(&edges);
        l.loops_without_input(&edges);
    }
    l.reserved_keys();
    l.budget();
    l.out
}

impl Lints<'_> {
    fn error(&mut self, screen: usize, message: String, hint: impl Into<Option<String>>) {
        let name = &self.menu.screens[screen].name;
        let at = self.spans.get(name).copied().unwrap_or(Location::UNKNOWN);
        self.out.push(Diagnostic {
            file: self.file.to_path_buf(),
            line: at.line(),
            column: at.column(),
            message,
            hint: hint.into(),
        });
    }

    /// As `error`, placed at the first line of the screen that holds `needle` (a
    /// variable's name, `text:`), when one does.
    fn error_at(&mut self, screen: usize, needle: &str, message: String, hint: Option<String>) {
        self.error(screen, message, hint);
        let Some(d) = self.out.last_mut() else { return };
        // The screen's lines: from its own to the next screen's.
        let next = self.spans.values().map(|l| l.line()).filter(|l| *l > d.line).min().unwrap_or(u64::MAX);
        let found =
            self.source.lines().enumerate().skip(d.line.saturating_sub(1) as usize).find_map(|(i, l)| {
                let line = i as u64 + 1;
                (line < next).then(|| find_word(l, needle).map(|c| (line, c as u64 + 1))).flatten()
            });
        if let Some((line, column)) = found {
            (d.line, d.column) = (line, column);
        }
    }

    fn name(&self, id: usize) -> &str {
        &self.menu.screens[id].name
    }

    /// Where each screen leads without the subscriber's keys; a `return` leads to the
    /// `next` of every call whose sub-journey reaches it.
    fn edges(&self, returns_to: &HashMap<usize, Vec<usize>>) -> Vec<Vec<usize>> {
        let id = |s: &ScreenId| s.0 as usize;
        self.menu
            .screens
            .iter()
            .enumerate()
            .map(|(i, node)| match &node.kind {
                NodeKind::Menu { items, options, .. } => {
                    items.iter().map(|it| id(&it.next)).chain(options.iter().map(|o| id(&o.next))).collect()
                }
                NodeKind::Confirm { yes, no, .. } => vec![id(yes), id(no)],
                NodeKind::Input { next, .. } | NodeKind::Pin { next, .. } => vec![id(next)],
                NodeKind::Action { routes, other, .. } => {
                    routes.values().chain(other.iter()).map(|r| id(&r.next)).collect()
                }
                NodeKind::Router { routes, otherwise } => {
                    routes.iter().map(|(_, n)| id(n)).chain([id(otherwise)]).collect()
                }
                NodeKind::Call { journey, .. } => vec![id(journey)],
                NodeKind::Return => returns_to.get(&i).cloned().unwrap_or_default(),
                NodeKind::End { .. } => Vec::new(),
            })
            .collect()
    }

    /// Screens reachable from `from` without entering a sub-journey: a `call` leads to
    /// its `next`, a `return` nowhere.
    fn region(&self, from: usize) -> HashSet<usize> {
        let mut seen = HashSet::from([from]);
        let mut todo = vec![from];
        while let Some(i) = todo.pop() {
            let next: Vec<usize> = match &self.menu.screens[i].kind {
                NodeKind::Call { next, .. } => vec![next.0 as usize],
                NodeKind::Return => Vec::new(),
                _ => self.plain[i].clone(),
            };
            for n in next {
                if seen.insert(n) {
                    todo.push(n);
                }
            }
        }
        seen
    }

    /// Checks every `call` and `return`; gives each `return` the screens it goes back to.
    fn sub_journeys(&mut self) -> HashMap<usize, Vec<usize>> {
        let mut returns_to: HashMap<usize, Vec<usize>> = HashMap::new();
        for i in 0..self.menu.screens.len() {
            let NodeKind::Call { journey, next } = self.menu.screens[i].kind else { continue };
            let region = self.region(journey.0 as usize);
            let returns: Vec<usize> = region
                .iter()
                .copied()
                .filter(|r| matches!(self.menu.screens[*r].kind, NodeKind::Return))
                .collect();
            if returns.is_empty() {
                let callee = self.name(journey.0 as usize).to_owned();
                self.error(
                    i,
                    format!("screen `{}` calls `{callee}`, which never reaches a `return`", self.name(i)),
                    Some("end the sub-journey with a `return: {}` screen, or use a plain `next`".into()),
                );
            }
            for r in returns {
                returns_to.entry(r).or_default().push(next.0 as usize);
            }
        }
        let roots = [Some(self.menu.start), Some(self.menu.home), self.menu.too_many_attempts];
        for root in roots.into_iter().flatten() {
            let mut outside: Vec<usize> = self
                .region(root.0 as usize)
                .into_iter()
                .filter(|r| matches!(self.menu.screens[*r].kind, NodeKind::Return))
                .collect();
            outside.sort_unstable();
            for r in outside {
                self.error(
                    r,
                    format!("`return` screen `{}` is reached without a `call`", self.name(r)),
                    Some("reach it only from a sub-journey started by a `call` screen".into()),
                );
            }
        }
        returns_to
    }

    fn reachability(&mut self, edges: &[Vec<usize>]) {
        let mut seen = vec![false; edges.len()];
        let mut todo: Vec<usize> = [Some(self.menu.start), Some(self.menu.home), self.menu.too_many_attempts]
            .into_iter()
            .flatten()
            .map(|s| s.0 as usize)
            .collect();
        while let Some(i) = todo.pop() {
            if !std::mem::replace(&mut seen[i], true) {
                todo.extend(&edges[i]);
            }
        }
        for (i, reached) in seen.iter().enumerate() {
            if !reached {
                self.error(
                    i,
                    format!("screen `{}` is unreachable", self.name(i)),
                    Some("lead to it from a menu, route or `next`, or delete it".into()),
                );
            }
        }
        // Screens from which no `end` can be reached: loops without exit, dead ends.
        let mut reverse = vec![Vec::new(); edges.len()];
        for (from, tos) in edges.iter().enumerate() {
            for to in tos {
                reverse[*to].push(from);
            }
        }
        let mut ends_reachable = vec![false; edges.len()];
        let mut todo: Vec<usize> =
            (0..edges.len()).filter(|i| matches!(self.menu.screens[*i].kind, NodeKind::End { .. })).collect();
        while let Some(i) = todo.pop() {
            if !std::mem::replace(&mut ends_reachable[i], true) {
                todo.extend(&reverse[i]);
            }
        }
        for i in 0..edges.len() {
            if seen[i] && !ends_reachable[i] {
                self.error(
                    i,
                    format!("no way from screen `{}` leads to an `end`: a loop without exit", self.name(i)),
                    Some("give the loop an option or outcome that reaches an `end` screen".into()),
                );
            }
        }
    }

    /// Cycles through steps that never wait for input would spin within one hop.
    fn loops_without_input(&mut self, edges: &[Vec<usize>]) {
        let transient = |i: usize| {
            matches!(
                self.menu.screens[i].kind,
                NodeKind::Action { .. } | NodeKind::Router { .. } | NodeKind::Call { .. } | NodeKind::Return
            )
        };
        // 0 = unvisited, 1 = on the path, 2 = done.
        let mut state = vec![0u8; edges.len()];
        let mut reported = HashSet::new();
        for root in 0..edges.len() {
            if !transient(root) || state[root] != 0 {
                continue;
            }
            let mut stack = vec![(root, 0usize)];
            state[root] = 1;
            while let Some((node, at)) = stack.pop() {
                let next = edges[node].iter().copied().filter(|n| transient(*n)).nth(at);
                match next {
                    Some(n) => {
                        stack.push((node, at + 1));
                        if state[n] == 1 {
                            if reported.insert(n) {
                                let path: Vec<&str> = stack
                                    .iter()
                                    .map(|(s, _)| *s)
                                    .skip_while(|s| *s != n)
                                    .map(|s| self.name(s))
                                    .collect();
                                let message = format!(
                                    "steps {} → {} loop without asking the subscriber anything",
                                    path.join(" → "),
                                    self.name(n)
                                );
                                let hint = "put a screen that waits for input inside the loop".to_owned();
                                self.error(n, message, hint);
                            }
                        } else if state[n] == 0 {
                            state[n] = 1;
                            stack.push((n, 0));
                        }
                    }
                    None => state[node] = 2,
                }
            }
        }
    }

    /// A reserved key must never be an answer a screen would accept.
    fn reserved_keys(&mut self) {
        let keys = &self.menu.keys;
        let all = [("back", keys.back.clone()), ("home", keys.home.clone()), ("more", keys.more.clone())];
        for i in 0..self.menu.screens.len() {
            let clashes: Vec<(&str, String)> = match &self.menu.screens[i].kind {
                NodeKind::Menu { items, options, .. } => {
                    let count = items.as_ref().map_or(0, |it| it.max) + options.len();
                    all.iter()
                        .filter(|(_, k)| k.parse::<usize>().is_ok_and(|n| (1..=count).contains(&n)))
                        .map(|(name, k)| (*name, format!("option {k} of {count}")))
                        .collect()
                }
                NodeKind::Confirm { .. } => all
                    .iter()
                    .filter(|(_, k)| k == "1" || k == "2")
                    .map(|(name, k)| (*name, format!("answer {k}")))
                    .collect(),
                NodeKind::Input { kind, rules, .. } => all[..2]
                    .iter()
                    .filter(|(_, k)| {
                        input::parse(*kind, rules, k, self.menu.region, &self.menu.currency).is_ok()
                    })
                    .map(|(name, k)| (*name, format!("the valid input `{k}`")))
                    .collect(),
                NodeKind::Pin { .. } => all[..2]
                    .iter()
                    .filter(|(_, k)| Pin::parse(k).is_ok())
                    .map(|(name, k)| (*name, format!("the PIN `{k}`")))
                    .collect(),
                _ => Vec::new(),
            };
            for (key, what) in clashes {
                self.error(
                    i,
                    format!("on screen `{}`, {what} is also the `{key}` key", self.name(i)),
                    Some(format!(
                        "change `navigation.{key}`, or narrow the screen (fewer options, `min`/`min_length`)"
                    )),
                );
            }
        }
    }

    /// Renders every screen over the longest values its variables can hold, in every
    /// language, and checks what must fit: a prompt on one page, each option on a page.
    fn budget(&mut self) {
        let menu = self.menu;
        let (vars, results) = samples(menu);
        let mut via: HashMap<usize, Vec<Op>> = HashMap::new();
        let mut route_errors: HashMap<usize, Vec<&super::template::Tpl>> = HashMap::new();
        for node in &menu.screens {
            if let NodeKind::Action { op, routes, other, .. } = &node.kind {
                for r in routes.values().chain(other.iter()) {
                    via.entry(r.next.0 as usize).or_default().push(*op);
                    if let Some(e) = &r.error {
                        route_errors.entry(r.next.0 as usize).or_default().push(e);
                    }
                }
            }
        }
        for (i, node) in menu.screens.iter().enumerate() {
            let prompt = matches!(node.kind, NodeKind::Input { .. } | NodeKind::Pin { .. });
            let shown = prompt
                || matches!(
                    node.kind,
                    NodeKind::Menu { .. } | NodeKind::Confirm { .. } | NodeKind::End { .. }
                );
            if !shown {
                continue;
            }
            // Straight after an op its own data; by any other way, what any op left.
            let mut result_samples: Vec<Value> =
                via.get(&i).map(|ops| ops.iter().map(|op| op.sample()).collect()).unwrap_or_default();
            result_samples.push(results.clone());
            for lang in &menu.languages {
                let base = Journey {
                    screen: node.name.clone(),
                    lang: lang.clone(),
                    history: vec![Frame::default()],
                    // Every option offered: the longest each screen can be.
                    flags: Some(u64::MAX),
                    ..Journey::default()
                };
                let mut errors: Vec<Option<String>> = vec![None];
                if prompt {
                    let builtin = match &node.kind {
                        NodeKind::Input { kind, .. } => input_message(*kind),
                        _ => Message::InvalidPin,
                    };
                    let custom = match &node.kind {
                        NodeKind::Input { error, .. } | NodeKind::Pin { error, .. } => error.as_ref(),
                        _ => None,
                    };
                    let mut j = base.clone();
                    j.vars = vars.clone();
                    j.vars.insert("result".into(), results.clone());
                    let mut lines = vec![menu.message(&j, builtin).ok()];
                    for tpl in custom.into_iter().chain(route_errors.get(&i).into_iter().flatten().copied()) {
                        lines.push(menu.render(&j, tpl).ok());
                    }
                    errors.extend(lines.into_iter().flatten().map(Some));
                }
                for result in &result_samples {
                    for error in &errors {
                        let mut j = base.clone();
                        j.vars = vars.clone();
                        j.vars.insert("result".into(), result.clone());
                        j.error = error.clone();
                        if let Err(problem) = self.check_screen(i, &j, prompt) {
                            // A variable some screen saves may be missing only for a
                            // way, or an op's save, that a misspelt name lost.
                            let mut named = problem.split('`').skip(1).step_by(2).peekable();
                            let explained =
                                named.peek().is_some() && named.all(|v| self.ways.saved.contains(v));
                            if !self.ways.whole && problem.starts_with("a text reads") && explained {
                                break;
                            }
                            let hint = if problem.starts_with("a text reads") {
                                Some("save it on a screen every way here passes (`save:` on an input, an action or a menu of items), or correct the name".into())
                            } else {
                                hint(prompt)
                            };
                            // At the variable a text reads, else at the screen's text.
                            let needle =
                                problem.split('`').nth(1).filter(|_| problem.starts_with("a text reads"));
                            let needle = needle.unwrap_or("text:").to_owned();
                            let message = format!("screen `{}` in `{lang}`: {problem}", node.name);
                            self.error_at(i, &needle, message, hint);
                            break;
                        }
                    }
                }
            }
        }
        // One report per screen and problem is enough.
        let mut seen = HashSet::new();
        self.out.retain(|d| seen.insert((d.line, d.column, d.message.clone())));
    }

    fn check_screen(&self, i: usize, j: &Journey, prompt: bool) -> Result<(), String> {
        let menu = self.menu;
        let parts = menu.parts(j, ScreenId(i as u16)).map_err(|e| match &e {
            // Name what is missing: minijinja says only "undefined value (in t3:1)".
            EngineError::Render { source, .. } if source.kind() == minijinja::ErrorKind::UndefinedError => {
                let missing: Vec<String> = source
                    .name()
                    .map(|name| menu.templates.reads(name))
                    .unwrap_or_default()
                    .into_iter()
                    // `item` is a menu of items' own element, not a saved variable.
                    .filter(|v| v != "lang" && v != "item" && !j.vars.contains_key(v))
                    .map(|v| format!("`{v}`"))
                    .collect();
                match missing.as_slice() {
                    [] => "a text reads a value no screen saves".to_owned(),
                    [one] => format!("a text reads {one}, which no screen before it saves"),
                    many => format!("a text reads {}, which no screen before it saves", many.join(", ")),
                }
            }
            _ => format!("cannot render with the variables the menu saves: {}", first_line(&e.to_string())),
        })?;
        let budget = menu.budget;
        if prompt {
            let whole = parts.header.join("\n");
            if !budget.fits(&whole) {
                let c = cost(&whole);
                return Err(format!(
                    "a prompt can reach {} {} units with the longest values (budget {} GSM-7 / {} UCS-2); it must fit one screen",
                    c.units,
                    match c.encoding {
                        Encoding::Gsm7 => "GSM-7",
                        Encoding::Ucs2 => "UCS-2",
                    },
                    budget.gsm7,
                    budget.ucs2
                ));
            }
        }
        let nav = format!("{}\n{}", parts.nav.more, parts.nav.back);
        for option in &parts.options {
            if !budget.fits(&format!("{option}\n{nav}")) {
                return Err(format!("option `{option}` is too long to share a page with More and Back"));
            }
        }
        Ok(())
    }
}

/// Where `word` stands alone in `line` (`who` in `{{ who }}`, not in `whom`).
fn find_word(line: &str, word: &str) -> Option<usize> {
    let part = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    line.match_indices(word)
        .map(|(at, _)| at)
        .find(|&at| !part(line[..at].chars().next_back()) && !part(line[at + word.len()..].chars().next()))
}

fn hint(prompt: bool) -> Option<String> {
    Some(if prompt {
        "shorten the text, or cap what it shows (`max_length`, `max`); show long details on a menu or end screen, which paginate".into()
    } else {
        "shorten the label or the values it shows".into()
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_owned()
}

fn input_message(kind: InputKind) -> Message {
    match kind {
        InputKind::Digits => Message::InvalidDigits,
        InputKind::Amount => Message::InvalidAmount,
        InputKind::Msisdn => Message::InvalidMsisdn,
        InputKind::Name => Message::InvalidName,
        InputKind::Text => Message::InvalidText,
    }
}

/// The longest value every session variable can hold, and the merged data of every op
/// the menu runs (for `result` on screens not reached straight from an op).
fn samples(menu: &Menu) -> (Map<String, Value>, Value) {
    let mut vars = Map::new();
    let mut results = Map::new();
    for node in &menu.screens {
        match &node.kind {
            // A sensitive value is never a session variable: templates cannot show it.
            NodeKind::Input { sensitive: true, .. } => {}
            NodeKind::Input { kind, save, rules, .. } => {
                let long = |default: usize| rules.max_length.unwrap_or(default);
                let value = match kind {
                    // Without `max_length`, as long as a USSD input can be.
                    InputKind::Digits => Value::from("9".repeat(long(182))),
                    InputKind::Amount => Value::from(rules.max.unwrap_or(99_999_999_99)),
                    InputKind::Msisdn => Value::from(format!("+{}", "9".repeat(15))),
                    InputKind::Name => Value::from("ũ".repeat(long(PersonName::MAX))),
                    InputKind::Text => Value::from("ũ".repeat(long(182))),
                };
                vars.insert(save.clone(), value);
            }
            NodeKind::Action { op, save, .. } => {
                let sample = op.sample();
                if let Value::Object(fields) = &sample {
                    for (k, v) in fields {
                        results.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                if let Some(save) = save {
                    vars.insert(save.clone(), sample);
                }
            }
            _ => {}
        }
    }
    let results = Value::Object(results);
    // Chosen items: the first element of the list they come from.
    for node in &menu.screens {
        if let NodeKind::Menu { items: Some(it), .. } = &node.kind {
            let mut path = it.from.iter();
            let root = path.next().and_then(|k| if k == "result" { Some(&results) } else { vars.get(k) });
            let list = path.fold(root, |v, k| v.and_then(|v| v.get(k)));
            let first = list.and_then(|l| l.get(0)).cloned().unwrap_or(Value::Null);
            vars.insert(it.save.clone(), first);
        }
    }
    (vars, results)
}
