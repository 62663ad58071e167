//! In-process costs of one hop's pure work: the engine step over the shipped wallet menu
//! (template rendering included), and the session record's round trip through JSON.
//!
//! `cargo bench --bench engine`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use ussd_gateway::menu::{Bundle, Journey, Step};
use ussd_gateway::ops::{OpResult, Outcome};
use ussd_gateway::session::{Session, TextKey, TextMark};

fn wallet() -> std::sync::Arc<ussd_gateway::menu::Menu> {
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("menus/wallet.yaml"))
        .expect("menus/wallet.yaml");
    let bundle =
        Bundle::from_sources([(Path::new("wallet.yaml"), source.as_str())]).expect("the wallet compiles");
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
        hops: 1,
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

criterion_group!(benches, engine, session);
criterion_main!(benches);
