//! `scope: gateway` budgets in Envoy's shared data: exact across the
//! worker VMs of one Envoy by compare-and-swap. The host swaps; this module
//! decides. Pure: the filter hands it the host's shared data as a
//! [`SharedStore`], unit tests a map.
//!
//! A budget owns `max_workloads` slots (`mg.budget.<id>.<n>`; one for a
//! group). A slot holds one subject's counter for one window:
//! `v1 <subject> <window start ms> <spent tokens> <spent nano-usd> <held
//! tokens> <held nano-usd>`. A subject probes [`PROBES`] slots from the one
//! its digest names; a slot of a past window is free to take (that is the
//! store's expiry and eviction), so the store never holds more than its
//! slots. A subject that finds no slot is refused `budget_unavailable`:
//! never let through uncounted.

use super::{Amount, Draw, Limit};

/// Slots a subject tries before the store counts as full.
pub const PROBES: u64 = 8;
/// Compare-and-swap attempts on one slot before giving up (other workers
/// kept winning): the request is refused, never let through.
const ATTEMPTS: usize = 64;
/// The CAS token that creates a key only while it is absent. Envoy accepts
/// any token for an absent key and checks a non-zero one against a
/// present key's, so two workers creating one slot cannot both win (a
/// token of 0 would overwrite unconditionally).
pub const CREATE: u32 = u32::MAX;

/// The host would not answer a shared-data call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostError;

/// Envoy's shared data, as the filter reaches it.
pub trait SharedStore {
    /// The value at `key` and its CAS token; `Ok((None, _))` when never
    /// written. `Err` when the host would not answer.
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), HostError>;
    /// Writes `value` if nobody wrote since `cas`: `Ok(false)` when someone did.
    fn swap(&self, key: &str, value: &[u8], cas: u32) -> Result<bool, HostError>;
}

/// Why a reservation was not made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No room: what is left.
    Exhausted(Limit),
    /// Every slot the subject may use holds another subject this window.
    Full,
    /// The host did not answer, or others kept winning the swap.
    Unavailable,
}

/// One slot's counter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub subject: String,
    pub window_start_ms: u64,
    pub spent: Amount,
    pub held: Amount,
}

impl Counter {
    pub fn parse(stored: &[u8]) -> Option<Counter> {
        let text = std::str::from_utf8(stored).ok()?;
        let mut f = text.split(' ');
        if f.next()? != "v1" {
            return None;
        }
        let subject = f.next()?.to_string();
        let mut n = || f.next().and_then(|v| v.parse::<u64>().ok());
        let (start, st, sn, ht, hn) = (n()?, n()?, n()?, n()?, n()?);
        Some(Counter {
            subject,
            window_start_ms: start,
            spent: Amount { tokens: st, nano_usd: sn },
            held: Amount { tokens: ht, nano_usd: hn },
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        format!(
            "v1 {} {} {} {} {} {}",
            self.subject,
            self.window_start_ms,
            self.spent.tokens,
            self.spent.nano_usd,
            self.held.tokens,
            self.held.nano_usd
        )
        .into_bytes()
    }

    fn taken(&self) -> Amount {
        self.spent.plus(self.held)
    }
}

/// The slot keys `draw`'s subject may use, in probe order.
fn slots(draw: &Draw, max_workloads: u32, local: bool) -> impl Iterator<Item = String> + '_ {
    let n = u64::from(max_workloads.max(1));
    let start = u64::from_str_radix(draw.subject.get(..12).unwrap_or(""), 16).unwrap_or(0) % n;
    let family = if local { "local." } else { "" };
    (0..PROBES.min(n)).map(move |i| format!("mg.budget.{}.{family}{}", draw.id, (start + i) % n))
}

/// Reserves `draw.reserved` against `limit` on `draw`'s counter; what is
/// left on success.
pub fn reserve(
    store: &dyn SharedStore,
    draw: &Draw,
    limit: Limit,
    max_workloads: u32,
    local: bool,
) -> Result<Limit, Refused> {
    for key in slots(draw, max_workloads, local) {
        for _ in 0..ATTEMPTS {
            let (stored, cas) = store.get(&key).map_err(|HostError| Refused::Unavailable)?;
            let cas = if stored.is_none() { CREATE } else { cas };
            let current = stored.as_deref().and_then(Counter::parse);
            let mut counter = match current {
                Some(c) if c.subject == draw.subject && c.window_start_ms == draw.window_start_ms => c,
                // A past window's counter (or an unreadable one): the slot is free.
                Some(c) if c.window_start_ms >= draw.window_start_ms => break,
                _ => Counter {
                    subject: draw.subject.clone(),
                    window_start_ms: draw.window_start_ms,
                    ..Counter::default()
                },
            };
            if !limit.fits(counter.taken(), draw.reserved) {
                return Err(Refused::Exhausted(limit.remaining(counter.taken())));
            }
            counter.held = counter.held.plus(draw.reserved);
            if store.swap(&key, &counter.encode(), cas).map_err(|HostError| Refused::Unavailable)? {
                return Ok(limit.remaining(counter.taken()));
            }
        }
        // Either another subject holds this slot, or the swap kept
        // losing: only the first moves on to the next slot.
        let (stored, _) = store.get(&key).map_err(|HostError| Refused::Unavailable)?;
        if stored.as_deref().and_then(Counter::parse).is_some_and(|c| c.subject == draw.subject) {
            return Err(Refused::Unavailable);
        }
    }
    Err(Refused::Full)
}

/// Settles `draw`: its reservation is released and `charge` spent. `None`
/// when its counter is gone (its window has passed and the slot was
/// taken: nothing left to settle); what is left otherwise.
pub fn settle(
    store: &dyn SharedStore,
    draw: &Draw,
    limit: Limit,
    charge: Amount,
    max_workloads: u32,
    local: bool,
) -> Result<Option<Limit>, Refused> {
    for key in slots(draw, max_workloads, local) {
        for _ in 0..ATTEMPTS {
            let (stored, cas) = store.get(&key).map_err(|HostError| Refused::Unavailable)?;
            let Some(mut counter) = stored.as_deref().and_then(Counter::parse) else { break };
            if counter.subject != draw.subject || counter.window_start_ms != draw.window_start_ms {
                break;
            }
            counter.held = counter.held.minus(draw.reserved);
            counter.spent = counter.spent.plus(charge);
            if store.swap(&key, &counter.encode(), cas).map_err(|HostError| Refused::Unavailable)? {
                return Ok(Some(limit.remaining(counter.taken())));
            }
        }
    }
    Ok(None)
}

/// How many of a budget's slots hold a counter of the window starting at
/// `window_start_ms` (the store's gauge: workloads tracked this window).
pub fn occupied(store: &dyn SharedStore, id: &str, max_workloads: u32, window_start_ms: u64) -> u64 {
    (0..max_workloads.max(1))
        .filter(|n| {
            store
                .get(&format!("mg.budget.{id}.{n}"))
                .ok()
                .and_then(|(v, _)| v)
                .and_then(|v| Counter::parse(&v))
                .is_some_and(|c| c.window_start_ms == window_start_ms)
        })
        .count() as u64
}

/// A map standing in for the host's shared data (tests, `explain`).
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: std::cell::RefCell<std::collections::HashMap<String, (Vec<u8>, u32)>>,
    next: std::cell::Cell<u32>,
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), HostError> {
        let entries = self.entries.try_borrow().map_err(|_| HostError)?;
        Ok(entries.get(key).map_or((None, 0), |(v, cas)| (Some(v.clone()), *cas)))
    }

    fn swap(&self, key: &str, value: &[u8], cas: u32) -> Result<bool, HostError> {
        let mut entries = self.entries.try_borrow_mut().map_err(|_| HostError)?;
        // As Envoy: an absent key takes any token; a present one checks a
        // non-zero token against its own.
        if let Some((_, current)) = entries.get(key) {
            if cas != 0 && cas != *current {
                return Ok(false);
            }
        }
        let next = self.next.get().wrapping_add(1).max(1);
        self.next.set(next);
        entries.insert(key.to_string(), (value.to_vec(), next));
        Ok(true)
    }
}

impl MemoryStore {
    /// How many slots hold a counter.
    pub fn len(&self) -> usize {
        self.entries.try_borrow().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[path = "slots_tests.rs"]
mod tests;
