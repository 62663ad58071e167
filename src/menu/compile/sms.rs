//! A menu's SMS side: its commands and the code that hands a movement over to USSD.

use std::collections::HashMap;

use serde_saphyr::Spanned;

use super::Ctx;
use super::screens::Builder;
use crate::menu::graph::{Command, DialPart, Handoff};
use crate::menu::model::{self, Text};

/// Compiles the SMS commands: words (with aliases) unique and not the gateway's own,
/// dial paths of digits and `$n` within the arguments.
pub(super) fn commands(b: &mut Builder, decl: &model::SmsDecl, languages: &[String]) -> Vec<Command> {
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
            if crate::menu::words::reserved().any(|r| r == upper) {
                cx.error(
                    c.referenced,
                    format!("{what}: `{w}` is a word the gateway answers itself"),
                    Some(format!(
                        "choose another; reserved: {}",
                        crate::menu::words::reserved().collect::<Vec<_>>().join(", ")
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
        let upper = claim(&mut b.cx, word);
        let mut aliases = Vec::new();
        for (lang, words) in &c.value.aliases {
            if !languages.contains(lang) {
                b.cx.error(
                    c.referenced,
                    format!("{what}: aliases in `{lang}`, which is not in `languages`"),
                    None,
                );
            }
            for w in words {
                aliases.push((claim(&mut b.cx, w), lang.clone()));
            }
        }
        let mut dial = Vec::new();
        for part in &c.value.dial {
            match part.strip_prefix('$').map(str::parse::<usize>) {
                Some(Ok(n)) if (1..=c.value.args.len()).contains(&n) => dial.push(DialPart::Arg(n - 1)),
                Some(_) => b.cx.error(
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
                None => b.cx.error(
                    c.referenced,
                    format!("{what}: `{part}` in `dial` is neither digits nor an argument ($1, $2 …)"),
                    None,
                ),
            }
        }
        let help = b.tpl(&c.value.help, &format!("{what} help"));
        out.push(Command { word: upper, aliases, dial, args: c.value.args.clone(), help });
    }
    out
}

/// Whether a template's text, in any language, prints the variable `name`.
pub(super) fn mentions(text: &Spanned<Text>, name: &str) -> bool {
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
pub(super) fn handoff(cx: &mut Ctx, code: &Spanned<String>, codes: &[Spanned<String>]) -> Option<Handoff> {
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
