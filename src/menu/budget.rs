//! What fits on one screen: GSM-7 septets or UCS-2 units, and splitting long screens
//! into pages with More and Back.

use crate::gsm::septets as septets_of;
pub use crate::gsm::{Encoding, cost};

/// The most one screen may hold in each encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Budget {
    /// GSM-7 septets, when every character is in GSM 03.38.
    #[serde(rename = "g")]
    pub gsm7: usize,
    /// UTF-16 units, once any character is not.
    #[serde(rename = "u")]
    pub ucs2: usize,
}

impl Budget {
    /// The smaller of two budgets in each encoding.
    pub fn min(self, other: Budget) -> Budget {
        Budget { gsm7: self.gsm7.min(other.gsm7), ucs2: self.ucs2.min(other.ucs2) }
    }

    /// `160/80` (GSM-7 septets / UCS-2 units), as written in configuration.
    pub fn parse(text: &str) -> Option<Budget> {
        let (gsm7, ucs2) = text.trim().split_once('/')?;
        let budget = Budget { gsm7: gsm7.trim().parse().ok()?, ucs2: ucs2.trim().parse().ok()? };
        (budget.gsm7 >= 40 && budget.ucs2 >= 20).then_some(budget)
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget { gsm7: 160, ucs2: 80 }
    }
}

impl Budget {
    pub fn fits(&self, text: &str) -> bool {
        let c = cost(text);
        c.units
            <= match c.encoding {
                Encoding::Gsm7 => self.gsm7,
                Encoding::Ucs2 => self.ucs2,
            }
    }
}

/// The navigation lines a page may end with, already localised and numbered.
#[derive(Debug)]
pub struct NavLines {
    /// e.g. `98. More`
    pub more: String,
    /// e.g. `0. Back`
    pub back: String,
}

/// How the pages of one screen are laid out.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Show Back on the first page (a previous screen exists).
    pub back_on_first: bool,
    /// An `end` screen: its last page closes the session and offers no keys.
    pub ends: bool,
}

/// The size of a text in both encodings, and whether GSM-7 can carry it; sizes add up
/// line by line, so that pagination never re-measures a page.
#[derive(Clone, Copy, Debug)]
struct Size {
    septets: usize,
    units: usize,
    gsm: bool,
}

impl Size {
    const NEWLINE: Size = Size { septets: 1, units: 1, gsm: true };
    const ZERO: Size = Size { septets: 0, units: 0, gsm: true };

    fn of(text: &str) -> Size {
        let mut septets = 0;
        let mut gsm = true;
        for c in text.chars() {
            match septets_of(c) {
                Some(n) => septets += n,
                None => gsm = false,
            }
        }
        Size { septets, units: text.encode_utf16().count(), gsm }
    }

    fn plus(self, other: Size) -> Size {
        Size {
            septets: self.septets + other.septets,
            units: self.units + other.units,
            gsm: self.gsm && other.gsm,
        }
    }

    fn fits(self, budget: Budget) -> bool {
        if self.gsm { self.septets <= budget.gsm7 } else { self.units <= budget.ucs2 }
    }
}

/// Splits a screen into pages that each fit `budget`: `header` lines (prose, cut at
/// spaces if one line is too long) then `options` (kept whole unless one alone cannot
/// fit). Every page but the last ends with More; pages after the first offer Back.
pub fn paginate(
    header: &[String],
    options: &[String],
    nav: &NavLines,
    layout: Layout,
    budget: Budget,
) -> Vec<String> {
    let mut queue: std::collections::VecDeque<(String, Size)> =
        header.iter().chain(options).map(|l| (l.clone(), Size::of(l))).collect();
    let (more_size, back_size) = (Size::of(&nav.more), Size::of(&nav.back));
    let mut pages = Vec::new();
    loop {
        let back = !pages.is_empty() || layout.back_on_first;
        // What the navigation lines add to a body of `lines` lines.
        let with_nav = |body: Size, lines: usize, more: bool| -> Size {
            let mut size = body;
            let mut count = lines;
            let show_back = back && (more || !layout.ends);
            for (wanted, line) in [(more, more_size), (show_back, back_size)] {
                if wanted {
                    if count > 0 {
                        size = size.plus(Size::NEWLINE);
                    }
                    size = size.plus(line);
                    count += 1;
                }
            }
            size
        };
        let compose = |body: &[String], more: bool| -> String {
            let mut page = body.join("\n");
            let show_back = back && (more || !layout.ends);
            for (wanted, line) in [(more, &nav.more), (show_back, &nav.back)] {
                if wanted {
                    if !page.is_empty() {
                        page.push('\n');
                    }
                    page.push_str(line);
                }
            }
            page
        };
        let rest = queue.iter().enumerate().fold(Size::ZERO, |acc, (i, (_, size))| {
            if i == 0 { acc.plus(*size) } else { acc.plus(Size::NEWLINE).plus(*size) }
        });
        if with_nav(rest, queue.len(), false).fits(budget) {
            let body: Vec<String> = queue.into_iter().map(|(line, _)| line).collect();
            pages.push(compose(&body, false));
            return pages;
        }
        let mut body: Vec<String> = Vec::new();
        let mut body_size = Size::ZERO;
        while let Some((line, size)) = queue.pop_front() {
            let grown = if body.is_empty() { size } else { body_size.plus(Size::NEWLINE).plus(size) };
            if with_nav(grown, body.len() + 1, true).fits(budget) {
                body.push(line);
                body_size = grown;
                continue;
            }
            if body.is_empty() {
                let (head, tail) =
                    split_to_fit(&line, |prefix| with_nav(Size::of(prefix), 1, true).fits(budget));
                body.push(head);
                if !tail.is_empty() {
                    let tail_size = Size::of(&tail);
                    queue.push_front((tail, tail_size));
                }
            } else {
                queue.push_front((line, size));
            }
            break;
        }
        pages.push(compose(&body, true));
        if queue.is_empty() {
            return pages;
        }
    }
}

/// The longest head of `unit` that `fits`, cut after a word where possible; always at
/// least one character, so that pagination makes progress.
fn split_to_fit(unit: &str, fits: impl Fn(&str) -> bool) -> (String, String) {
    let mut best = 0;
    let mut last_space = None;
    for (i, c) in unit.char_indices() {
        let end = i + c.len_utf8();
        if !fits(&unit[..end]) {
            break;
        }
        best = end;
        if c == ' ' {
            last_space = Some(i);
        }
    }
    let mut cut = match last_space {
        Some(space) if space > 0 && best < unit.len() => space,
        _ => best,
    };
    if cut == 0 {
        cut = unit.chars().next().map_or(0, char::len_utf8);
    }
    (unit[..cut].trim_end().to_owned(), unit[cut..].trim_start().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gsm::Cost;

    fn nav() -> NavLines {
        NavLines { more: "98. More".into(), back: "0. Back".into() }
    }

    const MENU: Layout = Layout { back_on_first: false, ends: false };

    #[test]
    fn gsm7_counts_extension_characters_twice_and_switches_to_ucs2() {
        assert_eq!(cost("Hello €5 [ok]"), Cost { encoding: Encoding::Gsm7, units: 16 });
        assert_eq!(cost("Zoë"), Cost { encoding: Encoding::Ucs2, units: 3 });
        assert_eq!(cost("Wanjirũ"), Cost { encoding: Encoding::Ucs2, units: 7 });
        assert_eq!(cost("é à ñ ß Δ"), Cost { encoding: Encoding::Gsm7, units: 9 });
        // Outside the basic plane a character is two UTF-16 units.
        assert_eq!(cost("ok 👍"), Cost { encoding: Encoding::Ucs2, units: 5 });
        assert_eq!(cost("`").encoding, Encoding::Ucs2);
    }

    #[test]
    fn the_budget_applies_per_encoding() {
        let b = Budget { gsm7: 10, ucs2: 5 };
        assert!(b.fits("0123456789"));
        assert!(!b.fits("0123456789a"));
        assert!(!b.fits("{{{{{{"), "six extension characters are twelve septets");
        assert!(b.fits("ũũũũũ"));
        assert!(!b.fits("ũ12345"));
    }

    #[test]
    fn a_short_screen_is_one_page() {
        let pages =
            paginate(&["Hi".into()], &["1. A".into(), "2. B".into()], &nav(), MENU, Budget::default());
        assert_eq!(pages, ["Hi\n1. A\n2. B"]);
        let back = Layout { back_on_first: true, ..MENU };
        assert_eq!(paginate(&["Hi".into()], &[], &nav(), back, Budget::default()), ["Hi\n0. Back"]);
    }

    #[test]
    fn long_menus_split_between_options_with_more_and_back() {
        let options: Vec<String> = (1..=9).map(|i| format!("{i}. Option number {i}")).collect();
        let budget = Budget { gsm7: 60, ucs2: 30 };
        let pages = paginate(&["Pick one".into()], &options, &nav(), MENU, budget);
        assert!(pages.len() > 2, "{pages:?}");
        for (i, page) in pages.iter().enumerate() {
            assert!(budget.fits(page), "page {i} is over budget: {page:?}");
            assert!(page.ends_with("98. More") || page.ends_with("0. Back"), "{page:?}");
            assert_eq!(page.contains("98. More"), i + 1 < pages.len(), "{page:?}");
            assert_eq!(page.contains("0. Back"), i > 0, "{page:?}");
        }
        // Every option appears exactly once, whole and in order.
        let shown: Vec<&str> =
            pages.iter().flat_map(|p| p.lines()).filter(|l| l.contains("Option")).collect();
        assert_eq!(shown, options.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn long_prose_is_cut_at_words_and_an_end_screen_closes_without_keys() {
        let text = "word ".repeat(60).trim_end().to_owned();
        let layout = Layout { back_on_first: false, ends: true };
        let budget = Budget::default();
        let pages = paginate(std::slice::from_ref(&text), &[], &nav(), layout, budget);
        assert!(pages.len() >= 2, "{pages:?}");
        let last = pages.last().unwrap();
        assert!(!last.contains("98. More") && !last.contains("0. Back"), "{last:?}");
        let words: usize = pages.iter().map(|p| p.split_whitespace().filter(|w| *w == "word").count()).sum();
        assert_eq!(words, 60, "no word lost or cut: {pages:?}");
        assert!(pages.iter().all(|p| budget.fits(p)));
    }

    #[test]
    fn a_word_longer_than_a_page_is_cut_anyway() {
        let budget = Budget { gsm7: 30, ucs2: 15 };
        let pages = paginate(&["x".repeat(100)], &[], &nav(), MENU, budget);
        assert!(pages.iter().all(|p| budget.fits(p)), "{pages:?}");
        let xs: usize = pages.iter().map(|p| p.matches('x').count()).sum();
        assert_eq!(xs, 100);
    }

    proptest::proptest! {
        /// Whatever the lines and the budget, every page fits and nothing is lost,
        /// duplicated or reordered.
        #[test]
        fn pages_fit_and_keep_every_character_in_order(
            header in proptest::collection::vec("[a-z €ũ]{0,120}", 0..3),
            options in proptest::collection::vec("[a-z €ũ]{1,40}", 0..12),
            gsm7 in 40usize..200,
            ucs2 in 20usize..100,
            back_on_first: bool,
            ends: bool,
        ) {
            let nav = NavLines { more: "98. MORE!".into(), back: "0. BACK!".into() };
            let budget = Budget { gsm7, ucs2 };
            let pages = paginate(&header, &options, &nav, Layout { back_on_first, ends }, budget);
            proptest::prop_assert!(!pages.is_empty());
            for page in &pages {
                proptest::prop_assert!(budget.fits(page), "over budget: {:?}", page);
            }
            let shown: String = pages
                .iter()
                .flat_map(|p| p.lines())
                .filter(|l| *l != nav.more && *l != nav.back)
                .flat_map(|l| l.chars())
                .filter(|c| !c.is_whitespace())
                .collect();
            let given: String = header.iter().chain(&options).flat_map(|l| l.chars()).filter(|c| !c.is_whitespace()).collect();
            proptest::prop_assert_eq!(shown, given);
        }
    }

    #[test]
    fn ucs2_pages_use_the_smaller_budget() {
        let options: Vec<String> = (1..=6).map(|i| format!("{i}. Wanjirũ {i}")).collect();
        let budget = Budget { gsm7: 160, ucs2: 40 };
        let pages = paginate(&[], &options, &nav(), MENU, budget);
        assert!(pages.len() >= 2, "{pages:?}");
        assert!(pages.iter().all(|p| p.encode_utf16().count() <= 40), "{pages:?}");
    }
}
