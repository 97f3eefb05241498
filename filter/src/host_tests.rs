use super::*;

#[test]
fn pairs_read_back_what_the_host_writes() {
    let pairs = [(":status", "200"), ("content-type", "application/json"), ("x-empty", "")];
    let bytes = serialize_pairs(&pairs).unwrap();
    let read = parse_pairs(&bytes).unwrap();
    let read: Vec<(&[u8], &[u8])> = read.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    let expected: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
    assert_eq!(read, expected);
    assert_eq!(parse_pairs(&[]), Some(Vec::new()));
}

#[test]
fn malformed_pairs_are_none_never_a_panic() {
    let bytes = serialize_pairs(&[("name", "value"), ("other", "x")]).unwrap();
    for cut in 1..bytes.len() {
        // Every prefix but the whole is too short for what it announces.
        assert_eq!(parse_pairs(&bytes[..cut]), None, "cut at {cut}");
    }
    // A count, or a length, near u32::MAX: no overflow, no allocation.
    assert_eq!(parse_pairs(&[0xff, 0xff, 0xff, 0xff]), None);
    let mut huge = bytes.clone();
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(parse_pairs(&huge), None);
    // Names that are not UTF-8 are bytes here, not an unwrap.
    let mut latin = bytes.clone();
    let at = 4 + 2 * 8;
    latin[at] = 0xff;
    assert_eq!(parse_pairs(&latin).unwrap()[0].0, b"\xffame".to_vec());
}
