//! An MCP server's request (docs/mcp.md): its session checked against the
//! calling workload on the headers; then its one JSON-RPC message read
//! strictly, its routing headers checked against the body, and what it
//! asks for — a tool and its arguments, a resource, a prompt, a method —
//! decided, guarded and recorded.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use crate::api::mcp::message::{self, Ask, Message};
use crate::api::mcp::{self, session};
use crate::audit::record::McpMessage;
use crate::audit::recorder::Recorder;
use crate::body::Edit;
use crate::config::{Mode, Provider, Rule};
use crate::decision::tools;
use crate::flow::decide;
use crate::flow::events::{Env, RequestHead};
use crate::flow::request::{header, Next, Request};
use crate::identity::spiffe::SpiffeId;
use crate::reason::{Denial, Reason};
use crate::util::digest::{hex, sha256_hex};
use crate::util::text::bounded;

fn invalid(detail: &str, message: impl Into<String>) -> Denial {
    Denial::new(Reason::InvalidBody, message).with_detail(detail)
}

/// The session a request to an MCP server presents, on any path: checked
/// against the calling workload (another's is refused in every mode, a
/// bound one goes on as the server's own id). `Some`: refused.
pub fn bind_session(env: &Env<'_>, head: &RequestHead<'_>, req: &mut Request, rec: &mut Recorder) -> Option<Next> {
    let (Some(provider), Some(identity)) = (req.provider(env.policy), req.identity.clone()) else {
        return Some(Next::Refuse(invalid("unclassified", "the request could not be classified")));
    };
    let mut record =
        McpMessage { era: Some(mcp::era(header(head.headers, mcp::VERSION_HEADER))), ..Default::default() };
    let presented: Vec<&str> =
        head.headers.iter().filter(|(k, _)| k == mcp::SESSION_HEADER).map(|(_, v)| v.as_str()).collect();
    if let Some(first) = presented.first() {
        record.session = Some(sha256_hex(first.as_bytes()));
    }
    rec.mcp(record);
    let bound = match presented.as_slice() {
        [] => Ok(None),
        [one] => unwrap_session(provider, &identity, one).map(Some),
        _ => Err(invalid("session_repeated", "the request names more than one session")),
    };
    match bound {
        Ok(session) => {
            req.mcp.session = session;
            None
        }
        // Another workload's session, in every mode.
        Err(d) => Some(Next::Refuse(d)),
    }
}

/// What can be decided of an MCP endpoint's request before the body: a
/// session's stream (`GET`) and its end (`DELETE`). `None`: read the body
/// (a `POST`).
pub fn admit(
    env: &Env<'_>,
    head: &RequestHead<'_>,
    end_of_stream: bool,
    req: &mut Request,
    rec: &mut Recorder,
) -> Option<Next> {
    let kind = match head.method {
        "GET" => "stream",
        "DELETE" => "end_session",
        _ => return None,
    };
    rec.mcp_kind(kind);
    if req.mcp.session.is_none() {
        return Some(Next::Deny(if kind == "stream" {
            Denial::new(
                Reason::EndpointNotAllowed,
                "a GET without a session is the HTTP+SSE transport (MCP 2024-11-05), which modelgate does not \
                 carry: use the Streamable HTTP transport",
            )
            .with_detail("http_sse_transport")
        } else {
            invalid("session_missing", "DELETE ends a session: it needs the Mcp-Session-Id header")
        }));
    }
    if !end_of_stream {
        return Some(Next::Deny(invalid("unexpected_body", "a GET or DELETE to an MCP server has no body")));
    }
    // No message: nothing a routing header could mirror.
    if head.headers.iter().any(|(k, _)| is_routing_header(k)) {
        return Some(Next::Deny(invalid(
            "header_mismatch",
            "a GET or DELETE carries no message: it has no Mcp-Method, Mcp-Name or Mcp-Param header",
        )));
    }
    // A session's own stream and its end: any workload a rule lets reach
    // the server, for its own session.
    Some(decide_ask(env, &Ask::Answer, req, rec).map_or_else(Next::Deny, |_| Next::Forward(Vec::new())))
}

/// The session `presented` as the server's id, when `identity` was handed it.
fn unwrap_session(provider: &Provider, identity: &SpiffeId, presented: &str) -> Result<String, Denial> {
    let key = provider.session_key.as_ref().map(|k| k.0.as_slice()).unwrap_or_default();
    match session::unwrap(key, &provider.name, identity.as_str(), presented) {
        Some(id) if !key.is_empty() => Ok(id.to_string()),
        _ => Err(Denial::new(
            Reason::SessionNotFound,
            format!("no session of {identity} has this id at provider {:?}: start a new session", provider.name),
        )
        .with_detail("session_not_bound")),
    }
}

/// The whole message is here: decide.
pub fn decide(env: &Env<'_>, body: &[u8], req: &mut Request, rec: &mut Recorder) -> Next {
    let message = match message::read(body) {
        Ok(m) => m,
        Err(d) => return Next::Deny(d),
    };
    req.mcp.rpc_id = message.id.clone();
    rec.mcp_message(&message, message.arguments_raw.and_then(|(s, e)| body.get(s..e)).map(sha256_hex));
    if let Err(d) = routing_headers(&req.headers, &message) {
        return Next::Deny(d);
    }
    let rule = match decide_ask(env, &message.ask, req, rec) {
        Ok(rule) => rule,
        Err(d) => return Next::Deny(d),
    };
    // What else the message makes the server run (a completion's prompt
    // or resource) must be allowed too.
    for other in &message.refers_to {
        if let Err(d) = decide_ask(env, other, req, rec) {
            return Next::Deny(d);
        }
        rec.allowed_by(&rule.id);
    }
    // The guard reads the whole message: what the server will read.
    if let Some(endpoint) = req.endpoint {
        if let Err(d) = decide::guard(env.policy, rule, endpoint, req.content_type.as_deref(), body, rec) {
            return Next::Deny(d.with_rule(rule.id.clone()));
        }
    }
    let mut edits = Vec::new();
    if env.policy.mode == Mode::Enforce {
        req.mcp.listing = message.listing();
        // A listing goes on under an id of the gateway's: a server that
        // routes answers by id (the SDK's does) cannot be made to deliver
        // the uncut listing to another request that reuses the client's id.
        if let (Some(_), Some((start, end)), Some(id)) = (req.mcp.listing, message.id_span, &message.id) {
            let ours = format!("modelgate-{}", hex(&(env.random)()));
            edits.push(Edit {
                at: start,
                remove: end - start,
                insert: Value::String(ours.clone()).to_string().into_bytes(),
            });
            req.mcp.listing_id = Some((ours, id.clone()));
        }
    }
    Next::Forward(edits)
}

/// Decides `ask` for the request's workload: the allow rule that decided.
fn decide_ask<'p>(env: &Env<'p>, ask: &Ask, req: &Request, rec: &mut Recorder) -> Result<&'p Rule, Denial> {
    let policy = env.policy;
    let (Some(provider), Some(identity)) = (req.provider(policy), req.identity.as_ref()) else {
        return Err(invalid("unclassified", "the request could not be classified"));
    };
    let facts = req.facts(env.now_ms, rec.client_address());
    let mut seen = Vec::new();
    let decided = tools::decide_message(&policy.rules, identity, &provider.name, ask, &facts, &mut seen);
    rec.conditions(seen);
    let rule = decided?;
    rec.allowed_by(&rule.id);
    Ok(rule)
}

/// The 2026-07-28 revision's routing headers: a server may route on them,
/// so each must say what the body says.
fn routing_headers(headers: &[(String, String)], message: &Message) -> Result<(), Denial> {
    let mismatch =
        |name: &str| invalid("header_mismatch", format!("the {name} header does not say what the message says"));
    let values = |name: &'static str| headers.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str());
    for v in values(mcp::METHOD_HEADER) {
        if Some(v) != message.method.as_deref() {
            return Err(mismatch("Mcp-Method"));
        }
    }
    for v in values(mcp::NAME_HEADER) {
        if decode_header(v).as_deref() != message.named() {
            return Err(mismatch("Mcp-Name"));
        }
    }
    let arguments = match &message.ask {
        Ask::Tool { arguments, .. } => arguments.as_ref(),
        _ => None,
    };
    // `Mcp-Param-<Name>` mirrors the argument of that name (any case,
    // `-` for `_`): it must hold that argument's value, as the body does.
    for (name, v) in headers.iter().filter(|(k, _)| k.starts_with(mcp::PARAM_HEADER_PREFIX)) {
        let said = decode_header(v);
        let suffix = &name[mcp::PARAM_HEADER_PREFIX.len()..];
        let same_name = |arg: &str| arg.len() == suffix.len() && arg.replace('_', "-").eq_ignore_ascii_case(suffix);
        let in_body = arguments.and_then(|a| a.iter().find(|(k, _)| same_name(k))).is_some_and(|(_, arg)| match arg {
            Value::String(s) => Some(s.as_str()) == said.as_deref(),
            Value::Number(_) | Value::Bool(_) => said.as_deref() == Some(arg.to_string().as_str()),
            _ => false,
        });
        if !in_body {
            return Err(mismatch(&bounded(name)));
        }
    }
    Ok(())
}

/// A header the 2026-07-28 revision routes on.
fn is_routing_header(name: &str) -> bool {
    name == mcp::METHOD_HEADER || name == mcp::NAME_HEADER || name.starts_with(mcp::PARAM_HEADER_PREFIX)
}

/// A routing header's value: as sent, or the text of its `=?base64?…?=` form.
fn decode_header(value: &str) -> Option<String> {
    match value.strip_prefix("=?base64?").and_then(|v| v.strip_suffix("?=")) {
        Some(encoded) => STANDARD.decode(encoded).ok().and_then(|b| String::from_utf8(b).ok()),
        None => Some(value.to_string()),
    }
}
