use super::*;

#[test]
fn formats_known_instants() {
    assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(rfc3339_millis(1_795_467_600_123), "2026-11-23T21:00:00.123Z");
    assert_eq!(rfc3339_millis(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
}

#[test]
fn parses_what_it_formats() {
    for ms in [0u64, 951_782_400_000, 1_795_467_600_123, 4_102_444_799_999] {
        assert_eq!(parse_rfc3339(&rfc3339_millis(ms)), Some(ms / 1000));
    }
    for bad in ["2026-11-23T21:00:00", "2026-13-01T00:00:00Z", "2026-11-23 21:00:00Z", "x"] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}
