use super::*;

#[test]
fn a_lease_round_trips_and_garbage_reads_as_due() {
    let l = Lease { holder: 7, until_ms: 10, due_ms: 20, failures: 3, fetched_ms: 5 };
    assert_eq!(Lease::parse(&l.encode()), l);
    // A lease of four fields (written before `fetched_ms`) reads as due.
    for garbage in [&b""[..], b"1,2,3", b"1,2,3,4", b"1,2,3,4,5,6", b"a,b,c,d,e", b"\xff"] {
        assert_eq!(Lease::parse(garbage), Lease::default());
        assert!(Lease::parse(garbage).takeable(0, 1_000));
    }
}

#[test]
fn one_holder_at_a_time_until_it_overruns() {
    let free = Lease::succeeded(1_000, 10_000, 0);
    assert!(!free.takeable(5_000, 10_000));
    assert!(free.takeable(11_000, 10_000));
    let held = free.taken_by(42, 11_000, 5_000);
    assert!(!held.takeable(12_000, 10_000));
    assert!(held.takeable(11_000 + 5_000 + GRACE_MS, 10_000));
}

#[test]
fn a_configuration_refreshes_on_its_own_interval_not_the_one_another_left() {
    // An hour's schedule, left by a policy that refreshes hourly, fetched at 1 s.
    let hourly = Lease::succeeded(1_000, 3_600_000, 0);
    assert!(!hourly.takeable(6_000, 3_600_000));
    // A policy that refreshes every 5 s fetches 5 s after that fetch.
    assert!(!hourly.takeable(5_999, 5_000));
    assert!(hourly.takeable(6_000, 5_000));
    // But never while fetches fail and back off: the backoff holds for all.
    let failing = hourly.failed(6_000, 5_000, 0);
    assert_eq!((failing.fetched_ms, failing.due_ms), (1_000, 7_000));
    assert!(!failing.takeable(6_500, 5_000));
    assert!(failing.takeable(7_000, 5_000));
    // A held lease is held whatever the interval.
    assert!(!hourly.taken_by(42, 6_000, 500).takeable(6_100, 1));
}

#[test]
fn failures_back_off_but_never_past_the_interval() {
    let mut l = Lease::default();
    let mut delays = vec![];
    for _ in 0..8 {
        l = l.failed(0, 20_000, 0);
        delays.push(l.due_ms);
    }
    assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 20_000, 20_000, 20_000]);
    assert_eq!(Lease::succeeded(0, 20_000, 0).failures, 0);
}

#[test]
fn jitter_takes_at_most_a_tenth() {
    for random in [0, 1, 999, u64::MAX] {
        let due = Lease::succeeded(0, 300_000, random).due_ms;
        assert!((270_000..=300_000).contains(&due), "{due}");
    }
}

#[test]
fn a_shorter_hint_wins_within_bounds() {
    assert_eq!(interval_ms(300, None), 300_000);
    assert_eq!(interval_ms(300, Some(60)), 60_000);
    assert_eq!(interval_ms(300, Some(3_600)), 300_000);
    assert_eq!(interval_ms(300, Some(0)), 1_000);
}

#[test]
fn a_published_bundle_keeps_its_sequence() {
    assert_eq!(published(&publish(Some(9), b"{}")), Some((Some(9), &b"{}"[..])));
    assert_eq!(published(&publish(None, b"{\n}")), Some((None, &b"{\n}"[..])));
    assert_eq!(published(b"x\n{}"), None);
    assert_eq!(published(b"{}"), None);
}

fn spiffe(current: Option<&[u8]>, status: Option<u16>, body: &[u8]) -> Fetched {
    judge(current, status, body, Format::Spiffe)
}

#[test]
fn a_fetch_replaces_the_bundle_only_with_a_newer_good_one() {
    let doc = |seq: u64| format!(r#"{{"keys": [], "spiffe_sequence": {seq}}}"#).into_bytes();
    let now = publish(Some(5), &doc(5));
    assert!(matches!(spiffe(None, Some(200), &doc(1)), Fetched::Publish { .. }));
    assert!(matches!(spiffe(Some(&now), Some(200), &doc(6)), Fetched::Publish { .. }));
    assert_eq!(spiffe(Some(&now), Some(200), &doc(5)), Fetched::Unchanged { refresh_hint: None });
    assert_eq!(
        spiffe(Some(&now), Some(200), &doc(4)),
        Fetched::Refused("spiffe_sequence 4 is older than the installed 5".into())
    );
    assert!(matches!(spiffe(Some(&now), Some(200), b"<html>"), Fetched::Refused(m) if m.starts_with("not a bundle")));
    assert_eq!(spiffe(Some(&now), Some(503), &doc(6)), Fetched::Refused("status 503".into()));
    assert!(matches!(spiffe(Some(&now), None, b""), Fetched::Refused(_)));
    // A JWKS without sequence: the same bytes change nothing (cached
    // verifications stay), other bytes replace.
    let jwks = br#"{"keys": []}"#;
    let now = publish(None, jwks);
    assert!(matches!(spiffe(Some(&now), Some(200), jwks), Fetched::Unchanged { .. }));
    assert!(matches!(spiffe(Some(&now), Some(200), br#"{"keys": [] }"#), Fetched::Publish { .. }));
}
