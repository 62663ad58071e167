//! A menu file's settings beside its screens: region, currency and codes; the built-in
//! lines it rewords; its screen budget; the journeys it offers back; navigation keys.

use std::collections::{BTreeMap, HashMap};

use serde_saphyr::Spanned;

use super::Ctx;
use super::screens::Builder;
use crate::domain::{Currency, Region, is_service_code};
use crate::menu::budget::Budget;
use crate::menu::graph::{Keys, Resume};
use crate::menu::messages::Message;
use crate::menu::model::{self, MenuFile, Screen, Text};
use crate::menu::template::Tpl;
use crate::menu::texts::Texts;

/// The region numbers are read in, the currency amounts are shown in, and the codes.
pub(super) fn header(cx: &mut Ctx, m: &MenuFile) -> (Region, Currency) {
    let region = Region::parse(&m.region.value).unwrap_or_else(|e| {
        cx.error(m.region.referenced, e, None);
        Region::parse("KE").expect("KE is a region")
    });
    // A refused exponent is clamped: the checks that follow render amounts with it.
    let currency = Currency::new(&m.currency.code, m.currency.exponent.min(4));
    if m.currency.exponent > 4 {
        cx.error_at_key(
            "currency",
            "`currency.exponent` is larger than 4",
            Some("KES, GHS and NGN use 2; UGX and RWF use 0".into()),
        );
    }
    for (i, code) in m.codes.iter().enumerate() {
        if m.codes[..i].iter().any(|c| c.value == code.value) {
            cx.error(
                code.referenced,
                format!("`{}` is listed twice", code.value),
                Some("remove one of the two".into()),
            );
        }
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
    (region, currency)
}

/// The built-in lines the menu rewords; every one of them in a language whose lines no
/// texts file writes.
pub(super) fn messages(
    b: &mut Builder,
    texts: &BTreeMap<String, Spanned<Text>>,
    languages: &[String],
    bundle: &Texts,
) -> HashMap<Message, Tpl> {
    let mut messages = HashMap::new();
    for (name, text) in texts {
        match Message::from_name(name) {
            Some(message) => {
                messages.insert(message, b.tpl(text, &format!("message `{name}`")));
            }
            None => {
                let known: Vec<_> = Message::ALL.iter().map(|m| m.name()).collect();
                b.cx.error(
                    text.referenced,
                    format!("`messages` has no built-in line `{name}`"),
                    Some(format!("the lines a menu may replace: {}", known.join(", "))),
                );
            }
        }
    }
    for lang in languages.iter().filter(|l| !bundle.has_lines(l)) {
        let worded =
            |m: &Message| messages.contains_key(m) || m.stand_in().is_some_and(|o| messages.contains_key(&o));
        let missing: Vec<_> = Message::ALL.iter().filter(|m| !worded(m)).map(|m| m.name()).collect();
        if !missing.is_empty() {
            b.cx.error_at_key(
                "languages",
                format!("no texts file writes the built-in lines in `{lang}` (missing translation): {}", missing.join(", ")),
                Some(format!(
                    "write them under `lines:` in texts/{lang}.yaml beside the menus (copy the section from texts/en.yaml), or under this menu's `messages:`; lines are written in {}",
                    bundle.languages().into_iter().filter(|l| bundle.has_lines(l)).collect::<Vec<_>>().join(", ")
                )),
            );
        }
    }
    messages
}

pub(super) fn budget(cx: &mut Ctx, decl: &model::BudgetDecl) -> Budget {
    let budget = Budget { gsm7: usize::from(decl.gsm7), ucs2: usize::from(decl.ucs2) };
    if budget.gsm7 < 40 || budget.ucs2 < 20 {
        cx.error_at_key(
            "budget",
            "`budget` is too small for a usable screen",
            Some("USSD carries 182 GSM-7 or 80 UCS-2 characters; most aggregators advise 160".into()),
        );
        // The screens are measured against the default where it is too small instead:
        // against it every screen would be reported too long.
        let default = Budget::default();
        return Budget {
            gsm7: if budget.gsm7 < 40 { default.gsm7 } else { budget.gsm7 },
            ucs2: if budget.ucs2 < 20 { default.ucs2 } else { budget.ucs2 },
        };
    }
    budget
}

/// Which dropped journeys are offered back, and for how long: screens that wait for input.
pub(super) fn resume(b: &mut Builder, r: &model::ResumeDecl) -> Resume {
    if !(10..=3600).contains(&r.within) {
        b.cx.error_at_key(
            "resume",
            format!("`resume.within` is {} s; it must be between 10 and 3600", r.within),
            Some("subscribers re-dial within a minute or two of a drop; 120 is typical".into()),
        );
    }
    if r.screens.is_empty() {
        b.cx.error_at_key(
            "resume",
            "`resume.screens` is empty",
            Some("list the screens a dropped subscriber is offered back to".into()),
        );
    }
    let mut ids = Vec::new();
    for name in &r.screens {
        let id = b.resolve(name);
        let waits = b.screens.get(&name.value).is_some_and(|s| {
            matches!(s.value, Screen::Menu(_) | Screen::Input(_) | Screen::Pin(_) | Screen::Confirm(_))
        });
        if b.index.contains_key(&name.value) && !waits {
            b.cx.error(
                name.referenced,
                format!("`resume.screens`: `{}` does not wait for input", name.value),
                Some("list menu, input, pin or confirm screens".into()),
            );
        }
        ids.push(id);
    }
    Resume { within: std::time::Duration::from_secs(u64::from(r.within)), screens: ids }
}

/// The navigation keys: each typed as one input, no two the same.
pub(super) fn keys(cx: &mut Ctx, navigation: &model::Navigation) -> Keys {
    let keys =
        Keys { back: navigation.back.clone(), home: navigation.home.clone(), more: navigation.more.clone() };
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
    keys
}
