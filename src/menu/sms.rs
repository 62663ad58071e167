//! How SMS reaches a menu: a command word and its arguments become a dial string into
//! the same screens USSD uses, and the help reply lists the commands.

use super::graph::{Command, DialPart, Menu, NodeKind};
use crate::ops::Op;

impl Command {
    /// The dial string of this command with `args` on `code` (`*384#` with `1, $1, $2,
    /// 1` and `0712345678 500` → `*384*1*0712345678*500*1#`); `None` when the arguments
    /// do not fit (wrong count, or a `*` or `#` in one).
    pub fn dial(&self, code: &str, args: &[&str]) -> Option<String> {
        if args.len() != self.args.len() || args.iter().any(|a| a.contains(['*', '#'])) {
            return None;
        }
        let mut dial = code.trim_end_matches('#').to_owned();
        for part in &self.dial {
            dial.push('*');
            dial.push_str(match part {
                DialPart::Typed(typed) => typed,
                DialPart::Arg(i) => args[*i],
            });
        }
        dial.push('#');
        Some(dial)
    }

    /// `SEND <number> <amount>`.
    pub fn usage(&self) -> String {
        std::iter::once(self.word.clone())
            .chain(self.args.iter().map(|a| format!("<{a}>")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Menu {
    /// The command `word` names (any case), and the language of the alias used.
    pub fn command(&self, word: &str) -> Option<(&Command, Option<&str>)> {
        let word = word.to_uppercase();
        self.commands.iter().find_map(|c| {
            if c.word == word {
                return Some((c, None));
            }
            c.aliases.iter().find(|(w, _)| *w == word).map(|(_, lang)| (c, Some(lang.as_str())))
        })
    }

    /// Each command's help line in `lang`.
    pub fn help(&self, lang: &str) -> Vec<String> {
        let at = self.lang_index(lang);
        let empty = minijinja::Value::from(());
        self.commands
            .iter()
            .map(|c| match self.templates.plain(&c.help, at) {
                Some(text) => text.to_owned(),
                None => self.templates.render(&c.help, at, &empty).unwrap_or_else(|_| c.usage()),
            })
            .collect()
    }

    /// The string that dials an SMS movement's hand-off with `code` (`*384*9*482193#`).
    pub fn handoff_dial(&self, code: &str) -> Option<String> {
        let h = self.handoff.as_ref()?;
        Some(format!("{}*{code}#", h.code.trim_end_matches('#')))
    }

    /// The hand-off code in a dial's inputs (`["9", "482193"]` → `482193`), if that is
    /// what they are.
    pub fn handoff_code<'a>(&self, inputs: &'a [String]) -> Option<&'a str> {
        let h = self.handoff.as_ref()?;
        let (code, after) = inputs.split_last()?;
        (after == h.after.as_slice() && code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()))
            .then_some(code.as_str())
    }

    /// Whether the `pin` screen's SMS text offers to reply with the code.
    pub fn confirms_by_reply(&self, screen: &str) -> bool {
        self.pin_sms(screen).is_some_and(|(reply, _)| reply)
    }

    /// Whether the `pin` screen's SMS text offers to dial the code on USSD.
    pub fn confirms_by_dial(&self, screen: &str) -> bool {
        self.pin_sms(screen).is_some_and(|(_, dial)| dial)
    }

    fn pin_sms(&self, screen: &str) -> Option<(bool, bool)> {
        match self.screens[self.index.get(screen)?.0 as usize].kind {
            NodeKind::Pin { by_reply, by_dial, .. } => Some((by_reply, by_dial)),
            _ => None,
        }
    }

    /// The op a `pin` screen leads to (always an `action`, which the compiler checks).
    pub fn pin_op(&self, screen: &str) -> Option<Op> {
        let node = &self.screens[self.index.get(screen)?.0 as usize];
        let NodeKind::Pin { next, .. } = &node.kind else { return None };
        match &self.screens[next.0 as usize].kind {
            NodeKind::Action { op, .. } => Some(*op),
            _ => None,
        }
    }
}
