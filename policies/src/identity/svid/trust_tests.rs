use super::*;
use crate::testing::policy;
use serde_json::json;

fn bundle(sequence: Option<u64>) -> Bundle {
    Bundle { keys: Vec::new(), sequence, refresh_hint: None, skipped: 0 }
}

fn store() -> TrustStore {
    TrustStore::new(&policy(json!({})).trust_domains)
}

#[test]
fn a_sequence_never_goes_backward() {
    let mut s = store();
    let first = s.domain("example.org").unwrap().generation;
    assert_eq!(s.install("example.org", bundle(Some(5))), Installed::Replaced);
    let after = s.domain("example.org").unwrap().generation;
    assert_ne!(first, after);
    assert_eq!(s.install("example.org", bundle(Some(4))), Installed::Older { installed: 5 });
    assert_eq!(s.install("example.org", bundle(Some(5))), Installed::Same);
    assert_eq!(s.domain("example.org").unwrap().generation, after);
    assert_eq!(s.install("example.org", bundle(Some(6))), Installed::Replaced);
    // A bundle without a sequence (a plain JWKS) always replaces.
    assert_eq!(s.install("example.org", bundle(None)), Installed::Replaced);
    assert_eq!(s.install("other.org", bundle(None)), Installed::Unknown);
}

#[test]
fn a_domain_with_only_an_endpoint_is_unavailable_until_loaded() {
    let mut p = policy(json!({}));
    p.trust_domains[0].keys.clear();
    p.trust_domains[0].endpoint = Some(crate::config::BundleEndpoint {
        cluster: "spire".into(),
        authority: "spire".into(),
        path: "/".into(),
        refresh_seconds: 300,
        timeout_ms: 5000,
        format: crate::config::Format::Spiffe,
    });
    let mut s = TrustStore::new(&p.trust_domains);
    assert!(!s.domain("example.org").unwrap().available);
    s.install("example.org", bundle(Some(1)));
    assert!(s.domain("example.org").unwrap().available);
}
