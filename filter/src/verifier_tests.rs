use super::*;

#[test]
fn encodes_the_arguments_as_protobuf() {
    let args = arguments("sha256", &[1, 2], &[3], &[0; 200]);
    assert_eq!(&args[..8], b"\x0a\x06sha256");
    assert_eq!(&args[8..12], &[0x12, 2, 1, 2]);
    assert_eq!(&args[12..15], &[0x1a, 1, 3]);
    assert_eq!(&args[15..18], &[0x22, 0xc8, 0x01]);
}

#[test]
fn reads_a_signature() {
    assert_eq!(field_bytes(&[0x08, 0x01, 0x12, 0x02, 7, 8], 2), Some(vec![7, 8]));
    assert_eq!(field_bytes(&[0x12, 0x02, 7, 8], 2), None, "not a success");
    assert_eq!(field_bytes(&[0x08, 0x01, 0x12, 0x05, 7], 2), Some(vec![7]), "truncated: what is there");
}

#[test]
fn reads_the_result() {
    assert!(verified(&[0x08, 0x01]));
    assert!(!verified(&[]));
    assert!(!verified(&[0x12, 0x03, b'b', b'a', b'd']));
    assert!(verified(&[0x12, 0x00, 0x08, 0x01]));
    assert!(!verified(&[0x08, 0x00]));
}
