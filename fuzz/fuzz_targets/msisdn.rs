//! Subscriber numbers as aggregators and subscribers type them: parsed or refused,
//! never a panic, and a parsed number always reads back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ussd_gateway::domain::{Msisdn, Region};

fuzz_target!(|data: &str| {
    let region = Region::parse("KE").expect("KE");
    if let Ok(number) = Msisdn::parse(data, region) {
        assert_eq!(Msisdn::parse(number.as_e164(), region).as_ref(), Ok(&number));
    }
});
