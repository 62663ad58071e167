//! The gateway's own words per language — SMS receipts, why a promised request was not
//! completed, replies to SMS commands, the lines the engine adds to screens — from the
//! menu folder's `texts/<language>.yaml` over the shipped English and Swahili, each
//! checked: present, with only the values it may read, and within its SMS parts over
//! the longest values.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use serde::Deserialize;

use super::Diagnostic;
use super::messages::Message;

/// A receipt the ledger writes: its template's name, the values its text may read
/// (`party` is the counterparty's name and number, `token` a prepaid token's sentence),
/// and the SMS parts its text may take over the longest of them.
pub struct ReceiptSpec {
    pub template: &'static str,
    pub fields: &'static [&'static str],
    pub parts: usize,
}

macro_rules! receipts {
    ($($template:literal: [$($field:literal),*] $(* $parts:literal)?),* $(,)?) => {
        &[$(ReceiptSpec { template: $template, fields: &[$($field),*], parts: parts_or(&[$($parts)?]) }),*]
    };
}

const fn parts_or(given: &[usize]) -> usize {
    if given.is_empty() { RECEIPT_PARTS } else { given[0] }
}

/// Every receipt the ledger writes, in the order of the shipped files.
pub const RECEIPTS: &[ReceiptSpec] = receipts![
    "p2p_sent": ["ref", "party", "amount", "fee", "balance", "date", "time"],
    "p2p_received": ["ref", "party", "amount", "balance", "date", "time"],
    "reversal_debited": ["ref", "party", "amount", "balance", "original_ref", "date", "time"],
    "reversal_credited": ["ref", "party", "amount", "balance", "original_ref", "date", "time"],
    "cash_in_given": ["ref", "party", "amount", "balance", "date", "time"],
    "cash_in_received": ["ref", "agent", "agent_number", "amount", "balance", "date", "time"],
    "cash_out_withdrawn": ["ref", "agent", "agent_number", "store", "amount", "fee", "balance", "date", "time"],
    // A customer's two names of 60 letters each, a 40-digit token: three parts.
    "cash_out_paid": ["ref", "party", "amount", "balance", "commission", "date", "time"] * 3,
    "float_sent": ["ref", "agent", "agent_number", "amount", "balance", "date", "time"],
    "float_received": ["ref", "agent", "agent_number", "amount", "balance", "date", "time"],
    "cash_out_request": ["ref", "agent", "agent_number", "store", "dial", "amount", "fee", "minutes"],
    "cash_out_declined": ["ref", "party", "amount"],
    "cash_out_expired": ["ref", "party", "amount"],
    "bill_paid": ["ref", "biller", "account", "biller_ref", "amount", "fee", "balance", "token", "date", "time"] * 3,
    "bill_rejected": ["ref", "biller", "account", "reason", "amount"],
    "refund_requested": ["ref", "party", "amount"],
    "refund_asked": ["ref", "party", "amount"],
    "reversal_asked": ["ref", "party", "amount", "hours", "dial"],
    "reversal_held": ["ref", "party", "amount", "hours"],
    "reversal_queued": ["ref", "party", "amount"],
    "reversal_disputed": ["ref", "party", "amount"],
    "reversal_rejected": ["ref", "party", "amount"],
    "reversal_released": ["ref", "party", "amount"],
    "airtime_bought": ["ref", "amount", "account", "biller_ref", "balance", "date", "time"],
    "airtime_refused": ["ref", "amount", "account", "reason"],
    "till_paid": ["ref", "amount", "merchant", "number", "balance", "date", "time"],
    "till_received": ["ref", "amount", "number", "party", "fee", "date", "time"],
    "paybill_paid": ["ref", "amount", "merchant", "account", "fee", "balance", "date", "time"],
    "merchant_withdrawn": ["ref", "amount", "merchant", "balance", "date", "time"],
    "paybill_received": ["ref", "amount", "number", "account", "party", "fee", "date", "time"],
    // An identity check's end: the customer's first name, and verified the new daily limit.
    "identity_verified": ["name", "amount"],
    "identity_review": ["name"],
    "identity_rejected": ["name"],
];

/// The outcomes a not-completed message names a reason for; `other` for the rest.
pub const REASONS: &[&str] = &[
    "pin_invalid",
    "pin_locked",
    "not_registered",
    "account_blocked",
    "insufficient_funds",
    "limit_exceeded",
    "recipient_unknown",
    "same_account",
    "conflict",
    "not_agent",
    "store_unknown",
    "expired",
    "account_invalid",
    "other",
];

/// The ops whose completion is told by a message of its own (the movement's receipts do
/// not reach their caller yet).
pub const COMPLETED: &[&str] = &["agent.cash_out_request"];

/// The gateway's own replies to an SMS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnReply {
    Stopped,
    Started,
    NotRegistered,
    Help,
}

impl OwnReply {
    const ALL: [OwnReply; 4] =
        [OwnReply::Stopped, OwnReply::Started, OwnReply::NotRegistered, OwnReply::Help];

    fn key(self) -> &'static str {
        match self {
            OwnReply::Stopped => "stopped",
            OwnReply::Started => "started",
            OwnReply::NotRegistered => "not_registered",
            OwnReply::Help => "help",
        }
    }

    fn fields(self) -> &'static [&'static str] {
        match self {
            OwnReply::Stopped | OwnReply::Started => &[],
            OwnReply::NotRegistered | OwnReply::Help => &["code"],
        }
    }
}

/// The SMS parts a receipt (unless its spec says more), a completion or a reply may
/// take, and a not-completed message (reason included) or a built-in line (some are
/// SMS replies on their own).
const RECEIPT_PARTS: usize = 2;
const NOT_COMPLETED_PARTS: usize = 1;
const LINE_PARTS: usize = 1;

/// The longest value of each field, as the database and the ledger let them be: a
/// customer's two names of 60 letters and a number masked to 13 (a first name alone of 60), an agent's or a store's
/// name of 40, a merchant's or a biller's of 30, an account of 30, a biller's reference
/// of 24 and reason of 60, a 40-digit token, amounts to a hundred million, an approval
/// of a day (1440 minutes) and a dispute window of 30 days (720 hours).
fn longest(field: &str) -> String {
    let n = |c: &str, count: usize| c.repeat(count);
    match field {
        "ref" | "original_ref" => "TX0000002A".into(),
        "party" => format!("{} {} +254700***001", n("B", 60), n("W", 60)),
        "agent" | "store" => n("A", 40),
        "name" => n("N", 60),
        "merchant" | "biller" | "account" => n("M", 30),
        "agent_number" | "number" => "1234567".into(),
        "biller_ref" => n("R", 24),
        "reason" => n("x", 60),
        "token" => n("1", 40),
        "dial" => "*384*7*123456#".into(),
        "code" => "*384*123#".into(),
        "minutes" => "1440".into(),
        "hours" => "720".into(),
        "date" => "22/11/26".into(),
        "time" => "23:59".into(),
        // amount, fee, balance, commission
        _ => "KES 99,999,999.99".into(),
    }
}

/// The values a text must say where it may: a receipt without its reference, amount,
/// token or the code to dial would leave its reader unable to act on it.
const REQUIRED: &[&str] = &["ref", "amount", "token", "dial", "code", "reason"];

/// The words of one language; what a file leaves out stays as it was (a shipped
/// language) or is reported missing (a new one).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Words {
    #[serde(default)]
    receipts: BTreeMap<String, String>,
    #[serde(default)]
    not_completed: NotCompleted,
    #[serde(default)]
    completed: BTreeMap<String, String>,
    #[serde(default)]
    replies: BTreeMap<String, String>,
    #[serde(default)]
    lines: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotCompleted {
    not_arrived: Option<String>,
    refused: Option<String>,
    #[serde(default)]
    reasons: BTreeMap<String, String>,
}

impl Words {
    fn over(mut self, base: &Words) -> Words {
        for (into, from) in [
            (&mut self.receipts, &base.receipts),
            (&mut self.completed, &base.completed),
            (&mut self.replies, &base.replies),
            (&mut self.lines, &base.lines),
            (&mut self.not_completed.reasons, &base.not_completed.reasons),
        ] {
            for (key, text) in from {
                into.entry(key.clone()).or_insert_with(|| text.clone());
            }
        }
        let nc = &mut self.not_completed;
        nc.not_arrived = nc.not_arrived.take().or_else(|| base.not_completed.not_arrived.clone());
        nc.refused = nc.refused.take().or_else(|| base.not_completed.refused.clone());
        self
    }
}

/// Every language's words, checked. English is always there, and stands in for a
/// language nobody wrote.
#[derive(Debug)]
pub struct Texts {
    languages: HashMap<String, Words>,
}

const SHIPPED: [(&str, &str); 2] =
    [("en", include_str!("../../menus/texts/en.yaml")), ("sw", include_str!("../../menus/texts/sw.yaml"))];

static SHIPPED_TEXTS: LazyLock<Arc<Texts>> =
    LazyLock::new(|| Arc::new(Texts::from_sources([]).expect("the shipped texts pass their own checks")));

impl Texts {
    /// The shipped English and Swahili.
    pub fn shipped() -> &'static Arc<Texts> {
        &SHIPPED_TEXTS
    }

    /// The shipped texts with `dir/texts/*.yaml` over them (no such folder, the
    /// shipped), and every problem: what could be read is kept beside them, since menus
    /// are checked against a folder's texts even when some are wrong, so that one pass
    /// reports both.
    pub fn read_dir(dir: &Path) -> (Texts, Vec<Diagnostic>) {
        let folder = dir.join("texts");
        if !folder.is_dir() {
            return Texts::read([]);
        }
        let problem = |path: &Path, message: String| Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message,
            hint: None,
        };
        let paths = match super::yaml_files(&folder) {
            Ok(paths) => paths,
            Err(e) => {
                let (texts, _) = Texts::read([]);
                return (texts, vec![problem(&folder, format!("cannot read the texts folder: {e}"))]);
            }
        };
        let mut files = Vec::new();
        let mut unreadable = Vec::new();
        for path in paths {
            match std::fs::read_to_string(&path) {
                Ok(source) => files.push((path, source)),
                Err(e) => unreadable.push(problem(&path, format!("cannot read {}: {e}", path.display()))),
            }
        }
        let (texts, mut problems) = Texts::read(files.iter().map(|(p, s)| (p.as_path(), s.as_str())));
        problems.append(&mut unreadable);
        (texts, problems)
    }

    /// The shipped texts with each `(texts/<language>.yaml, its text)` over them: every
    /// problem of every file at once.
    pub fn from_sources<'a>(
        files: impl IntoIterator<Item = (&'a Path, &'a str)>,
    ) -> Result<Texts, Vec<Diagnostic>> {
        match Texts::read(files) {
            (texts, problems) if problems.is_empty() => Ok(texts),
            (_, problems) => Err(problems),
        }
    }

    /// The texts that could be read, and every problem.
    fn read<'a>(files: impl IntoIterator<Item = (&'a Path, &'a str)>) -> (Texts, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let mut languages: HashMap<String, Words> = HashMap::new();
        let mut sources: HashMap<String, (PathBuf, String)> = HashMap::new();
        let shipped = SHIPPED
            .iter()
            .map(|(language, source)| (PathBuf::from(format!("texts/{language}.yaml")), *source));
        for (shipped, (path, source)) in
            shipped.map(|f| (true, f)).chain(files.into_iter().map(|(p, s)| (false, (p.to_path_buf(), s))))
        {
            let Some(language) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
                continue;
            };
            if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_lowercase()) {
                diagnostics.push(at(
                    &path,
                    0,
                    format!("`{language}` is not a language code"),
                    "name each file after its language: fr.yaml, pt.yaml",
                ));
                continue;
            }
            let words: Words = match serde_saphyr::from_str(source) {
                Ok(words) => words,
                Err(e) => {
                    let line = e.location().map_or(0, |l| l.line());
                    let message = e.to_string();
                    let message = message.lines().next().unwrap_or_default();
                    let hint = "see menus/texts/en.yaml for the sections and keys";
                    diagnostics.push(at(&path, line, format!("not a texts file: {message}"), hint));
                    continue;
                }
            };
            let words = match languages.remove(&language) {
                Some(base) if !shipped => words.over(&base),
                _ => words,
            };
            languages.insert(language.clone(), words);
            sources.insert(language, (path, source.to_owned()));
        }
        let mut sorted: Vec<_> = languages.iter().collect();
        sorted.sort_by_key(|(language, _)| language.as_str());
        for (language, words) in sorted {
            let (path, source) = &sources[language];
            check(path, source, words, &mut diagnostics);
        }
        // One problem once: a sentence refused with every reason says so once.
        let mut seen = std::collections::HashSet::new();
        diagnostics.retain(|d| seen.insert((d.file.clone(), d.line, d.message.clone())));
        diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        (Texts { languages }, diagnostics)
    }

    /// The languages written, sorted.
    pub fn languages(&self) -> Vec<&str> {
        let mut languages: Vec<&str> = self.languages.keys().map(String::as_str).collect();
        languages.sort_unstable();
        languages
    }

    fn words(&self, language: &str) -> &Words {
        self.languages.get(language).or_else(|| self.languages.get("en")).expect("English is always written")
    }

    /// A receipt's words in `language` (English where nobody wrote it), or `None` for a
    /// template no receipt has.
    pub fn receipt(&self, language: &str, template: &str) -> Option<&str> {
        self.words(language).receipts.get(template).map(String::as_str)
    }

    /// That a request the subscriber waited for did not arrive: nothing moved.
    pub fn not_arrived(&self, language: &str) -> &str {
        self.words(language).not_completed.not_arrived.as_deref().unwrap_or_default()
    }

    /// That a request was refused for `outcome`'s reason: nothing moved.
    pub fn refused(&self, language: &str, outcome: &str) -> String {
        let words = &self.words(language).not_completed;
        let reasons = &words.reasons;
        let reason =
            reasons.get(outcome).or_else(|| reasons.get("other")).map(String::as_str).unwrap_or_default();
        let text = words.refused.as_deref().unwrap_or_default();
        fill(text, &[("reason", reason.to_owned())]).unwrap_or_else(|_| text.to_owned())
    }

    /// That `op` was done, with its transfer's `reference`; `None` for an op without
    /// such a message.
    pub fn completed(&self, language: &str, op: &str, reference: &str) -> Option<String> {
        let text = self.words(language).completed.get(op)?;
        fill(text, &[("ref", reference.to_owned())]).ok()
    }

    /// Whether `language` has the built-in lines written (a file of its own with them).
    pub fn has_lines(&self, language: &str) -> bool {
        self.languages.get(language).is_some_and(|w| !w.lines.is_empty())
    }

    /// A built-in line in `language`, English where that language has none.
    pub fn line(&self, language: &str, message: Message) -> &str {
        let english = || self.languages.get("en").and_then(|w| w.lines.get(message.name()));
        self.words(language).lines.get(message.name()).or_else(english).map_or("", String::as_str)
    }

    /// One of the gateway's own replies, the menu's code in it.
    pub fn reply(&self, language: &str, reply: OwnReply, code: &str) -> String {
        let text = self.words(language).replies.get(reply.key()).map(String::as_str).unwrap_or_default();
        fill(text, &[("code", code.to_owned())]).unwrap_or_else(|_| text.to_owned())
    }
}

/// `words` with each `{field}` replaced by its value; a name without a value is the
/// reason it cannot be made.
pub fn fill(words: &str, values: &[(&str, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(words.len() + 64);
    let mut rest = words;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map(|c| open + c).ok_or("an unclosed `{` in a text")?;
        let name = &rest[open + 1..close];
        let value =
            values.iter().find(|(n, _)| *n == name).ok_or_else(|| format!("no value for `{{{name}}}`"))?;
        out.push_str(&value.1);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn at(path: &Path, line: u64, message: String, hint: &str) -> Diagnostic {
    Diagnostic {
        file: path.to_path_buf(),
        line,
        column: if line == 0 { 0 } else { 1 },
        message,
        hint: Some(hint.into()),
    }
}

/// The line of `key:` in `source`, under `section:` where it is given (`not_registered`
/// is a reason and a reply), where a text's problem is shown; 0 when it is not there.
fn line_of(source: &str, section: Option<&str>, key: &str) -> u64 {
    let lines: Vec<&str> = source.lines().collect();
    let from = section
        .and_then(|s| lines.iter().position(|l| l.trim_start().starts_with(&format!("{s}:"))))
        .unwrap_or(0);
    let wanted = format!("{key}:");
    let quoted = format!("\"{key}\":");
    lines[from..]
        .iter()
        .position(|l| l.trim_start().starts_with(&wanted) || l.trim_start().starts_with(&quoted))
        .map_or(0, |n| (from + n) as u64 + 1)
}

/// Where one language's problems go.
struct Checker<'a> {
    path: &'a Path,
    source: &'a str,
    diagnostics: &'a mut Vec<Diagnostic>,
}

/// One text to check: its section in the file (and the key that section has in the
/// file, for its line), its key, the values it may read (`extra` fills those the text
/// carries from elsewhere) and the SMS parts it may take.
struct Checked<'a> {
    section: &'a str,
    key: &'a str,
    fields: &'a [&'a str],
    extra: Vec<(&'a str, String)>,
    parts: usize,
}

impl Checker<'_> {
    fn missing(&mut self, what: String) {
        let hint = "every language writes every text; copy it from en.yaml and translate it";
        self.diagnostics.push(at(self.path, 0, format!("no text for {what}"), hint));
    }

    fn problem(&mut self, section: &str, key: &str, message: String, hint: &str) {
        let line = line_of(self.source, Some(section), key);
        self.diagnostics.push(at(self.path, line, message, hint));
    }

    /// One text: present, reading only its values and every one it must say, and
    /// within its parts over the longest values.
    fn text(&mut self, what: Checked<'_>, text: Option<&String>) {
        let Checked { section, key, fields, extra, parts } = what;
        let Some(text) = text else { return self.missing(format!("{section} `{key}`")) };
        let mut values: Vec<(&str, String)> = fields.iter().map(|f| (*f, longest(f))).collect();
        values.extend(extra.iter().cloned());
        let may: Vec<String> = values.iter().map(|(f, _)| format!("{{{f}}}")).collect();
        let filled = match fill(text, &values) {
            Ok(filled) => filled,
            Err(reason) => {
                let hint = if may.is_empty() {
                    "it reads no value; a brace cannot be written in a text".to_owned()
                } else {
                    format!("it may read {}", may.join(", "))
                };
                return self.problem(section, key, format!("{section} `{key}`: {reason}"), &hint);
            }
        };
        for must in values.iter().map(|(f, _)| *f).filter(|f| REQUIRED.contains(f)) {
            if !text.contains(&format!("{{{must}}}")) {
                let message = format!("{section} `{key}` does not say `{{{must}}}`");
                self.problem(section, key, message, "its reader needs it to act on the message: put it back");
            }
        }
        let taken = crate::segments::segment(&filled).count();
        if taken > parts {
            let hint = match filled.chars().find(|c| crate::gsm::septets(*c).is_none()) {
                Some(c) => format!(
                    "`{c}` is not in GSM-7, so each part holds 67 letters, not 153: write the text without it (é è à ù are GSM-7)"
                ),
                None => "shorten it".to_owned(),
            };
            let message = format!(
                "{section} `{key}` takes {taken} SMS parts over the longest values; it may take {parts}"
            );
            self.problem(section, key, message, &hint);
        }
    }

    /// A key that names nothing: a misspelling, whose text would never be sent.
    fn unknown(&mut self, section: &str, keys: Vec<&String>, names: &[&str]) {
        for key in keys.into_iter().filter(|k| !names.contains(&k.as_str())) {
            let distance = |n: &str| strsim::levenshtein(n, key);
            let near = names.iter().copied().min_by_key(|n| distance(n)).filter(|n| distance(n) <= 3);
            let hint = match near {
                Some(n) => format!("did you mean `{n}`?"),
                None => format!("the {section} are {}", names.join(", ")),
            };
            self.problem(section, key, format!("{section} has no `{key}`"), &hint);
        }
    }
}

/// Every text of one language: present, reading only its values, and within its parts
/// over the longest of them; a key no text has (a misspelt one) is named.
fn check(path: &Path, source: &str, words: &Words, diagnostics: &mut Vec<Diagnostic>) {
    let mut c = Checker { path, source, diagnostics };
    let token = words.receipts.get("token");
    let what = Checked {
        section: "receipts",
        key: "token",
        fields: &["token"],
        extra: Vec::new(),
        parts: RECEIPT_PARTS,
    };
    c.text(what, token);
    let token = token.and_then(|t| fill(t, &[("token", longest("token"))]).ok()).unwrap_or_default();
    for spec in RECEIPTS {
        let fields: Vec<&str> = spec.fields.iter().copied().filter(|f| *f != "token").collect();
        let extra = if spec.fields.contains(&"token") { vec![("token", token.clone())] } else { Vec::new() };
        let what =
            Checked { section: "receipts", key: spec.template, fields: &fields, extra, parts: spec.parts };
        c.text(what, words.receipts.get(spec.template));
    }
    let nc = &words.not_completed;
    let not_completed = |key, extra| Checked {
        section: "not_completed",
        key,
        fields: &[],
        extra,
        parts: NOT_COMPLETED_PARTS,
    };
    c.text(not_completed("not_arrived", Vec::new()), nc.not_arrived.as_ref());
    // Each reason alone (it reads nothing), then inside the sentence that carries it.
    for reason in REASONS {
        let said = nc.reasons.get(*reason);
        c.text(Checked { section: "reasons", ..not_completed(reason, Vec::new()) }, said);
        if let Some(said) = said {
            c.text(not_completed("refused", vec![("reason", said.clone())]), nc.refused.as_ref());
        }
    }
    for op in COMPLETED {
        let what = Checked {
            section: "completed",
            key: op,
            fields: &["ref"],
            extra: Vec::new(),
            parts: RECEIPT_PARTS,
        };
        c.text(what, words.completed.get(*op));
    }
    for reply in OwnReply::ALL {
        let (key, fields) = (reply.key(), reply.fields());
        let what = Checked { section: "replies", key, fields, extra: Vec::new(), parts: RECEIPT_PARTS };
        c.text(what, words.replies.get(key));
    }
    let receipts: Vec<&str> = RECEIPTS.iter().map(|r| r.template).chain(["token"]).collect();
    c.unknown("receipts", words.receipts.keys().collect(), &receipts);
    c.unknown("reasons", nc.reasons.keys().collect(), REASONS);
    c.unknown("completed", words.completed.keys().collect(), COMPLETED);
    let replies: Vec<&str> = OwnReply::ALL.iter().map(|r| r.key()).collect();
    c.unknown("replies", words.replies.keys().collect(), &replies);
    // A language may leave its lines to each menu's `messages:` (a file written before
    // lines were texts): then it names none of them, and the menus are checked for them.
    for message in Message::ALL.iter().filter(|_| !words.lines.is_empty()) {
        let what = Checked {
            section: "lines",
            key: message.name(),
            fields: &[],
            extra: Vec::new(),
            parts: LINE_PARTS,
        };
        c.text(what, words.lines.get(message.name()));
    }
    let lines: Vec<&str> = Message::ALL.iter().map(|m| m.name()).collect();
    c.unknown("lines", words.lines.keys().collect(), &lines);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn french() -> &'static str {
        include_str!("../../menus/texts/fr.yaml")
    }

    #[test]
    fn the_shipped_languages_pass_their_checks_and_french_needs_no_rust() {
        let texts = Texts::from_sources([(Path::new("texts/fr.yaml"), french())]).unwrap();
        assert_eq!(texts.languages(), ["en", "fr", "sw"]);
        assert!(texts.receipt("fr", "p2p_sent").unwrap().contains("Confirmé"));
        assert_eq!(
            texts.refused("fr", "insufficient_funds"),
            "Votre demande n'a pas abouti: le solde est insuffisant. Aucun argent n'a bougé."
        );
        assert_eq!(
            texts.refused("sw", "no_such_outcome"),
            "Ombi lako halikukamilika: limekataliwa. Hakuna pesa iliyohamishwa."
        );
        // A language nobody wrote reads English.
        assert_eq!(
            texts.reply("pt", OwnReply::NotRegistered, "*384#"),
            "This number has no mobile money account. Dial *384# to register."
        );
    }

    #[test]
    fn a_new_language_writes_every_built_in_line_and_english_stands_in_for_one_nobody_wrote() {
        let texts = Texts::from_sources([(Path::new("texts/fr.yaml"), french())]).unwrap();
        assert_eq!(
            [
                texts.line("fr", Message::Back),
                texts.line("sw", Message::Back),
                texts.line("pt", Message::Back)
            ],
            ["Retour", "Rudi", "Back"]
        );
        assert!(texts.has_lines("fr") && texts.has_lines("sw") && !texts.has_lines("pt"));
        let broken = french().replace("  \"yes\": \"Oui\"\n", "").replace("  more: ", "  mor: ");
        let errors = Texts::from_sources([(Path::new("texts/fr.yaml"), broken.as_str())]).unwrap_err();
        let said: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let find = |what: &str| said.iter().any(|d| d.contains(what));
        assert!(find("no text for lines `yes`") && find("no text for lines `more`"), "{said:#?}");
        assert!(find("lines has no `mor`") && find("did you mean `more`?"), "{said:#?}");
        assert_eq!(said.len(), 3, "{said:#?}");
        // A file without lines leaves them to each menu's `messages:`.
        let no_lines = french().split("\nlines:\n").next().unwrap();
        let texts = Texts::from_sources([(Path::new("texts/fr.yaml"), no_lines)]).unwrap();
        assert!(!texts.has_lines("fr"));
        // A line is said as it is written: a brace would never be filled.
        let braced = french().replace("\"Choix invalide.\"", "\"Choix {choice} invalide.\"");
        let errors = Texts::from_sources([(Path::new("texts/fr.yaml"), braced.as_str())]).unwrap_err();
        assert!(errors[0].message.contains("lines `invalid_choice`: no value for `{choice}`"), "{errors:?}");
    }

    #[test]
    fn a_file_for_a_shipped_language_rewords_what_it_names_and_keeps_the_rest() {
        let own = "replies:\n  help: \"Dial {code} for M-Wallet.\"\n";
        let texts = Texts::from_sources([(Path::new("texts/en.yaml"), own)]).unwrap();
        assert_eq!(texts.reply("en", OwnReply::Help, "*384#"), "Dial *384# for M-Wallet.");
        assert!(texts.reply("en", OwnReply::Started, "*384#").starts_with("You will receive"));
        let own = "lines:\n  back: \"Go back\"\n";
        let texts = Texts::from_sources([(Path::new("texts/en.yaml"), own)]).unwrap();
        assert_eq!([texts.line("en", Message::Back), texts.line("en", Message::More)], ["Go back", "More"]);
    }

    #[test]
    fn every_mistake_of_a_texts_file_is_named_at_its_line() {
        let broken = french()
            .replace(
                "Frais {fee}. Nouveau solde {balance}.\"\n  p2p_received",
                "Frais {fees}. Nouveau solde {balance}.\"\n  p2p_received",
            )
            .replace("  till_paid:", "  till_payd:")
            .replace("ont été annulés", "ont été reçus et annulés")
            .replace("    other: \"elle a été refusée\"\n", "");
        let errors = Texts::from_sources([(Path::new("texts/fr.yaml"), broken.as_str())]).unwrap_err();
        let said: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let find = |what: &str| {
            said.iter().find(|d| d.contains(what)).unwrap_or_else(|| panic!("{what} in {said:#?}"))
        };
        assert!(find("receipts `p2p_sent`: no value for `{fees}`").contains("{fee}"));
        assert!(find("no text for receipts `till_paid`").contains("fr.yaml"));
        assert!(find("receipts has no `till_payd`").contains("did you mean `till_paid`?"));
        let foreign = find("receipts `reversal_debited` takes");
        assert!(foreign.contains("`ç` is not in GSM-7"), "{foreign}");
        assert!(find("no text for reasons `other`").contains("fr.yaml"));
        assert_eq!(said.len(), 5, "{said:#?}");
        let line = errors.iter().find(|d| d.message.contains("p2p_sent")).unwrap().line;
        assert_eq!(
            broken.lines().nth(line as usize - 1).map(str::trim_start).map(|l| &l[..9]),
            Some("p2p_sent:")
        );
        // What a reader needs cannot be left out; each reason is measured in its
        // sentence; a problem is shown under its own section; a YAML error at its line.
        let careless = french()
            .replace(".{token} Réf.", ". Réf.")
            .replace("le solde est insuffisant", "le solde ne suffit pas pour ça")
            .replace("Composez {code} pour vous inscrire", "Composez {cod} pour vous inscrire");
        let errors = Texts::from_sources([(Path::new("texts/fr.yaml"), careless.as_str())]).unwrap_err();
        let said: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(said.iter().any(|d| d.contains("receipts `bill_paid` does not say `{token}`")), "{said:#?}");
        let reason =
            said.iter().find(|d| d.contains("not_completed `refused` takes 2 SMS parts")).expect("ça");
        assert!(reason.contains("`ç` is not in GSM-7"), "{reason}");
        let reply = errors.iter().find(|d| d.message.contains("replies `not_registered`")).unwrap();
        let at = careless.lines().nth(reply.line as usize - 1).unwrap();
        assert!(at.contains("{cod}"), "shown under replies, not reasons: {at}");
        assert_eq!(said.len(), 3, "{said:#?}");
        let unreadable =
            Texts::from_sources([(Path::new("texts/fr.yaml"), "receipts:\n  p2p_sent: [1\n")]).unwrap_err();
        assert!(
            unreadable[0].line >= 2 && unreadable[0].message.starts_with("not a texts file"),
            "{unreadable:?}"
        );
        let bad = Texts::from_sources([(Path::new("texts/french.yaml"), french())]).unwrap_err();
        assert!(bad[0].message.contains("`french` is not a language code"), "{bad:?}");
    }
}
