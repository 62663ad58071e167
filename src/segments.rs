//! How an SMS is cut into parts: GSM-7 when every character allows it (160 septets
//! alone, 153 per part with the concatenation header), UCS-2 otherwise (70 units alone,
//! 67 per part). Parts are cut between characters, so no part ends on the escape of an
//! extension character and none splits a surrogate pair.

use crate::gsm::{self, Encoding};

/// One message as the network carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segments {
    pub encoding: Encoding,
    /// The text of each part, in order; joined, they are the message.
    pub parts: Vec<String>,
}

impl Segments {
    /// What a provider charges for: one per part.
    pub fn count(&self) -> usize {
        self.parts.len()
    }
}

/// The most one part may hold: alone, and within a concatenated message.
const fn limits(encoding: Encoding) -> (usize, usize) {
    match encoding {
        Encoding::Gsm7 => (160, 153),
        Encoding::Ucs2 => (70, 67),
    }
}

/// The units one character costs in `encoding`.
fn units(c: char, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 => gsm::septets(c).unwrap_or(1),
        Encoding::Ucs2 => c.len_utf16(),
    }
}

/// Cuts `text` into the parts the network will carry. An empty text is one empty part.
pub fn segment(text: &str) -> Segments {
    let cost = gsm::cost(text);
    let (alone, per_part) = limits(cost.encoding);
    if cost.units <= alone {
        return Segments { encoding: cost.encoding, parts: vec![text.to_owned()] };
    }
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut used = 0;
    for c in text.chars() {
        let n = units(c, cost.encoding);
        if used + n > per_part {
            parts.push(std::mem::take(&mut part));
            used = 0;
        }
        part.push(c);
        used += n;
    }
    parts.push(part);
    Segments { encoding: cost.encoding, parts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_part_up_to_160_septets_or_70_units() {
        let s = segment(&"a".repeat(160));
        assert_eq!((s.encoding, s.count()), (Encoding::Gsm7, 1));
        let s = segment(&"ж".repeat(70));
        assert_eq!((s.encoding, s.count()), (Encoding::Ucs2, 1));
        assert_eq!(segment("").parts, [""]);
    }

    #[test]
    fn longer_messages_take_153_or_67_per_part() {
        let s = segment(&"a".repeat(161));
        assert_eq!(s.parts.iter().map(String::len).collect::<Vec<_>>(), [153, 8]);
        let s = segment(&"ж".repeat(71));
        assert_eq!(s.parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(), [67, 4]);
    }

    #[test]
    fn an_extension_character_never_straddles_two_parts() {
        // 152 septets, then `€` (escape + character): it cannot end the first part.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let s = segment(&text);
        assert_eq!(s.encoding, Encoding::Gsm7);
        assert_eq!(s.parts[0], "a".repeat(152));
        assert!(s.parts[1].starts_with('€'));
        // Extension characters count twice toward the single-part limit too.
        assert_eq!(segment(&"{".repeat(80)).count(), 1);
        assert_eq!(segment(&"{".repeat(81)).count(), 2);
    }

    #[test]
    fn an_emoji_is_never_split_between_parts() {
        // 66 units, then an emoji of 2 (a surrogate pair): it goes whole to part two.
        let text = format!("{}😀{}", "a".repeat(66), "b".repeat(10));
        let s = segment(&text);
        assert_eq!(s.encoding, Encoding::Ucs2, "an emoji forces UCS-2");
        assert_eq!(s.parts[0], "a".repeat(66));
        assert!(s.parts[1].starts_with('😀'));
    }

    #[test]
    fn swahili_is_gsm7_and_french_needs_ucs2_only_for_characters_outside_gsm() {
        let sw = "Umetuma KES 500.00 kwa Brian Kamau. Kumbukumbu TX1A2B3C4D. Salio lako ni KES 493.00.";
        assert_eq!(segment(sw).encoding, Encoding::Gsm7);
        assert_eq!(
            segment("Vous avez reçu 500 XOF. Référence TX1.").encoding,
            Encoding::Ucs2,
            "ç is not GSM-7"
        );
        assert_eq!(segment("Vous avez envoyé 500 XOF à Aïcha.").encoding, Encoding::Ucs2, "ï is not GSM-7");
        assert_eq!(segment("Référence: payé à Éric.").encoding, Encoding::Gsm7, "é, à and É are");
    }

    proptest! {
        #[test]
        fn parts_rejoin_to_the_message_and_each_fits(text in "(\\PC|[€{}\\[\\]~^|\\\\]|😀){0,400}") {
            let s = segment(&text);
            prop_assert_eq!(s.parts.concat(), text.clone());
            let (alone, per_part) = limits(s.encoding);
            let size = |p: &str| match s.encoding {
                Encoding::Gsm7 => gsm::cost(p).units,
                Encoding::Ucs2 => p.encode_utf16().count(),
            };
            if s.count() == 1 {
                prop_assert!(size(&s.parts[0]) <= alone);
            } else {
                prop_assert!(size(&text) > alone, "split although it fits one part");
                for p in &s.parts {
                    prop_assert!(size(p) <= per_part && !p.is_empty());
                }
            }
            prop_assert_eq!(s.encoding, gsm::cost(&text).encoding);
        }
    }
}
