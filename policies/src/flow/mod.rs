//! One request, followed one way: headers → identity → body → decision →
//! credential → forward → response → audit.
//!
//! [`Flow`] holds a request's state as one [`Phase`], and
//! [`Flow::drive`] is the one function that moves it: the filter calls
//! it from each host callback with an [`Event`] and carries out the
//! [`Step`] it returns; unit tests and the no-panic run call it the same
//! way. Nothing here calls the host, so the whole flow runs natively.
//!
//! The request is held — headers, body, trailers — until it is decided:
//! only an allowed request goes on, and only then are the caller's
//! credentials stripped, the provider's injected and the body rewritten.

use std::cell::Cell;
use std::rc::Rc;

use serde_json::Value;

use crate::api::path;
use crate::api::query;
use crate::api::usage::{Framing, StreamUsage};
use crate::api::{self, Api, BodyFormat, Captures, Endpoint, ModelAt, Selects};
use crate::audit::{Client, CredentialUsed, Prompt, Record, Upstream};
use crate::body::guard::{Action, Findings};
use crate::body::{self, Edit};
use crate::config::{Mode, Policy, PromptAudit, Provider, Rule};
use crate::credential::callout::{CalloutRequest, CalloutResult};
use crate::credential::token_exchange::TokenCache;
use crate::credential::{self, Caller, Plan, Rewrite};
use crate::decision;
use crate::decision::conditions::{Evaluated, Facts, MetadataValue};
use crate::identity::spiffe::SpiffeId;
use crate::identity::svid::jwt::JwtSvid;
use crate::identity::svid::x509::X509Svid;
use crate::identity::svid::{SignatureVerifier, SvidCache, TrustStore};
use crate::identity::{self, Peer, Sources};
use crate::reason::{Denial, LocalReply, Reason, Verdict};
use crate::util::time::rfc3339_millis;

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
    /// The answer to the [`Step::Callout`] this exchange asked for.
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
    /// Allowed; held while a call-out fetches the credential.
    AwaitingCredential,
    /// Gone on upstream; the response is followed for the record.
    Forwarded,
    /// Refused with a local reply; nothing went upstream.
    Replied,
}

/// Responses held for usage or filtering are bounded per request, and in
/// total per VM: many slow clients must not exhaust a VM's memory (a wasm
/// out-of-memory aborts every request on it).
#[derive(Debug)]
pub struct ResponseMemory {
    used: Cell<usize>,
    limit: usize,
}

impl ResponseMemory {
    pub fn new(limit: usize) -> Self {
        ResponseMemory { used: Cell::new(0), limit }
    }

    fn take(&self, n: usize) -> bool {
        let used = self.used.get();
        if used.saturating_add(n) > self.limit {
            return false;
        }
        self.used.set(used + n);
        true
    }

    fn give_back(&self, n: usize) {
        self.used.set(self.used.get().saturating_sub(n));
    }

    pub fn in_use(&self) -> usize {
        self.used.get()
    }
}

/// Held response bytes per request, at most: usage is read from JSON
/// responses up to this size.
pub const MAX_RESPONSE_HELD: usize = 1024 * 1024;
/// Held response bytes per VM, at most.
pub const MAX_RESPONSE_HELD_PER_VM: usize = 32 * 1024 * 1024;
/// Model listings larger than this are replaced by an empty listing.
pub const MAX_LISTING_BYTES: usize = 4 * 1024 * 1024;

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
    /// 16 fresh random bytes (a minted JWT's `jti`).
    pub random: &'a dyn Fn() -> [u8; 16],
}

#[derive(Debug, Default)]
pub struct Flow {
    phase: Phase,
    record: Record,
    started_ms: u64,
    provider: Option<usize>,
    api: Option<Api>,
    endpoint: Option<&'static Endpoint>,
    captures: Captures,
    identity: Option<SpiffeId>,
    /// The SVIDs that identified the caller, for rule conditions.
    svids: (Option<Rc<JwtSvid>>, Option<Rc<X509Svid>>),
    /// The dynamic metadata values rule conditions read.
    metadata: Vec<MetadataValue>,
    /// The first denial (in audit mode, the one `would_deny` reports).
    denial: Option<Denial>,
    content_type: Option<String>,
    headers: Vec<(String, String)>,
    /// The `:path` to forward, when its query must change (`None`: as sent).
    forward_path: Option<String>,
    request_id: Option<String>,
    /// The rewrite waiting for a call-out's credential, and its key.
    pending: Option<(Rewrite, String)>,
    /// The model the request names (exact, for credentials bound to it).
    model: Option<String>,
    /// A model listing: its response is filtered to what the workload may call.
    listing: bool,
    response: Response,
}

/// What is read of the response.
#[derive(Debug, Default)]
enum Response {
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
}

/// At most this many evaluated conditions go in one record.
const MAX_RECORDED_CONDITIONS: usize = 64;

/// Values a workload chose are cut to this many bytes in the audit record,
/// so no request can flood the log.
pub const MAX_AUDIT_VALUE: usize = 256;

impl Flow {
    /// A request starts. `policy` is `None` only when the filter has no
    /// valid configuration (Envoy should have refused it).
    pub fn new(policy: Option<&Policy>, now_ms: u64) -> Self {
        let record = Record { mode: policy.map_or("", |p| p.mode.name()), ..Default::default() };
        Flow { started_ms: now_ms, record, ..Default::default() }
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
            && (self.record.upstream.as_ref().is_none_or(|u| u.status.is_none_or(|s| s >= 500))
                || matches!(self.response, Response::Stream { .. }));
        self.record.request_id.is_none() || !matches!(self.phase, Phase::Forwarded | Phase::Replied) || upstream_failed
    }

    /// Whether the status the client received is known without asking
    /// Envoy: modelgate's own reply, or the upstream's response.
    pub fn knows_status(&self) -> bool {
        self.record.status.is_some()
    }

    /// Moves the request on by one event.
    pub fn drive(&mut self, env: &Env<'_>, event: Event<'_>) -> Step {
        match (self.phase, event) {
            (Phase::Start, Event::RequestHeaders { head, end_of_stream }) => {
                self.on_request_headers(env, &head, end_of_stream)
            }
            (Phase::ReadingBody, Event::RequestBody { size, end_of_stream, body }) => {
                if u64::try_from(size).unwrap_or(u64::MAX) > env.policy.max_body_bytes {
                    return self.body_too_large(env);
                }
                if !end_of_stream {
                    return Step::Hold;
                }
                self.decide_body(env, &body.read())
            }
            (Phase::ReadingBody, Event::RequestTrailers { body }) => {
                let bytes = body.read();
                if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > env.policy.max_body_bytes {
                    return self.body_too_large(env);
                }
                self.decide_body(env, &bytes)
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
            (Phase::AwaitingCredential, Event::Callout(result)) => self.on_credential(env, Some(&result)),
            (Phase::AwaitingCredential, Event::CredentialShared) => self.on_credential(env, None),
            (Phase::Replied, Event::StepFailed) => Step::Hold,
            (_, Event::StepFailed) => self.step_failed(env),
            (Phase::Forwarded, Event::ResponseHeaders { status, content_type }) => {
                self.on_response_headers(env, status, content_type)
            }
            (Phase::Forwarded, Event::ResponseBody { size, end_of_stream, body }) => {
                self.on_response_body(env, size, end_of_stream, body)
            }
            (_, Event::Log(log)) => Step::Audit(self.audit(&log)),
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

    fn on_request_headers(&mut self, env: &Env<'_>, head: &RequestHead<'_>, end_of_stream: bool) -> Step {
        let policy = env.policy;
        self.started_ms = env.now_ms;
        self.record.mode = policy.mode.name();
        self.request_id = head.request_id.map(bounded);
        self.record.request_id = self.request_id.clone();
        self.record.trace_id = trace_id(head.headers);
        self.record.client = Client::at(head.client_address);
        self.headers = head.headers.to_vec();
        // Until the endpoint is known, only credentials leave the query.
        self.forward_path = query::strip_credentials(head.path);
        self.content_type = header(head.headers, "content-type").map(str::to_string);

        let provider = match_provider(policy, head.authority, head.path);
        self.provider = provider.map(|(i, _)| i);
        if let Some((_, p)) = provider {
            self.api = Some(p.api);
            self.record.provider = Some(p.name.clone());
            self.record.api = Some(p.api.name());
        }

        // Identity first, in every mode: a caller modelgate cannot identify
        // is refused here, before its body is read, and never forwarded
        // (audit mode observes policy; it hands no one the gateway's key).
        let sources = Sources {
            api: self.api,
            headers: head.headers,
            peer: head.peer,
            verifier: env.verifier,
            svids: env.svids,
            trust: env.trust,
            now_secs: env.now_ms / 1000,
        };
        let svid = match identity::identify(policy, &sources) {
            Ok(identity) => identity,
            Err(d) => return self.refuse(env, d),
        };
        self.record.workload = Some(svid.workload(bounded));
        self.identity = Some(svid.spiffe_id.clone());
        self.svids = (svid.jwt.clone(), svid.x509.clone());
        self.metadata = head.metadata.to_vec();

        let Some((_, provider)) = provider else {
            let d = Denial::new(
                Reason::NoProvider,
                format!(
                    "no provider is configured for {}",
                    bounded(&format!("{}{}", head.authority, path_only(head.path)))
                ),
            );
            return self.deny_or_forward(env, d);
        };
        let endpoint_path = strip_prefix(provider, path_only(head.path));
        if let Err(d) = path::check(endpoint_path, provider.api.spec().encoded_segment) {
            self.record.endpoint = Some(bounded(endpoint_path));
            return self.deny_or_forward(env, d);
        }
        // A connection upgrade (websocket, realtime) or a tunnel would
        // carry traffic modelgate never reads.
        if head.method == "CONNECT" || header(head.headers, "upgrade").is_some() {
            self.record.endpoint = Some(bounded(endpoint_path));
            let d = Denial::new(Reason::EndpointNotAllowed, "connection upgrades and tunnels are not allowed")
                .with_detail("upgrade");
            return self.deny_or_forward(env, d);
        }
        let Some((endpoint, captures)) = provider.api.classify(head.method, endpoint_path) else {
            self.record.endpoint = Some(bounded(endpoint_path));
            if provider.api.classify_ignoring_case(head.method, endpoint_path) {
                let d = Denial::new(Reason::InvalidPath, "the path differs from a known endpoint's only in case")
                    .with_detail("path_case");
                return self.deny_or_forward(env, d);
            }
            // An allow rule may list endpoints that name no model.
            if let Some(rule) = decision::endpoint_rule(
                &policy.rules,
                &svid.spiffe_id,
                &provider.name,
                head.method,
                endpoint_path,
                &self.facts(env),
            ) {
                self.record.rule = Some(rule.id.clone());
                return self.forward(env, Vec::new());
            }
            let d = Denial::new(
                Reason::EndpointNotAllowed,
                format!(
                    "{} {} is not an endpoint modelgate allows for provider {:?}",
                    bounded(head.method),
                    bounded(endpoint_path),
                    provider.name
                ),
            );
            return self.deny_or_forward(env, d);
        };
        self.endpoint = Some(endpoint);
        self.record.endpoint = Some(endpoint.path.to_string());
        if let Err(d) = pinned(provider, &captures) {
            return self.deny_or_forward(env, d);
        }
        self.captures = captures;
        match query::sanitize(head.path, endpoint.query) {
            Ok(path) => self.forward_path = path,
            Err(d) => return self.deny_or_forward(env, d),
        }

        // Refuse as early as possible: no rule could allow this workload
        // anything at this provider, whatever the body says.
        let Some(naming) = decision::rule_naming(&policy.rules, &svid.spiffe_id, &provider.name) else {
            let d = Denial::new(
                Reason::ModelNotAllowed,
                format!("no rule allows {} any model at provider {:?}", svid.spiffe_id, provider.name),
            )
            .with_detail("no_matching_rule");
            return self.deny_or_forward(env, d);
        };

        if endpoint.model == ModelAt::Listing {
            if !end_of_stream {
                let d = Denial::new(Reason::InvalidBody, "the model listing takes no request body")
                    .with_detail("unexpected_body");
                return self.deny_or_forward(env, d);
            }
            // Allowed to a workload some rule names; the listing is cut
            // down to the models it may call.
            self.record.rule = Some(naming.id.clone());
            self.listing = policy.mode == Mode::Enforce;
            return self.forward(env, Vec::new());
        }

        let encodings = head.headers.iter().filter(|(k, _)| k == "content-encoding");
        if let Some((_, enc)) = encodings.into_iter().find(|(_, v)| !v.trim().eq_ignore_ascii_case("identity")) {
            let d = Denial::new(
                Reason::UnsupportedEncoding,
                format!(
                    "request bodies in content-encoding {:?} are not accepted; send them uncompressed",
                    bounded(enc.trim())
                ),
            )
            .with_detail(bounded(&enc.trim().to_ascii_lowercase()));
            return self.deny_or_forward(env, d);
        }
        let declared = header(head.headers, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > policy.max_body_bytes) {
            return self.body_too_large(env);
        }
        if end_of_stream {
            return self.decide_body(env, &[]);
        }
        self.phase = Phase::ReadingBody;
        Step::Hold
    }

    fn body_too_large(&mut self, env: &Env<'_>) -> Step {
        let d = Denial::new(
            Reason::BodyTooLarge,
            format!("the request body is larger than {} bytes", env.policy.max_body_bytes),
        );
        self.deny_or_forward(env, d)
    }

    /// The whole request body is here: decide.
    fn decide_body(&mut self, env: &Env<'_>, body: &[u8]) -> Step {
        let policy = env.policy;
        self.record.prompt = Some(Prompt::of(body, policy.prompt_audit == PromptAudit::Sha256));
        let (Some(endpoint), Some(provider), Some(identity)) =
            (self.endpoint, self.provider.and_then(|i| policy.providers.get(i)), self.identity.clone())
        else {
            return self.refuse(env, Denial::new(Reason::InvalidBody, "the request could not be classified"));
        };
        let parsed = match body::parse(endpoint, self.content_type.as_deref(), body) {
            Ok(parsed) => parsed,
            Err(d) => return self.deny_or_forward(env, d),
        };
        let named = match self.model_of(endpoint, parsed.model.as_deref()) {
            Ok(Some(model)) => model,
            Ok(None) => {
                return self.deny_or_forward(env, Denial::new(Reason::ModelMissing, "the request names no model"))
            }
            Err(d) => return self.deny_or_forward(env, d),
        };
        // Rules decide on the model the provider runs, never on an alias.
        let model = match in_provider_namespace(provider, &named) {
            Ok(None) => named,
            Ok(Some(model)) => {
                self.record.requested_model = Some(bounded(&named));
                model
            }
            Err(d) => {
                self.record.requested_model = Some(bounded(&named));
                return self.deny_or_forward(env, d);
            }
        };
        self.record.model = Some(bounded(&model));
        self.model = Some(model.clone());
        self.record.stream = Some(parsed.stream);
        let mut seen = Vec::new();
        let decided =
            decision::decide_for(&policy.rules, &identity, &provider.name, &model, &self.facts(env), &mut seen);
        self.note_conditions(seen);
        let rule = match decided {
            Ok(rule) => rule,
            Err(d) => return self.deny_or_forward(env, d),
        };
        // A model a header names (Azure's image-generation deployment) is
        // one more the provider can be made to use; it also names the model
        // of a tool that names none.
        let header_models: Vec<String> = provider
            .api
            .spec()
            .model_headers
            .iter()
            .flat_map(|name| self.headers.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.clone()))
            .collect();
        if let Err(d) = parsed.check_tool_models(!header_models.is_empty()) {
            return self.deny_or_forward(env, d);
        }
        // Every other model the body can make the provider use must be
        // allowed too (a tool's image model, a moderation model, …).
        for other in parsed.other_models.iter().chain(&header_models) {
            let other = (provider.api.spec().model_name)(other);
            let other = match in_provider_namespace(provider, other) {
                Ok(None) => other.to_string(),
                Ok(Some(model)) => model,
                Err(d) => return self.deny_or_forward(env, d),
            };
            let other = other.as_str();
            let mut seen = Vec::new();
            let decided =
                decision::decide_for(&policy.rules, &identity, &provider.name, other, &self.facts(env), &mut seen);
            self.note_conditions(seen);
            if let Err(denied) = decided {
                let mut d = Denial::new(
                    Reason::ModelNotAllowed,
                    format!(
                        "the request also asks for the model {:?}, which {identity} may not use here",
                        bounded(other)
                    ),
                )
                .with_detail("nested_model");
                d.rule = denied.rule;
                return self.deny_or_forward(env, d);
            }
        }
        if self.denial.is_none() {
            self.record.rule = Some(rule.id.clone());
        }
        if let Err(d) = self.guard(policy, rule, endpoint, body) {
            return self.deny_or_forward(env, d.with_rule(rule.id.clone()));
        }
        match parsed.apply_limits(&rule.limits) {
            Ok(mut edits) => {
                if provider.include_usage {
                    edits.extend(parsed.ask_stream_usage());
                }
                if let Some(name) = provider.identity_to_provider {
                    edits.extend(parsed.name_end_user(&name.of(identity.as_str())));
                }
                edits.sort_by_key(|e| e.at);
                self.forward(env, edits)
            }
            Err(d) => self.deny_or_forward(env, d.with_rule(rule.id.clone())),
        }
    }

    /// The request goes on: every caller credential out, the provider's in,
    /// the body's edits (enforce mode only) — or first a call-out for the
    /// credential.
    fn forward(&mut self, env: &Env<'_>, edits: Vec<Edit>) -> Step {
        let policy = env.policy;
        let provider = self.provider.and_then(|i| policy.providers.get(i));
        let mut rewrite = credential::rewrite(provider, &policy.jwt_svid.carrier, &self.headers);
        rewrite.path = self.forward_path.clone();
        // Audit mode changes nothing but credentials.
        if policy.mode == Mode::Enforce {
            rewrite.body_edits = edits;
        }
        if let Some(p) = provider {
            self.record.credential = Some(CredentialUsed { type_: p.credential.type_name(), name: p.name.clone() });
            let Some(identity) = self.identity.as_ref().map(SpiffeId::to_string) else {
                return self.refuse(env, Denial::new(Reason::MissingIdentity, "the caller was not identified"));
            };
            let svid = if policy.jwt_svid.enabled {
                credential::find_svid(&policy.jwt_svid.carrier, self.api, &self.headers).ok()
            } else {
                None
            };
            let caller = Caller { spiffe_id: &identity, svid, model: self.model.as_deref() };
            match credential::plan(p, &caller, &self.headers, env.tokens, env.now_ms, env.random, env.verifier) {
                Ok(Plan::Ready(headers)) => rewrite.set_headers.extend(headers),
                Ok(Plan::Fetch { key, call }) => {
                    self.pending = Some((rewrite, key.clone()));
                    self.phase = Phase::AwaitingCredential;
                    return Step::Callout { key, call };
                }
                // A credential that cannot be had is refused in every mode.
                Err(d) => return self.refuse(env, d),
            }
        }
        self.went_on();
        Step::Continue(rewrite)
    }

    fn went_on(&mut self) {
        self.phase = Phase::Forwarded;
        self.record.decision = "allow";
        if self.denial.is_none() {
            self.record.reason = Verdict::Ok;
        }
    }

    /// The credential arrived: this request's own call-out answered
    /// (`result`), or another request's fetch of the same key did.
    fn on_credential(&mut self, env: &Env<'_>, result: Option<&CalloutResult>) -> Step {
        let provider = self.provider.and_then(|i| env.policy.providers.get(i));
        let (Some(provider), Some((mut rewrite, key))) = (provider, self.pending.take()) else {
            return self.refuse(env, Denial::new(Reason::CredentialUnavailable, "no credential was being fetched"));
        };
        let headers = match result {
            Some(result) => credential::finish(provider, &key, result, &self.headers, env.tokens, env.now_ms),
            None => credential::shared(provider, &key, &self.headers, env.tokens, env.now_ms),
        };
        match headers {
            Ok(headers) => {
                rewrite.set_headers.extend(headers);
                self.went_on();
                Step::Continue(rewrite)
            }
            // A credential that cannot be obtained is refused in every mode.
            Err(d) => self.refuse(env, d),
        }
    }

    /// The host would not apply a step. On the request: refuse it, whatever
    /// the mode (forwarding it could leak the workload's credential). On the
    /// response: reset it (a listing must never pass unfiltered).
    fn step_failed(&mut self, env: &Env<'_>) -> Step {
        if self.record.upstream.is_some() {
            return Step::ResetResponse;
        }
        let d = Denial::new(Reason::CredentialUnavailable, "the gateway could not swap the request's credentials")
            .with_detail("rewrite_failed");
        self.denial = None;
        self.refuse(env, d)
    }

    fn on_response_headers(&mut self, env: &Env<'_>, status: Option<u16>, content_type: Option<&str>) -> Step {
        self.record.upstream = Some(Upstream { status, duration_ms: Some(env.now_ms.saturating_sub(self.started_ms)) });
        if self.listing && status == Some(200) {
            self.response = Response::Listing;
            // The body will change; its length is no longer known.
            return Step::Continue(Rewrite { remove_headers: vec!["content-length".into()], ..Default::default() });
        }
        let media = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if media == "application/json" {
            self.response = Response::Usage { held: Vec::new(), memory: None, taken: 0, overflow: false };
        } else if let Some(framing) = Framing::of(&media) {
            self.record.usage_complete = Some(false);
            self.response = Response::Stream {
                usage: Box::new(StreamUsage::new(framing, self.api.unwrap_or(Api::OpenAi))),
                memory: Rc::clone(env.memory),
                taken: 0,
            };
        }
        Step::Continue(Rewrite::default())
    }

    fn on_response_body(&mut self, env: &Env<'_>, size: usize, end: bool, body: &dyn BodySource) -> Step {
        match &mut self.response {
            Response::Ignored => Step::Continue(Rewrite::default()),
            Response::Listing if size > MAX_LISTING_BYTES => {
                self.response = Response::ListingDropped;
                Step::Continue(Rewrite {
                    body_edits: vec![replace_all(size, api::empty_listing(self.api.unwrap_or(Api::OpenAi)))],
                    ..Default::default()
                })
            }
            // What is left of a dropped listing is dropped too.
            Response::ListingDropped => {
                Step::Continue(Rewrite { body_edits: vec![replace_all(size, b"")], ..Default::default() })
            }
            Response::Listing if !end => Step::Hold,
            Response::Listing => {
                let filtered = self.filter_listing(env, &body.read());
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
                    self.read_stream_usage(true);
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
                        self.record.usage_complete = Some(false);
                    }
                }
                if end {
                    self.read_usage();
                }
                Step::Continue(Rewrite::default())
            }
        }
    }

    /// The listing as the workload may see it: only the models it may call.
    fn filter_listing(&self, env: &Env<'_>, body: &[u8]) -> Vec<u8> {
        let provider = self.provider.and_then(|i| env.policy.providers.get(i));
        let (Some(identity), Some(provider)) = (&self.identity, provider) else {
            return api::EMPTY_LISTING.to_vec();
        };
        let facts = self.facts(env);
        api::filter_model_list(provider.api, body, |model| {
            decision::decide_for(&env.policy.rules, identity, &provider.name, model, &facts, &mut Vec::new()).is_ok()
        })
    }

    /// What rule conditions judge this request by.
    fn facts(&self, env: &Env<'_>) -> Facts<'_> {
        Facts {
            now_secs: env.now_ms / 1000,
            peer: self.record.client.address.as_deref(),
            jwt: self.svids.0.as_deref(),
            x509: self.svids.1.as_deref(),
            metadata: &self.metadata,
        }
    }

    /// Conditions evaluated, for the record (each once).
    fn note_conditions(&mut self, seen: Vec<Evaluated>) {
        if seen.is_empty() {
            return;
        }
        let list = self.record.conditions.get_or_insert_with(Vec::new);
        for e in seen {
            if !list.contains(&e) && list.len() < MAX_RECORDED_CONDITIONS {
                list.push(e);
            }
        }
    }

    /// The prompt guard over the body's text, with the deciding rule's
    /// action: the findings go in the record; with `block`, any refuses.
    fn guard(&mut self, policy: &Policy, rule: &Rule, endpoint: &Endpoint, body: &[u8]) -> Result<(), Denial> {
        let Some(guard) = &policy.prompt_guard else { return Ok(()) };
        let Some(action) = rule.prompt_guard.unwrap_or(Some(guard.action)) else { return Ok(()) };
        let findings = match endpoint.body {
            BodyFormat::Json | BodyFormat::JsonByDefault => guard.scan_json(body),
            BodyFormat::Multipart => guard.scan_multipart(body, self.content_type.as_deref().unwrap_or("")),
            BodyFormat::None => return Ok(()),
        };
        let found: Vec<&str> = findings.keys().map(String::as_str).collect();
        let detail = found.join(",");
        self.record.prompt_guard = Some(Findings { action: Some(action), findings: findings.clone() });
        if action == Action::Block && !found.is_empty() {
            return Err(Denial::new(
                Reason::PromptBlocked,
                format!("the prompt holds what may not leave the gateway ({detail})"),
            )
            .with_detail(bounded(&detail)));
        }
        Ok(())
    }

    /// The name the request selects its model by, wherever its api puts it.
    fn model_of(&self, endpoint: &Endpoint, body: Option<&str>) -> Result<Option<String>, Denial> {
        let capture = |name: &str| self.captures.get(name);
        Ok(match endpoint.model {
            ModelAt::EncodedCapture(name) => capture(name).map(|raw| path::model_id(self.api, raw)).transpose()?,
            ModelAt::Capture(name) => capture(name).map(str::to_string),
            ModelAt::Publisher(publisher, model) => match (capture(publisher), capture(model)) {
                (Some(p), Some(m)) => Some(format!("{p}/{m}")),
                _ => None,
            },
            ModelAt::BodyOf(_, prefix) => body.map(|m| format!("{prefix}{m}")),
            ModelAt::Body(_) | ModelAt::Listing => body.map(str::to_string),
        })
    }

    /// The usage a stream reported, when it `ended` (or was cut short).
    fn read_stream_usage(&mut self, ended: bool) {
        if let Response::Stream { usage, .. } = &mut self.response {
            let (counted, complete) = usage.finish(ended);
            self.record.usage = counted;
            self.record.usage_complete = Some(complete);
            if let Some(model) = usage.model.take() {
                self.record.response_model = Some(bounded(&model));
            }
        }
        self.response.release();
        self.response = Response::Ignored;
    }

    fn read_usage(&mut self) {
        if let Response::Usage { held, overflow: false, .. } = &self.response {
            if let (Ok(v), Some(api)) = (serde_json::from_slice::<Value>(held), self.api) {
                let (usage, model) = api.response_usage(&v);
                self.record.usage = usage;
                self.record.response_model = model.as_deref().map(bounded);
            }
        }
        self.response.release();
    }

    /// Refuses a request that arrived while the filter has no valid
    /// configuration (Envoy should have refused the configuration itself).
    pub fn unconfigured(&mut self) -> LocalReply {
        let d = Denial::new(Reason::NotConfigured, "modelgate has no valid configuration").with_detail("no_policy");
        self.record.reason = Verdict::Denied(d.reason);
        self.record.detail = d.detail.clone();
        self.record.decision = "deny";
        self.phase = Phase::Replied;
        d.reply(None, None)
    }

    /// The stats this request adds to (call after [`Flow::audit`]).
    pub fn metrics(&self, policy: &Policy) -> Vec<(String, u64)> {
        crate::audit::metrics::of(&self.record, policy)
    }

    /// Envoy is logging the request: the record is final. (What
    /// [`Event::Log`] answers; called directly only without a policy.)
    pub fn audit(&mut self, log: &LogInfo) -> String {
        // Whatever response was being read ends here (and its memory goes back).
        self.read_stream_usage(false);
        self.record.time = rfc3339_millis(self.started_ms);
        self.record.status = log.status.or(self.record.status);
        if self.record.request_id.is_none() {
            self.record.request_id = log.request_id.as_deref().map(bounded);
        }
        if self.record.client.address.is_none() {
            self.record.client = Client::at(log.client_address.as_deref());
        }
        match self.phase {
            Phase::Forwarded | Phase::Replied => {}
            phase => {
                // The request ended before it was decided, or before it went
                // on: the client went away, Envoy refused it first, or a
                // call-out never answered. Nothing went upstream.
                self.record.decision = "deny";
                self.record.reason = Verdict::Incomplete;
                self.record.would_deny = false;
                self.record.credential = None;
                let why = match phase {
                    Phase::AwaitingCredential => "ended while the credential was fetched",
                    _ => "ended before a decision",
                };
                self.record.detail = Some(log.details.as_deref().map_or_else(|| why.to_string(), bounded));
            }
        }
        if let Some(upstream) = self.record.upstream.as_mut() {
            upstream.status = upstream.status.or(log.status);
        }
        // A request that went on but failed on the way (no upstream, a
        // reset, a timeout, the client gone): Envoy's reason is the detail.
        if self.phase == Phase::Forwarded && self.record.detail.is_none() {
            if let Some(details) = log.details.as_deref().filter(|d| *d != "via_upstream") {
                self.record.detail = Some(bounded(details));
            }
        }
        self.record.to_json()
    }

    /// Refuses with a local reply, in every mode.
    fn refuse(&mut self, env: &Env<'_>, d: Denial) -> Step {
        // Nothing went upstream: no credential was used.
        self.record.credential = None;
        self.record.reason = Verdict::Denied(d.reason);
        self.record.detail = d.detail.clone();
        self.record.rule = d.rule.clone();
        self.record.decision = "deny";
        self.record.would_deny = false;
        self.record.mode = env.policy.mode.name();
        self.phase = Phase::Replied;
        let reply = d.reply(self.api, self.request_id.as_deref());
        self.record.status = Some(reply.status);
        Step::Reply(reply)
    }

    /// A policy denial: refused in enforce mode; in audit mode recorded (the
    /// first one, as `would_deny`) and the request goes on as if allowed.
    fn deny_or_forward(&mut self, env: &Env<'_>, d: Denial) -> Step {
        if env.policy.mode == Mode::Enforce {
            return self.refuse(env, d);
        }
        self.record.would_deny = true;
        if self.denial.is_none() {
            self.record.reason = Verdict::Denied(d.reason);
            self.record.detail = d.detail.clone();
            self.record.rule = d.rule.clone();
            self.denial = Some(d);
        }
        self.forward(env, Vec::new())
    }
}

/// The model `name` selects in `provider`'s namespace: `None` when it is
/// the model itself, the model when it is an alias (a deployment, an
/// inference profile, an ARN); refused when it selects nothing a rule can
/// decide on.
fn in_provider_namespace(provider: &Provider, name: &str) -> Result<Option<String>, Denial> {
    match (provider.api.spec().resolve)(name, &provider.deployments) {
        Selects::Model => Ok(None),
        Selects::Alias(model) => Ok(Some(model)),
        Selects::Unmapped(detail) => Err(Denial::new(
            Reason::ModelNotAllowed,
            format!(
                "{:?} names no model provider {:?} maps (add it to the provider's deployments)",
                bounded(name),
                provider.name
            ),
        )
        .with_detail(detail)),
    }
}

/// Replaces a whole held body of `size` bytes.
fn replace_all(size: usize, with: &[u8]) -> Edit {
    Edit { at: 0, remove: size, insert: with.to_vec() }
}

pub(crate) fn bounded(value: &str) -> String {
    if value.len() <= MAX_AUDIT_VALUE {
        return value.to_string();
    }
    let mut end = MAX_AUDIT_VALUE;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// A request's path may name only the project and location the
/// provider's credential acts in (Vertex's: its api's `scope`).
fn pinned(provider: &Provider, captures: &Captures) -> Result<(), Denial> {
    let Some(in_scope) = provider.api.spec().scope else { return Ok(()) };
    in_scope(captures, provider.project.as_deref(), &provider.locations).map_err(|out| {
        Denial::new(
            Reason::EndpointNotAllowed,
            format!("the {} {:?} is not one provider {:?} serves", out.what, bounded(&out.value), provider.name),
        )
        .with_detail(out.detail)
    })
}

/// The first provider whose authorities and path prefix both match. An
/// authority matches only as Envoy's route table would see it: the whole
/// `:authority`, port included, in lower case (a trailing dot or an extra
/// port is another authority, which Envoy may route elsewhere).
fn match_provider<'p>(policy: &'p Policy, authority: &str, path: &str) -> Option<(usize, &'p Provider)> {
    let authority = authority.to_ascii_lowercase();
    let path = path_only(path);
    policy.providers.iter().enumerate().find(|(_, p)| {
        (p.authorities.is_empty() || p.authorities.contains(&authority))
            && p.path_prefix.as_deref().is_none_or(|prefix| path.starts_with(prefix))
    })
}

/// The path as the provider's api sees it: the match prefix removed, but
/// for its last `/`.
fn strip_prefix<'a>(provider: &Provider, path: &'a str) -> &'a str {
    match provider.path_prefix.as_deref() {
        Some(prefix) if prefix.len() > 1 => {
            let keep = if prefix.ends_with('/') { prefix.len() - 1 } else { prefix.len() };
            path.get(keep..).unwrap_or("")
        }
        _ => path,
    }
}

/// The W3C `traceparent` trace id, or Zipkin's `x-b3-traceid`.
fn trace_id(headers: &[(String, String)]) -> Option<String> {
    if let Some(tp) = header(headers, "traceparent") {
        let id = tp.split('-').nth(1)?;
        if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(id.to_ascii_lowercase());
        }
    }
    header(headers, "x-b3-traceid")
        .filter(|id| (id.len() == 16 || id.len() == 32) && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
