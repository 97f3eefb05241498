//! The root context: parses the configuration once per VM and shares the
//! compiled policy with every request.

use std::rc::Rc;

use modelgate_policies::Policy;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use crate::host;
use crate::http::Request;

#[derive(Default)]
pub struct Root {
    policy: Option<Rc<Policy>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _: usize) -> bool {
        host::log(LogLevel::Info, concat!("modelgate ", env!("CARGO_PKG_VERSION"), " starting"));
        true
    }

    /// A config error returns false, so Envoy refuses the configuration; the
    /// log line names the bad field.
    fn on_configure(&mut self, size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size).ok().flatten().unwrap_or_default();
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
                self.policy = Some(Rc::new(policy));
                true
            }
            Err(e) => {
                host::log(LogLevel::Critical, &e.to_string());
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Envoy refuses a configuration whose on_configure failed, so a
        // missing policy should not happen; if it does, the request is
        // refused (a `None` here would trap the VM).
        Some(Box::new(Request::new(context_id, self.policy.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
