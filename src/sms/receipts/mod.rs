//! The texts of the SMS receipts, per language: what each party of a movement reads.
//!
//! The ledger writes a template name and its data to the outbox in the same
//! transaction as the movement; the text is made only when the message is sent, in
//! the language the subscriber had chosen then.

use serde_json::Value;

use crate::domain::{Currency, one_line};

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

/// The text of `receipt`, or why there is none (a template this build does not know,
/// data missing a field): the worker dead-letters it with that reason.
pub fn render(receipt: &Receipt<'_>, currency: &Currency) -> Result<String, String> {
    let d = receipt.data;
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
    let swahili = receipt.language == "sw";
    if receipt.template == "not_completed" {
        return Ok(not_completed(&text("outcome")?, swahili));
    }
    if receipt.template == "completed" {
        return completed(&text("op")?, &text("ref")?, swahili);
    }
    let wording = WORDINGS
        .iter()
        .find(|w| w.template == receipt.template)
        .ok_or_else(|| format!("no receipt text for template `{}`", receipt.template))?;
    // Every field is read before any is written, in the wording's order, so that a
    // missing one is named the same way whatever the language.
    let mut values = Vec::with_capacity(wording.fields.len());
    for &name in wording.fields {
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
                Some(t) if swahili => format!(" Tokeni {t}."),
                Some(t) => format!(" Token {t}."),
                None => String::new(),
            },
            key => text(key)?.into_owned(),
        };
        values.push((name, value));
    }
    fill(if swahili { wording.sw } else { wording.en }, &values)
}

/// A receipt's words in each language, and the fields they read.
struct Wording {
    template: &'static str,
    /// In the order they are checked; `party` is the counterparty's name and number.
    fields: &'static [&'static str],
    en: &'static str,
    sw: &'static str,
}

const WORDINGS: &[Wording] = &[
    Wording {
        template: "p2p_sent",
        fields: &["ref", "party", "amount", "fee", "balance", "date", "time"],
        en: "{ref} Confirmed. {amount} sent to {party} on {date} at {time}. Fee {fee}. New balance {balance}.",
        sw: "{ref} Imethibitishwa. {amount} imetumwa kwa {party} tarehe {date} saa {time}. Ada {fee}. Salio jipya {balance}.",
    },
    Wording {
        template: "p2p_received",
        fields: &["ref", "party", "amount", "balance", "date", "time"],
        en: "{ref} Confirmed. You have received {amount} from {party} on {date} at {time}. New balance {balance}.",
        sw: "{ref} Imethibitishwa. Umepokea {amount} kutoka kwa {party} tarehe {date} saa {time}. Salio jipya {balance}.",
    },
    Wording {
        template: "reversal_debited",
        fields: &["ref", "party", "amount", "balance", "original_ref", "date", "time"],
        en: "{ref} Confirmed. {amount} you received from {party} in {original_ref} was reversed on {date} at {time}. New balance {balance}.",
        sw: "{ref} Imethibitishwa. {amount} ulizotumiwa na {party} katika {original_ref} zimerudishwa tarehe {date} saa {time}. Salio jipya {balance}.",
    },
    Wording {
        template: "reversal_credited",
        fields: &["ref", "party", "amount", "balance", "original_ref", "date", "time"],
        en: "{ref} Confirmed. {amount} of {original_ref} to {party} was returned to you on {date} at {time}. New balance {balance}.",
        sw: "{ref} Imethibitishwa. {amount} za {original_ref} kwa {party} zimerudishwa kwako tarehe {date} saa {time}. Salio jipya {balance}.",
    },
    Wording {
        template: "cash_in_given",
        fields: &["ref", "party", "amount", "balance", "date", "time"],
        en: "{ref} Confirmed. {amount} deposited to {party} on {date} at {time}. New float balance {balance}.",
        sw: "{ref} Imethibitishwa. Umeweka {amount} kwa {party} tarehe {date} saa {time}. Salio jipya la float {balance}.",
    },
    Wording {
        template: "cash_in_received",
        fields: &["ref", "agent", "agent_number", "amount", "balance", "date", "time"],
        en: "{ref} Confirmed. You have deposited {amount} at agent {agent_number} {agent} on {date} at {time}. New balance {balance}.",
        sw: "{ref} Imethibitishwa. Umeweka {amount} kwa wakala {agent_number} {agent} tarehe {date} saa {time}. Salio jipya {balance}.",
    },
    Wording {
        template: "cash_out_withdrawn",
        fields: &["ref", "agent", "agent_number", "store", "amount", "fee", "balance", "date", "time"],
        en: "{ref} Confirmed. You have withdrawn {amount} at agent {agent_number} {agent}, {store}, on {date} at {time}. Fee {fee}. New balance {balance}.",
        sw: "{ref} Imethibitishwa. Umetoa {amount} kwa wakala {agent_number} {agent}, {store}, tarehe {date} saa {time}. Ada {fee}. Salio jipya {balance}.",
    },
    Wording {
        template: "cash_out_paid",
        fields: &["ref", "party", "amount", "balance", "commission", "date", "time"],
        en: "{ref} Confirmed. Give {amount} in cash to {party}; your float received it on {date} at {time}. Commission {commission}. New float balance {balance}.",
        sw: "{ref} Imethibitishwa. Toa {amount} taslimu kwa {party}; float imepokea {amount} tarehe {date} saa {time}. Kamisheni {commission}. Salio jipya la float {balance}.",
    },
    Wording {
        template: "float_sent",
        fields: &["ref", "agent", "agent_number", "amount", "balance", "date", "time"],
        en: "{ref} Confirmed. {amount} of float sent to agent {agent_number} {agent} on {date} at {time}. New float balance {balance}.",
        sw: "{ref} Imethibitishwa. Float {amount} imetumwa kwa wakala {agent_number} {agent} tarehe {date} saa {time}. Salio jipya la float {balance}.",
    },
    Wording {
        template: "float_received",
        fields: &["ref", "agent", "agent_number", "amount", "balance", "date", "time"],
        en: "{ref} Confirmed. You have received {amount} of float from agent {agent_number} {agent} on {date} at {time}. New float balance {balance}.",
        sw: "{ref} Imethibitishwa. Umepokea float {amount} kutoka kwa wakala {agent_number} {agent} tarehe {date} saa {time}. Salio jipya la float {balance}.",
    },
    Wording {
        template: "cash_out_request",
        fields: &["ref", "agent", "agent_number", "store", "dial", "amount", "fee", "minutes"],
        en: "{ref} Agent {agent_number} {agent}, {store}, asks to pay you {amount} in cash from your wallet. Fee {fee}. To approve, dial {dial} within {minutes} minutes; if you do not, no money moves.",
        sw: "{ref} Wakala {agent_number} {agent}, {store}, anaomba kukupa {amount} taslimu kutoka pochi yako. Ada {fee}. Kuidhinisha, piga {dial} ndani ya dakika {minutes}; usipoidhinisha, hakuna pesa itakayotoka.",
    },
    Wording {
        template: "cash_out_declined",
        fields: &["ref", "party", "amount"],
        en: "{ref} {party} declined the request to withdraw {amount}. No money was moved; do not pay out cash.",
        sw: "{ref} {party} amekataa ombi la kutoa {amount}. Hakuna pesa iliyohamishwa; usitoe pesa taslimu.",
    },
    Wording {
        template: "cash_out_expired",
        fields: &["ref", "party", "amount"],
        en: "{ref} The request to withdraw {amount} for {party} expired unapproved. No money was moved; do not pay out cash.",
        sw: "{ref} Ombi la kutoa {amount} kwa {party} limekwisha muda bila idhini. Hakuna pesa iliyohamishwa; usitoe pesa taslimu.",
    },
    Wording {
        template: "bill_paid",
        fields: &[
            "ref",
            "biller",
            "account",
            "biller_ref",
            "amount",
            "fee",
            "balance",
            "token",
            "date",
            "time",
        ],
        en: "{ref} Confirmed. {amount} paid to {biller} for account {account} on {date} at {time}.{token} {biller} ref {biller_ref}. Fee {fee}. New balance {balance}.",
        sw: "{ref} Imethibitishwa. {amount} zimelipwa kwa {biller} akaunti {account} tarehe {date} saa {time}.{token} Kumb. ya {biller} {biller_ref}. Ada {fee}. Salio jipya {balance}.",
    },
    Wording {
        template: "bill_rejected",
        fields: &["ref", "biller", "account", "reason", "amount"],
        en: "{ref} {biller} refused the payment of {amount} for account {account}: {reason}. No money was moved.",
        sw: "{ref} {biller} imekataa malipo ya {amount} kwa akaunti {account}: {reason}. Hakuna pesa iliyohamishwa.",
    },
    Wording {
        template: "refund_requested",
        fields: &["ref", "party", "amount"],
        en: "{ref} We asked {party} to refund the {amount} you paid. You will get an SMS when it is decided.",
        sw: "{ref} Tumemwomba {party} akurudishie {amount} ulizolipa. Utapata SMS likiamuliwa.",
    },
    Wording {
        template: "refund_asked",
        fields: &["ref", "party", "amount"],
        en: "{ref} {party} asks for a refund of the {amount} paid to you. Refund or decline it in your merchant menu.",
        sw: "{ref} {party} anaomba arudishiwe {amount} alizokulipa. Rudisha au kataa kwenye menyu yako ya biashara.",
    },
    Wording {
        template: "reversal_asked",
        fields: &["ref", "party", "amount", "hours", "dial"],
        en: "{party} asked for the {amount} they sent you ({ref}) back. It is held in your wallet and goes back in {hours} hours unless you dispute it: dial {dial}.",
        sw: "{party} ameomba {amount} alizokutumia ({ref}) zirudishwe. Zimezuiliwa kwenye pochi yako na zitarudishwa baada ya saa {hours} usipopinga: piga {dial}.",
    },
    Wording {
        template: "reversal_held",
        fields: &["ref", "party", "amount", "hours"],
        en: "{ref} We asked {party} for the {amount} back. It is held and comes back to you in {hours} hours unless they dispute it.",
        sw: "{ref} Tumemwomba {party} arudishe {amount}. Zimezuiliwa na zitakurudia baada ya saa {hours} asipopinga.",
    },
    Wording {
        template: "reversal_queued",
        fields: &["ref", "party", "amount"],
        en: "{ref} {party} no longer has the {amount}. Our team will look into your request and tell you by SMS.",
        sw: "{ref} {party} hana tena {amount}. Timu yetu itashughulikia ombi lako na kukujulisha kwa SMS.",
    },
    Wording {
        template: "reversal_disputed",
        fields: &["ref", "party", "amount"],
        en: "{ref} {party} disputes giving back the {amount}. It stays held while our team decides; you will get an SMS.",
        sw: "{ref} {party} anapinga kurudisha {amount}. Zinabaki zimezuiliwa timu yetu ikiamua; utapata SMS.",
    },
    Wording {
        template: "reversal_rejected",
        fields: &["ref", "party", "amount"],
        en: "{ref} Your request for the {amount} sent to {party} back was declined. No money was moved.",
        sw: "{ref} Ombi lako la kurudishiwa {amount} ulizomtumia {party} limekataliwa. Hakuna pesa iliyohamishwa.",
    },
    Wording {
        template: "reversal_released",
        fields: &["ref", "party", "amount"],
        en: "{ref} The {amount} from {party} is yours again: the request to give it back was declined.",
        sw: "{ref} {amount} kutoka kwa {party} ni zako tena: ombi la kuzirudisha limekataliwa.",
    },
    Wording {
        template: "airtime_bought",
        fields: &["ref", "amount", "account", "biller_ref", "balance", "date", "time"],
        en: "{ref} Confirmed. You bought {amount} of airtime for {account} on {date} at {time}. Provider ref {biller_ref}. New balance {balance}.",
        sw: "{ref} Imethibitishwa. Umenunua muda wa maongezi wa {amount} kwa {account} tarehe {date} saa {time}. Kumb. ya mtoa huduma {biller_ref}. Salio jipya {balance}.",
    },
    Wording {
        template: "airtime_refused",
        fields: &["ref", "amount", "account", "reason"],
        en: "{ref} Airtime of {amount} for {account} could not be bought: {reason}. No money was moved.",
        sw: "{ref} Muda wa maongezi wa {amount} kwa {account} haukununuliwa: {reason}. Hakuna pesa iliyohamishwa.",
    },
    Wording {
        template: "till_paid",
        fields: &["ref", "amount", "merchant", "number", "balance", "date", "time"],
        en: "{ref} Confirmed. {amount} paid to {merchant}, till {number}, on {date} at {time}. New balance {balance}.",
        sw: "{ref} Imethibitishwa. {amount} zimelipwa kwa {merchant}, till {number}, tarehe {date} saa {time}. Salio jipya {balance}.",
    },
    Wording {
        template: "till_received",
        fields: &["ref", "amount", "number", "party", "fee", "date", "time"],
        en: "{ref} Confirmed. {amount} received at till {number} from {party} on {date} at {time}. Fee {fee}.",
        sw: "{ref} Imethibitishwa. {amount} zimepokelewa till {number} kutoka kwa {party} tarehe {date} saa {time}. Ada {fee}.",
    },
    Wording {
        template: "paybill_paid",
        fields: &["ref", "amount", "merchant", "account", "fee", "balance", "date", "time"],
        en: "{ref} Confirmed. {amount} paid to {merchant} for account {account} on {date} at {time}. Fee {fee}. New balance {balance}.",
        sw: "{ref} Imethibitishwa. {amount} zimelipwa kwa {merchant} akaunti {account} tarehe {date} saa {time}. Ada {fee}. Salio jipya {balance}.",
    },
    Wording {
        template: "merchant_withdrawn",
        fields: &["ref", "amount", "merchant", "balance", "date", "time"],
        en: "{ref} Confirmed. {amount} moved from {merchant} to your wallet on {date} at {time}. New balance {balance}.",
        sw: "{ref} Imethibitishwa. {amount} zimehamishwa kutoka {merchant} kwenda pochi yako tarehe {date} saa {time}. Salio jipya {balance}.",
    },
    Wording {
        template: "paybill_received",
        fields: &["ref", "amount", "number", "account", "party", "fee", "date", "time"],
        en: "{ref} Confirmed. {amount} received at {number} for account {account} from {party} on {date} at {time}. Fee {fee}.",
        sw: "{ref} Imethibitishwa. {amount} zimepokelewa {number} akaunti {account} kutoka kwa {party} tarehe {date} saa {time}. Ada {fee}.",
    },
];

/// `words` with each `{field}` replaced by its value. Only names the wording lists
/// appear (a unit test holds it), so a stray one is this build's mistake, reported as
/// the reason the message cannot be made.
fn fill(words: &str, values: &[(&str, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(words.len() + 64);
    let mut rest = words;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map(|c| open + c).ok_or("an unclosed `{` in a receipt text")?;
        let name = &rest[open + 1..close];
        let value =
            values.iter().find(|(n, _)| *n == name).ok_or_else(|| format!("no value for `{{{name}}}`"))?;
        out.push_str(&value.1);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Why an op the subscriber was told to wait for did not happen. No movement was made:
/// a refused op writes nothing but its refusal, and one that never arrived nothing.
fn not_completed(outcome: &str, swahili: bool) -> String {
    if outcome == "not_arrived" {
        return if swahili {
            "Ombi lako halikukamilika. Hakuna pesa iliyohamishwa. Tafadhali jaribu tena.".into()
        } else {
            "Your request was not completed. No money was moved. Please try again.".into()
        };
    }
    let reason = match (outcome, swahili) {
        ("pin_invalid", false) => "the PIN was wrong",
        ("pin_invalid", true) => "PIN si sahihi",
        ("pin_locked", false) => "your PIN is locked for now",
        ("pin_locked", true) => "PIN yako imefungwa kwa sasa",
        ("not_registered", false) => "this number is not registered",
        ("not_registered", true) => "nambari hii haijasajiliwa",
        ("account_blocked", false) => "the account is blocked",
        ("account_blocked", true) => "akaunti imezuiwa",
        ("insufficient_funds", false) => "the balance is not enough",
        ("insufficient_funds", true) => "salio halitoshi",
        ("limit_exceeded", false) => "it is over the limit",
        ("limit_exceeded", true) => "kiasi kinazidi kikomo",
        ("recipient_unknown", false) => "the recipient is not registered",
        ("recipient_unknown", true) => "mpokeaji hajasajiliwa",
        ("same_account", false) => "it was to your own account",
        ("same_account", true) => "ilikuwa kwa akaunti yako mwenyewe",
        ("conflict", false) => "it repeated an earlier request with other details",
        ("conflict", true) => "lilirudia ombi la awali lenye maelezo tofauti",
        ("not_agent", false) => "this number is not an agent's",
        ("not_agent", true) => "nambari hii si ya wakala",
        ("store_unknown", false) => "the store number is not yours",
        ("store_unknown", true) => "nambari ya duka si yako",
        ("expired", false) => "the request had expired or was answered already",
        ("expired", true) => "ombi lilikuwa limeisha muda au limeshajibiwa",
        ("account_invalid", false) => "the account number is not valid",
        ("account_invalid", true) => "nambari ya akaunti si sahihi",
        (_, false) => "it was refused",
        (_, true) => "limekataliwa",
    };
    if swahili {
        format!("Ombi lako halikukamilika: {reason}. Hakuna pesa iliyohamishwa.")
    } else {
        format!("Your request was not completed: {reason}. No money was moved.")
    }
}

/// That an op the subscriber was told to wait for was done, where the movement's own
/// receipts do not reach them yet: an agent's cash-out request, which tells the customer.
fn completed(op: &str, reference: &str, swahili: bool) -> Result<String, String> {
    match (op, swahili) {
        ("agent.cash_out_request", false) => Ok(format!(
            "{reference} Your withdrawal request was sent to the customer. Pay out only after you receive the confirmation SMS."
        )),
        ("agent.cash_out_request", true) => Ok(format!(
            "{reference} Ombi lako la kutoa pesa limetumwa kwa mteja. Toa pesa tu baada ya kupokea SMS ya uthibitisho."
        )),
        _ => Err(format!("no completion text for op `{op}`")),
    }
}

#[cfg(test)]
mod tests;
