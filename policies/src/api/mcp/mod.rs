//! MCP servers (the Model Context Protocol's Streamable HTTP transport):
//! one JSON-RPC message per `POST`, a handshake-era session's server
//! stream on `GET`, its end on `DELETE` (docs/mcp.md).
//!
//! What is read of a message ([`message`]), how a server's session id is
//! bound to the workload that opened it ([`session`]) and how listings are
//! cut down ([`listing`]) live beside this spec.

pub mod listing;
pub mod message;
pub mod session;

use serde_json::{json, Value};

use super::spec::{self, BodyFormat, Endpoint, ModelAt, Spec, StreamAt, StreamEvent, Usage, NO_ENDPOINT};

pub static SPEC: Spec = Spec {
    name: "mcp",
    endpoints: ENDPOINTS,
    sdk_key_headers: &[],
    signature_schemes: &[],
    key_header: ("authorization", "Bearer "),
    required_headers: &[],
    account_headers: &[],
    error_body,
    error_headers: spec::no_headers,
    usage: no_usage,
    listing: spec::Listing::Data,
    model_name: spec::same_name,
    encoded_segment: None,
    resolve: spec::model_itself,
    model_headers: &[],
    decode_model: spec::verbatim,
    deployments: None,
    scope: None,
    federation: None,
    base_model: spec::no_spelling,
    stream_event: no_event,
};

/// The MCP endpoint below the provider's path prefix (the official SDKs'
/// default path).
pub const PATH: &str = "/mcp";

static ENDPOINTS: &[Endpoint] = &[
    Endpoint { method: "POST", path: PATH, body: BodyFormat::Json, model: ModelAt::Message, ..NO_ENDPOINT },
    Endpoint {
        method: "GET",
        path: PATH,
        body: BodyFormat::None,
        model: ModelAt::Message,
        stream: StreamAt::Always,
        ..NO_ENDPOINT
    },
    Endpoint { method: "DELETE", path: PATH, body: BodyFormat::None, model: ModelAt::Message, ..NO_ENDPOINT },
];

/// The headers a server's session travels in, each way.
pub const SESSION_HEADER: &str = "mcp-session-id";
/// The 2026-07-28 revision's routing headers: they must agree with the body.
pub const METHOD_HEADER: &str = "mcp-method";
pub const NAME_HEADER: &str = "mcp-name";
pub const PARAM_HEADER_PREFIX: &str = "mcp-param-";
pub const VERSION_HEADER: &str = "mcp-protocol-version";
/// SSE resumption: the server replays a stream's events after this one.
pub const RESUME_HEADER: &str = "last-event-id";

/// Protocol revisions without sessions: each request stands alone.
const STATELESS_REVISIONS: &[&str] = &["2026-07-28"];

/// `handshake` or `stateless`, from the request's protocol version header
/// (none: a handshake, or its first message).
pub fn era(version: Option<&str>) -> &'static str {
    match version {
        Some(v) if STATELESS_REVISIONS.contains(&v.trim()) => "stateless",
        _ => "handshake",
    }
}

/// A JSON-RPC error, as an MCP server answers one: the code by reason
/// (`-32600` an invalid message, `-32601` a method no rule allows,
/// `-32001` every other refusal) and the audit reason in `data`. The `id`
/// is the request's, set by [`with_id`] once the message was read.
fn error_body(_status: u16, code: &str, message: &str) -> Value {
    let rpc = match code {
        "invalid_body" | "body_too_large" | "unsupported_encoding" => -32600,
        "method_not_allowed" => -32601,
        _ => -32001,
    };
    json!({ "jsonrpc": "2.0", "id": null, "error": { "code": rpc, "message": message, "data": { "reason": code } } })
}

/// An error body of this api with the request's JSON-RPC `id`.
pub fn with_id(body: &[u8], id: &Value) -> Vec<u8> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut o)) => {
            o.insert("id".into(), id.clone());
            Value::Object(o).to_string().into_bytes()
        }
        _ => body.to_vec(),
    }
}

fn no_usage(_body: &Value) -> Option<Usage> {
    None
}

fn no_event<'v>(_event: &'v Value, _frame: Option<&str>) -> Option<StreamEvent<'v>> {
    None
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
