//! De-accumulation of cumulative USSD text (`1*2*500`) against the previous hop.
//!
//! Splitting on `*` is wrong: a subscriber may type `*` inside an input. The previous
//! hop's text is known (as a keyed [`TextMark`]), so this hop's input is whatever
//! follows it and the joining `*`.

use crate::session::{TextKey, TextMark};

/// This hop's input, or `None` when `text` does not extend the previous text.
pub fn next_input<'t>(previous: TextMark, text: &'t str, key: &TextKey) -> Option<&'t str> {
    let n = previous.len as usize;
    if n == 0 {
        return Some(text);
    }
    let extends = text.len() > n
        && text.is_char_boundary(n)
        && text.as_bytes()[n] == b'*'
        && key.mark(&text[..n]) == previous;
    extends.then(|| &text[n + 1..])
}

/// The inputs carried by the first hop of a session (jump-ahead dialling such as
/// `*384*1*2#` arrives as `text=1*2`). Here there is no previous hop, so `*` separates.
pub fn first_inputs(text: &str) -> Vec<String> {
    if text.is_empty() { Vec::new() } else { text.split('*').map(str::to_owned).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TextKey {
        TextKey::new(b"k")
    }

    #[test]
    fn strips_the_previous_text_and_the_joining_star() {
        let k = key();
        assert_eq!(next_input(k.mark(""), "1", &k), Some("1"));
        assert_eq!(next_input(k.mark("1"), "1*2", &k), Some("2"));
        assert_eq!(next_input(k.mark("1*2"), "1*2*500", &k), Some("500"));
    }

    #[test]
    fn keeps_a_star_typed_inside_an_input() {
        let k = key();
        assert_eq!(next_input(k.mark("1"), "1*12*34", &k), Some("12*34"));
        assert_eq!(next_input(k.mark("1*12*34"), "1*12*34*", &k), Some(""));
        assert_eq!(next_input(k.mark("1"), "1**", &k), Some("*"));
    }

    #[test]
    fn refuses_text_that_does_not_extend_the_previous_one() {
        let k = key();
        assert_eq!(next_input(k.mark("1*2"), "1*3*4", &k), None);
        assert_eq!(next_input(k.mark("1*2"), "1*2", &k), None);
        assert_eq!(next_input(k.mark("1*2"), "1*", &k), None);
        assert_eq!(next_input(k.mark("1"), "12", &k), None);
        // A multi-byte character where the boundary would be.
        assert_eq!(next_input(k.mark("ab"), "aé*1", &k), None);
    }

    #[test]
    fn first_hop_inputs_split_on_star() {
        assert!(first_inputs("").is_empty());
        assert_eq!(first_inputs("1*2"), ["1", "2"]);
    }
}
