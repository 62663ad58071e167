//! Feature flags in menus: options and screens under `when:`, routers testing
//! `flag.<name>`, ops a flag switches off, and the checks on all of them.

use std::path::Path;

use super::*;
use crate::ops::Op;

const MENU: &str = r#"
service: flagged
codes: ["*100#"]
languages: [en, sw]
start: main
flags:
  new_pay:
    about: the new way to pay
    default: false
    ops: [wallet.balance]
    unavailable: { en: "Paying is off for now.", sw: "Kulipa kumezimwa kwa sasa." }
  beta:
    about: the beta screen
    default: true
screens:
  main:
    menu:
      text: Pick
      options:
        - { label: One, next: one }
        - { label: Pay, next: pay, when: { flag: new_pay } }
        - { label: Beta, next: beta }
        - { label: Route, next: route }
  one:
    end: { text: "One" }
  pay:
    end: { text: "Paid" }
  beta:
    end: { text: "Beta", when: { flag: beta } }
  route:
    router:
      routes:
        - { if: "flag.new_pay", next: pay }
      else: one
"#;

fn menu() -> Menu {
    compile(Path::new("flagged.yaml"), MENU).unwrap_or_else(|d| panic!("{d:?}"))
}

fn text(step: Step) -> String {
    match step {
        Step::Reply(r) => r.text,
        Step::Run(a) => panic!("expected a screen, got {:?}", a.op),
    }
}

/// The bits with `new_pay` on or off and `beta` on or off (the flags sort by name).
fn bits(m: &Menu, new_pay: bool, beta: bool) -> u64 {
    m.flag_bits(|name, _| if name == "new_pay" { new_pay } else { beta })
}

#[test]
fn an_option_switched_off_is_not_shown_nor_taken_and_the_others_keep_their_numbers() {
    let m = menu();
    let (mut j, step) = m.begin_within(None, None, bits(&m, false, true)).unwrap();
    assert_eq!(text(step), "Pick\n1. One\n3. Beta\n4. Route");
    assert_eq!(text(m.input(&mut j, "2").unwrap()), "Invalid choice.\nPick\n1. One\n3. Beta\n4. Route");
    let (mut j, step) = m.begin_within(None, None, bits(&m, true, true)).unwrap();
    assert_eq!(text(step), "Pick\n1. One\n2. Pay\n3. Beta\n4. Route");
    assert_eq!(text(m.input(&mut j, "2").unwrap()), "Paid");
}

#[test]
fn an_option_to_a_screen_switched_off_is_hidden_and_a_way_in_ends_with_the_flags_words() {
    let m = menu();
    let (_, step) = m.begin_within(None, None, bits(&m, false, false)).unwrap();
    assert_eq!(text(step), "Pick\n1. One\n4. Route", "the target's flag hides the option too");
    let mut j = Journey {
        screen: "main".into(),
        lang: "sw".into(),
        flags: Some(bits(&m, false, true)),
        ..Journey::default()
    };
    assert_eq!(text(m.switched_off(&mut j, 1).unwrap()), "Kulipa kumezimwa kwa sasa.");
    assert!(j.done);
    let mut j = Journey { screen: "main".into(), lang: "en".into(), flags: Some(0), ..Journey::default() };
    assert_eq!(
        text(m.switched_off(&mut j, 0).unwrap()),
        "This service is not available right now. Please try again later.",
        "a flag without words of its own: the built-in line"
    );
}

#[test]
fn a_router_tests_a_flag_and_a_journey_from_before_flags_takes_the_defaults() {
    let m = menu();
    let (mut j, _) = m.begin_within(None, None, bits(&m, true, true)).unwrap();
    assert_eq!(text(m.input(&mut j, "4").unwrap()), "Paid");
    let (mut j, _) = m.begin_within(None, None, bits(&m, false, true)).unwrap();
    assert_eq!(text(m.input(&mut j, "4").unwrap()), "One");
    let mut old = Journey { screen: "main".into(), lang: "en".into(), ..Journey::default() };
    assert_eq!(old.flags, None);
    assert_eq!(text(m.input(&mut old, "3").unwrap()), "Beta", "beta is on by default");
    assert_eq!(m.flag_defaults(), bits(&m, false, true));
}

#[test]
fn the_flags_bits_travel_with_the_session_and_ops_know_their_switches() {
    let m = menu();
    let (j, _) = m.begin_within(None, None, bits(&m, true, false)).unwrap();
    let stored: Journey = serde_json::from_str(&serde_json::to_string(&j).unwrap()).unwrap();
    assert_eq!(stored.flags, Some(bits(&m, true, false)));
    let gates: Vec<&str> =
        m.gates(Op::from_name("wallet.balance").unwrap()).map(|(_, f)| f.name.as_str()).collect();
    assert_eq!(gates, ["new_pay"]);
    assert_eq!(m.gates(Op::from_name("customer.profile").unwrap()).count(), 0);
}

fn problems(source: &str) -> String {
    match compile(Path::new("flagged.yaml"), source) {
        Ok(_) => panic!("compiled"),
        Err(d) => d.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
    }
}

#[test]
fn a_flag_no_menu_declares_is_refused_with_the_closest_name() {
    let said = problems(&MENU.replace("when: { flag: new_pay }", "when: { flag: new_pai }"));
    assert!(said.contains("no flag named `new_pai` is declared under `flags:`"), "{said}");
    assert!(said.contains("did you mean `new_pay`?"), "{said}");
    let said = problems(&MENU.replace(r#"if: "flag.new_pay""#, r#"if: "flag.newpay""#));
    assert!(said.contains("no flag named `newpay`"), "{said}");
    let said = problems(&MENU.replace("ops: [wallet.balance]", "ops: [wallet.balanse]"));
    assert!(said.contains("flag `new_pay`: unknown op `wallet.balanse`"), "{said}");
    let said = problems(&MENU.replace("Paying is off for now.", "Paying is off, {{ customer.first_name }}."));
    assert!(said.contains("`unavailable` in `en` is a template"), "{said}");
    let said = problems(&MENU.replace("  beta:\n    about", "  Beta:\n    about"));
    assert!(said.contains("flag `Beta`: not a flag name"), "{said}");
}

#[test]
fn flag_is_not_a_variable_name() {
    let source = MENU.replace(
        "  one:\n    end: { text: \"One\" }",
        "  one:\n    input: { text: \"Name?\", kind: text, save: flag, next: pay }",
    );
    let said = problems(&source);
    assert!(said.contains("`flag` is reserved for the menu's feature flags"), "{said}");
}

#[test]
fn menus_sharing_a_flag_must_agree_on_its_default() {
    let other = |default: bool| {
        format!(
            "service: other\ncodes: [\"*200#\"]\nlanguages: [en]\nstart: a\nflags:\n  beta:\n    about: the beta screen\n    default: {default}\nscreens:\n  a:\n    end: {{ text: A }}\n"
        )
    };
    let agreeing = other(true);
    Bundle::from_sources([(Path::new("flagged.yaml"), MENU), (Path::new("other.yaml"), agreeing.as_str())])
        .expect("the same default twice");
    let disagreeing = other(false);
    let d = Bundle::from_sources([
        (Path::new("flagged.yaml"), MENU),
        (Path::new("other.yaml"), disagreeing.as_str()),
    ])
    .expect_err("two defaults for one flag");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].file.as_path(), d[0].line), (Path::new("other.yaml"), 6));
    assert!(d[0].message.contains("flag `beta` defaults to false here and to true in flagged.yaml"), "{d:?}");
}

#[test]
fn a_journey_shown_again_on_a_screen_its_flag_now_closes_ends_there() {
    let m = menu();
    let mut j = Journey {
        screen: "beta".into(),
        lang: "en".into(),
        flags: Some(bits(&m, false, false)),
        ..Journey::default()
    };
    assert_eq!(
        text(m.show(&mut j).unwrap()),
        "This service is not available right now. Please try again later."
    );
    assert!(j.done);
    let mut j = Journey {
        screen: "beta".into(),
        lang: "en".into(),
        flags: Some(bits(&m, false, true)),
        ..Journey::default()
    };
    assert_eq!(text(m.show(&mut j).unwrap()), "Beta");
}
