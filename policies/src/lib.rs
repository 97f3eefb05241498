//! modelgate's policy engine.
//!
//! Everything modelgate decides is computed here from plain values: the
//! configuration, request headers and body, the clock. Nothing in this crate
//! calls the proxy-wasm host, so every decision can be tested natively and
//! explained outside Envoy.
//!
//! One request flows one way, and the folders are its steps:
//!
//! | step | folder |
//! | --- | --- |
//! | the driver: headers → identity → body → decision → credential → forward → response → audit | [`flow`] |
//! | who is calling: carriers, XFCC, SPIFFE IDs, SVIDs and bundles | `identity/` |
//! | what the provider will read: each api's endpoints, names, usage | `api/` |
//! | the body: strict JSON, multipart, the prompt guard | `body/` |
//! | rules and their conditions | `decision/` |
//! | a described request driven through the flow: `modelgate explain` | `explain.rs` |
//! | what replaces the caller's credential | `credential/` |
//! | the record, its chain, metrics | `audit/` |
//! | the configuration, raw → compiled | `config/` |
//!
//! The step modules are private to the crate; what the filter, the CLI and
//! the explorer use is re-exported below.
#![forbid(unsafe_code)]

mod api;
mod audit;
mod body;
mod budget;
mod config;
mod credential;
mod decision;
mod flow;
mod identity;
mod reason;
mod util;

/// Why a described call would be allowed or denied: the real flow, driven
/// with a described request (`modelgate explain`, the browser explorer).
pub mod explain;

#[cfg(test)]
mod testing;

// The driver, for the filter.
pub use flow::{
    BodySource, Env, Event, Flow, LogInfo, Phase, RequestHead, ResponseMemory, Step, MAX_RESPONSE_HELD_PER_VM,
};
// The configuration.
pub use config::{BundleEndpoint, ConfigError, Policy, RuleLimits, VerifierChoice, X509Source};
// What the filter hands back in and out of the driver.
pub use body::apply_edits;
pub use budget::ledger::MAX_ANSWER_BYTES as MAX_LEDGER_ANSWER_BYTES;
pub use budget::slots::{occupied as budget_slots_occupied, HostError, MemoryStore, SharedStore};
pub use credential::callout::{self, CalloutRequest, CalloutResult};
pub use credential::token_exchange::{TokenCache, TokenStats, MAX_RESPONSE_BYTES as MAX_TOKEN_RESPONSE_BYTES};
pub use credential::Rewrite;
pub use decision::conditions::{is_forwarded_address, MetadataValue};
pub use identity::Peer;
pub use reason::{Denial, LocalReply, Reason};
// Identity: the caches the root context keeps, and bundle refresh.
pub use credential::sign::{ecdsa_raw, MintKey};
pub use identity::svid::bundle::{parse_fetched, MAX_FETCHED_BUNDLE_BYTES};
pub use identity::svid::refresh::{self as bundle_refresh, Fetched, Lease};
pub use identity::svid::verify::{ecdsa_der, SignedToken};
pub use identity::svid::{Alg, Installed, JwtKey, PureRustVerifier, SignatureVerifier, SvidCache, TrustStore};
// The CLI and the explorer.
pub use audit::chain::{self, Chain};
pub use credential::mint::Minter;
pub use explain::Question;

pub use identity::spiffe::SpiffeId;
pub use util::digest::sha256_hex;
// The shared-data leases the bundle refresher and the token broker take.
pub use util::lease::{Hold, SlotLease};
pub use util::time::parse_rfc3339;

/// Every parser of untrusted input and the body decision, for the fuzz
/// targets and the benchmark; not an api.
#[doc(hidden)]
pub mod parsers {
    pub use crate::api::path;
    pub use crate::api::usage::{Framing, StreamUsage, MAX_EVENT_BYTES};
    pub use crate::api::{Api, BodyFormat};
    pub use crate::body::json;
    /// The body step's parse and splice.
    pub mod body {
        pub use crate::body::{apply_edits, parse};
    }
    pub use crate::body::multipart;
    pub use crate::identity::spiffe::{SpiffeId, TrustDomain, WorkloadPattern};
    pub use crate::identity::svid::jwt;
    pub use crate::identity::svid::x509::{leaf_der, validate, validate_forwarded, Authority, X509SvidError};
    pub use crate::identity::xfcc::{forwarded_leaf, parse, Element};
    /// An MCP server's JSON-RPC message reader and listing filter.
    pub mod mcp {
        pub use crate::api::mcp::{listing, message};
    }
    /// Budgets: the body's extra input, the ledger's answers, the
    /// shared-data counters.
    pub mod budget {
        pub use crate::budget::input::{scan, Scan, MEDIA_TOKENS};
        pub use crate::budget::ledger::{reserved, Reserved};
        pub use crate::budget::slots::Counter;
    }
}
