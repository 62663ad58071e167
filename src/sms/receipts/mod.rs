//! The SMS receipts: what each party of a movement reads, in the words of the menu
//! folder's `texts/` for their language.
//!
//! The ledger writes a template name and its data to the outbox in the same
//! transaction as the movement; the text is made only when the message is sent, in
//! the language the subscriber had chosen then.

use serde_json::Value;

use crate::domain::{Currency, one_line};
use crate::menu::Texts;
use crate::menu::texts::{RECEIPTS, fill};

/// One outbox row to put into words.
#[derive(Debug)]
pub struct Receipt<'a> {
    pub template: &'a str,
    pub language: &'a str,
    pub data: &'a Value,
    /// When the movement happened, in the ledger's time zone: `22/11/26` and `10:04`.
    pub date: &'a str,
    pub time: &'a str,
}

/// The text of `receipt` in its language's words (`texts`, English where nobody wrote
/// the language), or why there is none (a template no receipt has, data missing a
/// field): the worker dead-letters it with that reason.
pub fn render(receipt: &Receipt<'_>, currency: &Currency, texts: &Texts) -> Result<String, String> {
    let d = receipt.data;
    let language = receipt.language;
    if receipt.template == "reply" {
        // Replies are written in the subscriber's language when they are queued.
        return d
            .get("text")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| "the reply has no `text`".into());
    }
    // Names and references come from outside (billers, operators): one visible line each.
    let text = |key: &str| {
        d.get(key).and_then(Value::as_str).map(one_line).ok_or_else(|| format!("the data has no `{key}`"))
    };
    if receipt.template == "not_completed" {
        let outcome = text("outcome")?;
        return Ok(if outcome == "not_arrived" {
            texts.not_arrived(language).to_owned()
        } else {
            texts.refused(language, &outcome)
        });
    }
    if receipt.template == "completed" {
        let op = text("op")?;
        return texts
            .completed(language, &op, &text("ref")?)
            .ok_or_else(|| format!("no completion text for op `{op}`"));
    }
    let spec = RECEIPTS
        .iter()
        .find(|r| r.template == receipt.template)
        .ok_or_else(|| format!("no receipt text for template `{}`", receipt.template))?;
    // Every field is read before any is written, in the spec's order, so that a missing
    // one is named the same way whatever the language.
    let mut values = Vec::with_capacity(spec.fields.len());
    for &name in spec.fields {
        let value = match name {
            // A business's phone is not shown: the name alone.
            "party" => match (text("counterparty")?, text("counterparty_msisdn")?) {
                (name, number) if number.is_empty() => name.into_owned(),
                (name, number) => format!("{name} {number}"),
            },
            "date" => receipt.date.to_owned(),
            "time" => receipt.time.to_owned(),
            "amount" | "fee" | "balance" | "commission" => d
                .get(name)
                .and_then(Value::as_i64)
                .map(|m| currency.format(m))
                .ok_or_else(|| format!("the data has no `{name}`"))?,
            "minutes" | "hours" => d
                .get(name)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("the data has no `{name}`"))?
                .to_string(),
            // A prepaid token, where the biller gave one: its own sentence.
            "token" => match d.get(name).and_then(Value::as_str).filter(|t| !t.is_empty()) {
                Some(t) => fill(
                    texts.receipt(language, "token").unwrap_or_default(),
                    &[("token", one_line(t).into_owned())],
                )?,
                None => String::new(),
            },
            key => text(key)?.into_owned(),
        };
        values.push((name, value));
    }
    let words = texts
        .receipt(language, receipt.template)
        .ok_or_else(|| format!("no receipt text for template `{}`", receipt.template))?;
    fill(words, &values)
}

#[cfg(test)]
mod tests;
