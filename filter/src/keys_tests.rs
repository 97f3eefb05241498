use super::*;

#[test]
fn a_digest_is_16_hex_digits_of_sha256_and_parts_do_not_run_together() {
    assert_eq!(digest(&["abc"]), modelgate_policies::sha256_hex(b"abc\0")[..16]);
    assert_eq!(digest(&["a", "bc"]).len(), 16);
    assert_ne!(digest(&["a", "bc"]), digest(&["ab", "c"]));
    assert_eq!(digest_u64(&["abc"]), u64::from_str_radix(&digest(&["abc"]), 16).unwrap());
}

#[test]
fn keys_are_namespaced() {
    let key = bundle("example.org", "spire", "spire.internal", "/bundle");
    assert!(key.starts_with("modelgate.bundle.example.org."), "{key}");
    assert_eq!(key.len(), "modelgate.bundle.example.org.".len() + 16);
    assert_eq!(token_namespace("0123456789abcdef0123"), "modelgate.token.0123456789abcdef");
    assert_eq!(token_namespace(""), "modelgate.token.");
}
