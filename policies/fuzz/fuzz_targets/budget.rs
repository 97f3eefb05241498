//! Budgets' readers of untrusted bytes: what a body may cost beyond its
//! bytes and the prices it switches to (any body), the ledger's answer to a reservation, a shared-data
//! counter another VM wrote. Never a panic; a ledger answer admits only
//! when it accounts for every key asked; a counter reads back as written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_policies::callout::CalloutResult;
use modelgate_policies::parsers::budget::{reserved, scan, Counter, Reserved, MEDIA_TOKENS};

fuzz_target!(|data: &[u8]| {
    if let Ok(scanned) = scan(data) {
        assert_eq!(scanned.extra_tokens % MEDIA_TOKENS, 0, "images reserve whole allowances");
        assert!(serde_json::from_slice::<serde_json::Value>(data).is_ok(), "only a body it can read is bounded");
    }
    let keys = ["a/x/1", "b/group/2"];
    let answer = CalloutResult::Response { status: 200, content_type: None, body: data.to_vec() };
    if let Reserved::Admitted(left) = reserved(&answer, &keys) {
        assert!(keys.iter().all(|k| left.iter().any(|(key, _)| key == k)), "admitted without every key");
    }
    if let Some(counter) = Counter::parse(data) {
        assert_eq!(Counter::parse(&counter.encode()), Some(counter), "a counter reads back as written");
    }
});
