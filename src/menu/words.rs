//! The words of an SMS conversation the gateway answers itself, whatever the menus
//! say: opting out and back in, help, and yes to a one-time code. Menus may not use
//! them for commands.

/// Words that opt a number out, and back in, in every language we ship.
pub const STOP: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ACHA", "SITISHA"];
pub const START: &[&str] = &["START", "UNSTOP", "SUBSCRIBE", "ANZA"];
pub const HELP: &[&str] = &["HELP", "INFO", "MSAADA"];
/// What a subscriber replies with a one-time code to confirm.
pub const YES: &[&str] = &["YES", "NDIYO"];

/// Whether `word` is how a subscriber says yes to a one-time code.
pub fn is_yes(word: &str) -> bool {
    YES.contains(&word.to_uppercase().as_str())
}

/// Words menus may not use for commands: the gateway answers them itself.
pub fn reserved() -> impl Iterator<Item = &'static str> {
    [STOP, START, HELP, YES].into_iter().flatten().copied()
}
