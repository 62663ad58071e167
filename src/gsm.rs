//! GSM 03.38: which characters GSM-7 carries and what each costs, and the UCS-2
//! fallback. Shared by USSD screen budgets and SMS segmentation.

/// GSM 03.38 basic characters outside ASCII (ASCII ones are tested by range below).
const BASIC_NON_ASCII: &str = "£¥èéùìòÇØøÅåΔΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// The encoding a text needs and its length in that encoding's units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    pub encoding: Encoding,
    pub units: usize,
}

/// Septets a character costs in GSM-7 (2 for the extension table: an escape, then the
/// character), or `None` if GSM-7 cannot carry it.
pub fn septets(c: char) -> Option<usize> {
    match c {
        '\n' | '\r' => Some(1),
        '\u{c}' | '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€' => Some(2),
        '`' => None,
        ' '..='~' => Some(1),
        c if BASIC_NON_ASCII.contains(c) => Some(1),
        _ => None,
    }
}

/// The encoding a text needs and its length in that encoding's units.
pub fn cost(text: &str) -> Cost {
    let mut units = 0;
    for c in text.chars() {
        match septets(c) {
            Some(n) => units += n,
            None => return Cost { encoding: Encoding::Ucs2, units: text.encode_utf16().count() },
        }
    }
    Cost { encoding: Encoding::Gsm7, units }
}
