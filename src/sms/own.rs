//! The gateway's own replies to a message (STOP, START, HELP, an unregistered
//! number), in the sender's language's words from the menu folder's `texts/`.

use super::answer::Handled;
use crate::menu::{Menu, OwnReply, Texts};

/// The command word: the first word, upper-cased.
pub(super) fn keyword(text: &str) -> String {
    text.split_whitespace().next().unwrap_or_default().to_uppercase()
}

/// The gateway's own replies, in `language`'s words (English where nobody wrote it).
pub(super) fn own_reply(texts: &Texts, handled: Handled, language: &str, code: &str) -> String {
    let reply = match handled {
        Handled::Stopped => OwnReply::Stopped,
        Handled::Started => OwnReply::Started,
        Handled::NotRegistered => OwnReply::NotRegistered,
        _ => OwnReply::Help,
    };
    texts.reply(language, reply, code)
}

/// The help reply: the menu's commands, then the gateway's own line.
pub(super) fn help(texts: &Texts, menu: Option<&Menu>, language: &str, code: &str) -> String {
    let mut lines = menu.map(|m| m.help(language)).unwrap_or_default();
    lines.push(own_reply(texts, Handled::Helped, language, code));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_word_is_the_command_in_any_case() {
        assert_eq!(keyword("  stop please"), "STOP");
        assert_eq!(keyword("Acha"), "ACHA");
        assert_eq!(keyword(""), "");
        for (handled, language) in
            [(Handled::Stopped, "en"), (Handled::Started, "sw"), (Handled::Helped, "en")]
        {
            let text = own_reply(Texts::shipped(), handled, language, "*384#");
            assert!(crate::segments::segment(&text).count() <= 2, "{text}");
        }
        assert!(help(Texts::shipped(), None, "sw", "*384#").starts_with("Piga *384#"));
        assert!(crate::menu::words::is_yes("ndiyo") && crate::menu::words::is_yes("Yes"));
        assert!(!crate::menu::words::is_yes("YESS"));
    }
}
