//! The audit record (SPEC §6): one per request, serialized once when Envoy
//! logs the request. It never holds a token, a key or a prompt: a JWT-SVID
//! appears as its `kid`, `exp` and `jti`, a prompt as its length and SHA-256.
//! Only [`crate::audit::recorder::Recorder`] writes it.

use serde::Serialize;

use crate::api::Usage;
use crate::reason::Verdict;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Record {
    pub time: String,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    /// `allow` or `deny`; in audit mode a request that would be denied is
    /// `allow` with `would_deny: true`.
    pub decision: &'static str,
    pub mode: &'static str,
    /// The policy that decided: its `revision` and the SHA-256 of its
    /// text; `null` when the filter had no valid configuration.
    pub policy: Option<PolicyRef>,
    pub would_deny: bool,
    pub reason: Verdict,
    pub detail: Option<String>,
    pub rule: Option<String>,
    /// The rule conditions evaluated for this request, each with its
    /// result; `null` when no rule with conditions was considered.
    pub conditions: Option<Vec<crate::decision::conditions::Evaluated>>,
    pub workload: Option<Workload>,
    pub provider: Option<String>,
    pub api: Option<&'static str>,
    pub endpoint: Option<String>,
    pub model: Option<String>,
    /// The name the request selected `model` by, when the provider maps it
    /// (an Azure deployment, a Bedrock inference profile or ARN).
    pub requested_model: Option<String>,
    pub response_model: Option<String>,
    pub stream: Option<bool>,
    pub credential: Option<CredentialUsed>,
    pub prompt: Option<Prompt>,
    /// What the prompt guard found (per detector) and did; `null` when no
    /// guard ran.
    pub prompt_guard: Option<crate::body::guard::Findings>,
    /// The status the client received, whether from upstream or the filter.
    pub status: Option<u16>,
    pub upstream: Option<Upstream>,
    pub usage: Option<Usage>,
    pub usage_complete: Option<bool>,
    pub client: Client,
    /// MCP servers only: the JSON-RPC message the record is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpMessage>,
    /// Under a budget with a price for the model: what the call cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Under budgets: each budget drawn on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<BudgetDrawn>,
}

/// Which configuration decided a request.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PolicyRef {
    pub revision: Option<String>,
    pub digest: String,
}

/// One budget a request drew on: what it reserved, what it was charged,
/// what was left (`null` fields: the budget does not count that).
#[derive(Clone, Debug, Default, Serialize)]
pub struct BudgetDrawn {
    pub id: String,
    pub scope: &'static str,
    pub window_end: String,
    pub reserved: Spend,
    pub charged: Spend,
    pub remaining: Spend,
    /// `local_share` when counted in this gateway's share because the
    /// ledger did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counted: Option<&'static str>,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Spend {
    pub tokens: Option<u64>,
    pub usd: Option<f64>,
}

/// An MCP message as the record shows it: what it asked for, never its
/// arguments (their digest) or its session id (its digest).
#[derive(Clone, Debug, Default, Serialize)]
pub struct McpMessage {
    pub method: Option<String>,
    /// `request`, `notification`, `response` (the client answering the
    /// server), `stream` (a session's `GET`), `end_session` (`DELETE`).
    pub kind: Option<&'static str>,
    /// The JSON-RPC `id` as sent (a string or an integer).
    pub id: Option<serde_json::Value>,
    pub tool: Option<String>,
    pub resource: Option<String>,
    pub prompt: Option<String>,
    pub arguments_sha256: Option<String>,
    /// SHA-256 of the session id the client presented.
    pub session: Option<String>,
    /// `handshake` (sessions, 2025 revisions) or `stateless` (2026-07-28).
    pub era: Option<&'static str>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Workload {
    pub spiffe_id: String,
    pub trust_domain: String,
    pub svid: &'static str,
    pub jwt: Option<JwtInfo>,
    pub x509: Option<X509Info>,
}

/// An X.509-SVID as the record shows it: its serial and validity (Unix
/// seconds), never the certificate.
#[derive(Clone, Debug, Default, Serialize)]
pub struct X509Info {
    pub serial: String,
    pub not_before: u64,
    pub not_after: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct JwtInfo {
    pub kid: Option<String>,
    pub exp: u64,
    pub jti: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CredentialUsed {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub name: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Prompt {
    pub bytes: usize,
    pub sha256: Option<String>,
}

impl Prompt {
    pub fn of(body: &[u8], digest: bool) -> Prompt {
        let sha256 = digest.then(|| crate::util::digest::sha256_hex(body));
        Prompt { bytes: body.len(), sha256 }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Upstream {
    pub status: Option<u16>,
    pub duration_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Client {
    pub address: Option<String>,
    /// True when Envoy took `address` from a header the caller can set (it
    /// reports port 0 then): it is no proof of where the request came from.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub from_header: bool,
}

impl Client {
    /// The client as Envoy reports its address (`ip:port`).
    pub fn at(address: Option<&str>) -> Client {
        Client {
            address: address.map(crate::util::text::bounded),
            from_header: address.is_some_and(crate::decision::conditions::is_forwarded_address),
        }
    }
}

impl Record {
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and options always serializes.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
