//! Carrying out what the engine decided, in one place for every caller:
//! [`carry_out`] applies a [`Step`] through the host, whether from the
//! request's own callback or from outside it (the root's tick, the token
//! broker waking a request that waited). [`drive`] hands an exchange one
//! event with the VM's policy.

use std::cell::RefCell;
use std::rc::Rc;

use modelgate_policies::apply_edits;
use modelgate_policies::CalloutResult;
use modelgate_policies::LocalReply;
use modelgate_policies::Rewrite;
use modelgate_policies::TokenCache;
use modelgate_policies::{Env, Event, Flow, Step};
use proxy_wasm::types::{BufferType, LogLevel, MapType};

use crate::host;
use crate::shared::Shared;
use crate::tokens::{self, Join, Vm};

/// Which way a step applies.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
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

/// Where a step is carried out from.
#[derive(Clone, Copy)]
pub enum From {
    /// The request's own callback, for `direction`; the request's own
    /// events happen at `started_ms`.
    Callback { direction: Direction, started_ms: u64 },
    /// Outside the request's callbacks (the root's tick, another request's
    /// call-out): the request is made the host's effective context first,
    /// and resumed, answered or reset through the host.
    Detached,
}

/// What the caller does next.
pub enum Next {
    /// The message goes on (a callback returns `Action::Continue`).
    Continue,
    /// The message waits, or was answered, reset or (detached) resumed.
    Pause,
    /// The request made call-out `token` for the credential `key`; its
    /// answer comes to the request's `on_http_call_response`.
    Fetching { token: u32, key: String },
    /// The request made call-out `token` of its own (the budget ledger).
    Calling { token: u32 },
}

/// Drives an exchange with the VM's policy. `None` only when the filter
/// has no policy or the exchange is busy (neither should happen); the
/// caller then fails closed.
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
        shared: &host::Counters,
    };
    let mut exchange = exchange.try_borrow_mut().ok()?;
    Some(exchange.drive(&env, event))
}

/// Carries out what the engine decided for request `id`, and says what
/// the caller does next. A step of no configuration (`None`) is refused.
pub fn carry_out(shared: &Shared, id: u32, exchange: &Rc<RefCell<Flow>>, step: Option<Step>, from: From) -> Next {
    let direction = match from {
        From::Callback { direction, .. } => direction,
        From::Detached => {
            if !host::set_effective_context(id) {
                host::log(LogLevel::Error, &format!("[{id}] the request is gone"));
                return Next::Pause;
            }
            Direction::Request
        }
    };
    let detached = matches!(from, From::Detached);
    let Some(step) = step else {
        if detached {
            host::reset_response();
        } else {
            not_configured(id, exchange);
        }
        return Next::Pause;
    };
    match step {
        Step::Continue(rewrite) => {
            if apply(&rewrite, direction) {
                if !detached {
                    return Next::Continue;
                }
                host::resume_request();
                return Next::Pause;
            }
            host::log(LogLevel::Error, &format!("[{id}] the host refused a header or body change"));
            let now_ms = match from {
                From::Callback { started_ms, .. } => started_ms,
                From::Detached => host::now_ms(),
            };
            match drive(shared, exchange, Event::StepFailed, now_ms) {
                Some(Step::Reply(r)) => reply(id, &r),
                _ => host::reset_response(),
            }
            Next::Pause
        }
        Step::Hold | Step::Audit(_) => Next::Pause,
        Step::Reply(r) => {
            reply(id, &r);
            Next::Pause
        }
        Step::ResetResponse => {
            host::reset_response();
            Next::Pause
        }
        // Only a request's own callback makes a call.
        Step::Callout { .. } | Step::Call(_) if detached => {
            host::reset_response();
            Next::Pause
        }
        Step::Call(call) => match host::dispatch(&call) {
            Ok(token) => Next::Calling { token },
            Err(why) => {
                host::log(LogLevel::Warn, &format!("[{id}] call-out to cluster {:?} refused: {why}", call.cluster));
                let step = drive(shared, exchange, Event::Callout(CalloutResult::Failed(why)), host::now_ms());
                carry_out(shared, id, exchange, step, from)
            }
        },
        Step::Callout { key, call } => {
            let waiter = tokens::waiter(id, exchange);
            match shared.broker.join(shared, &key, call, waiter, host::now_ms()) {
                Join::Wait | Join::Remote => Next::Pause,
                Join::Shared => {
                    let step = drive(shared, exchange, Event::CredentialShared, host::now_ms());
                    carry_out(shared, id, exchange, step, from)
                }
                Join::Fetch(call) => match host::dispatch(&call) {
                    Ok(token) => {
                        shared.broker.fetching(&key, id, token);
                        Next::Fetching { token, key }
                    }
                    Err(why) => {
                        host::log(
                            LogLevel::Warn,
                            &format!("[{id}] call-out to cluster {:?} refused: {why}", call.cluster),
                        );
                        let step = drive(shared, exchange, Event::Callout(CalloutResult::Failed(why)), host::now_ms());
                        let next = carry_out(shared, id, exchange, step, from);
                        shared.broker.done(shared, &key, Some(id));
                        next
                    }
                },
            }
        }
    }
}

/// Wakes a request paused outside its callbacks: drives it with `event`
/// now, and carries out the step detached.
pub fn wake(shared: &Shared, id: u32, exchange: &Rc<RefCell<Flow>>, event: Event<'_>) {
    let step = drive(shared, exchange, event, host::now_ms());
    carry_out(shared, id, exchange, step, From::Detached);
}

/// The token broker serves this VM's requests through the step.
impl Vm for Shared {
    fn tokens(&self) -> &TokenCache {
        &self.tokens
    }

    fn wake(&self, id: u32, exchange: &Rc<RefCell<Flow>>, event: Event<'static>) {
        wake(self, id, exchange, event);
    }
}

fn reply(id: u32, reply: &LocalReply) {
    if !host::send_reply(reply.status, &reply.headers, &reply.body) {
        host::log(LogLevel::Error, &format!("[{id}] could not send the local reply; resetting"));
        host::reset_response();
    }
}

/// No valid configuration (Envoy should have refused it): refuse.
fn not_configured(id: u32, exchange: &RefCell<Flow>) {
    let answer = exchange.try_borrow_mut().map(|mut x| x.unconfigured()).ok();
    match answer {
        Some(r) => reply(id, &r),
        None => host::reset_response(),
    }
}

/// The filter state `wasm.modelgate_released` (`yes`), set once on every
/// request modelgate lets go upstream (the rewrite that releases it).
/// Envoy's RBAC filter after modelgate (envoy/envoy.yaml) admits only
/// requests that carry it, so a request Envoy sends on without running
/// modelgate — a worker whose plugin failed to configure is skipped
/// whatever `fail_open` says — is refused, not forwarded. No caller can
/// set filter state.
const RELEASED_PROPERTY: &[&str] = &["modelgate_released"];

/// Applies a rewrite to the request or the response. False when the host
/// refused a change: the message must then not go on.
fn apply(rewrite: &Rewrite, direction: Direction) -> bool {
    let map = direction.headers();
    let mut ok = true;
    if rewrite.release {
        ok &= host::set_property(RELEASED_PROPERTY, b"yes");
    }
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
