//! Bundle endpoints: each worker VM, on its tick, installs the bundle the
//! last fetch published in shared data, and takes the endpoint's lease when
//! a fetch is due; the VM holding it fetches through the Envoy cluster,
//! judges the answer and publishes a good one. Shared-data keys are
//! `modelgate.bundle.<trust domain>.<endpoint digest>` (the bundle) and the
//! same with `.lease` (the keys module's scheme).

use std::cell::RefCell;
use std::rc::Rc;

use modelgate_policies::callout::{CalloutRequest, CalloutResult};
use modelgate_policies::{bundle_refresh as refresh, Fetched, Lease};
use modelgate_policies::{parse_fetched, MAX_FETCHED_BUNDLE_BYTES};
use modelgate_policies::{BundleEndpoint, Policy};
use modelgate_policies::{Installed, TrustStore};
use proxy_wasm::types::LogLevel;

use crate::host;
use crate::keys;
use crate::metrics::{Counters, Levels};

pub struct Bundles {
    endpoints: Vec<Endpoint>,
    /// This VM, as a lease holder.
    nonce: u64,
}

struct Endpoint {
    domain: String,
    endpoint: BundleEndpoint,
    key: String,
    lease_key: String,
    /// The shared-data version of the bundle this VM installed.
    installed: Option<u32>,
    /// The token of this VM's fetch in flight.
    fetching: Option<u32>,
    metrics: Metrics,
}

/// `modelgate.bundle.<domain>.refreshes` and `.failures` (counters),
/// `.sequence` (gauge), defined with the endpoint (so they show at 0).
struct Metrics {
    refreshes: String,
    failures: String,
    sequence: String,
    counters: Counters,
    levels: Levels,
}

impl Metrics {
    fn new(domain: &str) -> Self {
        let name = |what| format!("modelgate.bundle.{domain}.{what}");
        let metrics = Metrics {
            refreshes: name("refreshes"),
            failures: name("failures"),
            sequence: name("sequence"),
            counters: Counters::default(),
            levels: Levels::default(),
        };
        metrics.counters.define(&metrics.refreshes);
        metrics.counters.define(&metrics.failures);
        metrics.levels.define(&metrics.sequence);
        metrics
    }

    fn refreshed(&self) {
        self.counters.add(&self.refreshes, 1);
    }

    fn failed(&self) {
        self.counters.add(&self.failures, 1);
    }
}

impl Bundles {
    pub fn new(policy: Option<&Policy>) -> Self {
        let endpoints = policy
            .map(|p| p.trust_domains.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|d| {
                let endpoint = d.endpoint.clone()?;
                let domain = d.name.as_str().to_string();
                let key = keys::bundle(&domain, &endpoint.cluster, &endpoint.authority, &endpoint.path);
                Some(Endpoint {
                    lease_key: format!("{key}.lease"),
                    key,
                    installed: None,
                    fetching: None,
                    metrics: Metrics::new(&domain),
                    domain,
                    endpoint,
                })
            })
            .collect();
        Bundles { endpoints, nonce: random().max(1) }
    }

    /// Installs what the VMs published for these endpoints: called when a
    /// configuration is applied, so that a policy reload keeps serving the
    /// bundles already fetched (under any configuration: the shared key
    /// names the endpoint, and the document is parsed with this
    /// configuration's format) instead of refusing until its first tick.
    pub fn install(&mut self, trust: &RefCell<Rc<TrustStore>>) {
        for e in &mut self.endpoints {
            e.install_published(trust);
        }
    }

    /// Installs what other VMs published, and starts the fetches that are
    /// due and that this VM wins the lease of.
    pub fn tick(&mut self, trust: &RefCell<Rc<TrustStore>>, now_ms: u64) {
        let nonce = self.nonce;
        for e in &mut self.endpoints {
            e.install_published(trust);
            if e.fetching.is_none() {
                e.start_fetch(nonce, now_ms);
            }
        }
    }

    /// A fetch answered (or failed). False if the token is not a fetch's.
    pub fn answered(
        &mut self,
        trust: &RefCell<Rc<TrustStore>>,
        token: u32,
        headers: usize,
        body_size: usize,
        now_ms: u64,
    ) -> bool {
        let Some(e) = self.endpoints.iter_mut().find(|e| e.fetching == Some(token)) else { return false };
        e.fetching = None;
        // Every answer shape is judged (a reset, a cut body, no final
        // status: refused, the last good bundle stays), with no host read
        // the host would refuse.
        let (status, body) = match host::call_response(headers, body_size, MAX_FETCHED_BUNDLE_BYTES) {
            CalloutResult::Response { status, body, .. } => (Some(status), body),
            CalloutResult::Failed(_) => (None, Vec::new()),
        };
        let (current, _) = host::shared_get(&e.key);
        let refresh_seconds = e.endpoint.refresh_seconds;
        let lease = match refresh::judge(current.as_deref(), status, &body, e.endpoint.format) {
            Fetched::Publish { bundle, value } => {
                if !host::shared_set(&e.key, &value, None) {
                    e.failed("the bundle could not be shared with the other workers");
                    let next = e.lease().0.failed(now_ms, refresh::interval_ms(refresh_seconds, None), random());
                    e.release(self.nonce, next);
                    return true;
                }
                host::log(
                    LogLevel::Info,
                    &format!(
                        "modelgate: trust bundle of {} fetched: {} JWT authorit{}, sequence {}{}",
                        e.domain,
                        bundle.keys.len(),
                        if bundle.keys.len() == 1 { "y" } else { "ies" },
                        bundle.sequence.map_or_else(|| "none".to_string(), |s| s.to_string()),
                        if bundle.skipped > 0 {
                            format!(", {} unusable key(s) left out", bundle.skipped)
                        } else {
                            String::new()
                        },
                    ),
                );
                e.metrics.refreshed();
                e.install_published(trust);
                Lease::succeeded(now_ms, refresh::interval_ms(refresh_seconds, bundle.refresh_hint), random())
            }
            Fetched::Unchanged { refresh_hint } => {
                e.metrics.refreshed();
                Lease::succeeded(now_ms, refresh::interval_ms(refresh_seconds, refresh_hint), random())
            }
            Fetched::Refused(why) => {
                e.failed(&why);
                e.lease().0.failed(now_ms, refresh::interval_ms(refresh_seconds, None), random())
            }
        };
        e.release(self.nonce, lease);
        true
    }
}

impl Endpoint {
    fn lease(&self) -> (Lease, Option<u32>) {
        let (value, cas) = host::shared_get(&self.lease_key);
        (value.map_or_else(Lease::default, |v| Lease::parse(&v)), cas)
    }

    /// Installs the published bundle if it is newer than this VM's.
    fn install_published(&mut self, trust: &RefCell<Rc<TrustStore>>) {
        let (Some(value), Some(cas)) = host::shared_get(&self.key) else { return };
        if self.installed == Some(cas) {
            return;
        }
        self.installed = Some(cas);
        let bundle = refresh::published(&value)
            .ok_or(())
            .and_then(|(_, doc)| parse_fetched(doc, self.endpoint.format).map_err(|_| ()));
        let Ok(bundle) = bundle else {
            host::log(LogLevel::Error, &format!("modelgate: the shared trust bundle of {} is unreadable", self.domain));
            return;
        };
        let sequence = bundle.sequence;
        let mut store = (**trust.borrow()).clone();
        if store.install(&self.domain, bundle) == Installed::Replaced {
            *trust.borrow_mut() = Rc::new(store);
            if let Some(sequence) = sequence {
                self.metrics.levels.record(&self.metrics.sequence, sequence);
            }
        }
    }

    fn start_fetch(&mut self, nonce: u64, now_ms: u64) {
        let (lease, cas) = self.lease();
        if !lease.takeable(now_ms, refresh::interval_ms(self.endpoint.refresh_seconds, None)) {
            return;
        }
        let taken = lease.taken_by(nonce, now_ms, self.endpoint.timeout_ms);
        // Another VM may have swapped first: then it fetches, not this one.
        if !host::shared_set(&self.lease_key, &taken.encode(), cas) {
            return;
        }
        let call = CalloutRequest {
            cluster: self.endpoint.cluster.clone(),
            method: "GET",
            authority: self.endpoint.authority.clone(),
            path: self.endpoint.path.clone(),
            headers: vec![("accept".into(), "application/json".into())],
            body: Vec::new(),
            timeout_ms: self.endpoint.timeout_ms,
        };
        match host::dispatch(&call) {
            Ok(token) => self.fetching = Some(token),
            Err(status) => {
                self.failed(&format!("the fetch could not start through cluster {:?} ({status})", call.cluster));
                let interval = refresh::interval_ms(self.endpoint.refresh_seconds, None);
                self.release(nonce, taken.failed(now_ms, interval, random()));
            }
        }
    }

    fn failed(&self, why: &str) {
        self.metrics.failed();
        host::log(
            LogLevel::Warn,
            &format!(
                "modelgate: fetching the trust bundle of {} from {}{} failed: {why}; the last good bundle stays",
                self.domain, self.endpoint.authority, self.endpoint.path
            ),
        );
    }

    /// Hands the lease back with the next fetch's due time, if this VM
    /// still holds it.
    /// still holds it (a lease another VM took after this one overran is
    /// that VM's).
    fn release(&self, nonce: u64, next: Lease) {
        let (lease, cas) = self.lease();
        if lease.hold().held_by(nonce) {
            let _ = host::shared_set(&self.lease_key, &next.encode(), cas);
        }
    }
}

fn random() -> u64 {
    u64::from_le_bytes(host::random::<8>())
}
