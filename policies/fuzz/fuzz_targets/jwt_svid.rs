//! JWT-SVID validation over arbitrary tokens: a validated SVID or one of
//! the rejection classes, never a panic; an accepted token names the trust
//! domain whose key signed it.
#![no_main]

mod common;

use modelgate_policies::parsers::jwt;
use modelgate_policies::{PureRustVerifier, TrustStore};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let f = common::fixture();
    let trust = TrustStore::new(&f.policy.trust_domains);
    if let Ok(svid) = jwt::validate(token, &f.policy.jwt_svid, &trust, &PureRustVerifier, common::now_secs()) {
        assert_eq!(svid.spiffe_id.trust_domain(), "example.org");
    }
    // The valid token with bytes spliced in at a position the input picks.
    if let Some((&at, rest)) = data.split_first() {
        let mut t = f.token.clone().into_bytes();
        let at = usize::from(at) % (t.len() + 1);
        t.splice(at..at, rest.iter().copied());
        if let Ok(t) = String::from_utf8(t) {
            let _ = jwt::validate(&t, &f.policy.jwt_svid, &trust, &PureRustVerifier, common::now_secs());
        }
    }
});
