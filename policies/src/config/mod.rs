//! Configuration (SPEC §2), parsed in two stages: [`raw`] reads the JSON as
//! written, [`Policy::from_json`] compiles it, checking every value and
//! cross-reference. Every error names the JSON path of the bad field.

pub mod budget;
mod budgets;
mod compile;
mod credentials;
pub mod error;
mod header;
mod patterns;
pub mod provider;
mod providers;
pub mod raw;
pub mod svid;
pub mod window;

use crate::api::Api;
use crate::identity::spiffe::{ModelPattern, SpiffeId, WorkloadPattern};
pub use crate::identity::svid::bundle::Format;
pub use error::ConfigError;
pub use provider::{Credential, EndUserName, Provider, Secret, SessionKey, Subject};
pub use providers::ProviderSet;
pub use svid::{BundleEndpoint, Carrier, JwtSvidConfig, TrustDomainConfig, VerifierChoice};

/// The compiled configuration every request is decided against.
#[derive(Debug)]
pub struct Policy {
    pub mode: Mode,
    pub trust_domains: Vec<TrustDomainConfig>,
    pub jwt_svid: JwtSvidConfig,
    pub identity: IdentityConfig,
    pub providers: Vec<Provider>,
    pub rules: Vec<Rule>,
    pub prompt_audit: PromptAudit,
    pub max_body_bytes: u64,
    /// The prompt-leak guard, when configured.
    pub prompt_guard: Option<crate::body::guard::Guard>,
    /// The SHA-256 (hex) of the configuration text: a token obtained under
    /// one configuration is never served under another.
    pub generation: String,
    /// The operator's `revision` label, if any: records carry it with
    /// [`Policy::generation`].
    pub revision: Option<String>,
    /// Tokens a VM keeps, and shared-data slots for them per configuration.
    pub token_cache_size: usize,
    /// SPEC §9: budgets, prices, the ledger.
    pub budgets: budget::Budgets,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    /// Decide and record everything, but forward denied requests too.
    Audit,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

/// Which SVIDs identify a caller, and which it must present.
#[derive(Debug)]
pub struct IdentityConfig {
    pub x509: X509Source,
    pub require: Require,
}

/// Where an X.509-SVID comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum X509Source {
    Off,
    /// The peer certificate of the downstream mTLS connection, as Envoy
    /// verified it.
    Connection,
    /// The last `x-forwarded-client-cert` element, appended by the proxy
    /// whose SPIFFE ID is `trusted_hop`.
    Xfcc {
        trusted_hop: SpiffeId,
    },
}

/// Which SVIDs a request must present. When both are present they must
/// name the same SPIFFE ID, whatever this says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Require {
    Any,
    Jwt,
    X509,
    Both,
}

#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub effect: Effect,
    pub workloads: Vec<WorkloadPattern>,
    pub providers: ProviderSet,
    pub models: Vec<ModelPattern>,
    /// At an MCP server: the tools, resources, prompts and methods the rule
    /// names (docs/mcp.md).
    pub mcp: crate::decision::grants::McpGrants,
    /// Endpoints outside the api's table this allow rule opens (files,
    /// batches, …): requests to them name no model modelgate can decide.
    pub endpoints: Vec<EndpointPattern>,
    pub limits: RuleLimits,
    /// The rule's `when`: it matches only while every condition holds.
    pub conditions: crate::decision::conditions::Conditions,
    /// The prompt guard for requests this rule allows: `None` follows the
    /// guard's own action, `Some(None)` is off.
    pub prompt_guard: Option<Option<crate::body::guard::Action>>,
}

/// An extra endpoint an allow rule opens: a method (or any) and a path
/// pattern whose `*` is one whole segment and whose trailing `**` is one
/// or more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointPattern {
    pub method: Option<String>,
    pub segments: Vec<String>,
}

impl EndpointPattern {
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        let Some(rest) = path.strip_prefix('/') else { return false };
        let mut got = rest.split('/');
        for (i, want) in self.segments.iter().enumerate() {
            if want == "**" && i + 1 == self.segments.len() {
                return got.next().is_some_and(|s| !s.is_empty());
            }
            match got.next() {
                Some(g) if !g.is_empty() && (want == "*" || want == g) => {}
                _ => return false,
            }
        }
        got.next().is_none()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleLimits {
    pub max_tokens: Option<u64>,
    pub stream: bool,
}

impl Default for RuleLimits {
    fn default() -> Self {
        RuleLimits { max_tokens: None, stream: true }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptAudit {
    None,
    Sha256,
}

impl Policy {
    /// The policy in `text` as the filter would load it, for checking and
    /// explaining where its secrets are not at hand (the CLI, the browser
    /// explorer): a variable `env` does not know stands in as a
    /// placeholder key, or as a throwaway signing key where one is parsed.
    pub fn for_checking(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Policy, ConfigError> {
        let doc: serde_json::Value = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
        let mut keys: Vec<String> = Vec::new();
        loop {
            let lookup = |name: &str| {
                env(name).or_else(|| {
                    Some(if keys.iter().any(|k| k == name) {
                        CHECK_KEY.to_string()
                    } else {
                        "modelgate-check-placeholder-of-32-bytes".into()
                    })
                })
            };
            match Policy::from_json(text.as_bytes(), &lookup) {
                // A signing key the placeholder cannot be: again, with a key.
                Err(e) if e.path.ends_with(".env") => {
                    let var = value_at(&doc, &e.path).and_then(serde_json::Value::as_str).map(str::to_string);
                    match var {
                        Some(var) if env(&var).is_none() && !keys.contains(&var) => keys.push(var),
                        _ => return Err(e),
                    }
                }
                other => return other,
            }
        }
    }

    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// The dynamic metadata values some rule's conditions read (namespace,
    /// key): the filter reads these, and only these, per request.
    pub fn metadata_keys(&self) -> Vec<(String, String)> {
        let mut keys: Vec<(String, String)> = Vec::new();
        for m in self.rules.iter().flat_map(|r| &r.conditions.metadata) {
            let key = (m.namespace.clone(), m.key.clone());
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }
}

/// A P-256 key that stands in for signing keys in [`Policy::for_checking`]
/// (never a secret: it lets a policy that names a key be checked).
const CHECK_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAG1vZGVsZ2F0ZS1j\naGVjay1wbGFjZWhvbGRlci1rZXmhRANCAASHMA7jXBjiVznffOHctpZsyrkuiWxj\n8I5d+OzVPINJR8JI8DnIOC5qHP+EpK0pS5+eizZdiYRvZyu7Yc/MvG0N\n-----END PRIVATE KEY-----";

/// The value at a config error's path (`providers[2].credential.mint.env`).
fn value_at<'v>(doc: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    let mut v = doc;
    for part in path.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        if !name.is_empty() {
            v = v.get(name)?;
        }
        if let Some(i) = index {
            v = v.get(i)?;
        }
    }
    Some(v)
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
