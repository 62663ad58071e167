//! Localised texts compiled into minijinja templates, with the `money` and `mask` filters.

use std::borrow::Cow;

use minijinja::{Environment, UndefinedBehavior, Value};
use serde_json::Map;

use crate::domain::{Currency, one_line};

/// A text in each language of the menu (index = position in `languages`); plain texts
/// skip the template engine entirely.
#[derive(Debug)]
pub struct Tpl {
    by_lang: Vec<Option<Piece>>,
}

#[derive(Debug)]
enum Piece {
    Plain(String),
    Template(String),
}

/// The integer a money filter was given, or an error naming the filter.
fn minor_units(filter: &str, v: Value) -> Result<i64, minijinja::Error> {
    i64::try_from(v.clone()).map_err(|_| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("{filter} expects an integer amount in minor units, got {v}"),
        )
    })
}

/// Owns the compiled templates of one menu.
pub struct Templates {
    env: Environment<'static>,
    count: usize,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").field("count", &self.count).finish()
    }
}

impl Tpl {
    /// A placeholder for a text that failed to compile (the menu is rejected anyway).
    pub fn empty() -> Self {
        Tpl { by_lang: Vec::new() }
    }
}

impl Templates {
    pub fn new(currency: Currency) -> Self {
        let mut env = Environment::new();
        // Screens are plain text: a block tag's own newline is not output.
        env.set_trim_blocks(true);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let plain = currency.clone();
        env.add_filter("money", move |v: Value| minor_units("money", v).map(|m| currency.format(m)));
        // `num`: an amount without the currency code, for tight lines such as statements.
        env.add_filter("num", move |v: Value| minor_units("num", v).map(|m| plain.number(m)));
        env.add_filter("mask", |v: String| crate::domain::msisdn_mask(&v));
        Templates { env, count: 0 }
    }

    /// Compiles one text per language; `Err` carries minijinja's message.
    pub fn add(&mut self, sources: Vec<Option<String>>) -> Result<Tpl, String> {
        let mut by_lang = Vec::with_capacity(sources.len());
        for source in sources {
            let piece = match source {
                None => None,
                Some(s) if !s.contains("{{") && !s.contains("{%") => Some(Piece::Plain(s)),
                Some(s) => {
                    let name = format!("t{}", self.count);
                    self.count += 1;
                    self.env.add_template_owned(name.clone(), s).map_err(|e| e.to_string())?;
                    Some(Piece::Template(name))
                }
            };
            by_lang.push(piece);
        }
        Ok(Tpl { by_lang })
    }

    /// The text `tpl` shows in language `lang`, falling back to the first language.
    fn piece(tpl: &Tpl, lang: usize) -> Option<&Piece> {
        tpl.by_lang.get(lang).and_then(Option::as_ref).or_else(|| tpl.by_lang.iter().flatten().next())
    }

    /// The text as written in the menu file, templates unrendered (for pictures of the flow).
    pub fn source(&self, tpl: &Tpl, lang: usize) -> String {
        match Self::piece(tpl, lang) {
            None => String::new(),
            Some(Piece::Plain(s)) => s.clone(),
            Some(Piece::Template(name)) => {
                self.env.get_template(name).map(|t| t.source().to_owned()).unwrap_or_default()
            }
        }
    }

    /// The text of `tpl` in `lang` when it has no template code: no context needed.
    pub fn plain<'t>(&self, tpl: &'t Tpl, lang: usize) -> Option<&'t str> {
        match Self::piece(tpl, lang) {
            None => Some(""),
            Some(Piece::Plain(s)) => Some(s),
            Some(Piece::Template(_)) => None,
        }
    }

    /// Renders `tpl` in language `lang` (falling back to the first language) over `ctx`.
    pub fn render(&self, tpl: &Tpl, lang: usize, ctx: &Value) -> Result<String, minijinja::Error> {
        match Self::piece(tpl, lang) {
            None => Ok(String::new()),
            Some(Piece::Plain(s)) => Ok(s.clone()),
            Some(Piece::Template(name)) => self.env.get_template(name)?.render(ctx),
        }
    }
}

/// `value` with every string in it made one visible line, borrowed when all are
/// already: values come from outside the menu file (billers, operators, subscribers),
/// and none may draw a line or a menu of its own. The menu's own texts may break lines.
pub fn one_line_value(value: &serde_json::Value) -> Cow<'_, serde_json::Value> {
    if !needs_cleaning(value) {
        return Cow::Borrowed(value);
    }
    let mut owned = value.clone();
    clean(&mut owned);
    Cow::Owned(owned)
}

/// [`one_line_value`] over a journey's variables.
pub fn one_line_values(vars: &Map<String, serde_json::Value>) -> Cow<'_, Map<String, serde_json::Value>> {
    if !vars.values().any(needs_cleaning) {
        return Cow::Borrowed(vars);
    }
    let mut owned = vars.clone();
    owned.values_mut().for_each(clean);
    Cow::Owned(owned)
}

fn needs_cleaning(v: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match v {
        J::String(s) => matches!(one_line(s), Cow::Owned(_)),
        J::Array(items) => items.iter().any(needs_cleaning),
        J::Object(fields) => fields.values().any(needs_cleaning),
        _ => false,
    }
}

fn clean(v: &mut serde_json::Value) {
    use serde_json::Value as J;
    match v {
        J::String(s) => {
            if let Cow::Owned(line) = one_line(s) {
                *s = line;
            }
        }
        J::Array(items) => items.iter_mut().for_each(clean),
        J::Object(fields) => fields.values_mut().for_each(clean),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_are_one_visible_line_and_the_menus_own_breaks_stay() {
        let mut t = Templates::new(Currency::new("KES", 2));
        let tpl = t.add(vec![Some("Pay {{ name }}?{{ '\\n' }}1. Yes".into())]).unwrap();
        let vars = json!({ "name": "John\n1. Yes\n2. No\u{202E}END", "n": [{ "x": "a\tb" }] });
        let clean = one_line_value(&vars);
        assert_eq!(clean["n"][0]["x"], "a b");
        let ctx = minijinja::Value::from_serialize(&*clean);
        assert_eq!(t.render(&tpl, 0, &ctx).unwrap(), "Pay John 1. Yes 2. NoEND?\n1. Yes");
        let tidy = json!({ "name": "Brian" });
        assert!(matches!(one_line_value(&tidy), Cow::Borrowed(_)));
    }
}
