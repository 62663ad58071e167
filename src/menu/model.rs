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
    /// Where a subscriber goes after too many invalid inputs; without it the session ends
    /// with the built-in `too_many_attempts` line.
    #[schemars(with = "Option<String>")]
    pub too_many_attempts: Option<Spanned<String>>,
    #[schemars(with = "String")]
    pub start: Spanned<String>,
    /// Where the Home key leads (default: `start`).
    #[schemars(with = "Option<String>")]
    pub home: Option<Spanned<String>>,
    #[serde(default)]
    pub navigation: Navigation,
    /// Offer a subscriber who drops on one of `screens` and dials again within `within`
    /// seconds to continue where they left off.
    pub resume: Option<ResumeDecl>,
    /// SMS commands that enter this menu's screens.
    pub sms: Option<SmsDecl>,
    /// The most a screen may hold; longer menus and texts are split into pages.
    #[serde(default)]
    pub budget: BudgetDecl,
    /// Replacements for the built-in lines (`back`, `more`, `invalid_choice`, …), per
    /// language, over the `lines:` of the folder's `texts/<language>.yaml`. Required for
    /// every built-in line in a language no texts file writes the lines of (but
    /// `conversation_over` and `too_many_answers`, for which `session_over` and
    /// `too_many_attempts` stand in).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Text>")]
    pub messages: BTreeMap<String, Spanned<Text>>,
    /// The feature flags the menu's `when:` and routers (`flag.<name>`) may test, and the
    /// ops they switch off. Each is switched in the database (admin API, `flags` scope);
    /// `default` holds while no row names it.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, FlagDecl>")]
    pub flags: BTreeMap<String, Spanned<FlagDecl>>,
    #[schemars(with = "BTreeMap<String, Screen>")]
    pub screens: BTreeMap<String, Spanned<Screen>>,
}

/// A feature flag a menu uses.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagDecl {
    /// What it switches, for the operators who will.
    pub about: String,
    /// Whether it is on while the database has no row for it.
    pub default: bool,
    /// Ops that do not run while it is off for the subscriber: the session ends with
    /// `unavailable` (else the built-in `not_available` line) and nothing moves.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub ops: Vec<Spanned<String>>,
    /// What a subscriber is told who reaches a screen or an op it switched off.
    #[schemars(with = "Option<Text>")]
    pub unavailable: Option<Spanned<Text>>,
}

/// Shows an option, or lets a screen be entered, only while a flag is on for the
/// subscriber (decided when their session starts, so that a menu never changes under
/// them). Other options keep their numbers.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct When {
    #[schemars(with = "String")]
    pub flag: Spanned<String>,
}

fn default_region() -> Spanned<String> {
    Spanned::new("KE".into(), serde_saphyr::Location::UNKNOWN, serde_saphyr::Location::UNKNOWN)
}

fn default_max_retries() -> u8 {
    3
}

/// The reserved keys, typed on any screen that waits for input. Menu options are
/// numbered from 1, so the compiler refuses keys that an option number could take.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Navigation {
    /// Previous page, else previous screen.
    pub back: String,
    /// The `home` screen, forgetting the way here.
    pub home: String,
    /// Next page of a screen too long for one.
    pub more: String,
}

impl Default for Navigation {
    fn default() -> Self {
        Navigation { back: "0".into(), home: "00".into(), more: "98".into() }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeDecl {
    /// Seconds after the last screen during which a new dial is offered to continue.
    pub within: u32,
    /// Screens worth coming back to (long forms, a confirmation), that wait for input.
    #[schemars(with = "Vec<String>")]
    pub screens: Vec<Spanned<String>>,
}

/// The menu's SMS commands. A command is a keyword, in any case, with positional
/// arguments (`SEND 0712345678 500`); it enters the screens as a dial string would.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsDecl {
    #[schemars(with = "BTreeMap<String, CommandDecl>")]
    pub commands: BTreeMap<String, Spanned<CommandDecl>>,
    /// The USSD code that takes a movement started by SMS to its PIN screen
    /// (`"*384*9#"`, one of `codes` with digits after it): a PIN screen's `sms` text that
    /// says `{{ dial }}` offers `*384*9*<code>#`, where the subscriber confirms with the PIN.
    #[schemars(with = "Option<String>")]
    pub handoff: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandDecl {
    /// What is typed from the start screen, as after the service code in a dial string
    /// (`["1", "$1", "$2", "1"]`); `$1`, `$2` … stand for the command's arguments.
    pub dial: Vec<String>,
    /// Names of the positional arguments, for the usage line (`[number, amount]`).
    #[serde(default)]
    pub args: Vec<String>,
    /// Other words for the command, per language (`sw: [SALIO]`).
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// The command's line in the help reply.
    #[schemars(with = "Text")]
    pub help: Spanned<Text>,
}

/// Characters one screen may hold: GSM-7 septets (extension characters cost two), or
/// UTF-16 units once any character is outside GSM-7.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetDecl {
    pub gsm7: u16,
    pub ucs2: u16,
}

impl Default for BudgetDecl {
    fn default() -> Self {
        BudgetDecl { gsm7: 160, ucs2: 80 }
    }
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
    Confirm(ConfirmStep),
    Action(ActionStep),
    Router(RouterStep),
    Call(CallStep),
    Return(ReturnStep),
    End(EndStep),
}

impl Screen {
    /// The flag the screen may be entered under, if any.
    pub fn when(&self) -> Option<&When> {
        match self {
            Screen::Menu(s) => s.when.as_ref(),
            Screen::Input(s) => s.when.as_ref(),
            Screen::Pin(s) => s.when.as_ref(),
            Screen::Confirm(s) => s.when.as_ref(),
            Screen::Action(s) => s.when.as_ref(),
            Screen::End(s) => s.when.as_ref(),
            Screen::Router(_) | Screen::Call(_) | Screen::Return(_) => None,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuStep {
    #[schemars(with = "Text")]
    pub text: Spanned<Text>,
    /// Options drawn from a list in the session (numbered first).
    pub items: Option<Items>,
    #[serde(default)]
    pub options: Vec<MenuOption>,
    pub when: Option<When>,
}

/// Menu options made from a list an op returned: one option per element.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Items {
    /// Path of the list in the session, e.g. `result.entries`.
    #[schemars(with = "String")]
    pub from: Spanned<String>,
    /// Label of each element, a template over `item`.
    #[schemars(with = "Text")]
    pub label: Spanned<Text>,
    /// Session variable that receives the chosen element.
    pub save: String,
    #[schemars(with = "String")]
    pub next: Spanned<String>,
    /// At most this many elements are offered.
    #[serde(default = "default_max_items")]
    pub max: u8,
}

fn default_max_items() -> u8 {
    9
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuOption {
    #[schemars(with = "Text")]
    pub label: Spanned<Text>,
    #[schemars(with = "String")]
    pub next: Spanned<String>,
    pub when: Option<When>,
}

#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Digits,
    Amount,
    Msisdn,
    /// A person's first or last name, tidied into title case.
    Name,
    /// Free text, checked with `pattern` and the length bounds.
    Text,
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
    /// Length bounds for `digits`, `name` and `text`.
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    /// A regular expression the whole input must match (`text` and `digits`).
    #[schemars(with = "Option<String>")]
    pub pattern: Option<Spanned<String>>,
    /// Invalid inputs allowed here (default: the menu's `max_retries`).
    pub retries: Option<u8>,
    /// Hand the value to the op on `next` (which must be an `action`) for this hop only,
    /// instead of saving it in the session: for OTPs, ID numbers and the like.
    #[serde(default)]
    pub sensitive: bool,
    /// Replaces the built-in error line shown when the input is rejected.
    #[schemars(with = "Option<Text>")]
    pub error: Option<Spanned<Text>>,
    pub when: Option<When>,
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
    /// Over SMS, where no PIN may travel, what is asked instead when the op moves money:
    /// `{{ code }}` is the one-time code the subscriber replies with (`Reply YES {{ code }}
    /// to send {{ amount|money }} to {{ to|mask }}`), `{{ dial }}` the USSD string that
    /// takes the journey to this screen to finish with the PIN (`sms.handoff`). The text
    /// chooses: a code it does not show cannot be replied with. Ops that only read need
    /// none: the sender's registered number is enough for them.
    #[schemars(with = "Option<Text>")]
    pub sms: Option<Spanned<Text>>,
    pub when: Option<When>,
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
    pub when: Option<When>,
}

/// Where an outcome leads: a screen, optionally shown with an error line.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Route {
    Screen(String),
    WithError { next: String, error: Text },
}

/// A question answered with 1 (yes) or 2 (no), the labels localised.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmStep {
    #[schemars(with = "Text")]
    pub text: Spanned<Text>,
    #[schemars(with = "String")]
    pub yes: Spanned<String>,
    #[schemars(with = "String")]
    pub no: Spanned<String>,
    pub when: Option<When>,
}

/// Goes to the first route whose condition holds, else to `else`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouterStep {
    pub routes: Vec<RouterRoute>,
    #[serde(rename = "else")]
    #[schemars(with = "String")]
    pub otherwise: Spanned<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouterRoute {
    /// A condition over the session, in template expression syntax:
    /// `amount > 100000`, `customer.language == "sw"`, `quote is defined`.
    #[serde(rename = "if")]
    #[schemars(with = "String")]
    pub condition: Spanned<String>,
    #[schemars(with = "String")]
    pub next: Spanned<String>,
}

/// Runs a sub-journey from `journey` until it reaches a `return`, then goes to `next`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallStep {
    #[schemars(with = "String")]
    pub journey: Spanned<String>,
    #[schemars(with = "String")]
    pub next: Spanned<String>,
}

/// Ends a sub-journey: back to the `next` of the `call` that started it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnStep {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndStep {
    #[schemars(with = "Text")]
    pub text: Spanned<Text>,
    pub when: Option<When>,
}
