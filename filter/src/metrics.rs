//! Envoy counters by name, defined on first use and kept per VM. The names
//! come from `modelgate_policies::metrics` (bounded sets), plus
//! `modelgate.audit.records`.

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
