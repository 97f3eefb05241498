//! The response: its usage read as it passes (JSON held up to a bound, a
//! stream event by event), a model listing cut down to what the workload
//! may call.

use std::rc::Rc;

use serde_json::Value;

use crate::api::mcp::message::{Ask, Listed};
use crate::api::usage::{Framing, StreamUsage};
use crate::api::{self, mcp, Api};
use crate::audit::recorder::Recorder;
use crate::body::Edit;
use crate::credential::Rewrite;
use crate::decision;
use crate::decision::tools;
use crate::flow::events::{BodySource, Env, Step};
use crate::flow::memory::{ResponseMemory, MAX_LISTING_BYTES, MAX_RESPONSE_HELD};
use crate::flow::request::Request;

/// What is read of the response.
#[derive(Debug, Default)]
pub enum Response {
    #[default]
    Ignored,
    /// A JSON response held (a copy, as it passes) to read its usage;
    /// `taken` bytes of `memory` are counted against the VM.
    Usage { held: Vec<u8>, memory: Option<Rc<ResponseMemory>>, taken: usize, overflow: bool },
    /// A stream read for its usage as it passes (nothing held but a
    /// partial event); `taken` bytes of `memory` are counted against the VM.
    Stream { usage: Box<StreamUsage>, memory: Rc<ResponseMemory>, taken: usize },
    /// A listing held whole by the host, to be filtered.
    Listing,
    /// A listing too large to filter: replaced by an empty one.
    ListingDropped,
    /// An MCP server's listing held whole by the host (`sse`: as an event
    /// stream), to be cut down.
    McpListing { listed: Listed, sse: bool },
    /// One too large to filter: replaced by a JSON-RPC error.
    McpListingDropped,
}

impl Drop for Response {
    /// Whatever ends the request, its held bytes go back to the VM.
    fn drop(&mut self) {
        self.release();
    }
}

impl Response {
    fn release(&mut self) {
        match self {
            Response::Usage { held, memory, taken, .. } => {
                if let Some(memory) = memory.take() {
                    memory.give_back(*taken);
                }
                *taken = 0;
                *held = Vec::new();
            }
            Response::Stream { usage, memory, taken } => {
                usage.abandon();
                memory.give_back(*taken);
                *taken = 0;
            }
            _ => {}
        }
    }

    /// Whether a stream is being read (its usage is known only at its end).
    pub fn is_stream(&self) -> bool {
        matches!(self, Response::Stream { .. })
    }

    /// The response's headers: what will be read of its body.
    pub fn on_headers(
        &mut self,
        env: &Env<'_>,
        req: &Request,
        rec: &mut Recorder,
        status: Option<u16>,
        content_type: Option<&str>,
        session: Option<&str>,
    ) -> Step {
        rec.upstream(status, env.now_ms);
        if req.api.is_some_and(|a| a.spec().speaks_jsonrpc()) {
            return self.on_mcp_headers(env, req, status, content_type, session);
        }
        if req.listing && status == Some(200) {
            *self = Response::Listing;
            // The body will change; its length is no longer known.
            return Step::Continue(Rewrite { remove_headers: vec!["content-length".into()], ..Default::default() });
        }
        let media = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if media == "application/json" {
            *self = Response::Usage { held: Vec::new(), memory: None, taken: 0, overflow: false };
        } else if let Some(framing) = Framing::of(&media) {
            rec.usage_incomplete();
            *self = Response::Stream {
                usage: Box::new(match req.api {
                    Some(api) => StreamUsage::new(framing, api),
                    None => StreamUsage::by_shape(framing),
                }),
                memory: Rc::clone(env.memory),
                taken: 0,
            };
        }
        Step::Continue(Rewrite::default())
    }

    /// An MCP server's answer: its session bound to the workload, a
    /// listing held to be cut down; nothing else is read.
    fn on_mcp_headers(
        &mut self,
        env: &Env<'_>,
        req: &Request,
        status: Option<u16>,
        content_type: Option<&str>,
        session: Option<&str>,
    ) -> Step {
        let mut rewrite = Rewrite::default();
        if let Some(id) = session {
            let wrapped = match (req.provider(env.policy), &req.identity) {
                (Some(p), Some(identity)) => {
                    p.session_key.as_ref().and_then(|key| mcp::session::wrap(&key.0, &p.name, identity.as_str(), id))
                }
                _ => None,
            };
            match wrapped {
                Some(w) => rewrite.set_headers.push((mcp::SESSION_HEADER.to_string(), w)),
                // A session that cannot be bound never reaches the client.
                None => rewrite.remove_headers.push(mcp::SESSION_HEADER.to_string()),
            }
        }
        // Any success holds the listing (a server's 200, or another 2xx).
        if let (Some(listed), Some(200..=299)) = (req.mcp.listing, status) {
            let media = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            *self = Response::McpListing { listed, sse: media == "text/event-stream" };
            rewrite.remove_headers.push("content-length".into());
        }
        Step::Continue(rewrite)
    }

    /// `size` bytes of response body (`end`: the last).
    pub fn on_body(
        &mut self,
        env: &Env<'_>,
        req: &Request,
        rec: &mut Recorder,
        size: usize,
        end: bool,
        body: &dyn BodySource,
    ) -> Step {
        match self {
            Response::Ignored => Step::Continue(Rewrite::default()),
            Response::Listing if size > MAX_LISTING_BYTES => {
                *self = Response::ListingDropped;
                Step::Continue(Rewrite {
                    body_edits: vec![replace_all(size, api::empty_listing(req.api.unwrap_or(Api::FALLBACK)))],
                    ..Default::default()
                })
            }
            // What is left of a dropped listing is dropped too.
            Response::ListingDropped => {
                Step::Continue(Rewrite { body_edits: vec![replace_all(size, b"")], ..Default::default() })
            }
            Response::McpListing { sse, .. } if size > MAX_LISTING_BYTES => {
                let answer = mcp::listing::unreadable_answer(*sse);
                *self = Response::McpListingDropped;
                Step::Continue(Rewrite { body_edits: vec![replace_all(size, &answer)], ..Default::default() })
            }
            Response::McpListingDropped => {
                Step::Continue(Rewrite { body_edits: vec![replace_all(size, b"")], ..Default::default() })
            }
            Response::McpListing { .. } if !end => Step::Hold,
            Response::McpListing { listed, sse } => {
                let filtered = filter_mcp_listing(env, req, rec, *listed, *sse, &body.read());
                Step::Continue(Rewrite { body_edits: vec![replace_all(size, &filtered)], ..Default::default() })
            }
            Response::Listing if !end => Step::Hold,
            Response::Listing => {
                let filtered = filter_listing(env, req, rec, &body.read());
                Step::Continue(Rewrite { body_edits: vec![replace_all(size, &filtered)], ..Default::default() })
            }
            Response::Stream { usage, memory, taken } => {
                // Room for this chunk, at most; what is not kept goes back.
                if memory.take(size) {
                    *taken += size;
                    usage.feed(&body.read());
                } else {
                    usage.abandon();
                }
                let held = usage.held();
                if *taken > held {
                    memory.give_back(*taken - held);
                    *taken = held;
                }
                if end {
                    self.finish_stream(rec, true);
                }
                Step::Continue(Rewrite::default())
            }
            Response::Usage { held, memory, taken, overflow } => {
                if !*overflow {
                    if held.len() + size <= MAX_RESPONSE_HELD && env.memory.take(size) {
                        memory.get_or_insert_with(|| Rc::clone(env.memory));
                        *taken += size;
                        held.extend_from_slice(&body.read());
                    } else {
                        // Too large to hold here: usage is not read.
                        *overflow = true;
                        *held = Vec::new();
                        rec.usage_incomplete();
                    }
                }
                if end {
                    self.finish_json(req, rec);
                }
                Step::Continue(Rewrite::default())
            }
        }
    }

    /// The usage a stream reported, when it `ended` (or was cut short);
    /// whatever was held goes back.
    pub fn finish_stream(&mut self, rec: &mut Recorder, ended: bool) {
        if let Response::Stream { usage, .. } = self {
            let (counted, complete) = usage.finish(ended);
            rec.stream_usage(counted, complete, usage.model.take());
        }
        self.release();
        *self = Response::Ignored;
    }

    fn finish_json(&mut self, req: &Request, rec: &mut Recorder) {
        if let Response::Usage { held, overflow: false, .. } = self {
            if let (Ok(v), Some(api)) = (serde_json::from_slice::<Value>(held), req.api) {
                let (usage, model) = api.response_usage(&v);
                rec.response_usage(usage, model.as_deref());
            }
        }
        self.release();
    }
}

/// The listing as the workload may see it: only the models it may call.
fn filter_listing(env: &Env<'_>, req: &Request, rec: &Recorder, body: &[u8]) -> Vec<u8> {
    let (Some(identity), Some(provider)) = (&req.identity, req.provider(env.policy)) else {
        return api::EMPTY_LISTING.to_vec();
    };
    let facts = req.facts(env.now_ms, rec.client_address());
    api::filter_model_list(provider.api, body, |model| {
        decision::decide_for(&env.policy.rules, identity, &provider.name, model, &facts, &mut Vec::new()).is_ok()
    })
}

/// An MCP listing as the workload may see it: the tools it may call, the
/// resources it may read, the prompts it may get.
fn filter_mcp_listing(env: &Env<'_>, req: &Request, rec: &Recorder, listed: Listed, sse: bool, body: &[u8]) -> Vec<u8> {
    let (Some(identity), Some(provider)) = (&req.identity, req.provider(env.policy)) else {
        return mcp::listing::unreadable_answer(sse);
    };
    let facts = req.facts(env.now_ms, rec.client_address());
    let keep = |name: &str| {
        let ask = match listed {
            Listed::Tools => Ask::Tool { name: name.to_string(), arguments: None },
            Listed::Resources => Ask::Resource(name.to_string()),
            Listed::Prompts => Ask::Prompt(name.to_string()),
        };
        tools::may_list(&env.policy.rules, identity, &provider.name, &ask, &facts)
    };
    let restore = req.mcp.listing_id.as_ref().map(|(ours, theirs)| (ours.as_str(), theirs));
    mcp::listing::filter_answer(body, sse, listed, &keep, restore)
}

/// Replaces a whole held body of `size` bytes.
fn replace_all(size: usize, with: &[u8]) -> Edit {
    Edit { at: 0, remove: size, insert: with.to_vec() }
}
