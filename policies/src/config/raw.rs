//! The configuration as written: serde types as close to the JSON as
//! possible. Every struct refuses unknown fields; enums are tagged, never
//! untagged. [`super::compile`] turns this into a [`super::Policy`].
//! Free-form members (a bundle, a rule's `when`, credential maps) are read
//! as raw JSON and compiled, with their JSON paths, by the modules that own
//! them.

use serde::Deserialize;
use serde_json::Value;

use crate::api::Api;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub version: u32,
    /// An operator's label for this policy (a commit, a release): recorded
    /// with every decision next to the configuration's digest.
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(default)]
    pub mode: Option<RawMode>,
    pub trust_domains: Vec<RawTrustDomain>,
    pub identity: RawIdentity,
    pub providers: Vec<RawProvider>,
    pub rules: Vec<RawRule>,
    #[serde(default)]
    pub audit: Option<RawAudit>,
    #[serde(default)]
    pub limits: Option<RawLimits>,
    #[serde(default)]
    pub prompt_guard: Option<RawPromptGuard>,
    #[serde(default)]
    pub budgets: Option<Vec<RawBudget>>,
    #[serde(default)]
    pub prices: Option<Vec<RawPrice>>,
    #[serde(default)]
    pub ledger: Option<RawLedger>,
}

/// SPEC §9: a token and/or USD budget over a calendar window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    pub id: String,
    pub workloads: Vec<String>,
    #[serde(default)]
    pub per: Option<RawBudgetPer>,
    #[serde(default)]
    pub providers: Option<Vec<String>>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    pub window: RawWindow,
    #[serde(default)]
    pub tokens: Option<u64>,
    #[serde(default)]
    pub usd: Option<f64>,
    #[serde(default)]
    pub scope: Option<RawBudgetScope>,
    #[serde(default)]
    pub on_unavailable: Option<RawOnUnavailable>,
    /// `local_share`: the fraction of the cap one gateway may spend on its
    /// own while the ledger cannot answer (default 0.1).
    #[serde(default)]
    pub local_share: Option<f64>,
    /// `per: workload`: how many workloads one gateway tracks per window.
    #[serde(default)]
    pub max_workloads: Option<u64>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawBudgetPer {
    Workload,
    Group,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawWindow {
    Minute,
    Hour,
    Day,
    Month,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawBudgetScope {
    Gateway,
    Global,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawOnUnavailable {
    Deny,
    LocalShare,
}

/// USD per million tokens, for one provider (or `*`) and model patterns.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub provider: String,
    pub models: Vec<String>,
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub cached_input: Option<f64>,
    #[serde(default)]
    pub cache_write: Option<f64>,
}

/// Where `scope: global` budgets are kept: the ledger service's cluster.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLedger {
    pub cluster: String,
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// How long a reservation the gateway never settles is held before the
    /// ledger charges it in full.
    #[serde(default)]
    pub hold_ms: Option<u64>,
    /// The bearer key the ledger requires (`{"env": NAME}`).
    pub key: RawSessionKey,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPromptGuard {
    #[serde(default)]
    pub action: Option<RawGuardAction>,
    /// Built-in detectors by name (absent: all).
    #[serde(default)]
    pub detectors: Option<Vec<String>>,
    #[serde(default)]
    pub custom: Option<Vec<RawCustomDetector>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustomDetector {
    pub name: String,
    pub pattern: String,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawGuardAction {
    Block,
    Log,
    Off,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawMode {
    Enforce,
    Audit,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrustDomain {
    pub name: String,
    #[serde(default)]
    pub jwt_bundle: Option<Value>,
    #[serde(default)]
    pub bundle_endpoint: Option<RawBundleEndpoint>,
    /// The trust domain's X.509 authorities (PEM CA certificates): a leaf a
    /// trusted hop forwards must be issued by one of them.
    #[serde(default)]
    pub x509_authorities: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBundleEndpoint {
    pub cluster: String,
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub refresh_seconds: Option<u64>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub format: Option<RawBundleFormat>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawBundleFormat {
    Spiffe,
    Jwks,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    #[serde(default)]
    pub jwt_svid: Option<RawJwtSvid>,
    #[serde(default)]
    pub x509_svid: Option<RawX509Svid>,
    #[serde(default)]
    pub require: Option<RawRequire>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawX509Svid {
    pub source: RawX509Source,
    #[serde(default)]
    pub trusted_hop: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawX509Source {
    Connection,
    Xfcc,
    Off,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwtSvid {
    pub audiences: Vec<String>,
    #[serde(default)]
    pub leeway_seconds: Option<u64>,
    #[serde(default)]
    pub max_lifetime_seconds: Option<u64>,
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub cache_size: Option<usize>,
    #[serde(default)]
    pub signature_verifier: Option<RawVerifier>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawVerifier {
    Auto,
    PureRust,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawRequire {
    Any,
    Jwt,
    X509,
    Both,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    pub api: Api,
    #[serde(rename = "match")]
    pub match_: RawMatch,
    pub credential: RawCredential,
    #[serde(default)]
    pub headers: Option<serde_json::Map<String, Value>>,
    /// azure_openai: deployment name → the model it serves.
    #[serde(default)]
    pub deployments: Option<serde_json::Map<String, Value>>,
    /// vertex: the Google Cloud project every request must name.
    #[serde(default)]
    pub project: Option<String>,
    /// vertex: the locations requests may name (absent: any).
    #[serde(default)]
    pub locations: Option<Vec<String>>,
    /// openai apis: ask streamed responses for their usage.
    #[serde(default)]
    pub include_usage: Option<bool>,
    /// Put the workload's identity where the provider records end users.
    #[serde(default)]
    pub identity_to_provider: Option<RawEndUser>,
    /// mcp: the key sessions are bound to their workload with.
    #[serde(default)]
    pub session_key: Option<RawSessionKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessionKey {
    pub env: String,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawEndUser {
    SpiffeId,
    Hash,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    #[serde(default)]
    pub authorities: Option<Vec<String>>,
    #[serde(default)]
    pub path_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawCredential {
    ApiKey {
        env: String,
        #[serde(default)]
        header: Option<String>,
        #[serde(default)]
        prefix: Option<String>,
    },
    None {},
    MintedJwt(serde_json::Map<String, Value>),
    TokenExchange(serde_json::Map<String, Value>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub id: String,
    pub effect: RawEffect,
    pub workloads: Vec<String>,
    pub providers: Vec<String>,
    /// Absent in a rule that names only what an MCP server offers.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// MCP servers: tool names, argument constraints (tool pattern →
    /// argument → patterns), resource URIs, prompt names, other methods.
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    #[serde(default)]
    pub arguments: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub resources: Option<Vec<String>>,
    #[serde(default)]
    pub prompts: Option<Vec<String>>,
    #[serde(default)]
    pub mcp: Option<Vec<String>>,
    #[serde(default)]
    pub endpoints: Option<Vec<String>>,
    #[serde(default)]
    pub limits: Option<RawRuleLimits>,
    #[serde(default)]
    pub when: Option<Value>,
    /// This rule's prompt-guard action, over the global one.
    #[serde(default)]
    pub prompt_guard: Option<RawGuardAction>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawEffect {
    Allow,
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuleLimits {
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub stream: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    #[serde(default)]
    pub prompt: Option<RawPromptAudit>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawPromptAudit {
    None,
    Sha256,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    #[serde(default)]
    pub token_cache_size: Option<u64>,
}
