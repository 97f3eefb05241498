//! Envoy counters by name, defined on first use and kept per VM. The names
//! come from `modelgate_policies::metrics` (bounded sets), plus
//! `modelgate.audit.records`.

use std::cell::RefCell;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

#[derive(Default)]
pub struct Counters {
    ids: RefCell<Vec<(String, u32)>>,
}

impl Counters {
    pub fn add(&self, name: &str, n: u64) {
        let Ok(mut ids) = self.ids.try_borrow_mut() else { return };
        let id = match ids.iter().find(|(k, _)| k == name) {
            Some((_, id)) => *id,
            None => match hostcalls::define_metric(MetricType::Counter, name) {
                Ok(id) => {
                    ids.push((name.to_string(), id));
                    id
                }
                Err(_) => return,
            },
        };
        let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
    }
}
