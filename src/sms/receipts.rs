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
            "party" => format!("{} {}", text("counterparty")?, text("counterparty_msisdn")?),
            "date" => receipt.date.to_owned(),
            "time" => receipt.time.to_owned(),
            "amount" | "fee" | "balance" | "commission" => d
                .get(name)
                .and_then(Value::as_i64)
                .map(|m| currency.format(m))
                .ok_or_else(|| format!("the data has no `{name}`"))?,
            "minutes" => d.get(name).and_then(Value::as_u64).ok_or("the data has no `minutes`")?.to_string(),
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
mod tests {
    use serde_json::json;

    use super::*;
    use crate::segments::segment;

    fn kes() -> Currency {
        Currency::new("KES", 2)
    }

    fn sent(language: &str) -> String {
        let data = json!({
            "ref": "TX0000002A", "amount": 50000, "fee": 700, "balance": 1_234_50,
            "counterparty": "Brian Otieno", "counterparty_msisdn": "+254700000002",
        });
        let r = Receipt { template: "p2p_sent", language, data: &data, date: "22/11/26", time: "10:04" };
        render(&r, &kes()).unwrap()
    }

    #[test]
    fn the_payer_reads_amount_payee_reference_fee_and_balance_in_their_language() {
        assert_eq!(
            sent("en"),
            "TX0000002A Confirmed. KES 500.00 sent to Brian Otieno +254700000002 on 22/11/26 at 10:04. Fee KES 7.00. New balance KES 1,234.50."
        );
        assert_eq!(
            sent("sw"),
            "TX0000002A Imethibitishwa. KES 500.00 imetumwa kwa Brian Otieno +254700000002 tarehe 22/11/26 saa 10:04. Ada KES 7.00. Salio jipya KES 1,234.50."
        );
        assert_eq!(sent("fr"), sent("en"), "a language without texts falls back to English");
    }

    #[test]
    fn the_payee_reads_who_paid_and_a_long_receipt_still_fits_two_parts() {
        let data = json!({
            "ref": "TX0000002A", "amount": 250_000_00, "balance": 99_999_999_99_i64,
            "counterparty": "Bartholomew-Alexander Wanjiru-Kamau", "counterparty_msisdn": "+254700000001",
        });
        let r = Receipt {
            template: "p2p_received",
            language: "sw",
            data: &data,
            date: "22/11/26",
            time: "23:59",
        };
        let text = render(&r, &kes()).unwrap();
        assert!(
            text.starts_with("TX0000002A Imethibitishwa. Umepokea KES 250,000.00 kutoka kwa Bartholomew")
        );
        assert!(segment(&text).count() <= 2, "{text}");
    }

    #[test]
    fn both_parties_of_a_reversal_read_what_came_back_and_from_which_transfer() {
        let data = |party: &str, msisdn: &str| {
            json!({ "ref": "TX0000002B", "original_ref": "TX0000002A", "amount": 50000, "balance": 100000,
                    "counterparty": party, "counterparty_msisdn": msisdn })
        };
        let (debited, credited) =
            (data("Amina Wanjiru", "+254700000001"), data("Brian Otieno", "+254700000002"));
        let r = |template, data| Receipt { template, language: "en", data, date: "22/11/26", time: "10:04" };
        assert_eq!(
            render(&r("reversal_debited", &debited), &kes()).unwrap(),
            "TX0000002B Confirmed. KES 500.00 you received from Amina Wanjiru +254700000001 in TX0000002A was reversed on 22/11/26 at 10:04. New balance KES 1,000.00."
        );
        assert_eq!(
            render(&r("reversal_credited", &credited), &kes()).unwrap(),
            "TX0000002B Confirmed. KES 500.00 of TX0000002A to Brian Otieno +254700000002 was returned to you on 22/11/26 at 10:04. New balance KES 1,000.00."
        );
        let sw = Receipt { language: "sw", ..r("reversal_credited", &credited) };
        assert!(render(&sw, &kes()).unwrap().contains("zimerudishwa kwako"));
    }

    #[test]
    fn a_cash_in_tells_the_customer_the_agent_and_the_agent_the_float_left() {
        let to_customer = json!({ "ref": "TX0000002C", "amount": 150000, "balance": 250000,
                                  "agent": "Duka la Demo", "agent_number": "123456" });
        let r = Receipt {
            template: "cash_in_received",
            language: "en",
            data: &to_customer,
            date: "22/11/26",
            time: "10:04",
        };
        assert_eq!(
            render(&r, &kes()).unwrap(),
            "TX0000002C Confirmed. You have deposited KES 1,500.00 at agent 123456 Duka la Demo on 22/11/26 at 10:04. New balance KES 2,500.00."
        );
        let to_agent = json!({ "ref": "TX0000002C", "amount": 150000, "balance": 9850000,
                               "counterparty": "Amina Otieno", "counterparty_msisdn": "+254700000001" });
        let r = Receipt { template: "cash_in_given", language: "sw", data: &to_agent, ..r };
        assert_eq!(
            render(&r, &kes()).unwrap(),
            "TX0000002C Imethibitishwa. Umeweka KES 1,500.00 kwa Amina Otieno +254700000001 tarehe 22/11/26 saa 10:04. Salio jipya la float KES 98,500.00."
        );
    }

    #[test]
    fn an_agent_request_says_what_is_asked_and_where_to_approve_and_fits_two_parts() {
        let data = json!({ "ref": "TX0000002E", "amount": 250_000_00, "fee": 309_00,
                           "agent": "Bartholomew-Alexander Wholesale Shop", "agent_number": "1234567",
                           "store": "Kenyatta Avenue Branch Number Two", "dial": "*384*7#", "minutes": 5 });
        let r = |language| Receipt {
            template: "cash_out_request",
            language,
            data: &data,
            date: "22/11/26",
            time: "10:04",
        };
        let en = render(&r("en"), &kes()).unwrap();
        assert!(en.starts_with("TX0000002E Agent 1234567 Bartholomew-Alexander Wholesale Shop, Kenyatta Avenue Branch Number Two, asks to pay you KES 250,000.00 in cash"), "{en}");
        assert!(en.contains("To approve, dial *384*7# within 5 minutes"), "{en}");
        for text in [en, render(&r("sw"), &kes()).unwrap()] {
            assert!(segment(&text).count() <= 2, "{text}");
        }
        let told = json!({ "ref": "TX0000002E", "amount": 50000,
                           "counterparty": "Amina Otieno", "counterparty_msisdn": "+254700000001" });
        let r = |template| Receipt { template, language: "en", data: &told, date: "22/11/26", time: "10:04" };
        assert_eq!(
            render(&r("cash_out_declined"), &kes()).unwrap(),
            "TX0000002E Amina Otieno +254700000001 declined the request to withdraw KES 500.00. No money was moved; do not pay out cash."
        );
        assert!(render(&r("cash_out_expired"), &kes()).unwrap().contains("expired unapproved"));
    }

    #[test]
    fn a_cash_out_tells_the_customer_where_and_the_agent_what_to_hand_over() {
        let to_customer = json!({ "ref": "TX0000002D", "amount": 50000, "fee": 2900, "balance": 47100,
                                  "agent": "Duka la Demo", "agent_number": "123456", "store": "Demo Street" });
        let r = Receipt {
            template: "cash_out_withdrawn",
            language: "en",
            data: &to_customer,
            date: "22/11/26",
            time: "10:04",
        };
        assert_eq!(
            render(&r, &kes()).unwrap(),
            "TX0000002D Confirmed. You have withdrawn KES 500.00 at agent 123456 Duka la Demo, Demo Street, on 22/11/26 at 10:04. Fee KES 29.00. New balance KES 471.00."
        );
        let to_agent = json!({ "ref": "TX0000002D", "amount": 50000, "balance": 10050000, "commission": 1160,
                               "counterparty": "Amina Otieno", "counterparty_msisdn": "+254700000001" });
        let r = Receipt { template: "cash_out_paid", data: &to_agent, ..r };
        assert_eq!(
            render(&r, &kes()).unwrap(),
            "TX0000002D Confirmed. Give KES 500.00 in cash to Amina Otieno +254700000001; your float received it on 22/11/26 at 10:04. Commission KES 11.60. New float balance KES 100,500.00."
        );
    }

    #[test]
    fn every_wording_writes_the_fields_it_reads_in_both_languages() {
        let placeholders = |words: &str| -> std::collections::BTreeSet<String> {
            words.split('{').skip(1).map(|part| part.split('}').next().unwrap().to_owned()).collect()
        };
        let mut seen = std::collections::BTreeSet::new();
        for w in WORDINGS {
            assert!(seen.insert(w.template), "{} is worded twice", w.template);
            let fields: std::collections::BTreeSet<String> = w.fields.iter().map(|f| f.to_string()).collect();
            assert_eq!(placeholders(w.en), fields, "{} (en)", w.template);
            assert_eq!(placeholders(w.sw), fields, "{} (sw)", w.template);
        }
    }

    #[test]
    fn unknown_templates_and_missing_data_are_reasons_not_panics() {
        let data = json!({ "ref": "TX1" });
        let r = Receipt { template: "p2p_sent", language: "en", data: &data, date: "", time: "" };
        assert_eq!(render(&r, &kes()), Err("the data has no `counterparty`".into()));
        let r = Receipt { template: "loyalty_points", ..r };
        assert_eq!(render(&r, &kes()), Err("no receipt text for template `loyalty_points`".into()));
    }

    #[test]
    fn every_refusal_of_a_money_op_says_why_in_one_message() {
        use crate::ops::Op;
        use crate::outcome::Outcome;
        let refusals = Op::all()
            .map(Op::spec)
            .filter(|spec| spec.moves_money())
            .flat_map(|spec| spec.outcomes.iter().copied())
            // Outcomes with a receipt of their own: a movement, a bill paid, refused or
            // still with its biller.
            .filter(|outcome| !matches!(outcome, Outcome::Ok | Outcome::Pending | Outcome::BillRejected));
        for outcome in refusals {
            let data = json!({ "outcome": outcome.as_str() });
            for (language, generic) in [("en", "it was refused"), ("sw", "limekataliwa")] {
                let r = Receipt { template: "not_completed", language, data: &data, date: "", time: "" };
                let text = render(&r, &kes()).unwrap();
                assert!(!text.contains(generic), "{outcome} has no reason of its own in {language}: {text}");
                assert_eq!(segment(&text).count(), 1, "{text}");
            }
        }
        let data = json!({ "outcome": "pin_invalid" });
        let r = Receipt { template: "not_completed", language: "en", data: &data, date: "", time: "" };
        assert_eq!(
            render(&r, &kes()).unwrap(),
            "Your request was not completed: the PIN was wrong. No money was moved."
        );
        // A request the promise keeper found never arrived: said plainly.
        let data = json!({ "outcome": "not_arrived" });
        for language in ["en", "sw"] {
            let r = Receipt { template: "not_completed", language, data: &data, date: "", time: "" };
            let text = render(&r, &kes()).unwrap();
            assert_eq!(segment(&text).count(), 1, "{text}");
        }
    }

    #[test]
    fn an_op_whose_held_movement_tells_only_the_other_party_has_a_completion_text() {
        use crate::money::Movement;
        use crate::ops::Op;
        let held_silent =
            Op::all().map(Op::spec).filter(|spec| spec.movement.is_some_and(|m| !Movement::held_tells(m)));
        let mut seen = 0;
        for spec in held_silent {
            seen += 1;
            let data = json!({ "op": spec.name, "ref": "TX0000002F" });
            for language in ["en", "sw"] {
                let r = Receipt { template: "completed", language, data: &data, date: "", time: "" };
                let text = render(&r, &kes()).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
                assert!(text.starts_with("TX0000002F "), "{text}");
                assert!(segment(&text).count() <= 2, "{text}");
            }
        }
        assert_eq!(seen, 1, "the agent's cash-out request");
        let data = json!({ "op": "transfer.p2p", "ref": "TX1" });
        let r = Receipt { template: "completed", language: "en", data: &data, date: "", time: "" };
        assert!(render(&r, &kes()).is_err(), "a transfer's own receipt tells its sender");
    }

    #[test]
    fn a_paid_bill_carries_the_billers_reference_and_token() {
        let data = json!({ "ref": "TX0000002F", "amount": 50000, "fee": 500, "balance": 49500,
                           "biller": "Kenya Power prepaid", "account": "12345678901",
                           "biller_ref": "KPLC1A2B3C4D", "token": "1234-5678-9012-3456-7890" });
        let r =
            Receipt { template: "bill_paid", language: "en", data: &data, date: "22/11/26", time: "10:04" };
        let text = render(&r, &kes()).unwrap();
        assert_eq!(
            text,
            "TX0000002F Confirmed. KES 500.00 paid to Kenya Power prepaid for account 12345678901 on 22/11/26 at 10:04. Token 1234-5678-9012-3456-7890. Kenya Power prepaid ref KPLC1A2B3C4D. Fee KES 5.00. New balance KES 495.00."
        );
        assert!(segment(&text).count() <= 2, "{text}");
        let mut water = data.clone();
        water["token"] = Value::Null;
        let r = Receipt { data: &water, language: "sw", ..r };
        assert!(!render(&r, &kes()).unwrap().contains("Tokeni"), "no token, no token line");
    }
}
