//! The menu file format as written by menu authors (serde types, before compilation).
//! The JSON Schema in `menus/menu.schema.json` is generated from these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// One YAML menu file: a service on one or more USSD codes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuFile {
    pub service: String,
    #[schemars(with = "Vec<String>")]
    pub codes: Vec<Spanned<String>>,
    /// Languages in order of preference; the first is the default and the fallback.
    pub languages: Vec<String>,
    /// Region for numbers typed in national form (`0712…`), ISO 3166-1 alpha-2.
    #[serde(default = "default_region")]
    #[schemars(with = "String")]
    pub region: Spanned<String>,
    #[serde(default)]
    pub currency: CurrencyDecl,
    /// Invalid inputs allowed on one screen before the session ends.
    #[serde(default = "default_max_retries")]
    pub max_retries: u8,
    #[schemars(with = "String")]
    pub start: Spanned<String>,
    #[schemars(with = "BTreeMap<String, Screen>")]
    pub screens: BTreeMap<String, Spanned<Screen>>,
}

fn default_region() -> Spanned<String> {
    Spanned::new("KE".into(), serde_saphyr::Location::UNKNOWN, serde_saphyr::Location::UNKNOWN)
}

fn default_max_retries() -> u8 {
    3
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CurrencyDecl {
    pub code: String,
    /// Digits after the decimal point (KES: 2).
    pub exponent: u32,
}

impl Default for CurrencyDecl {
    fn default() -> Self {
        CurrencyDecl { code: "KES".into(), exponent: 2 }
    }
}

/// A text in one or several languages: `"Hello"` or `{ en: Hello, sw: Habari }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Text {
    Same(String),
    PerLanguage(BTreeMap<String, String>),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Screen {
    Menu(MenuStep),
    Input(InputStep),
    Pin(PinStep),
    Action(ActionStep),
    End(EndStep),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuStep {
    #[schemars(with = "Text")]
    pub text: Spanned<Text>,
    pub options: Vec<MenuOption>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuOption {
    #[schemars(with = "Text")]
    pub label: Spanned<Text>,
    #[schemars(with = "String")]
    pub next: Spanned<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Digits,
    Amount,
    Msisdn,
    /// A person's first or last name, tidied into title case.
    Name,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputStep {
    #[schemars(with = "Text")]
    pub text: Spanned<Text>,
    pub kind: InputKind,
    /// Session variable that receives the parsed value.
    pub save: String,
    #[schemars(with = "String")]
    pub next: Spanned<String>,
    /// Smallest accepted value: major units for `amount`, the number for `digits`.
    pub min: Option<u64>,
    pub max: Option<u64>,
    /// Length bounds for `digits`.
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    /// Replaces the built-in error line shown when the input is rejected.
    #[schemars(with = "Option<Text>")]
    pub error: Option<Spanned<Text>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PinStep {
    #[schemars(with = "Text")]
    pub text: Spanned<Text>,
    /// Name under which the op receives the PIN (default `pin`); it is never a session variable.
    #[serde(default = "default_pin_name")]
    pub save: String,
    /// Must be an `action`: the PIN lives for this hop only.
    #[schemars(with = "String")]
    pub next: Spanned<String>,
    #[schemars(with = "Option<Text>")]
    pub error: Option<Spanned<Text>>,
}

fn default_pin_name() -> String {
    "pin".into()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionStep {
    #[schemars(with = "String")]
    pub op: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub args: BTreeMap<String, Spanned<String>>,
    /// Session variable that receives the op's data on `ok`.
    pub save: Option<String>,
    /// Outcome name (or `other`) → next screen.
    #[schemars(with = "BTreeMap<String, Route>")]
    pub on: BTreeMap<String, Spanned<Route>>,
    /// On `ok`, switch the session to this language (a template, e.g.
    /// `"{{ customer.language }}"`); ignored unless the menu has that language.
    #[schemars(with = "Option<String>")]
    pub lang: Option<Spanned<String>>,
}

/// Where an outcome leads: a screen, optionally shown with an error line.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Route {
    Screen(String),
    WithError { next: String, error: Text },
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndStep {
    #[schemars(with = "Text")]
    pub text: Spanned<Text>,
}
