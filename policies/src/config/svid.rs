//! What the configuration tells the SVID checks: the trust domains and
//! their bundles, and how JWT-SVIDs are read and verified. It names only
//! leaves (trust domain names, bundle keys, X.509 authorities), so the
//! checks that read it (`identity::svid::{jwt, trust, cache}`) import it
//! without importing the rest of `config`, which compiles into them.

use crate::identity::spiffe::TrustDomain;
use crate::identity::svid::bundle::{Format, JwtKey};
use crate::identity::svid::x509::Authority;

#[derive(Debug)]
pub struct TrustDomainConfig {
    pub name: TrustDomain,
    /// The inline bundle's JWT authorities (empty when the domain has only
    /// a bundle endpoint).
    pub keys: Vec<JwtKey>,
    pub endpoint: Option<BundleEndpoint>,
    /// The X.509 authorities (DER) forwarded leaves are checked against.
    pub x509_authorities: Vec<Authority>,
}

/// Where a trust domain's bundle is fetched from, through an Envoy cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleEndpoint {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    /// The longest time between two fetches (a shorter
    /// `spiffe_refresh_hint` in the bundle wins).
    pub refresh_seconds: u64,
    pub timeout_ms: u64,
    pub format: Format,
}

#[derive(Debug)]
pub struct JwtSvidConfig {
    /// Whether JWT-SVIDs are read at all (`identity.jwt_svid` present).
    pub enabled: bool,
    pub audiences: Vec<String>,
    pub leeway_seconds: u64,
    pub max_lifetime_seconds: u64,
    pub carrier: Carrier,
    /// Verified JWT-SVIDs kept per worker VM (0: none).
    pub cache_size: usize,
    pub verifier: VerifierChoice,
}

/// Who verifies signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifierChoice {
    /// Envoy's BoringSSL where the host offers it (`verify_signature`),
    /// pure Rust for the rest.
    Auto,
    /// Pure Rust only.
    PureRust,
}

/// Where the JWT-SVID is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Carrier {
    /// `authorization: Bearer …`, plus the header each api's SDK puts its
    /// key in (`x-api-key` for anthropic).
    SdkKeyHeaders,
    /// One header only, with an optional scheme (`Bearer`) before the token.
    Header { name: String, scheme: Option<String> },
}
