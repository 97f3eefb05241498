//! The root context: parses the configuration once per VM, shares it with
//! every request, and watches held requests so that an Envoy that does not
//! hold them for modelgate fails closed, fast and loudly.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use modelgate_policies::Chain;
use modelgate_policies::VerifierChoice;
use modelgate_policies::MAX_RESPONSE_HELD_PER_VM;
use modelgate_policies::{Event, Flow, Policy, ResponseMemory, Step};
use modelgate_policies::{SvidCache, TrustStore};
use modelgate_policies::{TokenCache, TokenStats};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use crate::bundles::Bundles;
use crate::host;
use crate::http::{self, Request};
use crate::metrics::{Counters, Gauges};
use crate::tokens::Broker;
use crate::verifier::HostVerifier;

/// How long a held request may wait for its first body callback before the
/// VM concludes that Envoy is not holding requests for it.
const HOLD_TIMEOUT_MS: u64 = 3_000;
const TICK: Duration = Duration::from_millis(500);
/// While requests wait for a token another worker is fetching.
const FAST_TICK: Duration = Duration::from_millis(20);

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

    fn new(policy: Option<Rc<Policy>>) -> Self {
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

    fn expired(&self, now_ms: u64) -> Vec<(u32, Rc<RefCell<Flow>>)> {
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

pub struct Root {
    shared: Rc<Shared>,
    bundles: Bundles,
    metrics: TokenMetrics,
    gauges: Gauges,
    /// The tick period in force.
    tick: Duration,
}

impl Default for Root {
    fn default() -> Self {
        Root {
            shared: Rc::new(Shared::new(None)),
            bundles: Bundles::new(None),
            metrics: TokenMetrics::default(),
            gauges: Gauges::default(),
            tick: Duration::ZERO,
        }
    }
}

/// `modelgate.token.exchanges`, `.hits` and `.failures.<detail>`
/// (counters; Envoy shows them under `wasmcustom.`), from the token
/// cache's counts.
#[derive(Default)]
struct TokenMetrics {
    exported: TokenStats,
    counters: Counters,
}

impl TokenMetrics {
    fn export(&mut self, tokens: &TokenCache) {
        let now = tokens.stats();
        if now == self.exported {
            return;
        }
        let mut counts = vec![
            ("exchanges".to_string(), now.exchanges, self.exported.exchanges),
            ("hits".to_string(), now.hits, self.exported.hits),
        ];
        for (detail, n) in &now.failures {
            let before = self.exported.failures.iter().find(|(d, _)| d == detail).map_or(0, |(_, n)| *n);
            counts.push((format!("failures.{detail}"), *n, before));
        }
        for (name, now, before) in counts {
            if now > before {
                self.counters.add(&format!("modelgate.token.{name}"), now - before);
            }
        }
        self.exported = now;
    }
}

impl Root {
    /// The stores' sizes, as gauges (each VM adds its part).
    fn export_gauges(&self) {
        let (tokens, failures) = self.shared.tokens.sizes();
        let (flights, slots) = self.shared.broker.sizes();
        for (name, value) in [
            ("modelgate.token.cached", tokens as u64),
            ("modelgate.token.failures_kept", failures as u64),
            ("modelgate.token.flights", flights as u64),
            ("modelgate.token.shared_slots_used", slots),
            ("modelgate.svid.cached", self.shared.svids.entries() as u64),
            ("modelgate.response.held_bytes", self.shared.memory.in_use() as u64),
        ] {
            self.gauges.set(name, value);
        }
    }
}

impl Context for Root {
    /// The configuration goes: its tokens leave shared data, and its parts
    /// of the gauges go (the shared slots' keys stay: there is no delete).
    fn on_done(&mut self) -> bool {
        self.shared.broker.empty_slots();
        self.gauges.clear(&["modelgate.token.shared_slots_used"]);
        true
    }

    fn on_http_call_response(&mut self, token: u32, headers: usize, body_size: usize, _trailers: usize) {
        if !self.bundles.answered(&self.shared, token, headers, body_size, host::now_ms()) {
            let result = http::call_result(headers, body_size);
            self.shared.broker.root_response(&self.shared, token, result);
        }
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _: usize) -> bool {
        host::log(LogLevel::Info, concat!("modelgate ", env!("CARGO_PKG_VERSION"), " starting"));
        true
    }

    /// A config error returns false, so Envoy refuses the configuration; the
    /// log line names the bad field.
    fn on_configure(&mut self, size: usize) -> bool {
        let config = host::plugin_configuration(size);
        match Policy::from_json(&config, &|name| std::env::var(name).ok()) {
            Ok(policy) => {
                host::log(
                    LogLevel::Info,
                    &format!(
                        "modelgate configured: mode {}, {} trust domain(s), {} provider(s), {} rule(s)",
                        policy.mode.name(),
                        policy.trust_domains.len(),
                        policy.providers.len(),
                        policy.rules.len()
                    ),
                );
                self.bundles = Bundles::new(Some(&policy));
                self.shared = Rc::new(Shared::new(Some(Rc::new(policy))));
                if host::set_tick_period(TICK) {
                    self.tick = TICK;
                }
                true
            }
            Err(e) => {
                host::log(LogLevel::Critical, &e.to_string());
                false
            }
        }
    }

    /// Keeps the trust bundles fresh, and fails closed every request held
    /// past the timeout without a body: Envoy is not holding requests for
    /// modelgate.
    fn on_tick(&mut self) {
        let now_ms = host::now_ms();
        self.bundles.tick(&self.shared, now_ms);
        self.shared.broker.tick(&self.shared, now_ms);
        self.metrics.export(&self.shared.tokens);
        self.export_gauges();
        let period = if self.shared.broker.busy() { FAST_TICK } else { TICK };
        if period != self.tick && host::set_tick_period(period) {
            self.tick = period;
        }
        for (id, exchange) in self.shared.holds.expired(now_ms) {
            let step = http::drive(&self.shared, &exchange, Event::HoldExpired, now_ms);
            if matches!(step, Some(Step::Reply(_))) {
                host::log(
                    LogLevel::Critical,
                    "modelgate: Envoy did not deliver the body of a held request: it is not holding requests for \
                     this filter. Set allow_on_headers_stop_iteration: true in the wasm filter's config (Envoy >= \
                     1.35; for Istio see docs/deploy-istio.md). Requests are refused until then.",
                );
            }
            http::carry_out_detached(&self.shared, id, &exchange, step);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // A `None` here would trap the VM: a request without a policy is
        // refused by the request itself.
        Some(Box::new(Request::new(context_id, Rc::clone(&self.shared))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
