//! SPIFFE IDs, trust domains and workload patterns: whatever parses is
//! canonical (it prints back as given) and matches itself.
#![no_main]

use modelgate_policies::parsers::{SpiffeId, TrustDomain, WorkloadPattern};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(id) = SpiffeId::parse(s) {
        assert_eq!(id.to_string(), s, "an accepted SPIFFE ID is canonical");
        if let Ok(exact) = WorkloadPattern::parse(s) {
            assert!(exact.matches(&id));
        }
    }
    let _ = TrustDomain::parse(s);
    let _ = WorkloadPattern::parse(s);
});
