//! USSD service codes: what a subscriber can dial.

/// `*384#`, `*384*7#`: what a subscriber can dial.
pub fn is_service_code(code: &str) -> bool {
    code.len() >= 3
        && code.starts_with('*')
        && code.ends_with('#')
        && code[1..code.len() - 1]
            .split('*')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}
