//! The root context: parses the configuration once per VM, shares it with
//! every request, and on its tick fails closed the requests held past the
//! hold watch's timeout (an Envoy that does not hold them for modelgate
//! fails fast and loudly), keeps the bundles fresh and exports the gauges.

use std::rc::Rc;
use std::time::Duration;

use modelgate_policies::{Event, Policy, Step};
use modelgate_policies::{TokenCache, TokenStats};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

use crate::bundles::Bundles;
use crate::host;
use crate::http::Request;
use crate::metrics::{Counters, Gauges, Levels};
use crate::shared::Shared;
use crate::step;
use crate::tokens;

const TICK: Duration = Duration::from_millis(500);
/// While requests wait for a token another worker is fetching.
const FAST_TICK: Duration = Duration::from_millis(20);
/// How often the budgets' slot gauges are read.
const SLOTS_EVERY_MS: u64 = 10_000;

pub struct Root {
    shared: Rc<Shared>,
    bundles: Bundles,
    metrics: TokenMetrics,
    gauges: Gauges,
    /// Budget slot gauges, and when they are read next.
    levels: Levels,
    slots_due_ms: u64,
    /// The tick period in force.
    tick: Duration,
    /// Replaced by a reload and waiting for its ledger calls to finish;
    /// the calls given up on before then (its gauges are already gone).
    closing: Option<u64>,
}

impl Default for Root {
    fn default() -> Self {
        Root {
            shared: Rc::new(Shared::new(None)),
            bundles: Bundles::new(None),
            metrics: TokenMetrics::default(),
            gauges: Gauges::default(),
            levels: Levels::default(),
            slots_due_ms: 0,
            tick: Duration::ZERO,
            closing: None,
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
            ("modelgate.svid.token_bytes", self.shared.svids.token_bytes() as u64),
            ("modelgate.response.held_bytes", self.shared.memory.in_use() as u64),
            ("modelgate.budget.ledger_queued", self.shared.ledger.sizes().0),
            ("modelgate.budget.ledger_in_flight", self.shared.ledger.sizes().1),
            ("modelgate.budget.ledger_dropped", self.shared.ledger.dropped.get()),
        ] {
            self.gauges.set(name, value);
        }
    }

    /// Every so often: how many workloads each budget tracks in its
    /// current window (the same for every VM: the last one wins).
    fn export_budget_slots(&mut self, now_ms: u64) {
        if now_ms < self.slots_due_ms {
            return;
        }
        self.slots_due_ms = now_ms + SLOTS_EVERY_MS;
        let Some(policy) = self.shared.policy.as_deref() else { return };
        for b in &policy.budgets.list {
            let (start, _) = b.window.bounds(now_ms);
            let n = modelgate_policies::budget_slots_occupied(&host::Counters, &b.id, b.max_workloads, start);
            self.levels.record(&format!("modelgate.budget.{}.workloads", b.id), n);
        }
    }
}

impl Context for Root {
    /// The configuration goes: its tokens leave shared data, and its parts
    /// of the gauges go (the shared slots' keys stay: there is no delete).
    ///
    /// A configuration replaced by a reload goes when its last request ends;
    /// the ledger calls those requests queued (settles, releases) go out
    /// first. It stays, ticking only for them, until they are sent and
    /// answered (or given up on), and then tells the host it is done.
    fn on_done(&mut self) -> bool {
        self.shared.broker.empty_slots();
        self.gauges.clear(&["modelgate.token.shared_slots_used"]);
        if !self.shared.ledger.busy() {
            return true;
        }
        self.closing = Some(self.shared.ledger.dropped.get());
        if host::set_tick_period(FAST_TICK) {
            self.tick = FAST_TICK;
        }
        false
    }

    fn on_http_call_response(&mut self, token: u32, headers: usize, body_size: usize, _trailers: usize) {
        if self.shared.ledger.answered(
            token,
            &host::call_response(headers, body_size, modelgate_policies::MAX_LEDGER_ANSWER_BYTES),
            host::now_ms(),
        ) {
            return;
        }
        if !self.bundles.answered(&self.shared.trust, token, headers, body_size, host::now_ms()) {
            let result = tokens::call_result(headers, body_size);
            self.shared.broker.root_response(&*self.shared, token, result);
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
                self.bundles.install(&self.shared.trust);
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
        if let Some(dropped_before) = self.closing {
            self.shared.ledger.send(now_ms);
            if !self.shared.ledger.busy() {
                let dropped = self.shared.ledger.dropped.get().saturating_sub(dropped_before);
                if dropped > 0 {
                    host::log(
                        LogLevel::Warn,
                        &format!("modelgate: a replaced configuration gave up on {dropped} ledger call(s); the ledger charges their holds in full"),
                    );
                }
                // Once: the host deletes this context, or refuses (and it
                // stays, silent, with no timer).
                let _ = host::set_tick_period(Duration::ZERO);
                if !host::done() {
                    host::log(LogLevel::Error, "modelgate: the host refused to let a finished configuration go");
                }
            }
            return;
        }
        self.bundles.tick(&self.shared.trust, now_ms);
        self.shared.broker.tick(&*self.shared, now_ms);
        self.shared.ledger.send(now_ms);
        self.metrics.export(&self.shared.tokens);
        self.export_gauges();
        self.export_budget_slots(now_ms);
        let period = if self.shared.broker.busy() || self.shared.ledger.busy() { FAST_TICK } else { TICK };
        if period != self.tick && host::set_tick_period(period) {
            self.tick = period;
        }
        for (id, exchange) in self.shared.holds.expired(now_ms) {
            let step = step::drive(&self.shared, &exchange, Event::HoldExpired, now_ms);
            if matches!(step, Some(Step::Reply(_))) {
                host::log(
                    LogLevel::Critical,
                    "modelgate: Envoy did not deliver the body of a held request: it is not holding requests for \
                     this filter. Set allow_on_headers_stop_iteration: true in the wasm filter's config (Envoy >= \
                     1.35; for Istio see docs/deploy-istio.md). Requests are refused until then.",
                );
            }
            step::carry_out(&self.shared, id, &exchange, step, step::From::Detached);
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
