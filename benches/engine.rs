//! In-process costs of one hop's pure work: the engine step over the shipped wallet menu
//! (template rendering included), the screen budget (encoding-aware counting and
//! pagination), and the session record's round trip through JSON.
//!
//! `cargo bench --bench engine`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use ussd_gateway::menu::{Budget, Bundle, Journey, Layout, NavLines, Step, paginate, screen_cost};
use ussd_gateway::outcome::{OpResult, Outcome};
use ussd_gateway::session::{Session, TextKey, TextMark};

fn wallet() -> std::sync::Arc<ussd_gateway::menu::Menu> {
    let bundle =
        Bundle::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("menus")).expect("the menus compile");
    bundle.get("wallet").expect("wallet menu").clone()
}

/// A journey on the main menu, as after the profile lookup of the first hop.
fn at_main(menu: &ussd_gateway::menu::Menu) -> Journey {
    let (mut j, _) = menu.begin(None).expect("begin");
    let profile = json!({"first_name": "Amina", "last_name": "Otieno", "language": "en"});
    menu.resume(&mut j, OpResult::new(Outcome::Ok, profile)).expect("resume");
    j
}

fn engine(c: &mut Criterion) {
    let menu = wallet();
    let main = at_main(&menu);

    c.bench_function("engine/begin+profile (first hop, main menu rendered)", |b| {
        b.iter(|| black_box(at_main(&menu)))
    });
    c.bench_function("engine/menu choice (main → PIN screen)", |b| {
        b.iter(|| {
            let mut j = main.clone();
            black_box(menu.input(&mut j, black_box("2")).expect("input"))
        })
    });
    c.bench_function("engine/invalid choice (error line + menu re-rendered)", |b| {
        b.iter(|| {
            let mut j = main.clone();
            black_box(menu.input(&mut j, black_box("9")).expect("input"))
        })
    });
    let mut at_amount = main.clone();
    menu.input(&mut at_amount, "1").expect("send money");
    menu.input(&mut at_amount, "0700000002").expect("number");
    c.bench_function("engine/amount input (parse + quote action rendered)", |b| {
        b.iter(|| {
            let mut j = at_amount.clone();
            match menu.input(&mut j, black_box("500")).expect("input") {
                Step::Run(action) => black_box(action.args.len()),
                Step::Reply(_) => unreachable!("an amount leads to the quote op"),
            }
        })
    });
}

fn budget(c: &mut Criterion) {
    let gsm = "Send KES 250,000.00 to Brian Kamau +254700***002? Fee KES 108.00.\n1. Yes\n2. No\n0. Back {€}";
    let ucs2 = "Tuma KES 250,000.00 kwa Wanjirũ Kamau +254700***002? Ada KES 108.00.\n1. Ndiyo\n2. Hapana";
    c.bench_function("budget/count GSM-7 (90 chars, extension characters)", |b| {
        b.iter(|| black_box(screen_cost(black_box(gsm))))
    });
    c.bench_function("budget/count UCS-2 (falls back after a non-GSM character)", |b| {
        b.iter(|| black_box(screen_cost(black_box(ucs2))))
    });
    let nav = NavLines { more: "98. More".into(), back: "0. Back".into() };
    let header = vec!["Choose a biller".to_owned()];
    let one_page: Vec<String> = (1..=5).map(|i| format!("{i}. Biller number {i}")).collect();
    let long: Vec<String> = (1..=20).map(|i| format!("{i}. Biller with a long name {i}")).collect();
    let layout = Layout { back_on_first: true, ends: false };
    c.bench_function("budget/paginate a menu that fits (5 options)", |b| {
        b.iter(|| black_box(paginate(&header, black_box(&one_page), &nav, layout, Budget::default())))
    });
    c.bench_function("budget/paginate a long menu (20 options → 5 pages)", |b| {
        b.iter(|| black_box(paginate(&header, black_box(&long), &nav, layout, Budget::default())))
    });
    let menu = wallet();
    let mut at_statement = at_main(&menu);
    menu.input(&mut at_statement, "3").expect("statement");
    menu.input(&mut at_statement, "1234").expect("pin");
    let entry = json!({"date": "21/11", "amount": -1_507_00, "kind": "p2p", "party": "Cynthia W.", "ref": "TX0000000B"});
    let entries = json!({ "entries": vec![entry; 5] });
    c.bench_function("engine/statement as items (5 options, 2 pages)", |b| {
        b.iter(|| {
            let mut j = at_statement.clone();
            black_box(menu.resume(&mut j, OpResult::new(Outcome::Ok, entries.clone())).expect("resume"))
        })
    });
}

fn session(c: &mut Criterion) {
    let menu = wallet();
    let key = TextKey::new(b"bench");
    let session = Session {
        service: "wallet".into(),
        menu_version: menu.version.clone(),
        journey: at_main(&menu),
        seen: key.mark(""),
        reply: Some(ussd_gateway::menu::Reply::con("Welcome Amina\n1. Send money\n2. My balance")),
        pending_since_ms: None,
        claim: None,
        last_seq: None,
        hops: 1,
        answered_ms: 1_795_000_000_000,
        code: None,
    };
    let bytes = serde_json::to_vec(&session).expect("serialise");
    c.bench_function("session/serialise", |b| {
        b.iter(|| black_box(serde_json::to_vec(&session).expect("serialise")))
    });
    c.bench_function("session/deserialise", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Session>(&bytes).expect("deserialise")))
    });
    c.bench_function("session/text mark (keyed hash)", |b| {
        b.iter(|| black_box::<TextMark>(key.mark(black_box("1*0700000002*500*1234"))))
    });
}

/// What flags cost the first hop of a session: the wallet's two flags decided for one
/// subscriber, one at a 10% rollout (a SHA-256 of the flag and the number) and one
/// listing numbers, over the snapshot a replica holds.
fn flags(c: &mut Criterion) {
    use ussd_gateway::domain::{Msisdn, Region};
    use ussd_gateway::flags::{Flag, Snapshot};
    let menu = wallet();
    let flag = |name: &str, rollout, numbers_in: Vec<String>| Flag {
        name: name.into(),
        description: String::new(),
        enabled: true,
        rollout,
        numbers_in,
        numbers_out: Vec::new(),
        channels_in: Vec::new(),
        channels_out: Vec::new(),
        sensitive: false,
        revision: 1,
        updated_at: String::new(),
    };
    let staff: Vec<String> = (0..20).map(|n| format!("+2547990000{n:02}")).collect();
    let snapshot: Snapshot =
        [flag("merchant_pay", Some(10), Vec::new()), flag("bill_pay", None, staff)].into_iter().collect();
    let msisdn = Msisdn::parse("+254700000001", Region::parse("KE").expect("KE")).expect("a number");
    c.bench_function("flags/decide the wallet's 2 flags for a subscriber", |b| {
        b.iter(|| {
            black_box(menu.flag_bits(|name, default| snapshot.on(name, default, &msisdn, "africastalking")))
        })
    });
}

criterion_group!(benches, engine, budget, session, flags);
criterion_main!(benches);
