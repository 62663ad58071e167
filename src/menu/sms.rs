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
