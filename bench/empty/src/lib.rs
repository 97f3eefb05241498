//! The empty wasm filter: the same SDK and the same VM as modelgate, with
//! nothing done per request. tests/bench.py measures modelgate against it,
//! so the ratio prices modelgate's work, not the wasm runtime's.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Empty) });
}}

struct Empty;

impl Context for Empty {}

impl HttpContext for Empty {}

impl RootContext for Empty {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Empty))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
