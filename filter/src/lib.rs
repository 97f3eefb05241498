//! modelgate as a proxy-wasm HTTP filter: the entry point and nothing else.
//! [`root`] parses the configuration, [`http`] drives one request through
//! `modelgate_policies`, [`host`] wraps the host calls.

mod bundles;
mod host;
mod http;
mod metrics;
mod root;
mod tokens;
mod verifier;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> { Box::new(root::Root::default()) });
}}
