use super::*;
use crate::budget::{Held, Scope};

fn draw(subject: &str, start: u64, tokens: u64) -> Draw {
    Draw {
        budget: 0,
        id: "daily".into(),
        key: format!("daily/{subject}/{start}"),
        subject: subject.into(),
        window_start_ms: start,
        window_end_ms: start + 86_400_000,
        limit: Limit { tokens: Some(100), nano_usd: None },
        scope: Scope::Gateway,
        reserved: Amount { tokens, nano_usd: 0 },
        charged: None,
        remaining: None,
        held: Held::No,
        local: false,
    }
}

const CAP: Limit = Limit { tokens: Some(100), nano_usd: None };

#[test]
fn reservations_fill_the_cap_and_no_further() {
    let store = MemoryStore::default();
    let d = draw("aaaa00000000", 0, 30);
    assert_eq!(reserve(&store, &d, CAP, 16, false), Ok(Limit { tokens: Some(70), nano_usd: None }));
    assert!(reserve(&store, &d, CAP, 16, false).is_ok());
    assert!(reserve(&store, &d, CAP, 16, false).is_ok());
    assert_eq!(
        reserve(&store, &d, CAP, 16, false),
        Err(Refused::Exhausted(Limit { tokens: Some(10), nano_usd: None })),
        "30 more do not fit beside 90 held"
    );
}

#[test]
fn settling_below_and_above_the_reservation_charges_the_truth() {
    let store = MemoryStore::default();
    let d = draw("aaaa00000000", 0, 50);
    reserve(&store, &d, CAP, 16, false).unwrap();
    assert_eq!(
        settle(&store, &d, CAP, Amount { tokens: 20, nano_usd: 0 }, 16, false),
        Ok(Some(Limit { tokens: Some(80), nano_usd: None }))
    );
    reserve(&store, &d, CAP, 16, false).unwrap();
    assert_eq!(
        settle(&store, &d, CAP, Amount { tokens: 60, nano_usd: 0 }, 16, false),
        Ok(Some(Limit { tokens: Some(20), nano_usd: None })),
        "a charge above the reservation is charged"
    );
}

#[test]
fn a_new_window_starts_from_nothing_and_the_old_settles_nowhere() {
    let store = MemoryStore::default();
    let old = draw("aaaa00000000", 0, 90);
    reserve(&store, &old, CAP, 1, false).unwrap();
    let new = draw("aaaa00000000", 86_400_000, 90);
    assert!(reserve(&store, &new, CAP, 1, false).is_ok(), "the past window's slot is free");
    assert_eq!(settle(&store, &old, CAP, Amount { tokens: 5, nano_usd: 0 }, 1, false), Ok(None));
    assert_eq!(store.len(), 1, "one slot, reused");
}

#[test]
fn the_store_is_bounded_and_refuses_when_full() {
    let store = MemoryStore::default();
    for i in 0..4u64 {
        let d = draw(&format!("{i:012x}"), 0, 1);
        assert!(reserve(&store, &d, CAP, 4, false).is_ok());
    }
    let fifth = draw("000000000009", 0, 1);
    assert_eq!(reserve(&store, &fifth, CAP, 4, false), Err(Refused::Full));
    assert_eq!(store.len(), 4);
    assert_eq!(occupied(&store, "daily", 4, 0), 4, "the gauge sees them");
    assert_eq!(occupied(&store, "daily", 4, 86_400_000), 0, "none of them in the next window");
}

/// A store whose every first swap loses to another worker's write.
struct Contended(MemoryStore, std::cell::Cell<bool>);

impl SharedStore for Contended {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), HostError> {
        self.0.get(key)
    }
    fn swap(&self, key: &str, value: &[u8], cas: u32) -> Result<bool, HostError> {
        if self.1.replace(!self.1.get()) {
            // Another worker reserves 40 first.
            let (stored, c) = self.0.get(key)?;
            let mut other = stored
                .as_deref()
                .and_then(Counter::parse)
                .unwrap_or(Counter { subject: "aaaa00000000".into(), ..Counter::default() });
            other.held.tokens += 40;
            self.0.swap(key, &other.encode(), if stored.is_none() { CREATE } else { c })?;
        }
        self.0.swap(key, value, cas)
    }
}

#[test]
fn a_lost_swap_is_retried_against_what_won() {
    let store = Contended(MemoryStore::default(), std::cell::Cell::new(true));
    let d = draw("aaaa00000000", 0, 50);
    assert_eq!(reserve(&store, &d, CAP, 1, false), Ok(Limit { tokens: Some(10), nano_usd: None }));
    // The next: another 40 win first, and 50 no longer fit beside 130.
    store.1.set(true);
    assert!(matches!(reserve(&store, &d, CAP, 1, false), Err(Refused::Exhausted(_))));
}

#[test]
fn an_absent_slot_is_created_once() {
    let store = MemoryStore::default();
    assert_eq!(store.swap("k", b"a", CREATE), Ok(true));
    assert_eq!(store.swap("k", b"b", CREATE), Ok(false), "a second creator loses");
}
