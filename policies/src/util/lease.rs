//! A lease in Envoy's shared data: which VM (a random nonce, never 0) holds
//! some work, and until when. Worker VMs take a lease by compare-and-swap;
//! the host swaps, this module decides. The bundle refresher's lease
//! (`identity::svid::refresh::Lease`) and the token broker's slot lease
//! ([`SlotLease`]) both hold through [`Hold`]. Pure: no host calls.

/// Who holds a lease, and until when. A holder of 0 is nobody.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hold {
    /// The VM holding it (its nonce), 0 when none does.
    pub holder: u64,
    /// When the holder is given up on: after this, anyone may take it.
    pub until_ms: u64,
}

impl Hold {
    /// Taken by `holder` at `now_ms` for `hold_ms`.
    pub fn taken(holder: u64, now_ms: u64, hold_ms: u64) -> Hold {
        Hold { holder, until_ms: now_ms.saturating_add(hold_ms) }
    }

    /// Whether some VM holds it at `now_ms` (one whose time ran out holds
    /// nothing: its lease is taken over).
    pub fn held(&self, now_ms: u64) -> bool {
        self.holder != 0 && now_ms < self.until_ms
    }

    /// Whether `me` is the holder (whatever the time: only the holder hands
    /// a lease back).
    pub fn held_by(&self, me: u64) -> bool {
        me != 0 && self.holder == me
    }
}

/// The token broker's lease of a shared-data slot, which several credential
/// keys may hash to: held for one key, named by its tag. Stored as
/// `<holder>,<until ms>,<tag>`; handed back as [`SlotLease::FREE`].
pub struct SlotLease;

impl SlotLease {
    /// A lease nobody holds.
    pub const FREE: &'static [u8] = b"0,0";

    /// Who holds the stored lease; anything unreadable holds nothing.
    pub fn parse(stored: &[u8]) -> Hold {
        let text = std::str::from_utf8(stored).unwrap_or("");
        let mut fields = text.split(',');
        let mut number = || fields.next().and_then(|f| f.parse::<u64>().ok());
        match (number(), number()) {
            (Some(holder), Some(until_ms)) => Hold { holder, until_ms },
            _ => Hold::default(),
        }
    }

    /// The value that takes the lease for `tag` (to swap in over the
    /// stored one), or `None` while another holds it.
    pub fn take(stored: Option<&[u8]>, me: u64, tag: &str, now_ms: u64, hold_ms: u64) -> Option<Vec<u8>> {
        if stored.map(SlotLease::parse).is_some_and(|h| h.held(now_ms)) {
            return None;
        }
        let mine = Hold::taken(me, now_ms, hold_ms);
        Some(format!("{},{},{tag}", mine.holder, mine.until_ms).into_bytes())
    }

    /// Whether the stored lease is `me`'s for `tag` — not another VM's, nor
    /// this VM's for another key of the slot: only then is it handed back.
    pub fn held_by(stored: &[u8], me: u64, tag: &str) -> bool {
        let mut fields = stored.split(|b| *b == b',');
        fields.next() == Some(me.to_string().as_bytes()) && fields.nth(1) == Some(tag.as_bytes())
    }
}

#[cfg(test)]
mod tests {
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
}
