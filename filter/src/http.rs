//! The per-request glue: each callback reads what the host has, hands it to
//! the request's [`Exchange`], and carries out the [`Outcome`] in one place,
//! [`Request::carry_out`].

use std::rc::Rc;

use modelgate_policies::credential::Rewrite;
use modelgate_policies::svid::PureRustVerifier;
use modelgate_policies::{Exchange, LogInfo, Outcome, Policy, RequestHead};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};

use crate::host;

/// Where the audit record goes: Envoy's access log prints it with
/// `%FILTER_STATE(wasm.modelgate.audit:PLAIN)%`.
const AUDIT_PROPERTY: &[&str] = &["modelgate.audit"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Headers,
    ReadingBody,
    Forwarding,
    Replied,
}

pub struct Request {
    id: u32,
    policy: Option<Rc<Policy>>,
    exchange: Exchange,
    stage: Stage,
}

impl Request {
    pub fn new(id: u32, policy: Option<Rc<Policy>>) -> Self {
        let exchange = Exchange::new(policy.as_deref(), host::now_ms());
        Request { id, policy, exchange, stage: Stage::Headers }
    }

    /// Carries out what the engine decided, and says what Envoy does next.
    fn carry_out(&mut self, outcome: Outcome, body_size: usize) -> Action {
        match outcome {
            Outcome::Reply(reply) => {
                self.stage = Stage::Replied;
                if !host::send_reply(reply.status, &reply.headers, &reply.body) {
                    host::log(LogLevel::Error, &format!("[{}] could not send the local reply", self.id));
                }
                Action::Pause
            }
            Outcome::ReadBody(rewrite) => {
                // The headers go on (Envoy will not call a wasm filter's body
                // callback while it holds them); the body is held instead.
                if !apply(&rewrite, body_size) {
                    return self.rewrite_failed();
                }
                self.stage = Stage::ReadingBody;
                Action::Continue
            }
            Outcome::Forward(rewrite) => {
                if !apply(&rewrite, body_size) {
                    return self.rewrite_failed();
                }
                self.stage = Stage::Forwarding;
                Action::Continue
            }
        }
    }

    /// The host refused to change the request: it must not go on half
    /// rewritten (it might still carry the workload's credential).
    fn rewrite_failed(&mut self) -> Action {
        host::log(
            LogLevel::Error,
            &format!("[{}] the host refused a header or body change; refusing the request", self.id),
        );
        let outcome = self.exchange.on_rewrite_failed();
        self.carry_out(outcome, 0)
    }

    fn not_configured(&mut self) -> Action {
        self.stage = Stage::Replied;
        let headers = [
            ("content-type".to_string(), "application/json".to_string()),
            ("x-modelgate-reason".to_string(), "not_configured".to_string()),
        ];
        let body = br#"{"error":{"message":"modelgate has no valid configuration","type":"modelgate_error","code":"not_configured"}}"#;
        host::send_reply(503, &headers, body);
        Action::Pause
    }
}

/// Applies a rewrite. Header changes come with the headers; a body change
/// comes with the whole body, whose length the buffer filter after
/// modelgate sets (without it, the request goes on chunked).
/// False when the host refused a change: the request must then not go on.
fn apply(rewrite: &Rewrite, body_size: usize) -> bool {
    let map = MapType::HttpRequestHeaders;
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
    if let Some(body) = &rewrite.body {
        ok &= host::replace_buffer(BufferType::HttpRequestBody, body_size, body);
    }
    ok
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let Some(policy) = self.policy.clone() else {
            return self.not_configured();
        };
        let mut headers = host::header_map(MapType::HttpRequestHeaders);
        let pseudo = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
        let (method, path, authority) = (pseudo(":method"), pseudo(":path"), pseudo(":authority"));
        headers.retain(|(k, _)| !k.starts_with(':'));
        let request_id = headers.iter().find(|(k, _)| k == "x-request-id").map(|(_, v)| v.clone());
        let client = host::property_string(&["source", "address"]);
        let head = RequestHead {
            method: &method,
            path: &path,
            authority: &authority,
            headers: &headers,
            request_id: request_id.as_deref(),
            client_address: client.as_deref(),
        };
        let outcome = self.exchange.on_request_headers(&policy, &head, &PureRustVerifier, host::now_ms());
        let action = self.carry_out(outcome, 0);
        if self.stage == Stage::ReadingBody && end_of_stream {
            // No body will come: decide on the empty one now.
            let outcome = self.exchange.on_request_body(&policy, &[]);
            return self.carry_out(outcome, 0);
        }
        action
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(policy) = self.policy.clone() else {
            return Action::Pause;
        };
        match self.stage {
            Stage::ReadingBody => {}
            Stage::Replied => return Action::Pause,
            Stage::Headers | Stage::Forwarding => return Action::Continue,
        }
        if u64::try_from(body_size).unwrap_or(u64::MAX) > self.exchange.body_limit(&policy) {
            let outcome = self.exchange.on_body_too_large(&policy);
            return self.carry_out(outcome, body_size);
        }
        if !end_of_stream {
            // Buffer until the whole body is here.
            return Action::Pause;
        }
        let body = host::buffer(BufferType::HttpRequestBody, body_size);
        let outcome = self.exchange.on_request_body(&policy, &body);
        self.carry_out(outcome, body_size)
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if self.stage == Stage::Forwarding {
            let status = host::property_u64(&["response", "code"]).and_then(|c| u16::try_from(c).ok());
            let content_type = proxy_wasm::hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, "content-type")
                .ok()
                .flatten()
                .map(|v| String::from_utf8_lossy(&v).into_owned());
            self.exchange.on_response_headers(status, content_type.as_deref(), host::now_ms());
            if self.exchange.rewrites_response() {
                // The body will change; its length is no longer known.
                host::remove_header(MapType::HttpResponseHeaders, "content-length");
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.stage != Stage::Forwarding {
            return Action::Continue;
        }
        if self.exchange.rewrites_response() {
            if !end_of_stream {
                // Hold the listing until it is whole.
                return Action::Pause;
            }
            let Some(policy) = self.policy.clone() else {
                return Action::Continue;
            };
            let body = host::buffer(BufferType::HttpResponseBody, body_size);
            let filtered = self.exchange.filter_response(&policy, &body);
            if !host::replace_buffer(BufferType::HttpResponseBody, body_size, &filtered) {
                // Never pass on a listing that was not filtered.
                host::log(LogLevel::Error, &format!("[{}] could not filter the model listing; resetting", self.id));
                host::reset_response();
            }
            return Action::Continue;
        }
        let chunk = host::buffer(BufferType::HttpResponseBody, body_size);
        self.exchange.on_response_body(&chunk, end_of_stream);
        Action::Continue
    }

    fn on_log(&mut self) {
        let log = LogInfo {
            status: host::property_u64(&["response", "code"]).and_then(|c| u16::try_from(c).ok()),
            request_id: host::property_string(&["request", "id"]),
            details: host::property_string(&["response", "code_details"]),
            client_address: host::property_string(&["source", "address"]),
        };
        let record = self.exchange.finish(&log);
        if !host::set_property(AUDIT_PROPERTY, record.as_bytes()) {
            // Never lose the record: put it in the Envoy log instead.
            host::log(LogLevel::Error, &format!("[{}] could not store the audit record: {record}", self.id));
        }
    }
}
