//! The screens of a menu file, each checked and compiled into a node of the graph.

use std::collections::{BTreeMap, HashMap};

use serde_saphyr::{Location, Spanned};

use super::sms::mentions;
use super::{Ctx, check_var_name, clone_text, edit_distance, suggest};
use crate::domain::Currency;
use crate::menu::graph::{Choice, Items, NodeKind, Route, ScreenId};
use crate::menu::input::Rules;
use crate::menu::model::{self, InputKind, Screen, Text};
use crate::menu::template::{Templates, Tpl};
use crate::ops::Op;
use crate::outcome::Outcome;

/// What compiling one menu file carries from screen to screen.
pub(super) struct Builder<'a> {
    pub cx: Ctx<'a>,
    pub screens: &'a BTreeMap<String, Spanned<Screen>>,
    pub sms: Option<&'a model::SmsDecl>,
    pub index: HashMap<String, ScreenId>,
    pub templates: Templates,
    pub currency: Currency,
    /// The declared flags' places, by name.
    pub flags: HashMap<String, u8>,
    /// Whether a screen, op or outcome name led nowhere: the graph's ways are then not
    /// the author's, and what follows from them (unreachable screens, variables never
    /// saved, sub-journeys that never return) is not reported.
    pub unresolved: bool,
}

impl Builder<'_> {
    /// The screen `target` names, or a diagnostic with the closest names.
    pub fn resolve(&mut self, target: &Spanned<String>) -> ScreenId {
        if let Some(id) = self.index.get(&target.value) {
            return *id;
        }
        let hint = suggest(&target.value, self.index.keys());
        self.cx.error(target.referenced, format!("no screen named `{}`", target.value), hint);
        self.unresolved = true;
        ScreenId(0)
    }

    /// A text compiled as a template in every language, or a diagnostic.
    pub fn tpl(&mut self, text: &Spanned<Text>, what: &str) -> Tpl {
        let sources = self.cx.sources(text, what);
        self.templates.add(sources).unwrap_or_else(|e| {
            self.cx.error(
                text.referenced,
                format!("{what}: template error: {e}"),
                Some("templates use minijinja syntax: {{ name }}, {{ amount|money }}".into()),
            );
            Tpl::empty()
        })
    }

    pub fn screen(&mut self, name: &str, screen: &Spanned<Screen>) -> NodeKind {
        let at = screen.referenced;
        let what = format!("screen `{name}`");
        match &screen.value {
            Screen::Menu(s) => self.menu(at, &what, s),
            Screen::Confirm(s) => NodeKind::Confirm {
                text: self.tpl(&s.text, &what),
                yes: self.resolve(&s.yes),
                no: self.resolve(&s.no),
            },
            Screen::Router(s) => {
                let mut routes = Vec::with_capacity(s.routes.len());
                for r in &s.routes {
                    self.tested_flags(&r.condition, &what);
                    let source = format!("{{% if {} %}}1{{% endif %}}", r.condition.value);
                    let text = Spanned::new(Text::Same(source), r.condition.referenced, r.condition.defined);
                    routes.push((self.tpl(&text, &what), self.resolve(&r.next)));
                }
                NodeKind::Router { routes, otherwise: self.resolve(&s.otherwise) }
            }
            Screen::Call(s) => {
                NodeKind::Call { journey: self.resolve(&s.journey), next: self.resolve(&s.next) }
            }
            Screen::Return(_) => NodeKind::Return,
            Screen::Input(s) => self.input(at, &what, s),
            Screen::Pin(s) => self.pin(at, &what, s),
            Screen::Action(s) => self.action(name, &what, s),
            Screen::End(s) => NodeKind::End { text: self.tpl(&s.text, &what) },
        }
    }

    /// A `menu` screen: options, or items from a list in the session.
    fn menu(&mut self, at: Location, what: &str, s: &model::MenuStep) -> NodeKind {
        if s.options.is_empty() && s.items.is_none() {
            self.cx.error(
                at,
                format!("{what} has no options"),
                Some("add options or items, or make it an `end` screen".into()),
            );
        }
        let items = s.items.as_ref().map(|it| {
            check_var_name(&mut self.cx, it.from.referenced, &it.save, what);
            let from: Vec<String> = it.from.value.split('.').map(str::to_owned).collect();
            if from.iter().any(|p| p.is_empty()) {
                self.cx.error(
                    it.from.referenced,
                    format!("{what}: `{}` is not a path to a list", it.from.value),
                    Some("write the variable and its fields with dots, e.g. `result.entries`".into()),
                );
            }
            if it.max == 0 {
                self.cx.error(it.from.referenced, format!("{what}: `max` must be at least 1"), None);
            }
            Items {
                from,
                label: self.tpl(&it.label, what),
                save: it.save.clone(),
                next: self.resolve(&it.next),
                max: usize::from(it.max),
            }
        });
        let options = s
            .options
            .iter()
            .map(|o| Choice {
                label: self.tpl(&o.label, what),
                next: self.resolve(&o.next),
                when: self.when(o.when.as_ref(), what),
            })
            .collect();
        NodeKind::Menu { text: self.tpl(&s.text, what), items, options }
    }

    /// An `input` screen: its kind's rules, and a `sensitive` value only for an op
    /// that takes it as a secret.
    fn input(&mut self, at: Location, what: &str, s: &model::InputStep) -> NodeKind {
        let scale = 10_i64.pow(self.currency.exponent.min(4));
        let to_value = |v: Option<u64>| -> Option<i64> {
            let v = i64::try_from(v?).ok()?;
            Some(if s.kind == InputKind::Amount { v.saturating_mul(scale) } else { v })
        };
        let pattern = s.pattern.as_ref().and_then(|p| {
            if !matches!(s.kind, InputKind::Text | InputKind::Digits) {
                self.cx.error(
                    p.referenced,
                    format!("{what}: `pattern` applies to `text` and `digits` inputs only"),
                    None,
                );
            }
            regex::Regex::new(&format!("^(?:{})$", p.value))
                .map_err(|e| {
                    self.cx.error(
                        p.referenced,
                        format!("{what}: `pattern` is not a valid regular expression"),
                        // The regex crate's message is several lines; the reason is last.
                        Some(regex_reason(&e.to_string())),
                    )
                })
                .ok()
        });
        let rules = Rules {
            min: to_value(s.min),
            max: to_value(s.max),
            min_length: s.min_length,
            max_length: s.max_length,
            pattern,
        };
        if let (Some(lo), Some(hi)) = (rules.min, rules.max)
            && lo > hi
        {
            self.cx.error(at, format!("{what}: `min` is greater than `max`"), None);
        }
        if !matches!(s.kind, InputKind::Digits | InputKind::Name | InputKind::Text)
            && (s.min_length.is_some() || s.max_length.is_some())
        {
            self.cx.error(
                at,
                format!("{what}: `min_length`/`max_length` apply to `digits`, `name` and `text` inputs only"),
                None,
            );
        }
        if s.retries == Some(0) {
            self.cx.error(at, format!("{what}: `retries` must be at least 1"), None);
        }
        check_var_name(&mut self.cx, at, &s.save, what);
        if s.sensitive {
            let takes_it = match self.screens.get(&s.next.value).map(|sc| &sc.value) {
                Some(Screen::Action(a)) => {
                    Op::from_name(&a.op.value).is_some_and(|op| op.spec().secrets.contains(&s.save.as_str()))
                }
                _ => false,
            };
            if self.index.contains_key(&s.next.value) && !takes_it {
                self.cx.error(
                        s.next.referenced,
                        format!("{what}: a `sensitive` input must lead straight to an `action` whose op takes `{}` as a secret", s.save),
                        Some("the value is kept for this hop only; ops and the secrets they take are listed in docs/menus.md".into()),
                    );
            }
        }
        NodeKind::Input {
            text: self.tpl(&s.text, what),
            kind: s.kind,
            save: s.save.clone(),
            next: self.resolve(&s.next),
            rules,
            error: s.error.as_ref().map(|e| self.tpl(e, what)),
            retries: s.retries,
            sensitive: s.sensitive,
        }
    }

    /// A `pin` screen: straight before its op, and over SMS a text that offers a way on.
    fn pin(&mut self, at: Location, what: &str, s: &model::PinStep) -> NodeKind {
        let next_is_action =
            matches!(self.screens.get(&s.next.value).map(|sc| &sc.value), Some(Screen::Action(_)));
        if self.index.contains_key(&s.next.value) && !next_is_action {
            self.cx.error(
                s.next.referenced,
                format!("{what}: a `pin` must lead straight to an `action`"),
                Some(
                    "the PIN is kept for this hop only, so the op that checks it must run right after it"
                        .into(),
                ),
            );
        }
        let moves_money = match self.screens.get(&s.next.value).map(|sc| &sc.value) {
            Some(Screen::Action(a)) => Op::from_name(&a.op.value).is_some_and(|op| op.spec().moves_money()),
            _ => false,
        };
        if moves_money && s.sms.is_none() && self.sms.is_some_and(|d| !d.commands.is_empty()) {
            self.cx.error(
                    at,
                    format!("{what}: this PIN screen moves money and the menu has SMS commands, but it has no `sms` text"),
                    Some("no PIN travels by SMS: write what SMS asks instead, e.g. sms: \"Reply YES {{ code }} to send {{ amount|money }} to {{ to|mask }}\"".into()),
                );
        }
        let by_reply = s.sms.as_ref().is_some_and(|t| mentions(t, "code"));
        let by_dial = s.sms.as_ref().is_some_and(|t| mentions(t, "dial"));
        if let Some(sms) = s.sms.as_ref().filter(|_| !by_reply && !by_dial) {
            self.cx.error(
                    sms.referenced,
                    format!("{what}: the `sms` text offers no way to go on"),
                    Some("say {{ code }} (the subscriber replies YES and the code) or {{ dial }} (they finish on USSD with the PIN), or both".into()),
                );
        }
        if by_dial && self.sms.is_none_or(|d| d.handoff.is_none()) {
            self.cx.error(
                s.sms.as_ref().map_or(at, |t| t.referenced),
                format!("{what}: the `sms` text says {{{{ dial }}}}, but the menu has no `sms.handoff` code"),
                Some("add e.g. sms: { handoff: \"*384*9#\" } (one of `codes` with digits after it)".into()),
            );
        }
        NodeKind::Pin {
            text: self.tpl(&s.text, what),
            name: s.save.clone(),
            next: self.resolve(&s.next),
            error: s.error.as_ref().map(|e| self.tpl(e, what)),
            sms: s.sms.as_ref().map(|t| self.tpl(t, &format!("{what} (sms)"))),
            by_reply,
            by_dial,
        }
    }

    /// An `action` step: its op known, its arguments and secrets supplied, every
    /// outcome routed.
    fn action(&mut self, name: &str, what: &str, s: &model::ActionStep) -> NodeKind {
        let Some(op) = Op::from_name(&s.op.value) else {
            let known: Vec<_> = crate::ops::Op::all().map(crate::ops::Op::name).collect();
            let closest = known.iter().min_by_key(|k| edit_distance(k, &s.op.value));
            let hint = match closest {
                Some(k) if edit_distance(k, &s.op.value) <= 3 => format!("did you mean `{k}`?"),
                _ => format!("known ops: {}", known.join(", ")),
            };
            self.cx.error(s.op.referenced, format!("{what}: unknown op `{}`", s.op.value), Some(hint));
            // Its outcomes' ways are lost with it.
            self.unresolved = true;
            return NodeKind::End { text: Tpl::empty() };
        };
        let spec = op.spec();
        for (arg, value) in &s.args {
            if !spec.args.contains(&arg.as_str()) {
                self.cx.error(
                    value.referenced,
                    format!("{what}: op `{op}` takes no argument `{arg}`"),
                    Some(format!("its arguments: [{}]", spec.args.join(", "))),
                );
            }
        }
        for required in spec.args {
            if !s.args.contains_key(*required) {
                self.cx.error(
                    s.op.referenced,
                    format!("{what}: op `{op}` needs the argument `{required}`"),
                    None,
                );
            }
        }
        for secret in spec.secrets {
            let fed = self.screens.values().any(|sc| match &sc.value {
                Screen::Pin(p) => p.next.value == name && p.save == *secret,
                Screen::Input(i) => i.sensitive && i.next.value == name && i.save == *secret,
                _ => false,
            });
            if !fed {
                let (what_kind, hint) = if secret.contains("pin") {
                    (
                        "a PIN but no `pin` screen",
                        format!("add a `pin` screen with `next:` pointing here and `save: {secret}`"),
                    )
                } else {
                    (
                        "a sensitive value but no `sensitive` input",
                        format!(
                            "add an `input` with `sensitive: true`, `save: {secret}` and `next:` pointing here"
                        ),
                    )
                };
                self.cx.error(
                    s.op.referenced,
                    format!("{what}: op `{op}` needs {what_kind} leads to it (`{secret}`)"),
                    Some(hint),
                );
            }
        }
        let (routes, other) = self.routes(what, op, s);
        if let Some(save) = &s.save {
            check_var_name(&mut self.cx, s.op.referenced, save, what);
        }
        let mut args = Vec::new();
        for (name, value) in &s.args {
            let text = Spanned::new(Text::Same(value.value.clone()), value.referenced, value.defined);
            args.push((name.clone(), self.tpl(&text, what)));
        }
        let lang = s.lang.as_ref().map(|l| {
            let text = Spanned::new(Text::Same(l.value.clone()), l.referenced, l.defined);
            self.tpl(&text, what)
        });
        NodeKind::Action { op, args, save: s.save.clone(), routes, other, lang }
    }

    /// The screens an action's outcomes lead to: each outcome of its op, or `other`.
    fn routes(
        &mut self,
        what: &str,
        op: Op,
        s: &model::ActionStep,
    ) -> (HashMap<Outcome, Route>, Option<Route>) {
        let spec = op.spec();
        let mut routes = HashMap::new();
        let mut other = None;
        for (key, route) in &s.on {
            let (target, error) = match &route.value {
                model::Route::Screen(t) => (t.clone(), None),
                model::Route::WithError { next, error } => (next.clone(), Some(error)),
            };
            let target = self.resolve(&Spanned::new(target, route.referenced, route.defined));
            let error =
                error.map(|e| self.tpl(&Spanned::new(clone_text(e), route.referenced, route.defined), what));
            let compiled = Route { next: target, error };
            if key == "other" {
                other = Some(compiled);
                continue;
            }
            match Outcome::from_name(key).filter(|o| spec.outcomes.contains(o)) {
                Some(outcome) => {
                    routes.insert(outcome, compiled);
                }
                None => {
                    let names: Vec<_> = spec.outcomes.iter().map(|o| o.as_str()).collect();
                    self.cx.error(
                        route.referenced,
                        format!("{what}: op `{op}` has no outcome `{key}`"),
                        Some(format!("its outcomes: {}, or `other`", names.join(", "))),
                    );
                    // The screen it routes to loses this way in.
                    self.unresolved = true;
                }
            }
        }
        if other.is_none() {
            let missing: Vec<_> =
                spec.outcomes.iter().filter(|o| !routes.contains_key(o)).map(|o| o.as_str()).collect();
            if !missing.is_empty() {
                self.cx.error(
                    s.op.referenced,
                    format!("{what}: outcomes of `{op}` not routed: {}", missing.join(", ")),
                    Some("route each under `on:`, or add `other: <screen>`".into()),
                );
            }
        }
        (routes, other)
    }
}

/// The reason in a regex parse error ("unclosed character class"), without the
/// pattern and caret drawn above it.
fn regex_reason(message: &str) -> String {
    let last = message.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(message);
    last.trim().strip_prefix("error: ").unwrap_or(last.trim()).to_owned()
}
