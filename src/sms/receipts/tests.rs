//! Every receipt, in every shipped language, says what happened and fits its parts; a missing
//! field or an unknown template is a reason, not a panic.

use serde_json::json;

use super::*;
use crate::segments::segment;

fn kes() -> Currency {
    Currency::new("KES", 2)
}

/// The shipped texts and the French the menu folder ships beside them.
fn texts() -> &'static Texts {
    static TEXTS: std::sync::LazyLock<Texts> = std::sync::LazyLock::new(|| {
        let french = include_str!("../../../menus/texts/fr.yaml");
        Texts::from_sources([(std::path::Path::new("menus/texts/fr.yaml"), french)])
            .expect("the shipped texts")
    });
    &TEXTS
}

fn sent(language: &str) -> String {
    let data = json!({
        "ref": "TX0000002A", "amount": 50000, "fee": 700, "balance": 1_234_50,
        "counterparty": "Brian Otieno", "counterparty_msisdn": "+254700000002",
    });
    let r = Receipt { template: "p2p_sent", language, data: &data, date: "22/11/26", time: "10:04" };
    render(&r, &kes(), texts()).unwrap()
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
    assert_eq!(
        sent("fr"),
        "TX0000002A Confirmé. KES 500.00 envoyés à Brian Otieno +254700000002 le 22/11/26 à 10:04. Frais KES 7.00. Nouveau solde KES 1,234.50."
    );
    assert_eq!(sent("pt"), sent("en"), "a language without texts falls back to English");
}

#[test]
fn the_payee_reads_who_paid_and_a_long_receipt_still_fits_two_parts() {
    let data = json!({
        "ref": "TX0000002A", "amount": 250_000_00, "balance": 99_999_999_99_i64,
        "counterparty": "Bartholomew-Alexander Wanjiru-Kamau", "counterparty_msisdn": "+254700000001",
    });
    let r =
        Receipt { template: "p2p_received", language: "sw", data: &data, date: "22/11/26", time: "23:59" };
    let text = render(&r, &kes(), texts()).unwrap();
    assert!(text.starts_with("TX0000002A Imethibitishwa. Umepokea KES 250,000.00 kutoka kwa Bartholomew"));
    assert!(segment(&text).count() <= 2, "{text}");
}

#[test]
fn both_parties_of_a_reversal_read_what_came_back_and_from_which_transfer() {
    let data = |party: &str, msisdn: &str| {
        json!({ "ref": "TX0000002B", "original_ref": "TX0000002A", "amount": 50000, "balance": 100000,
                "counterparty": party, "counterparty_msisdn": msisdn })
    };
    let (debited, credited) = (data("Amina Wanjiru", "+254700000001"), data("Brian Otieno", "+254700000002"));
    let r = |template, data| Receipt { template, language: "en", data, date: "22/11/26", time: "10:04" };
    assert_eq!(
        render(&r("reversal_debited", &debited), &kes(), texts()).unwrap(),
        "TX0000002B Confirmed. KES 500.00 you received from Amina Wanjiru +254700000001 in TX0000002A was reversed on 22/11/26 at 10:04. New balance KES 1,000.00."
    );
    assert_eq!(
        render(&r("reversal_credited", &credited), &kes(), texts()).unwrap(),
        "TX0000002B Confirmed. KES 500.00 of TX0000002A to Brian Otieno +254700000002 was returned to you on 22/11/26 at 10:04. New balance KES 1,000.00."
    );
    let sw = Receipt { language: "sw", ..r("reversal_credited", &credited) };
    assert!(render(&sw, &kes(), texts()).unwrap().contains("zimerudishwa kwako"));
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
        render(&r, &kes(), texts()).unwrap(),
        "TX0000002C Confirmed. You have deposited KES 1,500.00 at agent 123456 Duka la Demo on 22/11/26 at 10:04. New balance KES 2,500.00."
    );
    let to_agent = json!({ "ref": "TX0000002C", "amount": 150000, "balance": 9850000,
                           "counterparty": "Amina Otieno", "counterparty_msisdn": "+254700000001" });
    let r = Receipt { template: "cash_in_given", language: "sw", data: &to_agent, ..r };
    assert_eq!(
        render(&r, &kes(), texts()).unwrap(),
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
    let en = render(&r("en"), &kes(), texts()).unwrap();
    assert!(en.starts_with("TX0000002E Agent 1234567 Bartholomew-Alexander Wholesale Shop, Kenyatta Avenue Branch Number Two, asks to pay you KES 250,000.00 in cash"), "{en}");
    assert!(en.contains("To approve, dial *384*7# within 5 minutes"), "{en}");
    for text in [en, render(&r("sw"), &kes(), texts()).unwrap()] {
        assert!(segment(&text).count() <= 2, "{text}");
    }
    let told = json!({ "ref": "TX0000002E", "amount": 50000,
                       "counterparty": "Amina Otieno", "counterparty_msisdn": "+254700000001" });
    let r = |template| Receipt { template, language: "en", data: &told, date: "22/11/26", time: "10:04" };
    assert_eq!(
        render(&r("cash_out_declined"), &kes(), texts()).unwrap(),
        "TX0000002E Amina Otieno +254700000001 declined the request to withdraw KES 500.00. No money was moved; do not pay out cash."
    );
    assert!(render(&r("cash_out_expired"), &kes(), texts()).unwrap().contains("expired unapproved"));
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
        render(&r, &kes(), texts()).unwrap(),
        "TX0000002D Confirmed. You have withdrawn KES 500.00 at agent 123456 Duka la Demo, Demo Street, on 22/11/26 at 10:04. Fee KES 29.00. New balance KES 471.00."
    );
    let to_agent = json!({ "ref": "TX0000002D", "amount": 50000, "balance": 10050000, "commission": 1160,
                           "counterparty": "Amina Otieno", "counterparty_msisdn": "+254700000001" });
    let r = Receipt { template: "cash_out_paid", data: &to_agent, ..r };
    assert_eq!(
        render(&r, &kes(), texts()).unwrap(),
        "TX0000002D Confirmed. Give KES 500.00 in cash to Amina Otieno +254700000001; your float received it on 22/11/26 at 10:04. Commission KES 11.60. New float balance KES 100,500.00."
    );
}

#[test]
fn every_wording_writes_the_fields_it_reads_in_every_language() {
    let placeholders = |words: &str| -> std::collections::BTreeSet<String> {
        words.split('{').skip(1).map(|part| part.split('}').next().unwrap().to_owned()).collect()
    };
    let mut seen = std::collections::BTreeSet::new();
    for spec in RECEIPTS {
        assert!(seen.insert(spec.template), "{} is specified twice", spec.template);
        let fields: std::collections::BTreeSet<String> = spec.fields.iter().map(|f| f.to_string()).collect();
        for language in ["en", "sw", "fr"] {
            let words = texts().receipt(language, spec.template).unwrap();
            assert_eq!(placeholders(words), fields, "{} ({language})", spec.template);
        }
    }
}

#[test]
fn unknown_templates_and_missing_data_are_reasons_not_panics() {
    let data = json!({ "ref": "TX1" });
    let r = Receipt { template: "p2p_sent", language: "en", data: &data, date: "", time: "" };
    assert_eq!(render(&r, &kes(), texts()), Err("the data has no `counterparty`".into()));
    let r = Receipt { template: "loyalty_points", ..r };
    assert_eq!(render(&r, &kes(), texts()), Err("no receipt text for template `loyalty_points`".into()));
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
        for (language, generic) in
            [("en", "it was refused"), ("sw", "limekataliwa"), ("fr", "elle a été refusée")]
        {
            let r = Receipt { template: "not_completed", language, data: &data, date: "", time: "" };
            let text = render(&r, &kes(), texts()).unwrap();
            assert!(!text.contains(generic), "{outcome} has no reason of its own in {language}: {text}");
            assert_eq!(segment(&text).count(), 1, "{text}");
        }
    }
    let data = json!({ "outcome": "pin_invalid" });
    let r = Receipt { template: "not_completed", language: "en", data: &data, date: "", time: "" };
    assert_eq!(
        render(&r, &kes(), texts()).unwrap(),
        "Your request was not completed: the PIN was wrong. No money was moved."
    );
    // A request the promise keeper found never arrived: said plainly.
    let data = json!({ "outcome": "not_arrived" });
    for language in ["en", "sw", "fr"] {
        let r = Receipt { template: "not_completed", language, data: &data, date: "", time: "" };
        let text = render(&r, &kes(), texts()).unwrap();
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
        for language in ["en", "sw", "fr"] {
            let r = Receipt { template: "completed", language, data: &data, date: "", time: "" };
            let text = render(&r, &kes(), texts()).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
            assert!(text.starts_with("TX0000002F "), "{text}");
            assert!(segment(&text).count() <= 2, "{text}");
        }
    }
    assert_eq!(seen, 1, "the agent's cash-out request");
    let data = json!({ "op": "transfer.p2p", "ref": "TX1" });
    let r = Receipt { template: "completed", language: "en", data: &data, date: "", time: "" };
    assert!(render(&r, &kes(), texts()).is_err(), "a transfer's own receipt tells its sender");
}

#[test]
fn a_paid_bill_carries_the_billers_reference_and_token() {
    let data = json!({ "ref": "TX0000002F", "amount": 50000, "fee": 500, "balance": 49500,
                       "biller": "Kenya Power prepaid", "account": "12345678901",
                       "biller_ref": "KPLC1A2B3C4D", "token": "1234-5678-9012-3456-7890" });
    let r = Receipt { template: "bill_paid", language: "en", data: &data, date: "22/11/26", time: "10:04" };
    let text = render(&r, &kes(), texts()).unwrap();
    assert_eq!(
        text,
        "TX0000002F Confirmed. KES 500.00 paid to Kenya Power prepaid for account 12345678901 on 22/11/26 at 10:04. Token 1234-5678-9012-3456-7890. Kenya Power prepaid ref KPLC1A2B3C4D. Fee KES 5.00. New balance KES 495.00."
    );
    assert!(segment(&text).count() <= 2, "{text}");
    let mut water = data.clone();
    water["token"] = Value::Null;
    let r = Receipt { data: &water, language: "sw", ..r };
    assert!(!render(&r, &kes(), texts()).unwrap().contains("Tokeni"), "no token, no token line");
}

#[test]
fn a_merchant_payment_tells_the_customer_where_and_the_merchant_who_paid_masked() {
    let paid = json!({ "ref": "TX00000031", "amount": 150000, "fee": 0, "balance": 50000,
                       "merchant": "Mama Mboga Groceries", "number": "512345", "account": "" });
    let r = Receipt { template: "till_paid", language: "en", data: &paid, date: "22/11/26", time: "10:04" };
    assert_eq!(
        render(&r, &kes(), texts()).unwrap(),
        "TX00000031 Confirmed. KES 1,500.00 paid to Mama Mboga Groceries, till 512345, on 22/11/26 at 10:04. New balance KES 500.00."
    );
    let received = json!({ "ref": "TX00000031", "amount": 150000, "fee": 750, "number": "888880",
                           "account": "ACC-7781", "counterparty": "Amina Otieno",
                           "counterparty_msisdn": "+254700***001" });
    let r = Receipt {
        template: "paybill_received",
        language: "sw",
        data: &received,
        date: "22/11/26",
        time: "10:04",
    };
    let text = render(&r, &kes(), texts()).unwrap();
    assert_eq!(
        text,
        "TX00000031 Imethibitishwa. KES 1,500.00 zimepokelewa 888880 akaunti ACC-7781 kutoka kwa Amina Otieno +254700***001 tarehe 22/11/26 saa 10:04. Ada KES 7.50."
    );
    for template in ["till_paid", "till_received", "paybill_paid", "paybill_received"] {
        let mut data = received.clone();
        data["balance"] = json!(99_999_999_99_i64);
        data["merchant"] = json!("ũ".repeat(30));
        for language in ["en", "sw", "fr"] {
            let r = Receipt { template, language, data: &data, date: "22/11/26", time: "10:04" };
            let text = render(&r, &kes(), texts()).unwrap();
            assert!(segment(&text).count() <= 3, "{template}: {text}");
        }
    }
}

#[test]
fn an_airtime_receipt_names_the_number_topped_up_and_fits_its_messages() {
    let data = json!({ "ref": "TX00000040", "amount": 5000, "fee": 0, "balance": 95000,
                       "biller": "Airtime", "account": "+254711000002",
                       "biller_ref": "AT1A2B3C4D5E", "token": null, "reason": "no such number" });
    let r =
        Receipt { template: "airtime_bought", language: "en", data: &data, date: "22/11/26", time: "10:04" };
    assert_eq!(
        render(&r, &kes(), texts()).unwrap(),
        "TX00000040 Confirmed. You bought KES 50.00 of airtime for +254711000002 on 22/11/26 at 10:04. Provider ref AT1A2B3C4D5E. New balance KES 950.00."
    );
    let r = Receipt { template: "airtime_refused", ..r };
    assert_eq!(
        render(&r, &kes(), texts()).unwrap(),
        "TX00000040 Airtime of KES 50.00 for +254711000002 could not be bought: no such number. No money was moved."
    );
    // The longest in GSM letters fits two messages; a provider's text in other letters, three.
    let mut long = data.clone();
    long["balance"] = json!(99_999_999_99_i64);
    long["biller_ref"] = json!("X".repeat(24));
    long["reason"] = json!("x".repeat(60));
    let mut foreign = long.clone();
    foreign["biller_ref"] = json!("ũ".repeat(24));
    foreign["reason"] = json!("ũ".repeat(60));
    for template in ["airtime_bought", "airtime_refused"] {
        for language in ["en", "sw", "fr"] {
            for (data, most) in [(&long, 2), (&foreign, 3)] {
                let r = Receipt { template, language, data, date: "22/11/26", time: "10:04" };
                let text = render(&r, &kes(), texts()).unwrap();
                assert!(segment(&text).count() <= most, "{template}: {text}");
            }
        }
    }
}

#[test]
fn a_reversal_request_tells_the_recipient_how_to_dispute_within_two_messages() {
    let data = json!({ "ref": "TX00000050", "amount": 99_999_999_99_i64, "hours": 720, "dial": "*384*7#",
                       "counterparty": "ũ".repeat(2 * 20 + 1), "counterparty_msisdn": "+254700000001" });
    let r = Receipt { template: "reversal_asked", language: "en", data: &data, date: "", time: "" };
    let text = render(&r, &kes(), texts()).unwrap();
    assert!(text.contains("goes back in 720 hours unless you dispute it: dial *384*7#."), "{text}");
    for template in [
        "reversal_asked",
        "reversal_held",
        "reversal_queued",
        "reversal_disputed",
        "reversal_rejected",
        "reversal_released",
        "refund_requested",
        "refund_asked",
    ] {
        for language in ["en", "sw", "fr"] {
            let mut plain = data.clone();
            plain["counterparty"] = json!("x".repeat(41));
            for (data, most) in [(&plain, 2), (&data, 4)] {
                let r = Receipt { template, language, data, date: "", time: "" };
                let text = render(&r, &kes(), texts()).unwrap();
                assert!(segment(&text).count() <= most, "{template}: {text}");
            }
        }
    }
}

#[test]
fn a_business_is_named_without_a_number() {
    let data = json!({ "ref": "TX00000060", "original_ref": "TX00000031", "amount": 15000, "balance": 50000,
                       "counterparty": "Mama Mboga", "counterparty_msisdn": "" });
    let r = Receipt {
        template: "reversal_credited",
        language: "en",
        data: &data,
        date: "22/11/26",
        time: "10:04",
    };
    let text = render(&r, &kes(), texts()).unwrap();
    assert!(text.contains(" of TX00000031 to Mama Mboga was returned to you "), "{text}");
}
