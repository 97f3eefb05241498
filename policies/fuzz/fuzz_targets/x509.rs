//! X.509-SVID leaves: any bytes (PEM, URL-encoded PEM or DER) are a valid
//! SVID or one of the refusals, never a panic; an accepted SVID names a
//! trust domain the caller trusts.
#![no_main]

use modelgate_policies::svid::x509::{leaf_der, validate};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let trusted = |td: &str| td == "example.org";
    let now = 1_800_000_000;
    if let Ok(svid) = validate(data, &trusted, now) {
        assert_eq!(svid.spiffe_id.trust_domain(), "example.org");
    }
    if let Ok(der) = leaf_der(data) {
        let _ = validate(&der, &trusted, now);
    }
});
