//! One token exchange per credential key, whatever the concurrency: the
//! requests of a VM that need the same token wait for the one fetching it,
//! and the VMs of the other workers either take the token it published in
//! Envoy's shared data (`modelgate.token.<key hash>`) or wait while the
//! fetching VM holds the key's lease (`….lease`, taken by compare-and-swap).
//!
//! Whoever is woken — by the fetch's answer in this VM, or by the root's
//! tick that finds the token another VM published — is driven with
//! [`Event::CredentialShared`]; the request that made the call gets its
//! answer as [`Event::Callout`]. A fetch that never answers (its request
//! went away, the other VM died) is taken over after its timeout.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use modelgate_policies::callout::{CalloutRequest, CalloutResult};
use modelgate_policies::{Event, Exchange};
use proxy_wasm::hostcalls;
use proxy_wasm::types::LogLevel;

use crate::host;
use crate::http;
use crate::root::Shared;

/// A request waiting for a credential: its context and its exchange.
type Waiter = (u32, Weak<RefCell<Exchange>>);

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

#[derive(Default)]
pub struct Broker {
    flights: RefCell<HashMap<String, Flight>>,
    nonce: u64,
}

/// Time a fetch may take beyond its own timeout before it is taken over.
const GRACE_MS: u64 = 1_000;

impl Broker {
    pub fn new() -> Self {
        Broker { flights: RefCell::default(), nonce: u64::from_le_bytes(host::random::<8>()).max(1) }
    }

    /// A request needs the credential of `key`, which `call` would fetch.
    pub fn join(&self, shared: &Shared, key: &str, call: CalloutRequest, waiter: Waiter, now_ms: u64) -> Join {
        let Ok(mut flights) = self.flights.try_borrow_mut() else { return Join::Fetch(call) };
        if let Some(flight) = flights.get_mut(key) {
            flight.waiters.push(waiter);
            return Join::Wait;
        }
        if self.take_published(shared, key, now_ms) {
            return Join::Shared;
        }
        let timeout_ms = call.timeout_ms;
        let won = self.take_lease(key, now_ms, timeout_ms);
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
    pub fn done(&self, shared: &Shared, key: &str, answered: Option<u32>) {
        if let Some(value) = shared.tokens.export(key) {
            if hostcalls::set_shared_data(&token_key(key), Some(&value), None).is_err() {
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
                let step = http::drive(shared, &exchange, Event::CredentialShared, host::now_ms());
                http::carry_out_detached(shared, id, &exchange, step);
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
    pub fn tick(&self, shared: &Shared, now_ms: u64) {
        let keys: Vec<String> = self.flights.try_borrow().map(|f| f.keys().cloned().collect()).unwrap_or_default();
        for key in keys {
            if self.take_published(shared, &key, now_ms) {
                self.done(shared, &key, None);
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
            match host::dispatch(&call) {
                Ok(token) => {
                    if let Some(f) = self.flights.try_borrow_mut().ok().as_mut().and_then(|f| f.get_mut(&key)) {
                        f.fetching = Some(Fetcher::Root { token });
                        f.since_ms = now_ms;
                    }
                }
                Err(why) => self.root_answered(shared, &key, CalloutResult::Failed(why)),
            }
        }
    }

    /// The root's call for some key answered. False if `token` is not one.
    pub fn root_response(&self, shared: &Shared, token: u32, result: CalloutResult) -> bool {
        let key =
            self.flights.try_borrow().ok().and_then(|f| {
                f.iter().find(|(_, f)| f.fetching == Some(Fetcher::Root { token })).map(|(k, _)| k.clone())
            });
        let Some(key) = key else { return false };
        self.root_answered(shared, &key, result);
        true
    }

    /// An answer the root received: the first waiter still there gets it
    /// as its own call-out's, the others share it.
    fn root_answered(&self, shared: &Shared, key: &str, result: CalloutResult) {
        let first =
            self.flights.try_borrow().ok().and_then(|f| {
                f.get(key).and_then(|f| f.waiters.iter().find_map(|(id, x)| x.upgrade().map(|x| (*id, x))))
            });
        let Some((id, exchange)) = first else {
            self.release_lease(key);
            let _ = self.flights.try_borrow_mut().map(|mut f| f.remove(key));
            return;
        };
        let step = http::drive(shared, &exchange, Event::Callout(result), host::now_ms());
        http::carry_out_detached(shared, id, &exchange, step);
        self.done(shared, key, Some(id));
    }

    /// Takes another VM's fresh token for `key` into this VM's cache.
    fn take_published(&self, shared: &Shared, key: &str, now_ms: u64) -> bool {
        match hostcalls::get_shared_data(&token_key(key)) {
            Ok((Some(value), _)) => shared.tokens.import(key, &value, now_ms),
            _ => false,
        }
    }

    fn take_lease(&self, key: &str, now_ms: u64, timeout_ms: u64) -> bool {
        let lease = format!("{}.lease", token_key(key));
        let (value, cas) = hostcalls::get_shared_data(&lease).unwrap_or((None, None));
        let held = value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.split_once(','))
            .and_then(|(holder, until)| Some((holder.parse::<u64>().ok()?, until.parse::<u64>().ok()?)))
            .is_some_and(|(holder, until)| holder != 0 && now_ms < until);
        if held {
            return false;
        }
        let mine = format!("{},{}", self.nonce, now_ms + timeout_ms + GRACE_MS);
        hostcalls::set_shared_data(&lease, Some(mine.as_bytes()), cas).is_ok()
    }

    fn release_lease(&self, key: &str) {
        let lease = format!("{}.lease", token_key(key));
        if let Ok((Some(value), cas)) = hostcalls::get_shared_data(&lease) {
            if value.starts_with(format!("{},", self.nonce).as_bytes()) {
                let _ = hostcalls::set_shared_data(&lease, Some(b"0,0"), cas);
            }
        }
    }
}

/// The shared-data key of a credential key: its digest, so no SPIFFE ID
/// or model name shapes the key.
fn token_key(key: &str) -> String {
    format!("modelgate.token.{}", &modelgate_policies::chain::sha256_hex(key.as_bytes())[..32])
}

/// The exchange a waiter holds, for the request that answers for it.
pub fn waiter(id: u32, exchange: &Rc<RefCell<Exchange>>) -> Waiter {
    (id, Rc::downgrade(exchange))
}
