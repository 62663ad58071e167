//! Every USSD adapter's parser over arbitrary requests: the first byte picks the
//! provider, the rest is split into query string, body and path tail. A parser may
//! refuse (`BadRequest`), never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ussd_gateway::channel::ussd::{Context, Provider, Request};
use ussd_gateway::domain::Region;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let provider = Provider::ALL[usize::from(pick) % Provider::ALL.len()];
    let mut parts = rest.splitn(3, |b| *b == 0);
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let body = parts.next().unwrap_or_default();
    let tail = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let request = Request { query: &query, body, tail: &tail };
    let ctx = Context { channel: "fuzz", region: Region::parse("KE").expect("KE") };
    if let Ok(parsed) = provider.parse(&request, &ctx) {
        let _ = provider.acknowledge(&parsed.echo);
    }
});
