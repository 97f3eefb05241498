//! modelgate's policy engine.
//!
//! Everything modelgate decides is computed here from plain values: the
//! configuration, request headers and body, the clock. Nothing in this crate
//! calls the proxy-wasm host, so every decision can be tested natively and
//! explained outside Envoy. The `filter` crate is thin glue around
//! [`exchange::Exchange`], which follows one request from headers to audit.
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod body;
pub mod callout;
pub mod chain;
pub mod conditions;
pub mod config;
pub mod credential;
pub mod decision;
pub mod exchange;
pub mod explain;
pub mod guard;
pub mod identity;
pub mod json;
pub mod metrics;
pub mod mint;
pub mod multipart;
pub mod path;
pub mod query;
pub mod reason;
pub mod spiffe;
pub mod svid;
pub mod time;
pub mod token;
pub mod usage;
pub mod xfcc;

#[cfg(test)]
mod testing;

pub use config::{ConfigError, Policy};
pub use exchange::{BodySource, Env, Event, Exchange, LogInfo, Phase, RequestHead, ResponseMemory, Step};
