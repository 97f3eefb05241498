use super::*;

#[test]
fn hmac_sha256_agrees_with_rfc_4231() {
    // Test cases 1, 2 and 6 (a key longer than the block).
    assert_eq!(
        hex(&hmac_sha256(&[0x0b; 20], &[b"Hi There"])),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"])),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex(&hmac_sha256(&[0xaa; 131], &[b"Test Using Larger Than Block-Size Key - Hash Key First"])),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn equality_in_constant_time_is_equality() {
    assert!(equal_in_constant_time(b"abc", b"abc"));
    assert!(!equal_in_constant_time(b"abc", b"abd"));
    assert!(!equal_in_constant_time(b"abc", b"ab"));
    assert!(equal_in_constant_time(b"", b""));
}
