//! Turns a parsed menu file into a checked, index-based graph, or into diagnostics that
//! name the file, line and column of every problem.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::{Location, Spanned};

use super::budget::Budget;
use super::graph::{Command, DialPart, Handoff, Items, Keys, Menu, Node, NodeKind, Resume, Route, ScreenId};
use super::input::Rules;
use super::messages::{Message, SHIPPED};
use super::model::{self, InputKind, MenuFile, Screen, Text};
use super::template::{Templates, Tpl};
use crate::domain::{Currency, Region, is_service_code};
use crate::ops::Op;
use crate::outcome::Outcome;

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

/// Parses and compiles one menu file's text.
pub fn compile(file: &Path, source: &str) -> Result<Menu, Vec<Diagnostic>> {
    let parsed: MenuFile = serde_saphyr::from_str(source).map_err(|e| {
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
    })?;
    let version = crate::menu::content_version(source);
    build(file, source, parsed, version)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_owned()
}

fn build(file: &Path, source: &str, m: MenuFile, version: String) -> Result<Menu, Vec<Diagnostic>> {
    let languages = m.languages.clone();
    let mut cx = Ctx { file, source, languages: &languages, diagnostics: Vec::new() };
    if languages.is_empty() {
        cx.error_at_key(
            "languages",
            "`languages` is empty",
            Some("list at least one language, e.g. `languages: [en]`".into()),
        );
        return Err(cx.diagnostics);
    }
    let region = Region::parse(&m.region.value).unwrap_or_else(|e| {
        cx.error(m.region.referenced, e, None);
        Region::parse("KE").expect("KE is a region")
    });
    let currency = Currency::new(&m.currency.code, m.currency.exponent);
    if m.currency.exponent > 4 {
        cx.error_at_key(
            "currency",
            "`currency.exponent` is larger than 4",
            Some("KES, GHS and NGN use 2; UGX and RWF use 0".into()),
        );
    }
    for code in &m.codes {
        if !is_service_code(&code.value) {
            cx.error(
                code.referenced,
                format!("`{}` is not a USSD service code", code.value),
                Some("write it as dialled, e.g. \"*384#\" or \"*384*12#\"".into()),
            );
        }
    }
    if m.codes.is_empty() {
        cx.error_at_key(
            "codes",
            "`codes` is empty",
            Some("list the USSD codes this menu answers, e.g. `codes: [\"*384#\"]`".into()),
        );
    }

    let index: HashMap<String, ScreenId> =
        m.screens.keys().enumerate().map(|(i, name)| (name.clone(), ScreenId(i as u16))).collect();
    let resolve = |cx: &mut Ctx, target: &Spanned<String>| -> ScreenId {
        index.get(&target.value).copied().unwrap_or_else(|| {
            cx.error(
                target.referenced,
                format!("no screen named `{}`", target.value),
                suggest(&target.value, index.keys()),
            );
            ScreenId(0)
        })
    };

    let mut templates = Templates::new(currency.clone());
    let mut tpl = |cx: &mut Ctx, text: &Spanned<Text>, what: &str| -> Tpl {
        let sources = cx.sources(text, what);
        templates.add(sources).unwrap_or_else(|e| {
            cx.error(
                text.referenced,
                format!("{what}: template error: {e}"),
                Some("templates use minijinja syntax: {{ name }}, {{ amount|money }}".into()),
            );
            Tpl::empty()
        })
    };

    let mut screens = Vec::with_capacity(m.screens.len());
    for (name, screen) in &m.screens {
        let at = screen.referenced;
        let what = format!("screen `{name}`");
        let kind = match &screen.value {
            Screen::Menu(s) => {
                if s.options.is_empty() && s.items.is_none() {
                    cx.error(
                        at,
                        format!("{what} has no options"),
                        Some("add options or items, or make it an `end` screen".into()),
                    );
                }
                let items = s.items.as_ref().map(|it| {
                    check_var_name(&mut cx, it.from.referenced, &it.save, &what);
                    let from: Vec<String> = it.from.value.split('.').map(str::to_owned).collect();
                    if from.iter().any(|p| p.is_empty()) {
                        cx.error(
                            it.from.referenced,
                            format!("{what}: `{}` is not a path to a list", it.from.value),
                            Some("write the variable and its fields with dots, e.g. `result.entries`".into()),
                        );
                    }
                    if it.max == 0 {
                        cx.error(it.from.referenced, format!("{what}: `max` must be at least 1"), None);
                    }
                    Items {
                        from,
                        label: tpl(&mut cx, &it.label, &what),
                        save: it.save.clone(),
                        next: resolve(&mut cx, &it.next),
                        max: usize::from(it.max),
                    }
                });
                let options = s
                    .options
                    .iter()
                    .map(|o| (tpl(&mut cx, &o.label, &what), resolve(&mut cx, &o.next)))
                    .collect();
                NodeKind::Menu { text: tpl(&mut cx, &s.text, &what), items, options }
            }
            Screen::Confirm(s) => NodeKind::Confirm {
                text: tpl(&mut cx, &s.text, &what),
                yes: resolve(&mut cx, &s.yes),
                no: resolve(&mut cx, &s.no),
            },
            Screen::Router(s) => {
                let mut routes = Vec::with_capacity(s.routes.len());
                for r in &s.routes {
                    let source = format!("{{% if {} %}}1{{% endif %}}", r.condition.value);
                    let text = Spanned::new(Text::Same(source), r.condition.referenced, r.condition.defined);
                    routes.push((tpl(&mut cx, &text, &what), resolve(&mut cx, &r.next)));
                }
                NodeKind::Router { routes, otherwise: resolve(&mut cx, &s.otherwise) }
            }
            Screen::Call(s) => {
                NodeKind::Call { journey: resolve(&mut cx, &s.journey), next: resolve(&mut cx, &s.next) }
            }
            Screen::Return(_) => NodeKind::Return,
            Screen::Input(s) => {
                let scale = 10_i64.pow(currency.exponent.min(4));
                let to_value = |v: Option<u64>| -> Option<i64> {
                    let v = i64::try_from(v?).ok()?;
                    Some(if s.kind == InputKind::Amount { v.saturating_mul(scale) } else { v })
                };
                let pattern = s.pattern.as_ref().and_then(|p| {
                    if !matches!(s.kind, InputKind::Text | InputKind::Digits) {
                        cx.error(
                            p.referenced,
                            format!("{what}: `pattern` applies to `text` and `digits` inputs only"),
                            None,
                        );
                    }
                    regex::Regex::new(&format!("^(?:{})$", p.value))
                        .map_err(|e| {
                            cx.error(
                                p.referenced,
                                format!("{what}: `pattern` is not a valid regular expression"),
                                Some(first_line(&e.to_string())),
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
                    cx.error(at, format!("{what}: `min` is greater than `max`"), None);
                }
                if !matches!(s.kind, InputKind::Digits | InputKind::Name | InputKind::Text)
                    && (s.min_length.is_some() || s.max_length.is_some())
                {
                    cx.error(
                        at,
                        format!(
                            "{what}: `min_length`/`max_length` apply to `digits`, `name` and `text` inputs only"
                        ),
                        None,
                    );
                }
                if s.retries == Some(0) {
                    cx.error(at, format!("{what}: `retries` must be at least 1"), None);
                }
                check_var_name(&mut cx, at, &s.save, &what);
                if s.sensitive {
                    let takes_it = match m.screens.get(&s.next.value).map(|sc| &sc.value) {
                        Some(Screen::Action(a)) => Op::from_name(&a.op.value)
                            .is_some_and(|op| op.spec().secrets.contains(&s.save.as_str())),
                        _ => false,
                    };
                    if index.contains_key(&s.next.value) && !takes_it {
                        cx.error(
                            s.next.referenced,
                            format!("{what}: a `sensitive` input must lead straight to an `action` whose op takes `{}` as a secret", s.save),
                            Some("the value is kept for this hop only; ops and the secrets they take are listed in docs/menus.md".into()),
                        );
                    }
                }
                NodeKind::Input {
                    text: tpl(&mut cx, &s.text, &what),
                    kind: s.kind,
                    save: s.save.clone(),
                    next: resolve(&mut cx, &s.next),
                    rules,
                    error: s.error.as_ref().map(|e| tpl(&mut cx, e, &what)),
                    retries: s.retries,
                    sensitive: s.sensitive,
                }
            }
            Screen::Pin(s) => {
                let next_is_action =
                    matches!(m.screens.get(&s.next.value).map(|sc| &sc.value), Some(Screen::Action(_)));
                if index.contains_key(&s.next.value) && !next_is_action {
                    cx.error(s.next.referenced, format!("{what}: a `pin` must lead straight to an `action`"), Some("the PIN is kept for this hop only, so the op that checks it must run right after it".into()));
                }
                let moves_money = match m.screens.get(&s.next.value).map(|sc| &sc.value) {
                    Some(Screen::Action(a)) => {
                        Op::from_name(&a.op.value).is_some_and(|op| op.spec().moves_money())
                    }
                    _ => false,
                };
                if moves_money && s.sms.is_none() && m.sms.as_ref().is_some_and(|d| !d.commands.is_empty()) {
                    cx.error(
                        at,
                        format!("{what}: this PIN screen moves money and the menu has SMS commands, but it has no `sms` text"),
                        Some("no PIN travels by SMS: write what SMS asks instead, e.g. sms: \"Reply YES {{ code }} to send {{ amount|money }} to {{ to|mask }}\"".into()),
                    );
                }
                let by_reply = s.sms.as_ref().is_some_and(|t| mentions(t, "code"));
                let by_dial = s.sms.as_ref().is_some_and(|t| mentions(t, "dial"));
                if let Some(sms) = s.sms.as_ref().filter(|_| !by_reply && !by_dial) {
                    cx.error(
                        sms.referenced,
                        format!("{what}: the `sms` text offers no way to go on"),
                        Some("say {{ code }} (the subscriber replies YES and the code) or {{ dial }} (they finish on USSD with the PIN), or both".into()),
                    );
                }
                if by_dial && m.sms.as_ref().is_none_or(|d| d.handoff.is_none()) {
                    cx.error(
                        s.sms.as_ref().map_or(at, |t| t.referenced),
                        format!("{what}: the `sms` text says {{{{ dial }}}}, but the menu has no `sms.handoff` code"),
                        Some("add e.g. sms: { handoff: \"*384*9#\" } (one of `codes` with digits after it)".into()),
                    );
                }
                NodeKind::Pin {
                    text: tpl(&mut cx, &s.text, &what),
                    name: s.save.clone(),
                    next: resolve(&mut cx, &s.next),
                    error: s.error.as_ref().map(|e| tpl(&mut cx, e, &what)),
                    sms: s.sms.as_ref().map(|t| tpl(&mut cx, t, &format!("{what} (sms)"))),
                    by_reply,
                    by_dial,
                }
            }
            Screen::Action(s) => action(&mut cx, &m.screens, name, &what, s, &resolve, &mut tpl),
            Screen::End(s) => NodeKind::End { text: tpl(&mut cx, &s.text, &what) },
        };
        screens.push(Node { name: name.clone(), kind });
    }

    let start = resolve(&mut cx, &m.start);
    let home = m.home.as_ref().map_or(start, |h| resolve(&mut cx, h));
    let too_many_attempts = m.too_many_attempts.as_ref().map(|t| resolve(&mut cx, t));
    let mut messages = HashMap::new();
    for (name, text) in &m.messages {
        match Message::from_name(name) {
            Some(message) => {
                messages.insert(message, tpl(&mut cx, text, &format!("message `{name}`")));
            }
            None => {
                let known: Vec<_> = Message::ALL.iter().map(|m| m.name()).collect();
                cx.error(
                    text.referenced,
                    format!("`messages` has no built-in line `{name}`"),
                    Some(format!("the lines a menu may replace: {}", known.join(", "))),
                );
            }
        }
    }
    for lang in languages.iter().filter(|l| !SHIPPED.contains(&l.as_str())) {
        let missing: Vec<_> =
            Message::ALL.iter().filter(|m| !messages.contains_key(m)).map(|m| m.name()).collect();
        if !missing.is_empty() {
            cx.error_at_key(
                "languages",
                format!(
                    "the gateway ships no built-in lines in `{lang}` (missing translation): {}",
                    missing.join(", ")
                ),
                Some(format!(
                    "translate them under `messages:`; built-in lines exist in {}",
                    SHIPPED.join(", ")
                )),
            );
        }
    }
    let budget = Budget { gsm7: usize::from(m.budget.gsm7), ucs2: usize::from(m.budget.ucs2) };
    if budget.gsm7 < 40 || budget.ucs2 < 20 {
        cx.error_at_key(
            "budget",
            "`budget` is too small for a usable screen",
            Some("USSD carries 182 GSM-7 or 80 UCS-2 characters; most aggregators advise 160".into()),
        );
    }
    let resume = m.resume.as_ref().map(|r| {
        if !(10..=3600).contains(&r.within) {
            cx.error_at_key(
                "resume",
                format!("`resume.within` is {} s; it must be between 10 and 3600", r.within),
                Some("subscribers re-dial within a minute or two of a drop; 120 is typical".into()),
            );
        }
        if r.screens.is_empty() {
            cx.error_at_key(
                "resume",
                "`resume.screens` is empty",
                Some("list the screens a dropped subscriber is offered back to".into()),
            );
        }
        let mut ids = Vec::new();
        for name in &r.screens {
            let id = resolve(&mut cx, name);
            let waits = m.screens.get(&name.value).is_some_and(|s| {
                matches!(s.value, Screen::Menu(_) | Screen::Input(_) | Screen::Pin(_) | Screen::Confirm(_))
            });
            if index.contains_key(&name.value) && !waits {
                cx.error(
                    name.referenced,
                    format!("`resume.screens`: `{}` does not wait for input", name.value),
                    Some("list menu, input, pin or confirm screens".into()),
                );
            }
            ids.push(id);
        }
        Resume { within: std::time::Duration::from_secs(u64::from(r.within)), screens: ids }
    });
    let keys = Keys {
        back: m.navigation.back.clone(),
        home: m.navigation.home.clone(),
        more: m.navigation.more.clone(),
    };
    for (name, key) in [("back", &keys.back), ("home", &keys.home), ("more", &keys.more)] {
        if key.is_empty() || key.contains('*') || key.contains('#') || key.trim() != key {
            cx.error_at_key(
                "navigation",
                format!("navigation key `{name}` is `{key}`, which a subscriber cannot type as one input"),
                Some("use digits, e.g. back: \"0\"".into()),
            );
        }
    }
    if keys.back == keys.home || keys.back == keys.more || keys.home == keys.more {
        cx.error_at_key(
            "navigation",
            "two navigation keys are the same",
            Some("give back, home and more different keys".into()),
        );
    }
    let commands = m.sms.as_ref().map_or_else(Vec::new, |d| commands(&mut cx, d, &languages, &mut tpl));
    let handoff = m.sms.as_ref().and_then(|d| d.handoff.as_ref()).and_then(|h| handoff(&mut cx, h, &m.codes));
    if !cx.diagnostics.is_empty() {
        return Err(cx.diagnostics);
    }
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
        screens,
        index,
        templates,
        commands,
        handoff,
    };
    let diagnostics = super::lint::lint(&menu, file, &spans);
    if diagnostics.is_empty() { Ok(menu) } else { Err(diagnostics) }
}

/// Whether a template's text, in any language, prints the variable `name`.
fn mentions(text: &Spanned<Text>, name: &str) -> bool {
    let says = |s: &str| {
        s.split("{{").skip(1).any(|tail| {
            let inside = tail.split("}}").next().unwrap_or_default();
            inside.trim().split(|c: char| c == '|' || c.is_whitespace()).next() == Some(name)
        })
    };
    match &text.value {
        Text::Same(s) => says(s),
        Text::PerLanguage(texts) => texts.values().any(|s| says(s)),
    }
}

/// Compiles `sms.handoff`: one of the menu's codes with digits after it.
fn handoff(cx: &mut Ctx, code: &Spanned<String>, codes: &[Spanned<String>]) -> Option<Handoff> {
    let after = codes.iter().find_map(|c| {
        let rest = code.value.strip_prefix(c.value.trim_end_matches('#'))?.strip_prefix('*')?;
        let parts: Vec<String> = rest.strip_suffix('#')?.split('*').map(str::to_owned).collect();
        parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).then_some(parts)
    });
    if after.is_none() {
        cx.error(
            code.referenced,
            format!("`sms.handoff` is `{}`, which is not one of `codes` with digits after it", code.value),
            Some("e.g. \"*384*9#\" for a menu on *384#".into()),
        );
    }
    Some(Handoff { code: code.value.clone(), after: after? })
}

/// Compiles the SMS commands: words (with aliases) unique and not the gateway's own,
/// dial paths of digits and `$n` within the arguments.
fn commands(
    cx: &mut Ctx,
    decl: &model::SmsDecl,
    languages: &[String],
    tpl: &mut impl FnMut(&mut Ctx, &Spanned<Text>, &str) -> Tpl,
) -> Vec<Command> {
    let mut taken: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for (word, c) in &decl.commands {
        let what = format!("SMS command `{word}`");
        let mut claim = |cx: &mut Ctx, w: &str| {
            let upper = w.to_uppercase();
            if upper.is_empty() || upper.len() > 12 || !upper.chars().all(|ch| ch.is_alphanumeric()) {
                cx.error(
                    c.referenced,
                    format!("{what}: `{w}` is not one word of letters and digits (at most 12)"),
                    None,
                );
            }
            if super::words::reserved().any(|r| r == upper) {
                cx.error(
                    c.referenced,
                    format!("{what}: `{w}` is a word the gateway answers itself"),
                    Some(format!(
                        "choose another; reserved: {}",
                        super::words::reserved().collect::<Vec<_>>().join(", ")
                    )),
                );
            }
            if let Some(other) = taken.insert(upper.clone(), word.clone()) {
                cx.error(
                    c.referenced,
                    format!("{what}: `{w}` is also a word of SMS command `{other}`"),
                    None,
                );
            }
            upper
        };
        let upper = claim(cx, word);
        let mut aliases = Vec::new();
        for (lang, words) in &c.value.aliases {
            if !languages.contains(lang) {
                cx.error(
                    c.referenced,
                    format!("{what}: aliases in `{lang}`, which is not in `languages`"),
                    None,
                );
            }
            for w in words {
                aliases.push((claim(cx, w), lang.clone()));
            }
        }
        let mut dial = Vec::new();
        for part in &c.value.dial {
            match part.strip_prefix('$').map(str::parse::<usize>) {
                Some(Ok(n)) if (1..=c.value.args.len()).contains(&n) => dial.push(DialPart::Arg(n - 1)),
                Some(_) => cx.error(
                    c.referenced,
                    format!(
                        "{what}: `{part}` in `dial` is not one of its {} argument(s)",
                        c.value.args.len()
                    ),
                    Some("arguments are $1, $2 … in the order of `args`".into()),
                ),
                None if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) => {
                    dial.push(DialPart::Typed(part.clone()))
                }
                None => cx.error(
                    c.referenced,
                    format!("{what}: `{part}` in `dial` is neither digits nor an argument ($1, $2 …)"),
                    None,
                ),
            }
        }
        let help = tpl(cx, &c.value.help, &format!("{what} help"));
        out.push(Command { word: upper, aliases, dial, args: c.value.args.clone(), help });
    }
    out
}

fn action(
    cx: &mut Ctx,
    screens: &BTreeMap<String, Spanned<Screen>>,
    name: &str,
    what: &str,
    s: &model::ActionStep,
    resolve: &dyn Fn(&mut Ctx, &Spanned<String>) -> ScreenId,
    tpl: &mut dyn FnMut(&mut Ctx, &Spanned<Text>, &str) -> Tpl,
) -> NodeKind {
    let Some(op) = Op::from_name(&s.op.value) else {
        let known: Vec<_> = crate::ops::Op::all().map(crate::ops::Op::name).collect();
        cx.error(
            s.op.referenced,
            format!("{what}: unknown op `{}`", s.op.value),
            Some(format!("known ops: {}", known.join(", "))),
        );
        return NodeKind::End { text: Tpl::empty() };
    };
    let spec = op.spec();
    for (arg, value) in &s.args {
        if !spec.args.contains(&arg.as_str()) {
            cx.error(
                value.referenced,
                format!("{what}: op `{op}` takes no argument `{arg}`"),
                Some(format!("its arguments: [{}]", spec.args.join(", "))),
            );
        }
    }
    for required in spec.args {
        if !s.args.contains_key(*required) {
            cx.error(s.op.referenced, format!("{what}: op `{op}` needs the argument `{required}`"), None);
        }
    }
    for secret in spec.secrets {
        let fed = screens.values().any(|sc| match &sc.value {
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
            cx.error(
                s.op.referenced,
                format!("{what}: op `{op}` needs {what_kind} leads to it (`{secret}`)"),
                Some(hint),
            );
        }
    }
    let mut routes = HashMap::new();
    let mut other = None;
    for (key, route) in &s.on {
        let (target, error) = match &route.value {
            model::Route::Screen(t) => (t.clone(), None),
            model::Route::WithError { next, error } => (next.clone(), Some(error)),
        };
        let target = resolve(cx, &Spanned::new(target, route.referenced, route.defined));
        let error =
            error.map(|e| tpl(cx, &Spanned::new(clone_text(e), route.referenced, route.defined), what));
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
                cx.error(
                    route.referenced,
                    format!("{what}: op `{op}` has no outcome `{key}`"),
                    Some(format!("its outcomes: {}, or `other`", names.join(", "))),
                );
            }
        }
    }
    if other.is_none() {
        let missing: Vec<_> =
            spec.outcomes.iter().filter(|o| !routes.contains_key(o)).map(|o| o.as_str()).collect();
        if !missing.is_empty() {
            cx.error(
                s.op.referenced,
                format!("{what}: outcomes of `{op}` not routed: {}", missing.join(", ")),
                Some("route each under `on:`, or add `other: <screen>`".into()),
            );
        }
    }
    if let Some(save) = &s.save {
        check_var_name(cx, s.op.referenced, save, what);
    }
    let mut args = Vec::new();
    for (name, value) in &s.args {
        let text = Spanned::new(Text::Same(value.value.clone()), value.referenced, value.defined);
        args.push((name.clone(), tpl(cx, &text, what)));
    }
    let lang = s.lang.as_ref().map(|l| {
        let text = Spanned::new(Text::Same(l.value.clone()), l.referenced, l.defined);
        tpl(cx, &text, what)
    });
    NodeKind::Action { op, args, save: s.save.clone(), routes, other, lang }
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
    } else if name == "result" {
        cx.error(
            at,
            format!("{what}: `result` is reserved for the data of the last op"),
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
