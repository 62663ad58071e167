//! The gateway's own replies to a message (STOP, START, HELP, an unregistered
//! number), in the sender's language, apart from any menu's.

use super::answer::Handled;
use crate::menu::Menu;

/// The command word: the first word, upper-cased.
pub(super) fn keyword(text: &str) -> String {
    text.split_whitespace().next().unwrap_or_default().to_uppercase()
}

/// The gateway's own replies, in `language` (English unless Swahili).
pub(super) fn own_reply(handled: Handled, language: &str, code: &str) -> String {
    let sw = language == "sw";
    match (handled, sw) {
        (Handled::Stopped, false) => "You will no longer receive promotional messages. Receipts for your transactions still come. Reply START to subscribe again.".into(),
        (Handled::Stopped, true) => "Hutapokea tena ujumbe wa matangazo. Risiti za miamala yako bado zitakuja. Jibu ANZA kujiandikisha tena.".into(),
        (Handled::Started, false) => "You will receive our messages again. Reply STOP to stop them.".into(),
        (Handled::Started, true) => "Utapokea ujumbe wetu tena. Jibu ACHA kuuzuia.".into(),
        (Handled::NotRegistered, false) => format!("This number has no mobile money account. Dial {code} to register."),
        (Handled::NotRegistered, true) => format!("Nambari hii haina akaunti ya pesa za simu. Piga {code} kujisajili."),
        (_, false) => format!("Dial {code} for your wallet. Never send your PIN by SMS. Reply STOP to stop promotional messages."),
        (_, true) => format!("Piga {code} kwa pochi yako. Usitume PIN yako kwa SMS. Jibu ACHA kuzuia ujumbe wa matangazo."),
    }
}

/// The help reply: the menu's commands, then the gateway's own line.
pub(super) fn help(menu: Option<&Menu>, language: &str, code: &str) -> String {
    let mut lines = menu.map(|m| m.help(language)).unwrap_or_default();
    lines.push(own_reply(Handled::Helped, language, code));
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
            let text = own_reply(handled, language, "*384#");
            assert!(crate::segments::segment(&text).count() <= 2, "{text}");
        }
        assert!(help(None, "sw", "*384#").starts_with("Piga *384#"));
        assert!(crate::menu::words::is_yes("ndiyo") && crate::menu::words::is_yes("Yes"));
        assert!(!crate::menu::words::is_yes("YESS"));
    }
}
