//! One request, followed one way: headers → identity → body → decision →
//! credential → forward → response → audit.
//!
//! [`Flow`] holds a request's state as one [`Phase`], and
//! [`Flow::drive`] is the one function that moves it: the filter calls
//! it from each host callback with an [`Event`] and carries out the
//! [`Step`] it returns; unit tests, the no-panic run and `explain` call it
//! the same way. Nothing here calls the host, so the whole flow runs
//! natively.
//!
//! The request is held — headers, body, trailers — until it is decided:
//! only an allowed request goes on, and only then are the caller's
//! credentials stripped, the provider's injected and the body rewritten.
//!
//! The steps, each in its own module, report to one
//! [`Recorder`](crate::audit::recorder::Recorder) and return what they
//! decided ([`request::Next`]); this driver alone moves the phase:
//!
//! | step | module |
//! | --- | --- |
//! | headers, provider, endpoint, identity | [`headers`] |
//! | body, models, rules, guard, limits | [`decide`] |
//! | an MCP server's message: session, JSON-RPC, tools, guard | [`message`] |
//! | credential, rewrite | [`forward`] |
//! | response: usage, listings | [`response`] |

pub mod decide;
pub mod events;
pub mod forward;
pub mod headers;
pub mod memory;
pub mod message;
pub mod request;
pub mod response;
pub mod spend;

pub use events::{BodySource, Env, Event, LogInfo, Phase, RequestHead, Step};
pub use memory::{ResponseMemory, MAX_RESPONSE_HELD_PER_VM};

use crate::audit::recorder::{Ending, Logged, Recorder};
use crate::body::Edit;
use crate::config::{Mode, Policy};
use crate::credential::callout::{CalloutRequest, CalloutResult};
use crate::credential::Rewrite;
use crate::flow::forward::Forward;
use crate::flow::request::{Next, Request};
use crate::flow::response::Response;
use crate::reason::{Denial, LocalReply, Reason};

#[derive(Debug, Default)]
pub struct Flow {
    phase: Phase,
    request: Request,
    recorder: Recorder,
    /// The rewrite waiting for a call-out's credential, and its key.
    pending: Option<(Rewrite, String)>,
    response: Response,
    /// Budgets: reserving was tried (once per request); the body edits
    /// waiting for the ledger's answer.
    budget_asked: bool,
    waiting_edits: Option<Vec<Edit>>,
    /// Ledger calls for the filter to send after the request (settle,
    /// release): [`Flow::take_ledger_calls`].
    ledger_calls: Vec<CalloutRequest>,
    /// What the request cost, for Envoy's rate-limit filter: [`Flow::published`].
    published: Vec<(&'static str, String)>,
}

impl Flow {
    /// A request starts. `policy` is `None` only when the filter has no
    /// valid configuration (Envoy should have refused it).
    pub fn new(policy: Option<&Policy>, now_ms: u64) -> Self {
        Flow { recorder: Recorder::new(policy, now_ms), ..Default::default() }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the record still lacks what only Envoy can tell at the end
    /// (the request id, the client address, why the request ended): true
    /// for a request whose headers modelgate never saw, or that ended
    /// undecided.
    pub fn needs_log_details(&self) -> bool {
        let upstream_failed = self.phase == Phase::Forwarded
            && (self.recorder.upstream_answered().is_none_or(|s| s.is_none_or(|s| s >= 500))
                || self.response.is_stream());
        self.recorder.request_id().is_none()
            || !matches!(self.phase, Phase::Forwarded | Phase::Replied)
            || upstream_failed
    }

    /// Whether the status the client received is known without asking
    /// Envoy: modelgate's own reply, or the upstream's response.
    pub fn knows_status(&self) -> bool {
        self.recorder.knows_status()
    }

    /// Whether the response's `mcp-session-id` is wanted with
    /// [`Event::ResponseHeaders`]: the request went to an MCP server.
    pub fn reads_session(&self) -> bool {
        self.request.api.is_some_and(|a| a.spec().speaks_jsonrpc())
    }

    /// Moves the request on by one event.
    pub fn drive(&mut self, env: &Env<'_>, event: Event<'_>) -> Step {
        match (self.phase, event) {
            (Phase::Start, Event::RequestHeaders { head, end_of_stream }) => {
                let next = headers::admit(env, &head, end_of_stream, &mut self.request, &mut self.recorder);
                self.next(env, next)
            }
            (Phase::ReadingBody, Event::RequestBody { size, end_of_stream, body }) => {
                if u64::try_from(size).unwrap_or(u64::MAX) > env.policy.max_body_bytes {
                    return self.deny_or_forward(env, decide::too_large(env.policy));
                }
                if !end_of_stream {
                    return Step::Hold;
                }
                self.decide(env, &body.read())
            }
            (Phase::ReadingBody, Event::RequestTrailers { body }) => {
                let bytes = body.read();
                if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > env.policy.max_body_bytes {
                    return self.deny_or_forward(env, decide::too_large(env.policy));
                }
                self.decide(env, &bytes)
            }
            (Phase::ReadingBody, Event::HoldExpired) => self.refuse(
                env,
                Denial::new(
                    Reason::NotConfigured,
                    "the gateway did not receive the request body: Envoy is not holding requests for modelgate \
                     (set allow_on_headers_stop_iteration: true in the wasm filter's config)",
                )
                .with_detail("hold_unsupported"),
            ),
            (Phase::AwaitingBudget, Event::Callout(result)) => self.on_ledger(env, &result),
            (Phase::AwaitingCredential, Event::Callout(result)) => self.on_credential(env, Some(&result)),
            (Phase::AwaitingCredential, Event::CredentialShared) => self.on_credential(env, None),
            (Phase::Replied, Event::StepFailed) => Step::Hold,
            (_, Event::StepFailed) => self.step_failed(env),
            (Phase::Forwarded, Event::ResponseHeaders { status, content_type, session }) => {
                self.response.on_headers(env, &self.request, &mut self.recorder, status, content_type, session)
            }
            (Phase::Forwarded, Event::ResponseBody { size, end_of_stream, body }) => {
                self.response.on_body(env, &self.request, &mut self.recorder, size, end_of_stream, body)
            }
            (_, Event::Log(log)) => Step::Audit(self.audit(Some(env), &log)),
            // A body or trailers after the request went on (audit mode
            // forwards without reading the rest): they pass.
            (Phase::Forwarded, Event::RequestBody { .. } | Event::RequestTrailers { .. }) => {
                Step::Continue(Rewrite::default())
            }
            // Our own reply, or one Envoy sends itself (a timeout, a reset
            // upstream), passing through the response callbacks.
            (_, Event::ResponseHeaders { .. } | Event::ResponseBody { .. }) => Step::Continue(Rewrite::default()),
            // Anything else arrives where the request is held or refused:
            // it stays held (a refused request's remaining body is dropped
            // by Envoy with the local reply).
            _ => Step::Hold,
        }
    }

    /// What a step decided, carried out.
    fn next(&mut self, env: &Env<'_>, next: Next) -> Step {
        match next {
            Next::Refuse(d) => self.refuse(env, d),
            Next::Deny(d) => self.deny_or_forward(env, d),
            Next::Forward(edits) => self.forward(env, edits),
            Next::ReadBody => {
                self.phase = Phase::ReadingBody;
                Step::Hold
            }
            Next::DecideEmpty => self.decide(env, &[]),
        }
    }

    fn decide(&mut self, env: &Env<'_>, body: &[u8]) -> Step {
        let next = if self.reads_session() {
            message::decide(env, body, &mut self.request, &mut self.recorder)
        } else {
            decide::decide(env, body, &mut self.request, &mut self.recorder)
        };
        self.next(env, next)
    }

    fn forward(&mut self, env: &Env<'_>, edits: Vec<Edit>) -> Step {
        if !self.budget_asked {
            self.budget_asked = true;
            if let Some(plan) = self.request.budget.as_mut() {
                match spend::reserve(env, plan) {
                    spend::Reserve::Held => {}
                    spend::Reserve::Ledger(call) => {
                        self.waiting_edits = Some(edits);
                        self.phase = Phase::AwaitingBudget;
                        return Step::Call(call);
                    }
                    spend::Reserve::Refuse(d) => {
                        self.request.budget = None;
                        return self.deny_or_forward(env, d);
                    }
                }
            }
        }
        self.credential(env, edits)
    }

    /// The ledger answered the reservation of the global budgets.
    fn on_ledger(&mut self, env: &Env<'_>, result: &CalloutResult) -> Step {
        let edits = self.waiting_edits.take().unwrap_or_default();
        let Some(plan) = self.request.budget.as_mut() else { return self.credential(env, edits) };
        let (outcome, release) = spend::on_ledger(env, plan, result);
        self.ledger_calls.extend(release);
        match outcome {
            Ok(()) => self.credential(env, edits),
            Err(d) => {
                self.request.budget = None;
                self.deny_or_forward(env, d)
            }
        }
    }

    fn credential(&mut self, env: &Env<'_>, edits: Vec<Edit>) -> Step {
        match forward::forward(env, edits, &self.request, &mut self.recorder) {
            Forward::Now(rewrite) => self.went_on(rewrite),
            Forward::After { rewrite, key, call } => {
                self.pending = Some((rewrite, key.clone()));
                self.phase = Phase::AwaitingCredential;
                Step::Callout { key, call }
            }
            // A credential that cannot be had is refused in every mode.
            Forward::Refuse(d) => self.refuse(env, d),
        }
    }

    fn on_credential(&mut self, env: &Env<'_>, result: Option<&CalloutResult>) -> Step {
        match forward::with_credential(env, &self.request, self.pending.take(), result) {
            Ok(rewrite) => self.went_on(rewrite),
            // A credential that cannot be obtained is refused in every mode.
            Err(d) => self.refuse(env, d),
        }
    }

    /// The one way a request goes upstream: the step releases it.
    fn went_on(&mut self, rewrite: Rewrite) -> Step {
        self.phase = Phase::Forwarded;
        self.recorder.forwarded();
        Step::Continue(Rewrite { release: true, ..rewrite })
    }

    /// The host would not apply a step. On the request: refuse it, whatever
    /// the mode (forwarding it could leak the workload's credential). On the
    /// response: reset it (a listing must never pass unfiltered).
    fn step_failed(&mut self, env: &Env<'_>) -> Step {
        if self.recorder.upstream_answered().is_some() {
            return Step::ResetResponse;
        }
        let d = Denial::new(Reason::CredentialUnavailable, "the gateway could not swap the request's credentials")
            .with_detail("rewrite_failed");
        self.recorder.forget_denial();
        self.refuse(env, d)
    }

    /// Refuses with a local reply, in every mode.
    fn refuse(&mut self, env: &Env<'_>, d: Denial) -> Step {
        self.phase = Phase::Replied;
        let mut reply = d.reply(self.request.api, self.recorder.request_id());
        // A JSON-RPC error answers with the message's id.
        if let Some(id) = &self.request.mcp.rpc_id {
            reply.body = crate::api::mcp::with_id(&reply.body, id);
        }
        self.recorder.refused(env.policy.mode.name(), &d, reply.status);
        Step::Reply(reply)
    }

    /// A policy denial: refused in enforce mode; in audit mode recorded (the
    /// first one, as `would_deny`) and the request goes on as if allowed.
    fn deny_or_forward(&mut self, env: &Env<'_>, d: Denial) -> Step {
        if env.policy.mode == Mode::Enforce {
            return self.refuse(env, d);
        }
        self.recorder.would_deny(&d);
        self.forward(env, Vec::new())
    }

    /// Refuses a request that arrived while the filter has no valid
    /// configuration (Envoy should have refused the configuration itself).
    pub fn unconfigured(&mut self) -> LocalReply {
        let d = Denial::new(Reason::NotConfigured, "modelgate has no valid configuration").with_detail("no_policy");
        self.recorder.unconfigured(&d);
        self.phase = Phase::Replied;
        d.reply(None, None)
    }

    /// The stats this request adds to (call after [`Flow::audit`]).
    pub fn metrics(&self, policy: &Policy) -> Vec<(String, u64)> {
        crate::audit::metrics::of(self.recorder.record(), policy)
    }

    /// Envoy is logging the request: the record is final. (What
    /// [`Event::Log`] answers; called directly only without a policy.)
    pub fn audit(&mut self, env: Option<&Env<'_>>, log: &LogInfo) -> String {
        // Whatever response was being read ends here (and its memory goes back).
        self.response.finish_stream(&mut self.recorder, false);
        if let Some(env) = env {
            self.settle(env);
        }
        let ending = match self.phase {
            Phase::Forwarded | Phase::Replied => Ending::Decided,
            Phase::AwaitingCredential | Phase::AwaitingBudget => Ending::AwaitingCredential,
            Phase::Start | Phase::ReadingBody => Ending::Undecided,
        };
        let logged = Logged {
            status: log.status,
            request_id: log.request_id.as_deref(),
            details: log.details.as_deref(),
            client_address: log.client_address.as_deref(),
            forwarded: self.phase == Phase::Forwarded,
        };
        self.recorder.finish(ending, &logged)
    }

    /// The request ended: its budgets are settled to what it cost (the
    /// usage the provider reported when complete, the whole reservation
    /// when not, nothing when it never went upstream), and the cost is
    /// published for Envoy's rate-limit filter.
    fn settle(&mut self, env: &Env<'_>) {
        let record = self.recorder.record();
        let went_on = self.phase == Phase::Forwarded;
        // The provider refusing the request (a 4xx answer, not a stream)
        // bills nothing. A 5xx may be Envoy's own (a timeout while the
        // provider still runs the call): charged in full, as unknown.
        let refused_upstream = record.upstream.as_ref().and_then(|u| u.status).is_some_and(|s| (400..500).contains(&s))
            && !self.response.is_stream();
        let complete = record.usage_complete != Some(false);
        let usage = record.usage;
        let Some(plan) = self.request.budget.as_mut() else {
            if went_on && complete {
                if let Some(u) = usage.filter(|u| u.input_tokens.is_some() && u.output_tokens.is_some()) {
                    let tokens = u.input_tokens.unwrap_or(0).saturating_add(u.output_tokens.unwrap_or(0));
                    self.published.push(("modelgate_tokens", tokens.to_string()));
                }
            }
            return;
        };
        let charge =
            if went_on && !refused_upstream { plan.charge(usage.as_ref(), complete) } else { Default::default() };
        // Ended while the ledger was asked: what it may hold is let go.
        if self.phase == Phase::AwaitingBudget {
            self.ledger_calls.extend(spend::release_unanswered(env, plan));
        }
        self.ledger_calls.extend(spend::settle(env, plan, charge));
        self.published.push(("modelgate_tokens", charge.tokens.to_string()));
        if plan.price.is_some() {
            self.published.push(("modelgate_cost_micro_usd", charge.nano_usd.div_ceil(1000).to_string()));
        }
        self.recorder.budgets(plan, charge);
    }

    /// The ledger calls to send now that the request is over (settle, or
    /// let go of a reservation the ledger may hold); the filter sends them
    /// from its root context, and they are idempotent.
    pub fn take_ledger_calls(&mut self) -> Vec<CalloutRequest> {
        std::mem::take(&mut self.ledger_calls)
    }

    /// What the request cost, as filter state for Envoy's rate-limit
    /// filter (`%FILTER_STATE(wasm.modelgate_tokens:PLAIN)%`): set after [`Event::Log`].
    pub fn published(&self) -> &[(&'static str, String)] {
        &self.published
    }

    /// The budgets the request draws on (what `explain` reports).
    pub(crate) fn plan(&self) -> Option<&crate::budget::Plan> {
        self.request.budget.as_ref()
    }

    /// The record so far (what `explain` reports).
    pub(crate) fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
