//! What the filter and the flow say to each other: the request as the
//! filter sees it, the events it reports, the steps it carries out, and
//! what every event is decided against.

use std::rc::Rc;

use crate::config::Policy;
use crate::credential::callout::{CalloutRequest, CalloutResult};
use crate::credential::token_exchange::TokenCache;
use crate::credential::Rewrite;
use crate::decision::conditions::MetadataValue;
use crate::flow::memory::ResponseMemory;
use crate::identity::svid::{SignatureVerifier, SvidCache, TrustStore};
use crate::identity::Peer;
use crate::reason::LocalReply;

/// The request as the filter sees it when its headers arrive.
#[derive(Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// `:path`, query included.
    pub path: &'a str,
    pub authority: &'a str,
    /// Regular headers (no pseudo-headers), names in lower case, repeats kept.
    pub headers: &'a [(String, String)],
    pub request_id: Option<&'a str>,
    pub client_address: Option<&'a str>,
    /// The mTLS peer certificate, when the policy reads X.509-SVIDs.
    pub peer: Option<&'a dyn Peer>,
    /// The dynamic metadata values the policy's conditions read
    /// ([`crate::Policy::metadata_keys`]), as the host serialized them.
    pub metadata: &'a [MetadataValue],
}

/// What Envoy knows when it logs the request.
#[derive(Clone, Debug, Default)]
pub struct LogInfo {
    /// The response code the client received, if any.
    pub status: Option<u16>,
    /// `x-request-id`, for requests whose headers modelgate never saw.
    pub request_id: Option<String>,
    /// Envoy's response code details (`via_upstream`, `path_normalization_failed`, …).
    pub details: Option<String>,
    pub client_address: Option<String>,
}

/// Reads a body the host holds, only when the engine needs its bytes.
pub trait BodySource {
    fn read(&self) -> Vec<u8>;
}

impl BodySource for &[u8] {
    fn read(&self) -> Vec<u8> {
        self.to_vec()
    }
}

/// What happened, as the filter tells the engine.
pub enum Event<'a> {
    RequestHeaders {
        head: RequestHead<'a>,
        end_of_stream: bool,
    },
    /// `size` bytes of request body are held so far; `body` reads them all.
    RequestBody {
        size: usize,
        end_of_stream: bool,
        body: &'a dyn BodySource,
    },
    /// Trailers ended the request: the body (`body`) is complete.
    RequestTrailers {
        body: &'a dyn BodySource,
    },
    /// The answer to the [`Step::Callout`] this request asked for.
    Callout(CalloutResult),
    /// Another request fetched the credential this one waited for (the same
    /// key of a [`Step::Callout`]): the token cache has it, or its failure.
    CredentialShared,
    /// The host never delivered the body of a held request in time: Envoy
    /// does not hold requests for this filter (a misdeployment).
    HoldExpired,
    /// The host refused to carry out the last step (a header or body
    /// change): the request must not go on half rewritten.
    StepFailed,
    ResponseHeaders {
        status: Option<u16>,
        content_type: Option<&'a str>,
        /// An MCP server's `mcp-session-id` (read only when
        /// [`crate::Flow::reads_session`] says so).
        session: Option<&'a str>,
    },
    /// `size` bytes of response body: the newest chunk, or all of it held
    /// so far when the last step was [`Step::Hold`].
    ResponseBody {
        size: usize,
        end_of_stream: bool,
        body: &'a dyn BodySource,
    },
    /// Envoy logs the request: the audit record is final.
    Log(LogInfo),
}

/// What the filter does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Let the request (or response) go on, with these changes.
    Continue(Rewrite),
    /// Keep holding: wait for more body (or for a call-out's answer).
    Hold,
    /// Send this reply instead; nothing goes upstream.
    Reply(LocalReply),
    /// Make this call, keep holding, and deliver its answer as
    /// [`Event::Callout`]. Requests whose calls have the same `key` fetch
    /// the same credential: one call may serve them all, the others then
    /// getting [`Event::CredentialShared`].
    Callout { key: String, call: CalloutRequest },
    /// Make this call (the budget ledger), keep holding, and deliver its
    /// answer as [`Event::Callout`]. Never shared with another request.
    Call(CalloutRequest),
    /// Reset the response: what is left of it must not reach the client.
    ResetResponse,
    /// The audit record, one JSON line (the answer to [`Event::Log`]).
    Audit(String),
}

/// Where a request is. Every event is decided by the phase it arrives in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    /// No headers yet.
    #[default]
    Start,
    /// Identity checked; headers held while the body arrives.
    ReadingBody,
    /// Allowed; held while the budget ledger reserves its global budgets.
    AwaitingBudget,
    /// Allowed; held while a call-out fetches the credential.
    AwaitingCredential,
    /// Gone on upstream; the response is followed for the record.
    Forwarded,
    /// Refused with a local reply; nothing went upstream.
    Replied,
}

/// What every event is decided against: the policy, and what the VM
/// shares among its requests.
pub struct Env<'a> {
    pub policy: &'a Policy,
    pub verifier: &'a dyn SignatureVerifier,
    pub now_ms: u64,
    pub memory: &'a Rc<ResponseMemory>,
    pub svids: &'a SvidCache,
    pub trust: &'a TrustStore,
    pub tokens: &'a TokenCache,
    /// 16 fresh random bytes (a minted JWT's `jti`, a reservation's id).
    pub random: &'a dyn Fn() -> [u8; 16],
    /// Envoy's shared data, where gateway budgets are counted.
    pub shared: &'a dyn crate::budget::slots::SharedStore,
}
