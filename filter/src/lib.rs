//! modelgate as a proxy-wasm HTTP filter: the entry point and nothing else.
//! [`root`] parses the configuration, [`http`] drives one request through
//! `modelgate_policies`, [`step`] carries out what it decides, [`host`]
//! wraps the host calls. Each module imports only those below it: root →
//! http → step → shared → (tokens, bundles, verifier, metrics) → host.

mod bundles;
mod host;
mod http;
mod keys;
mod ledger;
mod metrics;
mod root;
mod shared;
mod step;
mod tokens;
mod verifier;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> { Box::new(root::Root::default()) });
}}
