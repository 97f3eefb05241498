//! One token exchange per credential key, whatever the concurrency: the
//! requests of a VM that need the same token wait for the one fetching it,
//! and the VMs of the other workers either take the token it published in
//! Envoy's shared data or wait while the fetching VM holds the key's lease
//! (taken by compare-and-swap; `modelgate_policies::SlotLease` decides who
//! holds it).
//!
//! Shared data has no delete (proxy-wasm ABI 0.2), so modelgate creates a
//! bounded set of keys per configuration: the credential key is hashed
//! (the keys module's digest) into one of N slots (N =
//! `limits.token_cache_size`),
//! `modelgate.token.<generation>.<slot>` with its `….lease`, and one
//! `modelgate.token.<generation>.slots` that marks the slots in use — at
//! most 2N + 1 keys per configuration, namespaced by the digest of the
//! configuration text so two configurations share nothing unless they are
//! equal. A slot holds its full key beside the token and is read only for
//! that key: two keys in one slot cost a miss (the last writer wins),
//! never a wrong token. A root whose configuration goes empties the slots
//! it wrote.
//!
//! Whoever is woken — by the fetch's answer in this VM, or by the root's
//! tick that finds the token another VM published — is driven with
//! [`Event::CredentialShared`]; the request that made the call gets its
//! answer as [`Event::Callout`]. A fetch that never answers (its request
//! went away, the other VM died) is taken over after its timeout.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use modelgate_policies::callout::{CalloutRequest, CalloutResult};
use modelgate_policies::{Denial, Reason};
use modelgate_policies::{Event, Flow};
use modelgate_policies::{SlotLease, TokenCache};
use proxy_wasm::types::LogLevel;

use crate::host;
use crate::keys;

/// The most of a token endpoint's answer the reader accepts; one byte more
/// is read, so a larger answer is refused as too large, not as cut.
const MAX_CALL_RESPONSE_BYTES: usize = modelgate_policies::MAX_TOKEN_RESPONSE_BYTES;

/// What the broker needs of the VM it serves: its token cache, and a way
/// to wake a request that waited — drive it with `event` and carry out
/// what follows (the step module implements it). The broker decides whom
/// to wake and when; it never carries out a step itself.
pub trait Vm {
    fn tokens(&self) -> &TokenCache;
    fn wake(&self, id: u32, exchange: &Rc<RefCell<Flow>>, event: Event<'static>);
}

/// The answer to a token call-out, as the host delivers it: every shape
/// (reset, cut, timed out, no final status, oversized) is a result, never
/// a read the host would refuse.
pub fn call_result(headers: usize, body_size: usize) -> CalloutResult {
    host::call_response(headers, body_size, MAX_CALL_RESPONSE_BYTES)
}

/// A request waiting for a credential: its context and its exchange.
type Waiter = (u32, Weak<RefCell<Flow>>);

struct Flight {
    call: CalloutRequest,
    waiters: Vec<Waiter>,
    /// The call this VM made, from a request (`Some(id)`) or the root.
    fetching: Option<Fetcher>,
    /// When this VM started waiting (for its own call, or another VM's).
    since_ms: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fetcher {
    Request { id: u32, token: u32 },
    Root { token: u32 },
}

/// How a request needing a credential goes on.
pub enum Join {
    /// Another request of this VM is already on it: wait.
    Wait,
    /// This request fetches: make the call.
    Fetch(CalloutRequest),
    /// Another VM holds the lease: wait for its token.
    Remote,
    /// Another VM's token is in shared data and now in this VM's cache.
    Shared,
}

pub struct Broker {
    flights: RefCell<HashMap<String, Flight>>,
    nonce: u64,
    /// `modelgate.token.<generation>`: this configuration's keys.
    namespace: String,
    slots: usize,
    /// The slots this VM knows are marked in use (a bit each).
    marked: RefCell<Vec<u64>>,
    /// The slots this VM marked itself: its part of the gauge.
    marked_here: Cell<u64>,
    /// The slots this VM wrote a token to: emptied when the configuration goes.
    written: RefCell<Vec<u64>>,
}

/// Time a fetch may take beyond its own timeout before it is taken over.
const GRACE_MS: u64 = 1_000;
/// Distinct keys a VM fetches at once; beyond, a request is refused
/// (`token_fetches_busy`) rather than the map grown.
pub const MAX_FLIGHTS: usize = 1_024;

impl Broker {
    /// The broker of a configuration whose text has digest `generation`,
    /// with `slots` shared-data slots.
    pub fn new(generation: &str, slots: usize) -> Self {
        let slots = slots.max(1);
        let words = slots.div_ceil(64);
        let broker = Broker {
            flights: RefCell::default(),
            nonce: u64::from_le_bytes(host::random::<8>()).max(1),
            namespace: keys::token_namespace(generation),
            slots,
            marked: RefCell::new(vec![0; words]),
            marked_here: Cell::new(0),
            written: RefCell::new(vec![0; words]),
        };
        // Created before any traffic, so that marking a slot can always
        // compare-and-swap (there is no "create if absent").
        if !generation.is_empty() && host::shared_get(&broker.marks_key()).0.is_none() {
            host::shared_set(&broker.marks_key(), &vec![0; slots.div_ceil(8)], None);
        }
        broker
    }

    /// A request needs the credential of `key`, which `call` would fetch.
    pub fn join(&self, vm: &dyn Vm, key: &str, call: CalloutRequest, waiter: Waiter, now_ms: u64) -> Join {
        let Ok(mut flights) = self.flights.try_borrow_mut() else { return Join::Fetch(call) };
        if let Some(flight) = flights.get_mut(key) {
            flight.waiters.push(waiter);
            return Join::Wait;
        }
        if self.take_published(vm, key, now_ms) {
            return Join::Shared;
        }
        if flights.len() >= MAX_FLIGHTS {
            // Flights whose every request went away and that fetch nothing.
            flights.retain(|_, f| f.fetching.is_some() || f.waiters.iter().any(|(_, x)| x.strong_count() > 0));
        }
        if flights.len() >= MAX_FLIGHTS {
            let busy = Denial::new(
                Reason::CredentialUnavailable,
                "the gateway could not obtain a credential: too many credential fetches are in progress",
            )
            .with_detail("token_fetches_busy");
            vm.tokens().fail(key, &busy, now_ms);
            return Join::Shared;
        }
        let timeout_ms = call.timeout_ms;
        let won = self.take_lease(key, now_ms, timeout_ms);
        if won && self.take_published(vm, key, now_ms) {
            // Another VM published its token and freed the lease between
            // the first look and this lease (it publishes before it frees):
            // that token serves, no second exchange.
            self.release_lease(key);
            return Join::Shared;
        }
        flights.insert(
            key.to_string(),
            Flight { call: call.clone(), waiters: vec![waiter], fetching: None, since_ms: now_ms },
        );
        if won {
            Join::Fetch(call)
        } else {
            Join::Remote
        }
    }

    /// The request fetching `key` made its call.
    pub fn fetching(&self, key: &str, id: u32, token: u32) {
        if let Some(f) = self.flights.try_borrow_mut().ok().as_mut().and_then(|f| f.get_mut(key)) {
            f.fetching = Some(Fetcher::Request { id, token });
        }
    }

    /// The answer to this VM's call for `key` arrived and was given to the
    /// request that made it (`answered`): publish the token, hand the lease
    /// back, and wake everyone else.
    pub fn done(&self, vm: &dyn Vm, key: &str, answered: Option<u32>) {
        if let Some(value) = vm.tokens().export(key) {
            let slot = self.slot(key);
            if host::shared_set(&self.slot_key(slot), &value, None) {
                set_bit(&self.written, slot);
                self.mark(slot);
            } else {
                host::log(LogLevel::Warn, "modelgate: a token could not be shared with the other workers");
            }
        }
        self.release_lease(key);
        let waiters = self.flights.try_borrow_mut().ok().and_then(|mut f| f.remove(key)).map(|f| f.waiters);
        for (id, exchange) in waiters.unwrap_or_default() {
            if Some(id) == answered {
                continue;
            }
            if let Some(exchange) = exchange.upgrade() {
                vm.wake(id, &exchange, Event::CredentialShared);
            }
        }
    }

    /// Whether requests wait for a token.
    pub fn busy(&self) -> bool {
        self.flights.try_borrow().map_or(true, |f| !f.is_empty())
    }

    /// A request that waited went away.
    pub fn forget(&self, id: u32) {
        if let Ok(mut flights) = self.flights.try_borrow_mut() {
            for f in flights.values_mut() {
                f.waiters.retain(|(i, _)| *i != id);
            }
        }
    }

    /// The root's tick: take the tokens other VMs published, take over
    /// fetches that never answered.
    pub fn tick(&self, vm: &dyn Vm, now_ms: u64) {
        let keys: Vec<String> = self.flights.try_borrow().map(|f| f.keys().cloned().collect()).unwrap_or_default();
        for key in keys {
            if self.take_published(vm, &key, now_ms) {
                self.done(vm, &key, None);
                continue;
            }
            let stuck = self.flights.try_borrow().ok().and_then(|f| {
                f.get(&key).and_then(|f| {
                    let overdue = now_ms >= f.since_ms + f.call.timeout_ms + GRACE_MS;
                    let remote_free = f.fetching.is_none();
                    (overdue || remote_free).then(|| (f.call.clone(), f.fetching.is_some()))
                })
            });
            let Some((call, was_fetching)) = stuck else { continue };
            if was_fetching {
                // This VM's own call never answered (its request went away
                // with it): forget it and lose the lease to a new call.
                self.release_lease(&key);
            }
            if !self.take_lease(&key, now_ms, call.timeout_ms) {
                continue;
            }
            // Published between the look above and the lease: as in `join`.
            if self.take_published(vm, &key, now_ms) {
                self.done(vm, &key, None);
                continue;
            }
            match host::dispatch(&call) {
                Ok(token) => {
                    if let Some(f) = self.flights.try_borrow_mut().ok().as_mut().and_then(|f| f.get_mut(&key)) {
                        f.fetching = Some(Fetcher::Root { token });
                        f.since_ms = now_ms;
                    }
                }
                Err(why) => self.root_answered(vm, &key, CalloutResult::Failed(why)),
            }
        }
    }

    /// The root's call for some key answered. False if `token` is not one.
    pub fn root_response(&self, vm: &dyn Vm, token: u32, result: CalloutResult) -> bool {
        let key =
            self.flights.try_borrow().ok().and_then(|f| {
                f.iter().find(|(_, f)| f.fetching == Some(Fetcher::Root { token })).map(|(k, _)| k.clone())
            });
        let Some(key) = key else { return false };
        self.root_answered(vm, &key, result);
        true
    }

    /// An answer the root received: the first waiter still there gets it
    /// as its own call-out's, the others share it.
    fn root_answered(&self, vm: &dyn Vm, key: &str, result: CalloutResult) {
        let first =
            self.flights.try_borrow().ok().and_then(|f| {
                f.get(key).and_then(|f| f.waiters.iter().find_map(|(id, x)| x.upgrade().map(|x| (*id, x))))
            });
        let Some((id, exchange)) = first else {
            self.release_lease(key);
            let _ = self.flights.try_borrow_mut().map(|mut f| f.remove(key));
            return;
        };
        vm.wake(id, &exchange, Event::Callout(result));
        self.done(vm, key, Some(id));
    }

    /// Takes another VM's fresh token for `key` into this VM's cache.
    fn take_published(&self, vm: &dyn Vm, key: &str, now_ms: u64) -> bool {
        match host::shared_get(&self.slot_key(self.slot(key))) {
            (Some(value), _) => vm.tokens().import(key, &value, now_ms),
            _ => false,
        }
    }

    /// Takes the lease of `key`'s slot, unless another holds it
    /// (`modelgate_policies::SlotLease` decides; the host swaps).
    fn take_lease(&self, key: &str, now_ms: u64, timeout_ms: u64) -> bool {
        let slot = self.slot(key);
        let lease = self.lease_key(slot);
        let (value, cas) = host::shared_get(&lease);
        let Some(mine) = SlotLease::take(value.as_deref(), self.nonce, tag(key), now_ms, timeout_ms + GRACE_MS) else {
            return false;
        };
        let taken = host::shared_set(&lease, &mine, cas);
        if taken {
            self.mark(slot);
        }
        taken
    }

    /// Hands back the lease of `key`, if this VM holds it for `key` (not
    /// for another key of the same slot).
    fn release_lease(&self, key: &str) {
        let lease = self.lease_key(self.slot(key));
        if let (Some(value), cas) = host::shared_get(&lease) {
            if SlotLease::held_by(&value, self.nonce, tag(key)) {
                host::shared_set(&lease, SlotLease::FREE, cas);
            }
        }
    }

    /// The slot of a credential key, by the shared-data key scheme's digest.
    fn slot(&self, key: &str) -> usize {
        usize::try_from(keys::digest_u64(&[key]) % self.slots as u64).unwrap_or(0)
    }

    fn slot_key(&self, slot: usize) -> String {
        format!("{}.{slot}", self.namespace)
    }

    fn lease_key(&self, slot: usize) -> String {
        format!("{}.{slot}.lease", self.namespace)
    }

    fn marks_key(&self) -> String {
        format!("{}.slots", self.namespace)
    }

    /// Marks `slot` in use in shared data, once across every VM (compare-
    /// and-swap), so that the VMs' parts of the gauge add up to the slots
    /// used.
    fn mark(&self, slot: usize) {
        if has_bit(&self.marked, slot) {
            return;
        }
        let (byte, bit) = (slot / 8, 1u8 << (slot % 8));
        for _ in 0..8 {
            let (value, cas) = host::shared_get(&self.marks_key());
            let mut marks = value.unwrap_or_default();
            marks.resize(self.slots.div_ceil(8), 0);
            if marks[byte] & bit != 0 {
                set_bit(&self.marked, slot);
                return;
            }
            marks[byte] |= bit;
            if cas.is_some() && host::shared_set(&self.marks_key(), &marks, cas) {
                set_bit(&self.marked, slot);
                self.marked_here.set(self.marked_here.get() + 1);
                return;
            }
            if cas.is_none() {
                // Gone or never made: make it (empty) and mark again.
                host::shared_set(&self.marks_key(), &vec![0; self.slots.div_ceil(8)], None);
            }
        }
    }

    /// The sizes for the gauges: flights, and the slots this VM marked.
    pub fn sizes(&self) -> (usize, u64) {
        (self.flights.try_borrow().map_or(0, |f| f.len()), self.marked_here.get())
    }

    /// The configuration goes: empty the slots this VM wrote (their keys
    /// stay; their tokens need not).
    pub fn empty_slots(&self) {
        let Ok(written) = self.written.try_borrow() else { return };
        for slot in (0..self.slots).filter(|s| written.get(s / 64).is_some_and(|w| w & (1 << (s % 64)) != 0)) {
            host::shared_set(&self.slot_key(slot), b"", None);
        }
    }
}

/// A credential key's tag in its slot's lease.
fn tag(key: &str) -> &str {
    key.get(..16).unwrap_or(key)
}

fn has_bit(bits: &RefCell<Vec<u64>>, n: usize) -> bool {
    bits.try_borrow().ok().and_then(|b| b.get(n / 64).map(|w| w & (1 << (n % 64)) != 0)).unwrap_or(false)
}

fn set_bit(bits: &RefCell<Vec<u64>>, n: usize) {
    if let Some(w) = bits.try_borrow_mut().ok().as_mut().and_then(|b| b.get_mut(n / 64)) {
        *w |= 1 << (n % 64);
    }
}

/// The exchange a waiter holds, for the request that answers for it.
pub fn waiter(id: u32, exchange: &Rc<RefCell<Flow>>) -> Waiter {
    (id, Rc::downgrade(exchange))
}
