//! Engine and compiler tests on small menus written inline.

use std::path::Path;

use serde_json::json;

use super::*;
use crate::ops::Op;
use crate::outcome::{OpResult, Outcome};

const MENU: &str = r#"
service: test
codes: ["*100#"]
languages: [en, sw]
start: who
screens:
  who:
    action:
      op: customer.profile
      save: customer
      on: { ok: main, not_registered: unknown }
  unknown:
    end: { text: { en: "Not registered", sw: "Hujasajiliwa" } }
  main:
    menu:
      text: { en: "Hi {{ customer.first_name }}", sw: "Habari {{ customer.first_name }}" }
      options:
        - { label: { en: Balance, sw: Salio }, next: bal_pin }
        - { label: Send, next: amount }
        - { label: Code, next: code }
  amount:
    input: { text: "Enter amount", kind: amount, min: 10, max: 1000, save: amount, next: phone }
  phone:
    input: { text: "Send {{ amount|money }} to?", kind: msisdn, save: to, next: sent }
  sent:
    end: { text: "Sending {{ amount|money }} to {{ to|mask }}" }
  code:
    input: { text: "Code?", kind: digits, min_length: 4, max_length: 6, save: code, next: code_end, error: "Codes have 4 to 6 digits." }
  code_end:
    end: { text: "Code {{ code }}" }
  bal_pin:
    pin: { text: "Enter PIN", next: bal_do }
  bal_do:
    action:
      op: wallet.balance
      on:
        ok: bal_show
        pin_invalid: { next: bal_pin, error: { en: "Wrong PIN.", sw: "PIN si sahihi." } }
        other: unknown
  bal_show:
    end: { text: "Balance {{ result.available|money }}" }
"#;

fn menu() -> Menu {
    compile(Path::new("test.yaml"), MENU).unwrap_or_else(|d| panic!("{d:?}"))
}

fn reply(step: Step) -> Reply {
    match step {
        Step::Reply(r) => r,
        Step::Run(a) => panic!("expected a reply, got op {}", a.op),
    }
}

fn action(step: Step) -> Action {
    match step {
        Step::Run(a) => a,
        Step::Reply(r) => panic!("expected an op, got {r:?}"),
    }
}

/// Starts a journey and answers the profile lookup for Amina.
fn at_main(m: &Menu, lang: Option<&str>) -> Journey {
    let (mut j, step) = m.begin(lang).unwrap();
    assert_eq!(action(step).op, Op::of::<crate::ops::CustomerProfile>());
    let r = reply(m.resume(&mut j, OpResult::new(Outcome::Ok, json!({"first_name": "Amina"}))).unwrap());
    assert!(!r.end);
    j
}

#[test]
fn begin_runs_the_start_action_then_shows_the_menu() {
    let m = menu();
    let (mut j, step) = m.begin(None).unwrap();
    let a = action(step);
    assert_eq!((a.op, a.seq), (Op::of::<crate::ops::CustomerProfile>(), 1));
    let r = reply(m.resume(&mut j, OpResult::new(Outcome::Ok, json!({"first_name": "Amina"}))).unwrap());
    assert_eq!(r, Reply::con("Hi Amina\n1. Balance\n2. Send\n3. Code"));
    assert_eq!(j.vars["customer"]["first_name"], "Amina");
}

#[test]
fn texts_follow_the_language_and_fall_back_to_the_default() {
    let m = menu();
    let (mut j, _) = m.begin(Some("sw")).unwrap();
    let r = reply(m.resume(&mut j, OpResult::new(Outcome::Ok, json!({"first_name": "Juma"}))).unwrap());
    // `Send` and `Code` have one text for every language.
    assert_eq!(r.text, "Habari Juma\n1. Salio\n2. Send\n3. Code");
    let (j, _) = m.begin(Some("fr")).unwrap();
    assert_eq!(j.lang, "en");
}

#[test]
fn outcome_routes_to_an_end_screen() {
    let m = menu();
    let (mut j, _) = m.begin(Some("sw")).unwrap();
    let r = reply(m.resume(&mut j, OpResult::bare(Outcome::NotRegistered)).unwrap());
    assert_eq!(r, Reply::end("Hujasajiliwa"));
    assert!(j.done);
}

#[test]
fn invalid_choice_reshows_the_menu_with_an_error_then_ends_after_max_retries() {
    let m = menu();
    let mut j = at_main(&m, None);
    let r = reply(m.input(&mut j, "9").unwrap());
    assert_eq!(r, Reply::con("Invalid choice.\nHi Amina\n1. Balance\n2. Send\n3. Code"));
    let r = reply(m.input(&mut j, "abc").unwrap());
    assert!(r.text.starts_with("Invalid choice.\n"));
    let r = reply(m.input(&mut j, "").unwrap());
    assert_eq!(r, Reply::end("Too many invalid attempts. Please dial again."));
    assert!(j.done);
}

#[test]
fn a_valid_input_after_an_error_resets_the_retry_count() {
    let m = menu();
    let mut j = at_main(&m, None);
    reply(m.input(&mut j, "7").unwrap());
    assert_eq!(j.retries, 1);
    reply(m.input(&mut j, "2").unwrap());
    assert_eq!((j.screen.as_str(), j.retries), ("amount", 0));
}

#[test]
fn amount_input_is_checked_and_kept_in_minor_units() {
    let m = menu();
    let mut j = at_main(&m, None);
    assert_eq!(reply(m.input(&mut j, "2").unwrap()).text, "Enter amount");
    assert_eq!(reply(m.input(&mut j, "5").unwrap()).text, "Invalid amount.\nEnter amount");
    assert_eq!(reply(m.input(&mut j, "500").unwrap()).text, "Send KES 500.00 to?");
    assert_eq!(j.vars["amount"], json!(50_000));
}

#[test]
fn msisdn_input_is_normalised_and_masked_in_templates() {
    let m = menu();
    let mut j = at_main(&m, None);
    m.input(&mut j, "2").unwrap();
    m.input(&mut j, "500").unwrap();
    assert_eq!(reply(m.input(&mut j, "07123").unwrap()).text, "Invalid phone number.\nSend KES 500.00 to?");
    let r = reply(m.input(&mut j, "0712345678").unwrap());
    assert_eq!(r, Reply::end("Sending KES 500.00 to +254712***678"));
    assert_eq!(j.vars["to"], "+254712345678");
}

#[test]
fn digits_input_uses_the_custom_error_line() {
    let m = menu();
    let mut j = at_main(&m, None);
    m.input(&mut j, "3").unwrap();
    assert_eq!(reply(m.input(&mut j, "12").unwrap()).text, "Codes have 4 to 6 digits.\nCode?");
    assert_eq!(reply(m.input(&mut j, "0042").unwrap()), Reply::end("Code 0042"));
}

#[test]
fn a_subscriber_may_type_a_star_inside_an_input() {
    let m = menu();
    let mut j = at_main(&m, None);
    m.input(&mut j, "3").unwrap();
    // `*` is not a digit: the input is refused as a whole rather than split.
    assert_eq!(reply(m.input(&mut j, "12*34").unwrap()).text, "Codes have 4 to 6 digits.\nCode?");
}

#[test]
fn pin_is_handed_to_the_op_and_never_kept_in_the_journey() {
    let m = menu();
    let mut j = at_main(&m, None);
    assert_eq!(reply(m.input(&mut j, "1").unwrap()).text, "Enter PIN");
    assert_eq!(reply(m.input(&mut j, "12").unwrap()).text, "PIN must be 4 digits.\nEnter PIN");
    let a = action(m.input(&mut j, "4821").unwrap());
    assert_eq!(a.op, Op::of::<crate::ops::WalletBalance>());
    assert_eq!(a.secret("pin").map(|p| p.expose()), Some("4821"));
    assert!(a.pin("pin").is_some());
    let stored = serde_json::to_string(&j).unwrap();
    assert!(!stored.contains("4821"), "{stored}");
    assert!(!format!("{a:?}").contains("4821"));
}

#[test]
fn an_error_route_reshows_the_target_with_its_line() {
    let m = menu();
    let mut j = at_main(&m, Some("sw"));
    m.input(&mut j, "1").unwrap();
    action(m.input(&mut j, "0000").unwrap());
    let r = reply(m.resume(&mut j, OpResult::bare(Outcome::PinInvalid)).unwrap());
    assert_eq!(r, Reply::con("PIN si sahihi.\nEnter PIN"));
    let a = action(m.input(&mut j, "1234").unwrap());
    assert_eq!(a.seq, 3, "each op gets its own sequence number");
    let r = reply(m.resume(&mut j, OpResult::new(Outcome::Ok, json!({"available": 123_456}))).unwrap());
    assert_eq!(r, Reply::end("Balance KES 1,234.56"));
}

#[test]
fn unrouted_outcomes_fall_to_other() {
    let m = menu();
    let mut j = at_main(&m, None);
    m.input(&mut j, "1").unwrap();
    m.input(&mut j, "1234").unwrap();
    let r = reply(m.resume(&mut j, OpResult::bare(Outcome::AccountBlocked)).unwrap());
    assert_eq!(r, Reply::end("Not registered"));
}

#[test]
fn events_out_of_turn_are_errors_not_panics() {
    let m = menu();
    let (mut j, _) = m.begin(None).unwrap();
    assert!(matches!(m.input(&mut j, "1"), Err(EngineError::NotAwaitingInput(_))));
    let mut j = at_main(&m, None);
    assert!(matches!(m.resume(&mut j, OpResult::bare(Outcome::Ok)), Err(EngineError::NotAwaitingResult(_))));
    j.screen = "gone".into();
    assert!(matches!(m.input(&mut j, "1"), Err(EngineError::UnknownScreen(_))));
}

#[test]
fn a_template_on_a_variable_no_step_saves_is_refused_by_check() {
    let d = diagnostics(
        "service: t\ncodes: [\"*1#\"]\nlanguages: [en]\nstart: a\nscreens:\n  a:\n    end: { text: \"{{ nope.x }}\" }\n",
    );
    assert!(d[0].message.contains("a text reads `nope`, which no screen before it saves"), "{d:?}");
    assert_eq!(d[0].line, 7);
}

#[test]
fn a_variable_saved_on_another_branch_is_an_engine_error_not_a_panic() {
    let m = compile(
        Path::new("t.yaml"),
        r#"
service: t
codes: ["*1#"]
languages: [en]
start: a
screens:
  a:
    menu:
      text: Pick
      options:
        - { label: Code, next: code }
        - { label: Show, next: show }
  code:
    input: { text: "Code?", kind: digits, min_length: 3, save: code, next: show }
  show:
    end: { text: "Code {{ code }}" }
"#,
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    let (mut j, _) = m.begin(None).unwrap();
    assert!(matches!(m.input(&mut j, "2"), Err(EngineError::Render { .. })));
}

fn diagnostics(source: &str) -> Vec<Diagnostic> {
    compile(Path::new("bad.yaml"), source).expect_err("the menu should be refused")
}

const HEAD: &str = "service: t\ncodes: [\"*1#\"]\nlanguages: [en]\nstart: a\nscreens:\n";

#[test]
fn unknown_target_names_line_column_and_a_suggestion() {
    let d = diagnostics(&format!(
        "{HEAD}  a:\n    menu:\n      text: Hi\n      options:\n        - {{ label: X, next: ends }}\n  end1:\n    end: {{ text: Bye }}\n"
    ));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].line, d[0].column), (10, 29));
    assert!(d[0].message.contains("no screen named `ends`"));
    assert_eq!(d[0].hint.as_deref(), Some("did you mean `end1`?"));
    assert!(d[0].to_string().starts_with("bad.yaml:10:29: error:"));
}

#[test]
fn yaml_errors_carry_their_location() {
    let d = diagnostics(&format!("{HEAD}  a:\n    bogus: {{ text: Hi }}\n"));
    assert_eq!(d[0].line, 7, "{d:?}");
}

#[test]
fn op_checks_unknown_op_unrouted_outcomes_and_pins() {
    let d = diagnostics(&format!("{HEAD}  a:\n    action: {{ op: wallet.steal, on: {{ ok: a }} }}\n"));
    assert!(d[0].message.contains("unknown op `wallet.steal`"), "{d:?}");
    assert!(d[0].hint.as_deref().unwrap().contains("wallet.balance"));

    let d = diagnostics(&format!(
        "{HEAD}  a:\n    action: {{ op: customer.profile, on: {{ ok: b, nope: b }} }}\n  b:\n    end: {{ text: x }}\n"
    ));
    let messages: Vec<_> = d.iter().map(|d| d.message.as_str()).collect();
    assert!(messages.iter().any(|m| m.contains("no outcome `nope`")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("not routed: not_registered")), "{messages:?}");

    let d = diagnostics(&format!(
        "{HEAD}  a:\n    action: {{ op: wallet.balance, on: {{ other: b }} }}\n  b:\n    pin: {{ text: PIN, next: c }}\n  c:\n    end: {{ text: x }}\n"
    ));
    let messages: Vec<_> = d.iter().map(|d| d.message.as_str()).collect();
    assert!(messages.iter().any(|m| m.contains("needs a PIN but no `pin` screen")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("must lead straight to an `action`")), "{messages:?}");
}

#[test]
fn template_syntax_and_translation_errors_are_reported() {
    let d = diagnostics(
        "service: t\ncodes: [\"*1#\"]\nlanguages: [en, sw]\nstart: a\nscreens:\n  a:\n    end: { text: { sw: \"{{ x \" } }\n",
    );
    let messages: Vec<_> = d.iter().map(|d| d.message.as_str()).collect();
    assert!(messages.iter().any(|m| m.contains("no text in `en`")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("template error")), "{messages:?}");
}

#[test]
fn bundle_resolves_codes_and_jump_ahead_segments() {
    let b = Bundle::from_sources([(Path::new("t.yaml"), MENU)]).unwrap();
    let d = b.resolve("*100#").unwrap();
    assert_eq!((d.menu.service.as_str(), d.jump.len()), ("test", 0));
    let d = b.resolve("*100*2*500#").unwrap();
    assert_eq!(d.jump, ["2", "500"]);
    assert!(b.resolve("*999#").is_none());
    assert!(b.resolve("").is_none());
    assert!(b.resolve("###").is_none());
}

#[test]
fn two_menus_on_one_code_are_refused() {
    let err = Bundle::from_sources([(Path::new("a.yaml"), MENU), (Path::new("b.yaml"), MENU)]).unwrap_err();
    assert!(err[0].message.contains("*100#"));
}

#[test]
fn the_flow_draws_as_mermaid_and_dot() {
    let m = menu();
    let mermaid = m.picture(PictureFormat::Mermaid, &[]);
    assert!(mermaid.starts_with("%% test (*100#), start: who\nflowchart TD\n"), "{mermaid}");
    for edge in [
        "  main -->|\"1. Balance\"| bal_pin\n",
        "  bal_do -->|\"pin_invalid\"| bal_pin\n",
        "  bal_do -->|\"other\"| unknown\n",
        "  amount -->|\"amount → amount\"| phone\n",
        "  bal_pin -->|\"PIN\"| bal_do\n",
    ] {
        assert!(mermaid.contains(edge), "{edge:?} missing from\n{mermaid}");
    }
    let dot = m.picture(PictureFormat::Dot, &[]);
    assert!(dot.starts_with("digraph \"test\" {"), "{dot}");
    assert!(dot.contains("\"who\" [shape=diamond, penwidth=2, label=\"who\\ncustomer.profile\"];"), "{dot}");
    assert!(dot.contains("\"main\" -> \"bal_pin\" [label=\"1. Balance\"];"), "{dot}");
    assert_eq!(dot.matches(" -> ").count(), mermaid.matches(" -->").count());
}

#[test]
fn the_drawing_holds_what_the_picture_draws() {
    let m = menu();
    let drawing = m.drawing();
    let name = |i: usize| drawing.screens[i].name.as_str();
    assert_eq!((name(drawing.start), drawing.keys.clone()), ("who", ["0".into(), "00".into(), "98".into()]));
    let who = &drawing.screens[drawing.start];
    assert_eq!((who.shape, who.caption.as_str()), ("action", "who\ncustomer.profile"));
    let balance = drawing.ways.iter().find(|w| name(w.from) == "main" && name(w.to) == "bal_pin");
    assert_eq!(balance.map(|w| w.label.as_str()), Some("1. Balance"));
    assert_eq!(drawing.ways.len(), m.picture(PictureFormat::Mermaid, &[]).matches(" -->").count());
}

#[test]
fn the_shipped_json_schema_is_the_generated_one() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("menus/menu.schema.json");
    let shipped: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("menus/menu.schema.json")).expect("JSON");
    let generated: serde_json::Value = serde_json::from_str(&json_schema()).expect("JSON");
    assert!(
        shipped == generated,
        "menus/menu.schema.json is stale: run `cargo run -- menus schema > menus/menu.schema.json`"
    );
    // Editors find it from the shipped menus.
    let wallet = std::fs::read_to_string(path.with_file_name("wallet.yaml")).expect("wallet.yaml");
    assert!(wallet.starts_with("# yaml-language-server: $schema=./menu.schema.json\n"));
}

#[test]
fn sms_commands_become_dial_strings_into_the_same_screens() {
    let source = MENU.replace(
        "screens:\n",
        "sms:\n  commands:\n    BAL: { dial: [\"1\"], aliases: { sw: [salio] }, help: { en: \"BAL - balance\", sw: \"SALIO - salio\" } }\n    SEND: { dial: [\"2\", \"$2\", \"$1\"], args: [number, amount], help: \"SEND <number> <amount>\" }\nscreens:\n",
    );
    let m = compile(Path::new("test.yaml"), &source).unwrap_or_else(|d| panic!("{d:?}"));
    let (bal, lang) = m.command("Salio").unwrap();
    assert_eq!((bal.word.as_str(), lang), ("BAL", Some("sw")));
    assert_eq!(bal.dial("*100#", &[]).as_deref(), Some("*100*1#"));
    let (send, _) = m.command("send").unwrap();
    assert_eq!(send.dial("*100#", &["0712345678", "500"]).as_deref(), Some("*100*2*500*0712345678#"));
    assert_eq!(send.dial("*100#", &["0712345678"]), None, "an argument missing");
    assert_eq!(send.dial("*100#", &["07*1", "5"]), None, "a star would move the journey on");
    assert_eq!(send.usage(), "SEND <number> <amount>");
    assert_eq!(m.help("sw"), ["SALIO - salio", "SEND <number> <amount>"]);
    assert!(m.command("STOP").is_none());
    assert_eq!(m.pin_op("bal_pin"), Some(crate::ops::Op::of::<crate::ops::WalletBalance>()));
    assert_eq!(m.pin_op("main"), None);
}

#[test]
fn check_refuses_reserved_repeated_and_unbound_command_words() {
    let with = |commands: &str| {
        let source = MENU.replace("screens:\n", &format!("sms:\n  commands:\n{commands}screens:\n"));
        diagnostics(&source).into_iter().map(|d| d.message).collect::<Vec<_>>().join("\n")
    };
    let found = with("    STOP: { dial: [\"1\"], help: x }\n");
    assert!(found.contains("`STOP` is a word the gateway answers itself"), "{found}");
    let found = with(
        "    BAL: { dial: [\"1\"], help: x }\n    SALDO: { dial: [\"1\"], aliases: { en: [bal] }, help: x }\n",
    );
    assert!(found.contains("`bal` is also a word of SMS command `BAL`"), "{found}");
    let found = with("    PAY: { dial: [\"2\", \"$2\"], args: [amount], help: x }\n");
    assert!(found.contains("`$2` in `dial` is not one of its 1 argument(s)"), "{found}");
    let found = with("    PAY: { dial: [\"two\"], help: x }\n");
    assert!(found.contains("`two` in `dial` is neither digits nor an argument"), "{found}");
}

#[test]
fn with_sms_commands_a_pin_screen_that_moves_money_needs_its_sms_text() {
    let source = MENU
        .replace("screens:\n", "sms:\n  commands:\n    BAL: { dial: [\"1\"], help: x }\nscreens:\n")
        + "  pay_pin:\n    pin: { text: \"PIN\", next: pay_do }\n  pay_do:\n    action:\n      op: transfer.p2p\n      args: { to: \"+254700000001\", amount: \"100\" }\n      on: { other: unknown }\n";
    let source = source.replace(
        "- { label: Code, next: code }",
        "- { label: Code, next: code }\n        - { label: Pay, next: pay_pin }",
    );
    let found: Vec<String> = diagnostics(&source).into_iter().map(|d| d.message).collect();
    assert!(found.iter().any(|m| m.contains("screen `pay_pin`: this PIN screen moves money")), "{found:?}");
    let fixed = source.replace(
        "pin: { text: \"PIN\", next: pay_do }",
        "pin: { text: \"PIN\", sms: \"Reply YES {{ code }}\", next: pay_do }",
    );
    compile(Path::new("fixed.yaml"), &fixed).unwrap_or_else(|d| panic!("{d:?}"));
}

#[test]
fn the_sms_text_chooses_reply_dial_or_both_and_a_dial_needs_a_handoff_code() {
    let base = MENU
        .replace("screens:\n", "sms:\n  commands:\n    BAL: { dial: [\"1\"], help: x }\nscreens:\n")
        .replace(
            "- { label: Code, next: code }",
            "- { label: Code, next: code }\n        - { label: Pay, next: pay_pin }",
        )
        + "  pay_pin:\n    pin: { text: \"PIN\", sms: SMS, next: pay_do }\n  pay_do:\n    action:\n      op: transfer.p2p\n      args: { to: \"+254700000001\", amount: \"100\" }\n      on: { other: unknown }\n";
    let with = |sms: &str, handoff: Option<&str>| {
        let mut source = base.replace("sms: SMS", &format!("sms: {sms:?}"));
        if let Some(code) = handoff {
            source = source.replace("sms:\n  commands:", &format!("sms:\n  handoff: {code:?}\n  commands:"));
        }
        compile(Path::new("t.yaml"), &source)
    };
    let found = |r: Result<Menu, Vec<Diagnostic>>| match r {
        Ok(_) => String::new(),
        Err(d) => d.into_iter().map(|d| d.message).collect::<Vec<_>>().join("\n"),
    };
    assert!(found(with("Thanks", None)).contains("the `sms` text offers no way to go on"));
    assert!(
        found(with("Dial {{ dial }}", None)).contains("says {{ dial }}, but the menu has no `sms.handoff`")
    );
    for wrong in ["*384*9#", "*100#", "*100*x#", "*100*9"] {
        assert!(
            found(with("Dial {{ dial }}", Some(wrong)))
                .contains("is not one of `codes` with digits after it"),
            "{wrong}"
        );
    }

    let both =
        with("Reply YES {{ code }} or dial {{dial}}", Some("*100*9#")).unwrap_or_else(|d| panic!("{d:?}"));
    assert!(both.confirms_by_reply("pay_pin") && both.confirms_by_dial("pay_pin"));
    assert_eq!(both.handoff_dial("482193").as_deref(), Some("*100*9*482193#"));
    let inputs = |s: &str| s.split('*').map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(both.handoff_code(&inputs("9*482193")), Some("482193"));
    for other in ["9", "9*48219", "9*4821934", "8*482193", "9*48219x", "1*9*482193"] {
        assert_eq!(both.handoff_code(&inputs(other)), None, "{other}");
    }
    let dial_only = with("Dial {{ dial }} to pay", Some("*100*9*1#")).unwrap_or_else(|d| panic!("{d:?}"));
    assert!(!dial_only.confirms_by_reply("pay_pin") && dial_only.confirms_by_dial("pay_pin"));
    assert_eq!(dial_only.handoff_code(&inputs("9*1*000001")), Some("000001"));
    let reply_only = with("Reply YES {{ code|upper }}", None).unwrap_or_else(|d| panic!("{d:?}"));
    assert!(reply_only.confirms_by_reply("pay_pin") && !reply_only.confirms_by_dial("pay_pin"));
    assert_eq!(reply_only.handoff_dial("482193"), None);
}

/// Mistakes that earlier passes would have reported one stage at a time: all of them in
/// one compile, sorted by line, each with its reason.
#[test]
fn every_mistake_of_a_file_is_reported_in_one_pass() {
    let d = diagnostics(&format!(
        r#"{HEAD}  a:
    menu:
      text: "Hi {{{{ nme }}}}"
      options:
        - {{ label: Name, next: name }}
        - {{ label: Pay, next: pay }}
  name:
    input: {{ text: Name, kind: text, pattern: "[a-z", max_length: 10, save: who, next: bye }}
  pay:
    action: {{ op: wallet.balance, on: {{ ok: bye, pin_invalid: bye, pin_locked: bye, not_registered: bye, account_blocked: bye }} }}
  bye:
    end: {{ text: "Bye {{{{ who }}}}" }}
  orphan:
    end: {{ text: Never }}
"#
    ));
    let lines: Vec<u64> = d.iter().map(|d| d.line).collect();
    assert!(lines.is_sorted(), "{d:?}");
    let find = |words: &str| {
        d.iter().find(|d| d.message.contains(words)).unwrap_or_else(|| panic!("{words}: {d:?}"))
    };
    assert_eq!(
        (find("a text reads `nme`").line, find("a text reads `nme`").column),
        (8, 20),
        "at the variable"
    );
    assert_eq!(find("is not a valid regular expression").hint.as_deref(), Some("unclosed character class"));
    assert!(find("a PIN but no `pin` screen").line > 7);
    assert!(find("screen `orphan` is unreachable").line > 7);
}

#[test]
fn a_menu_with_problems_is_still_drawn_with_its_broken_screens_marked() {
    let source = format!(
        "{HEAD}  a:\n    menu:\n      text: Hi\n      options:\n        - {{ label: X, next: b }}\n  b:\n    action: {{ op: no.such, on: {{ ok: a }} }}\n"
    );
    let compiled = crate::menu::compile_all(Path::new("t.yaml"), &source, Texts::shipped());
    let menu = compiled.menu.expect("drawn although refused");
    assert_eq!(compiled.diagnostics.len(), 1, "{:?}", compiled.diagnostics);
    let b = menu.screens.iter().position(|n| n.name == "b").unwrap();
    assert_eq!(compiled.broken, vec![b]);
    assert!(menu.picture(PictureFormat::Mermaid, &compiled.broken).contains("class b broken"));
    let dot = menu.picture(PictureFormat::Dot, &compiled.broken);
    assert!(dot.lines().any(|l| l.starts_with("  \"b\" [") && l.contains("color=red")), "{dot}");
    assert!(!dot.lines().any(|l| l.starts_with("  \"a\" [") && l.contains("color=red")), "{dot}");
}

#[test]
fn a_code_claimed_twice_names_both_files_at_the_code() {
    let a = format!("{HEAD}  a:\n    end: {{ text: A }}\n");
    let b = "# The other menu on *1#\nservice: u\ncodes: [\"*1#\"]\nstart: a\nlanguages: [en]\nscreens:\n  a:\n    end: { text: B }\n";
    let d = crate::menu::Bundle::from_sources([(Path::new("a.yaml"), a.as_str()), (Path::new("b.yaml"), b)])
        .expect_err("two menus on one code");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].file.as_path(), d[0].line), (Path::new("b.yaml"), 3));
    assert!(d[0].message.contains("claimed by a.yaml too"), "{d:?}");
    // Twice in one file is that file's own problem, found when it is checked alone.
    let d = diagnostics(
        "service: t\ncodes:\n  - \"*1#\"\n  - \"*1#\"\nlanguages: [en]\nstart: a\nscreens:\n  a:\n    end: { text: A }\n",
    );
    assert_eq!((d[0].line, d[0].message.as_str()), (4, "`*1#` is listed twice"), "{d:?}");
}

/// A menu in a language the gateway does not ship words every built-in line; one
/// written before `conversation_over` existed is not refused for lacking it, and an SMS
/// conversation that is over gets its own `session_over` wording.
fn english(message: Message) -> &'static str {
    Texts::shipped().line("en", message)
}

/// A language's built-in lines are a texts file's, not each menu's: a French menu names
/// none of them, and without texts/fr.yaml it is told where they go.
#[test]
fn a_menu_in_a_new_language_reads_the_lines_of_its_texts_file() {
    let source = "service: t\ncodes: [\"*1#\"]\nlanguages: [en, fr]\nstart: a\nmessages:\n  back: { en: Go back, fr: Revenir }\nscreens:\n  a:\n    end: { text: { en: Bye, fr: Salut } }\n";
    let d = diagnostics(source);
    assert!(d[0].message.contains("no texts file writes the built-in lines in `fr`"), "{d:?}");
    assert!(d[0].hint.as_deref().unwrap_or_default().contains("`lines:` in texts/fr.yaml"), "{d:?}");
    let french = include_str!("../../menus/texts/fr.yaml");
    let texts = std::sync::Arc::new(Texts::from_sources([(Path::new("texts/fr.yaml"), french)]).unwrap());
    let m = compile_with(Path::new("t.yaml"), source, &texts).unwrap_or_else(|d| panic!("{d:?}"));
    let (j, _) = m.begin(Some("fr")).unwrap();
    assert_eq!(m.message(&j, Message::InvalidChoice).unwrap(), "Choix invalide.");
    assert_eq!(m.message(&j, Message::Back).unwrap(), "Revenir", "the menu's own wording first");
    let (j, _) = m.begin(Some("en")).unwrap();
    assert_eq!(m.message(&j, Message::InvalidChoice).unwrap(), english(Message::InvalidChoice));
}

#[test]
fn a_line_added_later_falls_back_to_the_menus_own_wording_of_its_stand_in() {
    let lines = |skip: &[&str]| -> String {
        Message::ALL
            .iter()
            .filter(|m| !skip.contains(&m.name()))
            .map(|m| format!("  {}: {{ en: \"{}\", fr: \"fr {}\" }}\n", m.name(), english(*m), m.name()))
            .collect()
    };
    let source = |skip: &[&str]| {
        format!(
            "service: t\ncodes: [\"*1#\"]\nlanguages: [en, fr]\nstart: a\nmessages:\n{}screens:\n  a:\n    end: {{ text: {{ en: Bye, fr: Salut }} }}\n",
            lines(skip)
        )
    };
    let m =
        compile(Path::new("fr.yaml"), &source(&["conversation_over"])).unwrap_or_else(|d| panic!("{d:?}"));
    let (j, _) = m.begin(Some("fr")).unwrap();
    assert_eq!(m.message(&j, Message::ConversationOver).unwrap(), "fr session_over");
    let (j, _) = m.begin(Some("en")).unwrap();
    assert_eq!(m.message(&j, Message::ConversationOver).unwrap(), english(Message::ConversationOver));
    // Without either, the menu is told what to translate.
    let d = diagnostics(&source(&["conversation_over", "session_over"]));
    assert!(d[0].message.contains("missing translation): session_over, conversation_over"), "{d:?}");
}

/// What a half-built graph cannot carry is refused before the graph's checks run on it.
#[test]
fn files_the_graph_checks_cannot_run_on_are_refused_without_a_panic() {
    let d = diagnostics("service: t\ncodes: [\"*1#\"]\nlanguages: [en]\nstart: a\nscreens: {}\n");
    assert!(d.iter().any(|d| d.message.contains("no screen named `a`")), "{d:?}");
    let d = diagnostics(
        "service: t\ncodes: [\"*1#\"]\nlanguages: [en]\nstart: a\ncurrency: { code: KES, exponent: 64 }\nscreens:\n  a:\n    input: { text: Amount, kind: amount, min: 1, max: 100, save: x, next: b }\n  b:\n    end: { text: \"{{ x|money }}\" }\n",
    );
    assert!(d.iter().any(|d| d.message.contains("larger than 4")), "{d:?}");
}

/// What a lost way or a refused setting explains is not reported as the author's.
#[test]
fn consequences_of_a_refused_name_or_budget_wait_for_it() {
    let d = diagnostics(&format!(
        "{HEAD}  a:\n    input: {{ text: Amount, kind: amount, min: 1, max: 100, save: amount, next: q }}\n  q:\n    action: {{ op: transfer.quote, args: {{ to: \"0700000002\", amount: \"{{{{ amount }}}}\" }}, save: quote, on: {{ ok: shown, recipient_unknwn: gone, other: shown }} }}\n  shown:\n    end: {{ text: \"{{{{ quote.name }}}}\" }}\n  gone:\n    end: {{ text: Gone }}\n"
    ));
    assert_eq!(d.len(), 1, "the misspelt outcome, not `gone` unreachable for want of it: {d:?}");
    assert!(d[0].message.contains("has no outcome `recipient_unknwn`"), "{d:?}");
    let d = diagnostics(&format!(
        "budget: {{ gsm7: 10, ucs2: 5 }}\n{HEAD}  a:\n    input: {{ text: Your amount please, kind: amount, min: 1, max: 100, save: x, next: b }}\n  b:\n    end: {{ text: Bye }}\n"
    ));
    assert_eq!(d.len(), 1, "the budget, not every screen measured against it: {d:?}");
}
