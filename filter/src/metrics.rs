//! The one registry of modelgate's Envoy metrics: every counter and gauge
//! is defined here, by name, and kept per VM. The names come from
//! `modelgate_policies::audit::metrics` (bounded sets), plus
//! `modelgate.audit.records`, the token broker's counters, the gauges of the
//! root's stores and the bundle endpoints' metrics. Envoy shows them under
//! `wasmcustom.`.

use std::cell::RefCell;

use proxy_wasm::types::MetricType;

use crate::host;

/// Metric ids by name, each defined with the host on first use (the names
/// come from bounded sets).
#[derive(Default)]
struct Ids(RefCell<Vec<(String, u32)>>);

impl Ids {
    fn of(&self, kind: MetricType, name: &str) -> Option<u32> {
        let mut ids = self.0.try_borrow_mut().ok()?;
        if let Some((_, id)) = ids.iter().find(|(k, _)| k == name) {
            return Some(*id);
        }
        let id = host::define_metric(kind, name)?;
        ids.push((name.to_string(), id));
        Some(id)
    }

    fn names(&self) -> Vec<String> {
        self.0.try_borrow().map(|ids| ids.iter().map(|(n, _)| n.clone()).collect()).unwrap_or_default()
    }
}

#[derive(Default)]
pub struct Counters {
    ids: Ids,
}

impl Counters {
    /// Defines `name` now, so that Envoy shows it (at 0) before its first count.
    pub fn define(&self, name: &str) {
        let _ = self.ids.of(MetricType::Counter, name);
    }

    pub fn add(&self, name: &str, n: u64) {
        if let Some(id) = self.ids.of(MetricType::Counter, name) {
            host::increment_metric(id, n);
        }
    }
}

/// Envoy gauges by name. Each VM adds the change since it last reported,
/// so a gauge is the sum over every worker VM and configuration.
#[derive(Default)]
pub struct Gauges {
    ids: Ids,
    /// Per metric id, the value this VM last added up to.
    last: RefCell<Vec<(u32, u64)>>,
}

impl Gauges {
    pub fn set(&self, name: &str, value: u64) {
        let Some(id) = self.ids.of(MetricType::Gauge, name) else { return };
        let Ok(mut last) = self.last.try_borrow_mut() else { return };
        let before = last.iter().find(|(i, _)| *i == id).map_or(0, |(_, v)| *v);
        if value == before {
            return;
        }
        let delta = i64::try_from(value).unwrap_or(i64::MAX).saturating_sub(i64::try_from(before).unwrap_or(i64::MAX));
        if host::add_to_gauge(id, delta) {
            last.retain(|(i, _)| *i != id);
            last.push((id, value));
        }
    }

    /// Takes this VM's part out of every gauge but `keep`.
    pub fn clear(&self, keep: &[&str]) {
        for name in self.ids.names().iter().filter(|n| !keep.contains(&n.as_str())) {
            self.set(name, 0);
        }
    }
}

/// Gauges a VM sets outright, the last VM to set one winning (a trust
/// bundle's sequence is the same for every VM).
#[derive(Default)]
pub struct Levels {
    ids: Ids,
}

impl Levels {
    /// Defines `name` now, so that Envoy shows it before its first value.
    pub fn define(&self, name: &str) {
        let _ = self.ids.of(MetricType::Gauge, name);
    }

    pub fn record(&self, name: &str, value: u64) {
        if let Some(id) = self.ids.of(MetricType::Gauge, name) {
            host::record_metric(id, value);
        }
    }
}
