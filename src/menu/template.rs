//! Localised texts compiled into minijinja templates, with the `money` and `mask` filters.

use std::borrow::Cow;
use std::fmt::Write as _;

use minijinja::{Environment, UndefinedBehavior, Value};
use serde_json::Map;

use crate::domain::{Currency, msisdn_mask, one_line};

/// A text in each language of the menu (index = position in `languages`); plain texts
/// skip the template engine entirely.
#[derive(Debug)]
pub struct Tpl {
    by_lang: Vec<Option<Piece>>,
}

#[derive(Debug)]
enum Piece {
    Plain(String),
    /// A compiled template's name, and the template as [`Prints`] if it only prints.
    Template(String, Option<Prints>),
}

/// A template that only prints variables (`{{ a.b }}`, through `money`, `num` or `mask`
/// or no filter) between literal texts, as most screens do: rendered straight from the
/// journey's variables, without building minijinja's context from all of them. Any
/// other template, or a value that is not a string or an integer, goes to minijinja.
#[derive(Debug)]
struct Prints(Vec<Part>);

#[derive(Debug)]
enum Part {
    Text(String),
    Var { path: Vec<String>, filter: Option<Filter> },
}

#[derive(Clone, Copy, Debug)]
enum Filter {
    Money,
    Num,
    Mask,
}

impl Prints {
    /// `source` as literal texts and printed variables, if that is all it is.
    fn parse(source: &str) -> Option<Prints> {
        // minijinja drops one trailing newline; block tags and comments are its own.
        if source.ends_with('\n') || source.contains("{%") || source.contains("{#") {
            return None;
        }
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            push_text(&mut parts, &rest[..start])?;
            let inner = &rest[start + 2..];
            let end = inner.find("}}")?;
            parts.push(Part::var(&inner[..end])?);
            rest = &inner[end + 2..];
        }
        push_text(&mut parts, rest)?;
        Some(Prints(parts))
    }

    /// The text over `vars` and `lang`, or `None` where minijinja must say what it makes
    /// of a value (a float, a list, a missing variable, a filter given the wrong kind).
    fn render(
        &self,
        vars: &Map<String, serde_json::Value>,
        lang: &str,
        currency: &Currency,
    ) -> Option<String> {
        let mut out = String::with_capacity(128);
        for part in &self.0 {
            let (path, filter) = match part {
                Part::Text(text) => {
                    out.push_str(text);
                    continue;
                }
                Part::Var { path, filter } => (path, *filter),
            };
            match (lookup(vars, lang, path)?, filter) {
                (Found::Str(s), None) => out.push_str(&one_line(s)),
                (Found::Str(s), Some(Filter::Mask)) => out.push_str(&msisdn_mask(&one_line(s))),
                (Found::Int(n), None) => write!(out, "{n}").ok()?,
                (Found::Int(n), Some(Filter::Money)) => out.push_str(&currency.format(n)),
                (Found::Int(n), Some(Filter::Num)) => out.push_str(&currency.number(n)),
                _ => return None,
            }
        }
        Some(out)
    }
}

impl Part {
    /// The inside of `{{ … }}`: a dotted path of names, and at most one known filter.
    fn var(expr: &str) -> Option<Part> {
        let (path, filter) = match expr.split_once('|') {
            Some((path, filter)) => (path, Some(filter.trim())),
            None => (expr, None),
        };
        let filter = match filter {
            None => None,
            Some("money") => Some(Filter::Money),
            Some("num") => Some(Filter::Num),
            Some("mask") => Some(Filter::Mask),
            Some(_) => return None,
        };
        // `{{-` and `-}}` (trimming the text around) are left in, and are no name.
        let path = path.trim();
        let path: Vec<String> = path.split('.').map(str::to_owned).collect();
        let literal = matches!(path[0].as_str(), "true" | "false" | "none" | "True" | "False" | "None");
        (!literal && path.iter().all(|name| is_name(name))).then_some(Part::Var { path, filter })
    }
}

fn push_text(parts: &mut Vec<Part>, text: &str) -> Option<()> {
    if text.contains("}}") {
        return None;
    }
    if !text.is_empty() {
        parts.push(Part::Text(text.to_owned()));
    }
    Some(())
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

enum Found<'a> {
    Str(&'a str),
    Int(i64),
}

/// The value at `path`, as templates see it: `lang` is the session's language, the
/// rest the journey's variables.
fn lookup<'a>(vars: &'a Map<String, serde_json::Value>, lang: &'a str, path: &[String]) -> Option<Found<'a>> {
    let (first, rest) = path.split_first()?;
    if first == "lang" {
        return rest.is_empty().then_some(Found::Str(lang));
    }
    let mut value = vars.get(first)?;
    for name in rest {
        value = value.as_object()?.get(name)?;
    }
    match value {
        serde_json::Value::String(s) => Some(Found::Str(s)),
        serde_json::Value::Number(n) => n.as_i64().map(Found::Int),
        _ => None,
    }
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
    currency: Currency,
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
        let (money, num) = (currency.clone(), currency.clone());
        env.add_filter("money", move |v: Value| minor_units("money", v).map(|m| money.format(m)));
        // `num`: an amount without the currency code, for tight lines such as statements.
        env.add_filter("num", move |v: Value| minor_units("num", v).map(|m| num.number(m)));
        env.add_filter("mask", |v: String| msisdn_mask(&v));
        Templates { env, count: 0, currency }
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
                    let prints = Prints::parse(&s);
                    self.env.add_template_owned(name.clone(), s).map_err(|e| e.to_string())?;
                    Some(Piece::Template(name, prints))
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
            Some(Piece::Template(name, _)) => {
                self.env.get_template(name).map(|t| t.source().to_owned()).unwrap_or_default()
            }
        }
    }

    /// The text of `tpl` in `lang` when it has no template code: no context needed.
    pub fn plain<'t>(&self, tpl: &'t Tpl, lang: usize) -> Option<&'t str> {
        match Self::piece(tpl, lang) {
            None => Some(""),
            Some(Piece::Plain(s)) => Some(s),
            Some(Piece::Template(..)) => None,
        }
    }

    /// The text of `tpl` in `lang` over the journey's `vars` and language `code`, when
    /// the template only prints them; `None` when it takes minijinja.
    pub fn printed(
        &self,
        tpl: &Tpl,
        lang: usize,
        vars: &Map<String, serde_json::Value>,
        code: &str,
    ) -> Option<String> {
        match Self::piece(tpl, lang)? {
            Piece::Template(_, Some(prints)) => prints.render(vars, code, &self.currency),
            _ => None,
        }
    }

    /// The variables the compiled template `name` (as a render error names it: `t3`)
    /// reads without setting them, sorted.
    pub fn reads(&self, name: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .env
            .get_template(name)
            .map(|t| t.undeclared_variables(false).into_iter().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Renders `tpl` in language `lang` (falling back to the first language) over `ctx`.
    pub fn render(&self, tpl: &Tpl, lang: usize, ctx: &Value) -> Result<String, minijinja::Error> {
        match Self::piece(tpl, lang) {
            None => Ok(String::new()),
            Some(Piece::Plain(s)) => Ok(s.clone()),
            Some(Piece::Template(name, _)) => self.env.get_template(name)?.render(ctx),
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

    /// Each text rendered both ways over `vars`: the direct way (`None` when it defers)
    /// and minijinja's.
    fn both(source: &str, vars: serde_json::Value) -> (Option<String>, Result<String, String>) {
        let mut t = Templates::new(Currency::new("KES", 2));
        let tpl = t.add(vec![Some(source.into())]).unwrap();
        let serde_json::Value::Object(vars) = vars else { panic!("vars are an object") };
        let direct = t.printed(&tpl, 0, &vars, "sw");
        let clean = one_line_values(&vars);
        let ctx = minijinja::context! { lang => "sw", ..minijinja::Value::from_serialize(&*clean) };
        (direct, t.render(&tpl, 0, &ctx).map_err(|e| e.to_string()))
    }

    #[test]
    fn a_template_that_only_prints_is_rendered_as_minijinja_would() {
        let vars = json!({
            "customer": { "first_name": "Amina", "language": "sw", "deep": { "n": -42 } },
            "amount": 150_050,
            "to": "+254700000002",
            "name": "John\n1. Yes\u{202E}",
            "lang": "en",
        });
        for source in [
            "Welcome {{ customer.first_name }}",
            "Karibu {{customer.first_name}}!",
            "{{ customer.language }}",
            "Send {{ amount|money }} to {{ to|mask }}?\n1. Yes\n2. No",
            "{{ amount | num }} / {{ amount }} / {{ customer.deep.n|money }}",
            "Pay {{ name }}",
            "{{ lang }}",
        ] {
            let (direct, jinja) = both(source, vars.clone());
            assert_eq!(direct.as_deref(), Some(jinja.unwrap().as_str()), "{source}");
        }
    }

    #[test]
    fn anything_else_is_left_to_minijinja() {
        let vars = json!({ "x": 1.5, "flag": true, "list": [1], "s": "a", "n": 7 });
        for source in [
            "{{ x }}",
            "{{ flag }}",
            "{{ list }}",
            "{{ missing }}",
            "{{ s.deeper }}",
            "{{ s|money }}",
            "{{ n|mask }}",
            "{{ s|upper }}",
            "{{ true }}",
            "{{- s }} x",
            "{{ s -}} x",
            "{{ list[0] }}",
            "{% if n %}yes{% endif %}",
            "{# note #}{{ s }}",
            "{{ s }}\n",
            "{{ lang.x }}",
        ] {
            let (direct, _) = both(source, vars.clone());
            assert_eq!(direct, None, "{source}");
        }
    }

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
