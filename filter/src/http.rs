//! The per-request glue: each callback turns what the host has into an
//! [`Event`], hands it to the request's [`Flow`] through its one driver,
//! and carries out the [`Step`] that comes back through the step module's
//! one `carry_out`.

use std::cell::RefCell;
use std::rc::Rc;

use modelgate_policies::MetadataValue;
use modelgate_policies::Peer;
use modelgate_policies::X509Source;
use modelgate_policies::{BodySource, Event, Flow, LogInfo, Phase, RequestHead, Step};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};

use crate::host;
use crate::shared::Shared;
use crate::step::{self, Direction, Next};
use crate::tokens;

/// Where the audit record goes: Envoy's access log prints it with
/// `%FILTER_STATE(wasm.modelgate.audit:PLAIN)%`.
const AUDIT_PROPERTY: &[&str] = &["modelgate.audit"];

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
    /// A call of its own in flight (the budget ledger).
    call: Option<u32>,
}

impl Request {
    pub fn new(id: u32, shared: Rc<Shared>) -> Self {
        let started_ms = host::now_ms();
        let exchange = Flow::new(shared.policy.as_deref(), started_ms);
        Request { id, started_ms, shared, exchange: Rc::new(RefCell::new(exchange)), callout: None, call: None }
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
        step::drive(&self.shared, &self.exchange, event, now_ms)
    }

    fn phase(&self) -> Phase {
        self.exchange.try_borrow().map_or(Phase::Replied, |x| x.phase())
    }

    /// Carries out what the engine decided, and says what Envoy does next.
    fn carry_out(&mut self, step: Option<Step>, direction: Direction) -> Action {
        let from = step::From::Callback { direction, started_ms: self.started_ms };
        match step::carry_out(&self.shared, self.id, &self.exchange, step, from) {
            Next::Continue => Action::Continue,
            Next::Pause => Action::Pause,
            Next::Fetching { token, key } => {
                self.callout = Some((token, key));
                Action::Pause
            }
            Next::Calling { token } => {
                self.call = Some(token);
                Action::Pause
            }
        }
    }
}

impl Context for Request {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body_size: usize, _trailers: usize) {
        if self.call.take_if(|t| *t == token).is_some() {
            let result = host::call_response(headers, body_size, modelgate_policies::MAX_LEDGER_ANSWER_BYTES);
            let step = self.drive(Event::Callout(result));
            if let Action::Continue = self.carry_out(step, Direction::Request) {
                host::resume_request();
            }
            return;
        }
        let Some(key) = self.callout.take_if(|(t, _)| *t == token).map(|(_, key)| key) else { return };
        let step = self.drive(Event::Callout(tokens::call_result(headers, body_size)));
        if let Action::Continue = self.carry_out(step, Direction::Request) {
            host::resume_request();
        }
        self.shared.broker.done(&*self.shared, &key, Some(self.id));
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
        let reads_session = self.exchange.try_borrow().is_ok_and(|x| x.reads_session());
        let session =
            if reads_session { host::header_value(MapType::HttpResponseHeaders, "mcp-session-id") } else { None };
        let step = self.drive(Event::ResponseHeaders {
            status,
            content_type: content_type.as_deref(),
            session: session.as_deref(),
        });
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
                Ok(mut x) => x.audit(None, &log),
                Err(_) => return host::log(LogLevel::Error, &format!("[{}] no audit record could be made", self.id)),
            },
        };
        if let (Ok(x), Some(policy)) = (self.exchange.try_borrow(), self.shared.policy.as_deref()) {
            for (name, n) in x.metrics(policy) {
                self.shared.counters.add(&name, n);
            }
        }
        if let Ok(mut x) = self.exchange.try_borrow_mut() {
            for call in x.take_ledger_calls() {
                self.shared.ledger.push(call);
            }
            // What the call cost, for Envoy's rate-limit filter
            // (`%FILTER_STATE(wasm.modelgate_tokens:PLAIN)%`).
            for (name, value) in x.published() {
                host::set_property(&[name], value.as_bytes());
            }
        }
        let record = self.shared.seal(&record);
        if !host::set_property(AUDIT_PROPERTY, record.as_bytes()) {
            // Never lose the record: put it in the Envoy log instead.
            host::log(LogLevel::Error, &format!("[{}] could not store the audit record: {record}", self.id));
        }
    }
}
