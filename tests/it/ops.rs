//! Ops called as the pipeline calls them, on the real ledger: what a subscriber can act
//! on is answered before a menu's own mistake is judged.

use std::collections::BTreeMap;

use sqlx::PgPool;
use ussd_gateway::domain::{Msisdn, Pin, Region, Secret};
use ussd_gateway::money::{Auth, MoneyError};
use ussd_gateway::ops::{self, Call, Op};
use ussd_gateway::outcome::{OpResult, Outcome};

use crate::common::{Store, TestApp, spawn};

fn kenyan(number: &str) -> Msisdn {
    Msisdn::parse(number, Region::parse("KE").unwrap()).unwrap()
}

async fn run(
    app: &TestApp,
    op: Op,
    msisdn: &Msisdn,
    args: &[(&str, &str)],
    pin: Option<&str>,
    auth: Auth,
) -> Result<OpResult, MoneyError> {
    let args: BTreeMap<String, String> = args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let secrets: Vec<(String, Secret)> =
        pin.map(|p| ("pin".to_owned(), Secret::new(p))).into_iter().collect();
    let key = format!("ops-test-{:x}", rand::random::<u64>());
    let call = Call {
        op,
        msisdn,
        channel: "test",
        idempotency_key: &key,
        args: &args,
        secrets: &secrets,
        auth,
        region: Region::parse("KE").unwrap(),
        budget: None,
    };
    app.state.gateway.ops().run(call).await
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn a_mismatched_pin_is_answered_before_the_rest_of_a_registration_is_judged(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    let staged = app.state.money().settings().pins.stage(&Pin::parse("4826").unwrap()).encode();
    let newcomer = kenyan("+254711000111");
    let register = Op::of::<ops::CustomerRegister>();
    // A name the menu should never have passed, and no ID at all.
    let args = [("staged_pin", staged.as_str()), ("first_name", "A\u{7}"), ("last_name", "Otieno")];
    let mismatch = run(&app, register, &newcomer, &args, Some("4827"), Auth::Pin).await;
    assert_eq!(mismatch.unwrap().outcome, Outcome::PinMismatch, "the subscriber can type the PIN again");
    let confirmed = run(&app, register, &newcomer, &args, Some("4826"), Auth::Pin).await;
    assert!(
        matches!(confirmed, Err(MoneyError::BadArgument { op: "customer.register", .. })),
        "the menu's mistake, once the PIN is confirmed: {confirmed:?}"
    );
}

#[sqlx::test(migrator = "ussd_gateway::app::MIGRATOR")]
async fn an_sms_cash_out_request_over_the_channel_limit_is_refused_before_its_dial_is_judged(pool: PgPool) {
    let app = spawn(pool, Store::Memory).await;
    let request = Op::of::<ops::AgentCashOutRequest>();
    let agent = kenyan("+254700000003");
    let vouched = Auth::Vouched { max_amount: 1_000_00 };
    let args =
        |amount| [("customer", "+254700000001"), ("store", "1001"), ("amount", amount), ("dial", "dial me")];
    let over = run(&app, request, &agent, &args("5000000"), None, vouched).await.unwrap();
    assert_eq!(over.outcome, Outcome::LimitExceeded);
    match run(&app, request, &agent, &args("50000"), None, vouched).await {
        Err(MoneyError::BadArgument { arg, .. }) => assert_eq!(arg, "dial"),
        other => panic!("a dial that is no USSD code is the menu's mistake: {other:?}"),
    }
}
