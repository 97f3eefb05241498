//! X.509-SVID leaves: any bytes (PEM, URL-encoded PEM or DER) are a valid
//! SVID or one of the refusals, never a panic; an accepted SVID names a
//! trust domain the caller trusts. A forwarded leaf checked against an
//! X.509 authority is accepted only if that authority signed it, and any
//! bytes read as an authority are one or a refusal.
#![no_main]

use std::sync::OnceLock;

use modelgate_policies::parsers::{leaf_der, validate, validate_forwarded, Authority, X509SvidError};

fn authority() -> &'static Authority {
    static CA: OnceLock<Authority> = OnceLock::new();
    CA.get_or_init(|| {
        Authority::from_pem(include_bytes!("../../testdata/x509/ca.pem")).expect("the test CA reads")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let trusted = |td: &str| td == "example.org";
    let now = 1_800_000_000;
    if let Ok(svid) = validate(data, &trusted, now) {
        assert_eq!(svid.spiffe_id.trust_domain(), "example.org");
    }
    let _ = Authority::from_pem(data);
    if let Ok(der) = leaf_der(data) {
        let _ = validate(&der, &trusted, now);
        let ca = std::slice::from_ref(authority());
        match validate_forwarded(&der, &trusted, |_: &str| ca, now) {
            Ok(_) => assert!(authority().issued(&der)),
            Err(X509SvidError::UntrustedIssuer) => assert!(!authority().issued(&der)),
            Err(_) => {}
        }
    }
});
