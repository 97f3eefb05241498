use super::*;

#[test]
fn a_free_slot_is_acquired_for_its_key() {
    for stored in [None, Some(SlotLease::FREE)] {
        let taken = SlotLease::take(stored, 7, "abcd", 1_000, 500).unwrap();
        assert_eq!(taken, b"7,1500,abcd");
        assert_eq!(SlotLease::parse(&taken), Hold { holder: 7, until_ms: 1_500 });
        assert!(SlotLease::held_by(&taken, 7, "abcd"));
    }
}

#[test]
fn a_lease_held_by_another_is_not_taken_until_it_expires() {
    let theirs = SlotLease::take(None, 9, "abcd", 1_000, 500).unwrap();
    assert_eq!(SlotLease::take(Some(&theirs), 7, "abcd", 1_499, 500), None);
    assert_eq!(SlotLease::take(Some(&theirs), 7, "efgh", 1_000, 500), None, "one holder per slot");
    // Expired: taken over.
    assert_eq!(SlotLease::take(Some(&theirs), 7, "abcd", 1_500, 500).unwrap(), b"7,2000,abcd");
}

#[test]
fn only_the_holder_hands_back_and_only_for_its_key() {
    let mine = SlotLease::take(None, 7, "abcd", 0, 10).unwrap();
    assert!(SlotLease::held_by(&mine, 7, "abcd"));
    assert!(!SlotLease::held_by(&mine, 9, "abcd"), "another VM");
    assert!(!SlotLease::held_by(&mine, 7, "efgh"), "another key of the slot");
    assert!(!SlotLease::held_by(SlotLease::FREE, 0, ""), "nobody holds a free lease");
    assert!(!Hold::default().held_by(0));
    assert!(Hold::taken(7, 0, 10).held_by(7));
}

#[test]
fn a_malformed_stored_value_holds_nothing() {
    for garbage in [&b""[..], b"x", b"1", b"a,b,c", b"\xff,\xff", b"-1,5", b",,"] {
        assert_eq!(SlotLease::parse(garbage), Hold::default(), "{garbage:?}");
        assert!(SlotLease::take(Some(garbage), 7, "t", 0, 10).is_some(), "{garbage:?}");
        assert!(!SlotLease::held_by(garbage, 7, "t"), "{garbage:?}");
    }
    // A holder of 0 holds nothing, whatever its time.
    assert!(!SlotLease::parse(b"0,99999").held(0));
}

#[test]
fn a_hold_ends_at_its_time() {
    let h = Hold::taken(3, 100, 50);
    assert!(h.held(100) && h.held(149));
    assert!(!h.held(150));
    assert_eq!(Hold::taken(3, u64::MAX, 50).until_ms, u64::MAX, "no overflow");
}
