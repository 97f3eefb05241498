//! The per-request glue: each callback turns what the host has into an
//! [`Event`], hands it to the request's [`Flow`] through its one driver,
//! and carries out the [`Step`] that comes back in one place,
//! [`Request::carry_out`].

use std::cell::RefCell;
use std::rc::Rc;

use modelgate_policies::apply_edits;
use modelgate_policies::CalloutResult;
use modelgate_policies::LocalReply;
use modelgate_policies::MetadataValue;
use modelgate_policies::Peer;
use modelgate_policies::Rewrite;
use modelgate_policies::X509Source;
use modelgate_policies::{BodySource, Env, Event, Flow, LogInfo, Phase, RequestHead, Step};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};

use crate::host;
use crate::root::Shared;
use crate::tokens::{self, Join};

/// The most of a token endpoint's answer the reader accepts; one byte more
/// is read, so a larger answer is refused as too large, not as cut.
const MAX_CALL_RESPONSE_BYTES: usize = modelgate_policies::MAX_TOKEN_RESPONSE_BYTES;

/// Where the audit record goes: Envoy's access log prints it with
/// `%FILTER_STATE(wasm.modelgate.audit:PLAIN)%`.
const AUDIT_PROPERTY: &[&str] = &["modelgate.audit"];

/// Which way a step applies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

impl Direction {
    fn headers(self) -> MapType {
        match self {
            Direction::Request => MapType::HttpRequestHeaders,
            Direction::Response => MapType::HttpResponseHeaders,
        }
    }

    fn body(self) -> BufferType {
        match self {
            Direction::Request => BufferType::HttpRequestBody,
            Direction::Response => BufferType::HttpResponseBody,
        }
    }
}

/// The downstream connection's peer certificate, as Envoy verified it,
/// read from the host only when the engine asks.
struct Connection;

impl Peer for Connection {
    fn digest(&self) -> Option<String> {
        host::property_string(&["connection", "sha256_peer_certificate_digest"]).filter(|d| !d.is_empty())
    }
    fn certificate(&self) -> Option<Vec<u8>> {
        host::property_bytes(&["connection", "peer_certificate"])
    }
    fn uri_san(&self) -> Option<String> {
        host::property_string(&["connection", "uri_san_peer_certificate"]).filter(|u| !u.is_empty())
    }
}

/// A body the host holds, read only when the engine asks for its bytes.
struct HostBody(BufferType);

impl BodySource for HostBody {
    fn read(&self) -> Vec<u8> {
        host::buffer(self.0)
    }
}

pub struct Request {
    id: u32,
    /// When the request started (its context was made as its headers came).
    started_ms: u64,
    shared: Rc<Shared>,
    /// Shared with the root context's hold watch, which may expire it.
    exchange: Rc<RefCell<Flow>>,
    /// The call-out this request made, and the credential key it fetches.
    callout: Option<(u32, String)>,
}

impl Request {
    pub fn new(id: u32, shared: Rc<Shared>) -> Self {
        let started_ms = host::now_ms();
        let exchange = Flow::new(shared.policy.as_deref(), started_ms);
        Request { id, started_ms, shared, exchange: Rc::new(RefCell::new(exchange)), callout: None }
    }

    /// Hands one event to the engine. `None` only when the filter has no
    /// policy or the exchange is busy (neither should happen); the caller
    /// then fails closed. The request's own events happen at its start
    /// time (rules decide on it); the clock is read for those that measure.
    fn drive(&self, event: Event<'_>) -> Option<Step> {
        let now_ms = match event {
            Event::ResponseHeaders { .. } | Event::Callout(_) | Event::CredentialShared | Event::HoldExpired => {
                host::now_ms()
            }
            _ => self.started_ms,
        };
        drive(&self.shared, &self.exchange, event, now_ms)
    }

    fn phase(&self) -> Phase {
        self.exchange.try_borrow().map_or(Phase::Replied, |x| x.phase())
    }

    /// Carries out what the engine decided, and says what Envoy does next.
    fn carry_out(&mut self, step: Option<Step>, direction: Direction) -> Action {
        let Some(step) = step else {
            return self.not_configured();
        };
        match step {
            Step::Continue(rewrite) => {
                if apply(&rewrite, direction) {
                    return Action::Continue;
                }
                host::log(LogLevel::Error, &format!("[{}] the host refused a header or body change", self.id));
                match self.drive(Event::StepFailed) {
                    Some(Step::Reply(reply)) => self.reply(&reply),
                    _ => host::reset_response(),
                }
                Action::Pause
            }
            Step::Hold | Step::Audit(_) => Action::Pause,
            Step::Reply(reply) => {
                self.reply(&reply);
                Action::Pause
            }
            Step::ResetResponse => {
                host::reset_response();
                Action::Pause
            }
            Step::Callout { key, call } => {
                let waiter = tokens::waiter(self.id, &self.exchange);
                match self.shared.broker.join(&self.shared, &key, call, waiter, host::now_ms()) {
                    Join::Wait | Join::Remote => Action::Pause,
                    Join::Shared => {
                        let step = self.drive(Event::CredentialShared);
                        self.carry_out(step, direction)
                    }
                    Join::Fetch(call) => match host::dispatch(&call) {
                        Ok(token) => {
                            self.shared.broker.fetching(&key, self.id, token);
                            self.callout = Some((token, key));
                            Action::Pause
                        }
                        Err(why) => {
                            host::log(
                                LogLevel::Warn,
                                &format!("[{}] call-out to cluster {:?} refused: {why}", self.id, call.cluster),
                            );
                            let step = self.drive(Event::Callout(CalloutResult::Failed(why)));
                            let action = self.carry_out(step, direction);
                            self.shared.broker.done(&self.shared, &key, Some(self.id));
                            action
                        }
                    },
                }
            }
        }
    }

    fn reply(&self, reply: &LocalReply) {
        if !host::send_reply(reply.status, &reply.headers, &reply.body) {
            host::log(LogLevel::Error, &format!("[{}] could not send the local reply; resetting", self.id));
            host::reset_response();
        }
    }

    /// No valid configuration (Envoy should have refused it): refuse.
    fn not_configured(&mut self) -> Action {
        let reply = self.exchange.try_borrow_mut().map(|mut x| x.unconfigured()).ok();
        match reply {
            Some(r) => self.reply(&r),
            None => host::reset_response(),
        }
        Action::Pause
    }
}

/// Drives an exchange with the VM's policy.
pub fn drive(shared: &Shared, exchange: &RefCell<Flow>, event: Event<'_>, now_ms: u64) -> Option<Step> {
    let policy = shared.policy.as_deref()?;
    let trust = Rc::clone(&*shared.trust.try_borrow().ok()?);
    let env = Env {
        policy,
        verifier: &shared.verifier,
        now_ms,
        memory: &shared.memory,
        svids: &shared.svids,
        trust: &trust,
        tokens: &shared.tokens,
        random: &host::random::<16>,
    };
    let mut exchange = exchange.try_borrow_mut().ok()?;
    Some(exchange.drive(&env, event))
}

/// Applies a rewrite to the request or the response. False when the host
/// refused a change: the message must then not go on.
fn apply(rewrite: &Rewrite, direction: Direction) -> bool {
    let map = direction.headers();
    let mut ok = true;
    for name in &rewrite.remove_headers {
        ok &= host::remove_header(map, name);
    }
    for (name, value) in &rewrite.set_headers {
        ok &= host::set_header(map, name, value);
    }
    if let Some(path) = &rewrite.path {
        ok &= host::set_header(map, ":path", path);
    }
    if !rewrite.body_edits.is_empty() {
        let body = host::buffer(direction.body());
        let edited = apply_edits(&body, &rewrite.body_edits);
        ok &= host::replace_buffer(direction.body(), body.len(), &edited);
        if direction == Direction::Request {
            // The body is held whole: its new length is known.
            ok &= host::set_header(map, "content-length", &edited.len().to_string());
            ok &= host::remove_header(map, "transfer-encoding");
        }
    }
    ok
}

impl Context for Request {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body_size: usize, _trailers: usize) {
        let Some(key) = self.callout.take_if(|(t, _)| *t == token).map(|(_, key)| key) else { return };
        let step = self.drive(Event::Callout(call_result(headers, body_size)));
        if let Action::Continue = self.carry_out(step, Direction::Request) {
            host::resume_request();
        }
        self.shared.broker.done(&self.shared, &key, Some(self.id));
    }
}

/// Envoy took the client address from a header (port 0): say once per VM
/// that it proves nothing, so `source_cidrs` fails closed.
fn warn_once_if_forwarded(client: Option<&str>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static WARNED: AtomicBool = AtomicBool::new(false);
    if client.is_some_and(modelgate_policies::is_forwarded_address) && !WARNED.swap(true, Ordering::Relaxed) {
        host::log(
            LogLevel::Warn,
            "modelgate: Envoy reports client addresses taken from x-forwarded-for (use_remote_address is not set on this listener): they prove nothing, so source_cidrs conditions fail closed and records mark client.from_header",
        );
    }
}

/// The answer to a token call-out, as the host delivers it: every shape
/// (reset, cut, timed out, no final status, oversized) is a result, never
/// a read the host would refuse.
pub fn call_result(headers: usize, body_size: usize) -> CalloutResult {
    host::call_response(headers, body_size, MAX_CALL_RESPONSE_BYTES)
}

/// Carries out a step of a paused request from outside its callbacks (the
/// root's tick, another request's call-out): resumed, answered or reset
/// through the host.
pub fn carry_out_detached(shared: &Shared, id: u32, exchange: &RefCell<Flow>, step: Option<Step>) {
    if !host::set_effective_context(id) {
        host::log(LogLevel::Error, &format!("[{id}] the request is gone"));
        return;
    }
    match step {
        Some(Step::Continue(rewrite)) => {
            if apply(&rewrite, Direction::Request) {
                host::resume_request();
                return;
            }
            host::log(LogLevel::Error, &format!("[{id}] the host refused a header or body change"));
            match drive(shared, exchange, Event::StepFailed, host::now_ms()) {
                Some(Step::Reply(reply)) if host::send_reply(reply.status, &reply.headers, &reply.body) => {}
                _ => host::reset_response(),
            }
        }
        Some(Step::Reply(reply)) => {
            if !host::send_reply(reply.status, &reply.headers, &reply.body) {
                host::log(LogLevel::Error, &format!("[{id}] could not send the local reply; resetting"));
                host::reset_response();
            }
        }
        Some(Step::Hold | Step::Audit(_)) => {}
        _ => host::reset_response(),
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let mut headers = host::header_map(MapType::HttpRequestHeaders);
        let pseudo = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
        let (method, path, authority) = (pseudo(":method"), pseudo(":path"), pseudo(":authority"));
        headers.retain(|(k, _)| !k.starts_with(':'));
        let request_id = headers.iter().find(|(k, _)| k == "x-request-id").map(|(_, v)| v.clone());
        let client = host::property_string(&["source", "address"]);
        warn_once_if_forwarded(client.as_deref());
        let reads_peer = self.shared.policy.as_deref().is_some_and(|p| p.identity.x509 != X509Source::Off);
        // Only the metadata some rule's conditions read (none: no host call).
        let metadata: Vec<MetadataValue> = self
            .shared
            .metadata_keys
            .iter()
            .map(|(ns, key)| {
                ((ns.clone(), key.clone()), host::property_bytes(&["metadata", "filter_metadata", ns, key]))
            })
            .collect();
        let head = RequestHead {
            method: &method,
            path: &path,
            authority: &authority,
            headers: &headers,
            request_id: request_id.as_deref(),
            client_address: client.as_deref(),
            peer: if reads_peer { Some(&Connection) } else { None },
            metadata: &metadata,
        };
        let step = self.drive(Event::RequestHeaders { head, end_of_stream });
        let action = self.carry_out(step, Direction::Request);
        if self.phase() == Phase::ReadingBody {
            // Held for the body: if Envoy never delivers it (the hold flag
            // is missing), the root's watch fails the request closed.
            self.shared.holds.watch(self.id, &self.exchange, self.started_ms);
        }
        action
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.shared.holds.proven();
        let source = HostBody(BufferType::HttpRequestBody);
        let step = self.drive(Event::RequestBody { size: body_size, end_of_stream, body: &source });
        self.carry_out(step, Direction::Request)
    }

    /// Trailers end the body (HTTP/2): the request is decided here. No
    /// trailer goes upstream: no LLM api reads them, and one could carry a
    /// credential the provider would read.
    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        self.shared.holds.proven();
        let mut ok = true;
        for (name, _) in host::header_map(MapType::HttpRequestTrailers) {
            ok &= host::remove_header(MapType::HttpRequestTrailers, &name);
        }
        let step = if ok {
            let source = HostBody(BufferType::HttpRequestBody);
            self.drive(Event::RequestTrailers { body: &source })
        } else {
            self.drive(Event::StepFailed)
        };
        self.carry_out(step, Direction::Request)
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        let status = host::header_value(MapType::HttpResponseHeaders, ":status").and_then(|s| s.parse().ok());
        let content_type = host::header_value(MapType::HttpResponseHeaders, "content-type");
        let step = self.drive(Event::ResponseHeaders { status, content_type: content_type.as_deref() });
        self.carry_out(step, Direction::Response)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let source = HostBody(BufferType::HttpResponseBody);
        let step = self.drive(Event::ResponseBody { size: body_size, end_of_stream, body: &source });
        self.carry_out(step, Direction::Response)
    }

    fn on_log(&mut self) {
        self.shared.holds.forget(self.id);
        self.shared.broker.forget(self.id);
        let (details, known) =
            self.exchange.try_borrow().map_or((true, false), |x| (x.needs_log_details(), x.knows_status()));
        let status = if known && !details {
            None
        } else {
            host::property_u64(&["response", "code"]).and_then(|c| u16::try_from(c).ok())
        };
        let log = if details {
            LogInfo {
                status,
                request_id: host::property_string(&["request", "id"]),
                details: host::property_string(&["response", "code_details"]),
                client_address: host::property_string(&["source", "address"]),
            }
        } else {
            LogInfo { status, ..Default::default() }
        };
        let record = match self.drive(Event::Log(log.clone())) {
            Some(Step::Audit(record)) => record,
            _ => match self.exchange.try_borrow_mut() {
                Ok(mut x) => x.audit(&log),
                Err(_) => return host::log(LogLevel::Error, &format!("[{}] no audit record could be made", self.id)),
            },
        };
        if let (Ok(x), Some(policy)) = (self.exchange.try_borrow(), self.shared.policy.as_deref()) {
            for (name, n) in x.metrics(policy) {
                self.shared.counters.add(&name, n);
            }
        }
        let record = self.shared.seal(&record);
        if !host::set_property(AUDIT_PROPERTY, record.as_bytes()) {
            // Never lose the record: put it in the Envoy log instead.
            host::log(LogLevel::Error, &format!("[{}] could not store the audit record: {record}", self.id));
        }
    }
}
