use super::*;

#[test]
fn ecdsa_signatures_become_minimal_der() {
    let mut sig = vec![0u8; 64];
    sig[31] = 1; // r = 1
    sig[32] = 0x80; // s has its high bit set: a zero byte goes first
    let der = ecdsa_der(&sig).unwrap();
    assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x01, 0x01]);
    assert_eq!(&der[5..8], &[0x02, 0x21, 0x00]);
    assert_eq!(der.len(), 2 + 3 + 35);
    // P-521's 132-byte signatures need the long length form.
    let der = ecdsa_der(&[0xff; 132]).unwrap();
    assert_eq!(&der[..3], &[0x30, 0x81, 0x8a]);
    assert!(ecdsa_der(&[1, 2, 3]).is_none());
}
