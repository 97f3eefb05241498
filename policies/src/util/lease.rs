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
#[path = "lease_tests.rs"]
mod tests;
