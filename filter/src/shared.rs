//! What every request of a VM shares: the policy, the caches and stores
//! the root context keeps, the audit chain, and the watch over requests
//! held for their body.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use modelgate_policies::Chain;
use modelgate_policies::Flow;
use modelgate_policies::Policy;
use modelgate_policies::ResponseMemory;
use modelgate_policies::TokenCache;
use modelgate_policies::VerifierChoice;
use modelgate_policies::MAX_RESPONSE_HELD_PER_VM;
use modelgate_policies::{SvidCache, TrustStore};
use proxy_wasm::types::LogLevel;

use crate::host;
use crate::metrics::Counters;
use crate::tokens::Broker;
use crate::verifier::HostVerifier;

/// How long a held request may wait for its first body callback before the
/// VM concludes that Envoy is not holding requests for it.
const HOLD_TIMEOUT_MS: u64 = 3_000;

/// What every request of a VM shares.
pub struct Shared {
    pub policy: Option<Rc<Policy>>,
    pub memory: Rc<ResponseMemory>,
    pub holds: HoldWatch,
    pub svids: SvidCache,
    pub verifier: HostVerifier,
    /// The bundles in force; replaced whole when a fetched one arrives.
    pub trust: RefCell<Rc<TrustStore>>,
    pub tokens: TokenCache,
    pub broker: Broker,
    /// This VM's audit hash chain.
    pub chain: RefCell<Chain>,
    pub counters: Counters,
    /// The dynamic metadata rule conditions read, per request.
    pub metadata_keys: Vec<(String, String)>,
    /// Budget ledger calls to send from the root context.
    pub ledger: crate::ledger::LedgerQueue,
}

/// Every this many records, a chain's head goes to Envoy's log: shipped
/// apart from the audit log, it anchors the chain (docs/audit.md).
const ANCHOR_EVERY: u64 = 1_000;

impl Shared {
    /// The record with this VM's chain members: the line the access log writes.
    pub fn seal(&self, record: &str) -> String {
        let Ok(mut chain) = self.chain.try_borrow_mut() else { return record.to_string() };
        let line = chain.seal(record);
        self.counters.add("modelgate.audit.records", 1);
        let (id, seq, head) = chain.head();
        if seq % ANCHOR_EVERY == 0 {
            host::log(LogLevel::Info, &format!("modelgate audit chain {id} record {seq} head {}", head.unwrap_or("")));
        }
        line
    }

    pub fn new(policy: Option<Rc<Policy>>) -> Self {
        let (cache_size, host) = policy
            .as_deref()
            .map_or((0, false), |p| (p.jwt_svid.cache_size, p.jwt_svid.verifier == VerifierChoice::Auto));
        let (generation, tokens) = policy.as_deref().map_or(("", 1), |p| (p.generation.as_str(), p.token_cache_size));
        Shared {
            memory: Rc::new(ResponseMemory::new(MAX_RESPONSE_HELD_PER_VM)),
            holds: HoldWatch::default(),
            svids: SvidCache::new(cache_size),
            verifier: HostVerifier::new(host),
            trust: RefCell::new(Rc::new(
                policy.as_deref().map_or_else(TrustStore::default, |p| TrustStore::new(&p.trust_domains)),
            )),
            tokens: TokenCache::new(tokens),
            broker: Broker::new(generation, tokens),
            counters: Counters::default(),
            metadata_keys: policy.as_deref().map(Policy::metadata_keys).unwrap_or_default(),
            ledger: crate::ledger::LedgerQueue::default(),
            chain: RefCell::new(Chain::new(host::random::<8>().iter().map(|b| format!("{b:02x}")).collect())),
            policy,
        }
    }
}

/// Requests held for their body, until this VM has seen Envoy deliver a
/// body to a held request (`allow_on_headers_stop_iteration` works).
#[derive(Default)]
pub struct HoldWatch {
    proven: Cell<bool>,
    pending: RefCell<Vec<Held>>,
}

/// A held request: its context id, its deadline, its exchange.
type Held = (u32, u64, Weak<RefCell<Flow>>);

impl HoldWatch {
    pub fn watch(&self, id: u32, exchange: &Rc<RefCell<Flow>>, now_ms: u64) {
        if self.proven.get() {
            return;
        }
        if let Ok(mut pending) = self.pending.try_borrow_mut() {
            pending.push((id, now_ms + HOLD_TIMEOUT_MS, Rc::downgrade(exchange)));
        }
    }

    /// A held request's body arrived: the host holds requests for us.
    pub fn proven(&self) {
        if !self.proven.replace(true) {
            if let Ok(mut pending) = self.pending.try_borrow_mut() {
                pending.clear();
            }
        }
    }

    pub fn forget(&self, id: u32) {
        if let Ok(mut pending) = self.pending.try_borrow_mut() {
            pending.retain(|(i, _, _)| *i != id);
        }
    }

    /// The requests held past their deadline (forgotten here).
    pub fn expired(&self, now_ms: u64) -> Vec<(u32, Rc<RefCell<Flow>>)> {
        let Ok(mut pending) = self.pending.try_borrow_mut() else { return Vec::new() };
        let mut out = Vec::new();
        pending.retain(|(id, deadline, exchange)| {
            if *deadline > now_ms {
                return exchange.strong_count() > 0;
            }
            if let Some(x) = exchange.upgrade() {
                out.push((*id, x));
            }
            false
        });
        out
    }
}
