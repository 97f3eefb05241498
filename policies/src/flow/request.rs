//! What the flow knows of one request so far, and what a step decides.
//! Every step reads and fills this; none of them knows the phases.

use std::rc::Rc;

use crate::api::{Api, Captures, Endpoint};
use crate::body::Edit;
use crate::config::{Policy, Provider};
use crate::decision::conditions::{Facts, MetadataValue};
use crate::identity::spiffe::SpiffeId;
use crate::identity::svid::jwt::JwtSvid;
use crate::identity::svid::x509::X509Svid;
use crate::reason::Denial;

#[derive(Debug, Default)]
pub struct Request {
    /// The provider's index in the policy (the policy outlives no event).
    provider: Option<usize>,
    pub api: Option<Api>,
    pub endpoint: Option<&'static Endpoint>,
    pub captures: Captures,
    pub identity: Option<SpiffeId>,
    /// The SVIDs that identified the caller, for rule conditions.
    pub svids: (Option<Rc<JwtSvid>>, Option<Rc<X509Svid>>),
    /// The dynamic metadata values rule conditions read.
    pub metadata: Vec<MetadataValue>,
    pub content_type: Option<String>,
    pub headers: Vec<(String, String)>,
    /// The `:path` to forward, when its query must change (`None`: as sent).
    pub forward_path: Option<String>,
    /// The model the request names (exact, for credentials bound to it).
    pub model: Option<String>,
    /// A model listing: its response is filtered to what the workload may call.
    pub listing: bool,
    /// An MCP server's request: its message id, session, listing.
    pub mcp: McpRequest,
    /// The budgets an allowed request draws on, and its reservation.
    pub budget: Option<crate::budget::Plan>,
}

/// What the flow keeps of an MCP request.
#[derive(Debug, Default)]
pub struct McpRequest {
    /// The message's `id`: a refusal answers with it.
    pub rpc_id: Option<serde_json::Value>,
    /// The server's session id, unwrapped, to forward.
    pub session: Option<String>,
    /// The listing the answer is cut down to.
    pub listing: Option<crate::api::mcp::message::Listed>,
    /// The id the listing went on under, and the client's own (restored
    /// in the answer).
    pub listing_id: Option<(String, serde_json::Value)>,
}

/// What a step decided; the driver turns it into the next [`crate::flow::Step`].
#[derive(Debug)]
pub enum Next {
    /// Refused with a local reply, in every mode.
    Refuse(Denial),
    /// A policy denial: refused in enforce mode; in audit mode recorded
    /// and forwarded.
    Deny(Denial),
    /// Allowed: forward with these body edits (enforce mode applies them).
    Forward(Vec<Edit>),
    /// Hold the headers while the body arrives.
    ReadBody,
    /// The headers ended the request: decide on an empty body.
    DecideEmpty,
}

impl Request {
    /// The provider the request was matched to.
    pub fn provider<'p>(&self, policy: &'p Policy) -> Option<&'p Provider> {
        self.provider.and_then(|i| policy.providers.get(i))
    }

    pub fn set_provider(&mut self, index: usize, provider: &Provider) {
        self.provider = Some(index);
        self.api = Some(provider.api);
    }

    /// What rule conditions judge this request by.
    pub fn facts<'a>(&'a self, now_ms: u64, peer: Option<&'a str>) -> Facts<'a> {
        Facts {
            now_secs: now_ms / 1000,
            peer,
            jwt: self.svids.0.as_deref(),
            x509: self.svids.1.as_deref(),
            metadata: &self.metadata,
        }
    }
}

pub fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}
