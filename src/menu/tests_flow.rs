//! Navigation, pagination, confirm, router, items and sub-journeys; and the checks that
//! refuse broken graphs, reserved-key clashes, missing translations and long screens.

use std::path::Path;

use serde_json::json;

use super::*;
use crate::ops::Op;
use crate::outcome::{OpResult, Outcome};

const FLOW: &str = r#"
service: flow
codes: ["*200#"]
languages: [en, sw]
start: home
too_many_attempts: oops
budget: { gsm7: 80, ucs2: 60 }
resume: { within: 60, screens: [amount, sure] }
messages:
  invalid_choice: { en: "Pick a number from the list.", sw: "Chagua nambari iliyoorodheshwa." }
screens:
  home:
    menu:
      text: { en: Home, sw: Nyumbani }
      options:
        - { label: { en: Pay, sw: Lipa }, next: amount }
        - { label: Long list, next: long }
        - { label: Statement, next: st_pin }
        - { label: Sub, next: sub }
        - { label: Terms, next: terms }
        - { label: Code, next: code }
  amount:
    input: { text: "Amount?", kind: amount, min: 1, max: 1000, save: amount, next: check }
  check:
    router:
      routes:
        - { if: "amount > 50000", next: big }
      else: sure
  big:
    end: { text: "Too big for here" }
  sure:
    confirm: { text: "Pay {{ amount|money }}?", yes: pay_pin, no: home }
  pay_pin:
    pin: { text: PIN, next: pay }
  pay:
    action:
      op: transfer.p2p
      args: { to: "+254700000002", amount: "{{ amount }}" }
      on: { ok: paid, other: failed }
  paid:
    menu: { text: Paid, options: [{ label: Again, next: amount }] }
  failed:
    end: { text: Failed }
  long:
    menu:
      text: Choose
      options:
        - { label: Option number 1, next: home }
        - { label: Option number 2, next: home }
        - { label: Option number 3, next: home }
        - { label: Option number 4, next: home }
        - { label: Option number 5, next: home }
        - { label: Option number 6, next: home }
        - { label: Option number 7, next: home }
        - { label: Option number 8, next: home }
        - { label: Option number 9, next: terms }
  st_pin:
    pin: { text: PIN, next: st }
  st:
    action: { op: wallet.statement, save: st, on: { ok: st_list, other: failed } }
  st_list:
    menu:
      text: Pick one
      items: { from: st.entries, label: "{{ item.date }} {{ item.amount|num }}", save: entry, next: st_entry, max: 3 }
      options: [{ label: Home, next: home }]
  st_entry:
    end: { text: "Ref {{ entry.ref }}" }
  sub:
    call: { journey: ask_name, next: greet }
  ask_name:
    input: { text: "Name?", kind: name, max_length: 10, retries: 1, save: name, next: ask_done }
  ask_done:
    return: {}
  greet:
    menu: { text: "Hi {{ name }}", options: [{ label: Done, next: terms }] }
  code:
    input: { text: "Code?", kind: text, pattern: "[A-Z]{2}[0-9]{3}", save: code, next: terms }
  terms:
    end:
      text: "These are the terms of the service, which are long enough to need more than one screen at eighty characters, so the engine pages them."
  oops:
    end: { text: "Bye, too many tries" }
"#;

fn flow() -> Menu {
    compile(Path::new("flow.yaml"), FLOW).unwrap_or_else(|d| panic!("{}", render(&d)))
}

fn render(d: &[Diagnostic]) -> String {
    report(d)
}

fn text(step: Step) -> (bool, String) {
    match step {
        Step::Reply(r) => (r.end, r.text),
        Step::Run(a) => panic!("expected a reply, got op {}", a.op),
    }
}

fn con(m: &Menu, j: &mut Journey, input: &str) -> String {
    let (end, text) = text(m.input(j, input).unwrap());
    assert!(!end, "{input:?} ended the session: {text}");
    text
}

fn start(m: &Menu, lang: Option<&str>) -> Journey {
    let (j, step) = m.begin(lang).unwrap();
    let (end, _) = text(step);
    assert!(!end);
    j
}

#[test]
fn back_returns_to_the_previous_screen_and_home_to_the_home_screen() {
    let m = flow();
    let mut j = start(&m, None);
    assert_eq!(con(&m, &mut j, "1"), "Amount?");
    let home = con(&m, &mut j, "0");
    assert!(home.starts_with("Home\n1. Pay"), "{home}");
    assert!(!home.contains("0. Back"), "nothing before the first screen: {home}");
    con(&m, &mut j, "1");
    assert_eq!(con(&m, &mut j, "10"), "Pay KES 10.00?\n1. Yes\n2. No\n0. Back");
    // Back from the confirmation returns to the amount, then Home forgets the way.
    assert_eq!(con(&m, &mut j, "0"), "Amount?");
    assert!(con(&m, &mut j, "00").starts_with("Home\n"));
    assert!(j.history.is_empty());
}

#[test]
fn a_router_picks_the_first_true_condition() {
    let m = flow();
    let mut j = start(&m, None);
    con(&m, &mut j, "1");
    let (end, t) = text(m.input(&mut j, "600").unwrap());
    assert_eq!((end, t.as_str()), (true, "Too big for here"));
    let mut j = start(&m, None);
    con(&m, &mut j, "1");
    assert!(con(&m, &mut j, "500").starts_with("Pay KES 500.00?"));
    assert!(con(&m, &mut j, "2").starts_with("Home"), "No leads home");
}

#[test]
fn back_never_crosses_a_committed_money_step() {
    let m = flow();
    let mut j = start(&m, None);
    con(&m, &mut j, "1");
    con(&m, &mut j, "100");
    assert_eq!(con(&m, &mut j, "1"), "PIN");
    let Step::Run(a) = m.input(&mut j, "4821").unwrap() else { panic!("expected the transfer") };
    assert_eq!(a.op, Op::of::<crate::ops::TransferP2p>());
    let (_, paid) = text(m.resume(&mut j, OpResult::new(Outcome::Ok, json!({"ref": "TX1"}))).unwrap());
    assert_eq!(paid, "Paid\n1. Again", "no Back after money moved");
    assert!(j.history.is_empty());
    assert_eq!(con(&m, &mut j, "0"), "Pick a number from the list.\nPaid\n1. Again");

    // A refused transfer committed nothing: the way back stays.
    let mut j = start(&m, None);
    con(&m, &mut j, "1");
    con(&m, &mut j, "100");
    con(&m, &mut j, "1");
    m.input(&mut j, "4821").unwrap();
    m.resume(&mut j, OpResult::bare(Outcome::InsufficientFunds)).unwrap();
    assert_eq!(j.history.len(), 4, "{:?}", j.history);
}

#[test]
fn long_menus_page_with_more_and_back_and_options_keep_their_numbers() {
    let m = flow();
    let mut j = start(&m, None);
    let first = con(&m, &mut j, "2");
    assert!(first.starts_with("Choose\n1. Option number 1"), "{first}");
    assert!(first.ends_with("98. More\n0. Back"), "{first}");
    let second = con(&m, &mut j, "98");
    assert!(second.contains("Option number"), "{second}");
    assert!(!second.contains("Choose"), "{second}");
    assert_eq!(j.page, 1);
    let mut pages = vec![first.clone(), second];
    while j.page as usize + 1 < m.pages(&j, m.index["long"]).unwrap().len() {
        pages.push(con(&m, &mut j, "98"));
    }
    let numbered: Vec<String> = pages
        .iter()
        .flat_map(|p| p.lines())
        .filter(|l| l.contains("Option number"))
        .map(str::to_owned)
        .collect();
    assert_eq!(numbered, (1..=9).map(|i| format!("{i}. Option number {i}")).collect::<Vec<_>>());
    for page in &pages {
        assert!(m.budget.fits(page), "over budget: {page:?}");
    }
    // More past the last page stays there, with its options.
    let last = pages.last().unwrap().clone();
    assert_eq!(con(&m, &mut j, "98"), last);
    assert_eq!(j.error, None);
    // Back turns pages before it leaves the screen.
    while j.page > 0 {
        con(&m, &mut j, "0");
    }
    assert_eq!(con(&m, &mut j, "0").lines().next(), Some("Home"));
    // An option on a later page can be chosen from any page.
    con(&m, &mut j, "2");
    let (end, terms) = text(m.input(&mut j, "9").unwrap());
    assert!(!end && terms.ends_with("98. More"), "{terms}");
}

#[test]
fn a_long_end_screen_pages_and_closes_on_its_last_page() {
    let m = flow();
    let mut j = start(&m, None);
    let mut shown = con(&m, &mut j, "5");
    assert!(!j.done);
    loop {
        let (end, page) = text(m.input(&mut j, "98").unwrap());
        shown.push('\n');
        shown.push_str(&page);
        if end {
            assert!(!page.contains("98.") && !page.contains("0. Back"), "{page}");
            break;
        }
    }
    assert!(j.done);
    assert!(shown.contains("terms of the service") && shown.contains("pages them."), "{shown}");
    assert!(matches!(m.input(&mut j, "1"), Err(EngineError::NotAwaitingInput(_))));
}

#[test]
fn items_come_from_an_op_list_and_save_the_chosen_element() {
    let m = flow();
    let mut j = start(&m, None);
    con(&m, &mut j, "3");
    let Step::Run(a) = m.input(&mut j, "1234").unwrap() else { panic!("expected the statement") };
    assert_eq!(a.op, Op::of::<crate::ops::WalletStatement>());
    let entries: Vec<_> = (1..=4)
        .map(|i| json!({"date": format!("0{i}/11"), "amount": -i * 100_00, "ref": format!("TX{i}")}))
        .collect();
    let (_, list) =
        text(m.resume(&mut j, OpResult::new(Outcome::Ok, json!({ "entries": entries }))).unwrap());
    assert_eq!(
        list, "Pick one\n1. 01/11 -100.00\n2. 02/11 -200.00\n3. 03/11 -300.00\n4. Home\n0. Back",
        "at most `max` items, then the static options"
    );
    let (end, entry) = text(m.input(&mut j, "2").unwrap());
    assert_eq!((end, entry.as_str()), (true, "Ref TX2"));
    assert_eq!(j.vars["entry"]["ref"], "TX2");
}

#[test]
fn a_sub_journey_returns_to_its_caller_and_back_restores_it() {
    let m = flow();
    let mut j = start(&m, None);
    assert_eq!(con(&m, &mut j, "4"), "Name?");
    assert_eq!(j.calls, ["greet"]);
    assert_eq!(con(&m, &mut j, "amina"), "Hi Amina\n1. Done\n0. Back");
    assert!(j.calls.is_empty());
    // Back into the sub-journey re-opens it, so that its `return` still knows the way.
    assert_eq!(con(&m, &mut j, "0"), "Name?");
    assert_eq!(j.calls, ["greet"]);
    assert_eq!(con(&m, &mut j, "juma"), "Hi Juma\n1. Done\n0. Back");
}

#[test]
fn too_many_invalid_inputs_go_to_the_declared_screen_and_retries_are_per_screen() {
    let m = flow();
    let mut j = start(&m, None);
    con(&m, &mut j, "1");
    assert_eq!(con(&m, &mut j, "x"), "Invalid amount.\nAmount?");
    con(&m, &mut j, "y");
    let (end, t) = text(m.input(&mut j, "z").unwrap());
    assert_eq!((end, t.as_str()), (true, "Bye, too many tries"));

    // `retries: 1` on the name screen: the first bad answer is the last.
    let mut j = start(&m, None);
    con(&m, &mut j, "4");
    let (end, t) = text(m.input(&mut j, "4mina").unwrap());
    assert_eq!((end, t.as_str()), (true, "Bye, too many tries"));
}

#[test]
fn navigation_labels_and_overridden_lines_follow_the_language() {
    let m = flow();
    let mut j = start(&m, Some("sw"));
    // The Swahili error line is long: the menu spills onto a second page.
    let first = con(&m, &mut j, "7");
    assert!(first.starts_with("Chagua nambari iliyoorodheshwa.\nNyumbani\n1. Lipa\n"), "{first}");
    assert!(first.ends_with("\n98. Zaidi"), "{first}");
    let second = con(&m, &mut j, "98");
    assert!(second.ends_with("6. Code\n0. Rudi"), "{second}");
}

#[test]
fn text_input_checks_its_pattern() {
    let m = flow();
    let mut j = start(&m, None);
    con(&m, &mut j, "6");
    assert_eq!(con(&m, &mut j, "ab123"), "Invalid entry.\nCode?");
    let next = con(&m, &mut j, "AB123");
    assert!(next.starts_with("These are the terms"), "{next}");
    assert_eq!(j.vars["code"], "AB123");
}

#[test]
fn a_dropped_journey_is_offered_back_from_the_screens_the_menu_lists() {
    let m = flow();
    let mut dropped = start(&m, None);
    assert!(!m.can_resume(&dropped), "the home screen is not listed");
    con(&m, &mut dropped, "1");
    assert!(m.can_resume(&dropped));

    let (mut j, step) = m.offer_resume(dropped.clone()).unwrap();
    let offer = "Your last session was cut off.\n1. Continue where I left off\n2. Start again";
    assert_eq!(text(step), (false, offer.to_owned()));
    // With the error line the offer outgrows this menu's 80 septets: it pages.
    let first = con(&m, &mut j, "7");
    assert!(first.starts_with("Pick a number from the list.\nYour last session was cut off."), "{first}");
    assert!(first.ends_with("98. More") && m.budget.fits(&first), "{first}");
    let second = con(&m, &mut j, "98");
    assert!(second.contains("2. Start again") && m.budget.fits(&second), "{second}");
    assert_eq!(con(&m, &mut j, "1"), "Amount?");
    // The way back survives the drop.
    assert!(con(&m, &mut j, "0").starts_with("Home"));

    let (mut j, _) = m.offer_resume(dropped).unwrap();
    assert!(con(&m, &mut j, "2").starts_with("Home"));
    assert!(j.history.is_empty() && !j.resuming);
}

#[test]
fn a_channel_with_smaller_screens_gets_smaller_pages() {
    let m = flow();
    let (mut j, step) = m.begin_within(None, Some(Budget { gsm7: 40, ucs2: 20 }), 0).unwrap();
    let (_, first) = text(step);
    assert!(first.ends_with("98. More"), "{first}");
    assert!(first.chars().count() <= 40, "{first}");
    let serialised = serde_json::to_string(&j).unwrap();
    assert!(serialised.contains("\"w\":{\"g\":40,\"u\":20}"), "{serialised}");
    assert!(con(&m, &mut j, "98").contains("0. Back"));
    // A channel that holds more than the menu allows changes nothing.
    let (j, _) = m.begin_within(None, Some(Budget { gsm7: 182, ucs2: 80 }), 0).unwrap();
    assert_eq!(j.budget, None);
}

#[test]
fn a_sensitive_input_goes_to_the_op_of_its_hop_and_never_to_the_session() {
    let m = compile(
        Path::new("kyc.yaml"),
        r#"
service: kyc
codes: ["*300#"]
languages: [en]
start: id
screens:
  id:
    input: { text: "ID number?", kind: digits, min_length: 6, sensitive: true, save: national_id, next: seal }
  seal:
    action: { op: customer.seal_id, save: sealed, on: { ok: done, id_taken: done } }
  done:
    end: { text: Done }
"#,
    )
    .unwrap_or_else(|d| panic!("{}", render(&d)));
    assert!(m.is_sensitive("id") && !m.is_sensitive("done"));
    let (mut j, _) = m.begin(None).unwrap();
    let Step::Run(a) = m.input(&mut j, "27182818").unwrap() else { panic!("expected the seal op") };
    assert_eq!(a.secret("national_id").map(|s| s.expose()), Some("27182818"));
    assert!(!format!("{a:?}").contains("27182818"));
    let stored = serde_json::to_string(&j).unwrap();
    assert!(!stored.contains("27182818"), "{stored}");

    // Anywhere but straight into an op that takes it, a sensitive input is refused.
    let d = compile(
        Path::new("kyc.yaml"),
        "service: kyc\ncodes: [\"*300#\"]\nlanguages: [en]\nstart: id\nscreens:\n  id:\n    input: { text: ID?, kind: digits, min_length: 6, sensitive: true, save: national_id, next: done }\n  done:\n    end: { text: Done }\n",
    )
    .unwrap_err();
    assert!(d[0].message.contains("must lead straight to an `action` whose op takes `national_id`"), "{d:?}");
}

#[test]
fn the_picture_shows_routers_calls_confirmations_and_items() {
    let mermaid = flow().picture(PictureFormat::Mermaid, &[]);
    for edge in [
        "  check -->|\"if amount > 50000\"| big\n",
        "  check -->|\"else\"| sure\n",
        "  sub -->|\"call\"| ask_name\n",
        "  sub -->|\"after return\"| greet\n",
        "  sure -->|\"1. yes\"| pay_pin\n",
        "  st_list -->|\"item of st.entries → entry\"| st_entry\n",
        "  st_list -->|\"4. Home\"| home\n",
        "  ask_done((\"ask_done\"))\n",
    ] {
        assert!(mermaid.contains(edge), "{edge:?} missing from\n{mermaid}");
    }
}

// ── What `menus check` refuses ────────────────────────────────────────────────

const HEAD: &str = "service: t\ncodes: [\"*1#\"]\nlanguages: [en]\nstart: a\nscreens:\n";

fn refused(body: &str) -> Vec<String> {
    let source = format!("{HEAD}{body}");
    let d = compile(Path::new("bad.yaml"), &source).expect_err("the menu should be refused");
    d.iter().map(ToString::to_string).collect()
}

fn has(messages: &[String], needle: &str) {
    assert!(messages.iter().any(|m| m.contains(needle)), "no {needle:?} in {messages:#?}");
}

#[test]
fn unreachable_screens_and_loops_without_exit_are_refused() {
    let d = refused(
        "  a:\n    menu: { text: A, options: [{ label: B, next: b }] }\n  b:\n    menu: { text: B, options: [{ label: A, next: a }] }\n  z:\n    end: { text: Z }\n",
    );
    has(&d, "screen `z` is unreachable");
    has(&d, "no way from screen `a` leads to an `end`");
    assert!(d.iter().any(|m| m.starts_with("bad.yaml:11:5: error: screen `z`")), "located at z: {d:#?}");
}

#[test]
fn steps_that_loop_without_input_are_refused() {
    let d = refused(
        "  a:\n    router: { routes: [{ if: \"true\", next: b }], else: c }\n  b:\n    router: { routes: [], else: a }\n  c:\n    end: { text: C }\n",
    );
    has(&d, "loop without asking the subscriber anything");
}

#[test]
fn returns_outside_a_sub_journey_and_calls_that_never_return_are_refused() {
    let d = refused(
        "  a:\n    menu: { text: A, options: [{ label: One, next: r }, { label: Two, next: c }] }\n  r:\n    return: {}\n  c:\n    call: { journey: e, next: a }\n  e:\n    end: { text: E }\n",
    );
    has(&d, "`return` screen `r` is reached without a `call`");
    has(&d, "calls `e`, which never reaches a `return`");
}

#[test]
fn reserved_keys_may_not_be_answers() {
    let d = refused(
        "  a:\n    menu: { text: A, options: [{ label: One, next: b }, { label: Two, next: b }, { label: Three, next: b }] }\n  b:\n    input: { text: Account?, kind: digits, save: n, next: e }\n  e:\n    end: { text: E }\nnavigation: { more: \"3\" }\n",
    );
    has(&d, "option 3 of 3 is also the `more` key");
    has(&d, "the valid input `0` is also the `back` key");
}

#[test]
fn missing_translations_are_refused() {
    let source = "service: t\ncodes: [\"*1#\"]\nlanguages: [en, sw]\nstart: a\nscreens:\n  a:\n    end: { text: { en: Bye } }\n";
    let d = compile(Path::new("bad.yaml"), source).unwrap_err();
    assert!(d[0].message.contains("no text in `sw` (missing translation)"), "{d:?}");
    assert_eq!(d[0].line, 7);

    // A language no texts file writes the lines of needs the menu's own.
    let source = "service: t\ncodes: [\"*1#\"]\nlanguages: [fr]\nstart: a\nscreens:\n  a:\n    end: { text: Au revoir }\n";
    let d = compile(Path::new("bad.yaml"), source).unwrap_err();
    assert!(d[0].message.contains("no texts file writes the built-in lines in `fr`"), "{d:?}");
    assert!(d[0].message.contains("back"), "{d:?}");
    assert_eq!((d[0].line, d[0].column), (3, 1), "at `languages:`");
}

#[test]
fn a_prompt_that_can_outgrow_the_budget_is_refused_per_language() {
    let source = "service: t\ncodes: [\"*1#\"]\nlanguages: [en, sw]\nstart: a\nscreens:\n  a:\n    input: { text: { en: Name?, sw: Jina? }, kind: name, save: who, next: b }\n  b:\n    pin:\n      text: { en: \"{{ who }}, enter your PIN\", sw: \"{{ who }}, weka PIN yako sasa hivi tafadhali sana sana\" }\n      next: c\n  c:\n    action: { op: wallet.balance, on: { other: d } }\n  d:\n    end: { text: Done }\n";
    let d = compile(Path::new("bad.yaml"), source).unwrap_err();
    let messages: Vec<_> = d.iter().map(ToString::to_string).collect();
    // 30 characters of a non-GSM name make the screen UCS-2: 80 units.
    has(&messages, "screen `b` in `sw`: a prompt can reach");
    assert!(!messages.iter().any(|m| m.contains("`b` in `en`")), "{messages:#?}");
    // Capping the name fixes it.
    let fixed = source.replace("save: who,", "save: who, max_length: 12,");
    compile(Path::new("ok.yaml"), &fixed).unwrap_or_else(|d| panic!("{}", render(&d)));
}

#[test]
fn the_shipped_menus_fit_every_screen() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("menus");
    let bundle = Bundle::load_dir(&dir).unwrap_or_else(|d| panic!("{}", render(&d)));
    assert!(!bundle.menus().is_empty());
}
