//! Envoy counters by name, defined on first use and kept per VM. The names
//! come from `modelgate_policies::metrics` (bounded sets), plus
//! `modelgate.audit.records`; and the gauges of the root's stores.

use std::cell::RefCell;

use proxy_wasm::types::MetricType;

use crate::host;

#[derive(Default)]
pub struct Counters {
    ids: RefCell<Vec<(String, u32)>>,
}

impl Counters {
    pub fn add(&self, name: &str, n: u64) {
        let Ok(mut ids) = self.ids.try_borrow_mut() else { return };
        let id = match ids.iter().find(|(k, _)| k == name) {
            Some((_, id)) => *id,
            None => match host::define_metric(MetricType::Counter, name) {
                Some(id) => {
                    ids.push((name.to_string(), id));
                    id
                }
                None => return,
            },
        };
        host::increment_metric(id, n);
    }
}

/// Envoy gauges by name. Each VM adds the change since it last reported,
/// so a gauge is the sum over every worker VM and configuration.
#[derive(Default)]
pub struct Gauges {
    /// Name, metric id, the value this VM last added up to.
    ids: RefCell<Vec<(String, u32, u64)>>,
}

impl Gauges {
    pub fn set(&self, name: &str, value: u64) {
        let Ok(mut ids) = self.ids.try_borrow_mut() else { return };
        let index = match ids.iter().position(|(k, _, _)| k == name) {
            Some(i) => i,
            None => match host::define_metric(MetricType::Gauge, name) {
                Some(id) => {
                    ids.push((name.to_string(), id, 0));
                    ids.len() - 1
                }
                None => return,
            },
        };
        let Some((_, id, last)) = ids.get_mut(index) else { return };
        if value == *last {
            return;
        }
        let delta = i64::try_from(value).unwrap_or(i64::MAX).saturating_sub(i64::try_from(*last).unwrap_or(i64::MAX));
        if host::add_to_gauge(*id, delta) {
            *last = value;
        }
    }

    /// Takes this VM's part out of every gauge but `keep`.
    pub fn clear(&self, keep: &[&str]) {
        let names: Vec<String> = self
            .ids
            .try_borrow()
            .map(|ids| ids.iter().map(|(n, _, _)| n.clone()).filter(|n| !keep.contains(&n.as_str())).collect())
            .unwrap_or_default();
        for name in names {
            self.set(&name, 0);
        }
    }
}
