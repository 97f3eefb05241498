//! The one writer of a request's [`Record`]: the flow's steps report what
//! they learned and decided, in the words of the step, and the recorder
//! keeps the record's rules — values a workload chose are bounded, a
//! refused request used no credential, audit mode reports the first denial
//! as `would_deny`, a request that ended undecided is `incomplete`.

use crate::api::mcp::message::{Ask, Message};
use crate::api::Usage;
use crate::audit::record::{
    Client, CredentialUsed, JwtInfo, McpMessage, PolicyRef, Prompt, Record, Upstream, Workload, X509Info,
};
use crate::body::guard::Findings;
use crate::decision::conditions::Evaluated;
use crate::identity::Identity;
use crate::reason::{Denial, Verdict};
use crate::util::text::bounded;
use crate::util::time::rfc3339_millis;

/// At most this many evaluated conditions go in one record.
const MAX_RECORDED_CONDITIONS: usize = 64;

#[derive(Debug, Default)]
pub struct Recorder {
    record: Record,
    started_ms: u64,
    /// A policy denial was recorded (audit mode): it stays the record's reason.
    denied: bool,
    /// The message of the denial the record reports (not in the record:
    /// the caller had it in the reply; `explain` shows it).
    message: Option<String>,
}

/// How a request ended, as [`Recorder::finish`] needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Forwarded upstream, or refused with a local reply: decided.
    Decided,
    /// Ended before a decision (the client went away, Envoy refused first).
    Undecided,
    /// Ended while the credential was being fetched.
    AwaitingCredential,
}

/// What Envoy knows when it logs the request, as the record takes it.
pub struct Logged<'a> {
    pub status: Option<u16>,
    pub request_id: Option<&'a str>,
    pub details: Option<&'a str>,
    pub client_address: Option<&'a str>,
    /// The request went upstream.
    pub forwarded: bool,
}

impl Recorder {
    pub fn new(policy: Option<&crate::config::Policy>, now_ms: u64) -> Self {
        let record = Record {
            mode: policy.map_or("", |p| p.mode.name()),
            policy: policy.map(|p| PolicyRef { revision: p.revision.clone(), digest: p.generation.clone() }),
            ..Default::default()
        };
        Recorder { record, started_ms: now_ms, denied: false, message: None }
    }

    /// The record as it stands (for the stats it adds to).
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The request's headers arrived.
    pub fn began(
        &mut self,
        mode: &'static str,
        now_ms: u64,
        request_id: Option<&str>,
        trace_id: Option<String>,
        client_address: Option<&str>,
    ) {
        self.started_ms = now_ms;
        self.record.mode = mode;
        self.record.request_id = request_id.map(bounded);
        self.record.trace_id = trace_id;
        self.record.client = Client::at(client_address);
    }

    /// The request id as recorded (bounded): error bodies quote it.
    pub fn request_id(&self) -> Option<&str> {
        self.record.request_id.as_deref()
    }

    /// The client's address as Envoy reported it (bounded).
    pub fn client_address(&self) -> Option<&str> {
        self.record.client.address.as_deref()
    }

    pub fn provider(&mut self, name: &str, api: &'static str) {
        self.record.provider = Some(name.to_string());
        self.record.api = Some(api);
    }

    /// Who called: the SPIFFE ID and the SVIDs that proved it, never the
    /// SVIDs themselves.
    pub fn identified(&mut self, identity: &Identity) {
        let svid = match (&identity.jwt, &identity.x509) {
            (Some(_), Some(_)) => "jwt+x509",
            (None, Some(_)) => "x509",
            _ => "jwt",
        };
        self.record.workload = Some(Workload {
            spiffe_id: identity.spiffe_id.to_string(),
            trust_domain: identity.spiffe_id.trust_domain().to_string(),
            svid,
            jwt: identity.jwt.as_ref().map(|j| JwtInfo {
                kid: Some(j.kid.clone()),
                exp: j.exp,
                jti: j.jti.as_deref().map(bounded),
            }),
            x509: identity.x509.as_ref().map(|x| X509Info {
                serial: x.serial.clone(),
                not_before: x.not_before,
                not_after: x.not_after,
            }),
        });
    }

    /// The endpoint: the api's template when one matched, else the path sent.
    pub fn endpoint(&mut self, endpoint: &str) {
        self.record.endpoint = Some(bounded(endpoint));
    }

    pub fn prompt(&mut self, body: &[u8], digest: bool) {
        self.record.prompt = Some(Prompt::of(body, digest));
    }

    /// The name the request selected its model by, when the provider maps
    /// it to another (a deployment, an inference profile).
    pub fn requested_model(&mut self, name: &str) {
        self.record.requested_model = Some(bounded(name));
    }

    /// The model rules decided on, and whether the call streams.
    pub fn model(&mut self, model: &str, stream: bool) {
        self.record.model = Some(bounded(model));
        self.record.stream = Some(stream);
    }

    /// An MCP request's headers: its era and session (a digest).
    pub fn mcp(&mut self, message: McpMessage) {
        self.record.mcp = Some(message);
    }

    /// What an MCP request without a message is (`stream`, `end_session`).
    pub fn mcp_kind(&mut self, kind: &'static str) {
        self.record.mcp.get_or_insert_with(McpMessage::default).kind = Some(kind);
    }

    /// The MCP message the request carries, and the digest of its arguments.
    pub fn mcp_message(&mut self, message: &Message, arguments_sha256: Option<String>) {
        let record = self.record.mcp.get_or_insert_with(McpMessage::default);
        record.kind = Some(message.kind.name());
        record.method = message.method.as_deref().map(bounded);
        record.id = message.id.as_ref().map(|id| match id {
            serde_json::Value::String(s) => serde_json::Value::String(bounded(s)),
            other => other.clone(),
        });
        let named = message.named().map(bounded);
        match &message.ask {
            Ask::Tool { .. } => record.tool = named,
            Ask::Resource(_) => record.resource = named,
            Ask::Prompt(_) => record.prompt = named,
            Ask::Method(_) | Ask::Answer => {}
        }
        match message.refers_to.first() {
            Some(Ask::Resource(uri)) => record.resource = Some(bounded(uri)),
            Some(Ask::Prompt(name)) => record.prompt = Some(bounded(name)),
            _ => {}
        }
        record.arguments_sha256 = arguments_sha256;
    }

    /// Conditions evaluated (each once, at most [`MAX_RECORDED_CONDITIONS`]).
    pub fn conditions(&mut self, seen: Vec<Evaluated>) {
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

    /// The rule that allows the request (unless a denial is already the
    /// record's reason: audit mode).
    pub fn allowed_by(&mut self, rule: &str) {
        if !self.denied {
            self.record.rule = Some(rule.to_string());
        }
    }

    pub fn guard(&mut self, findings: Findings) {
        self.record.prompt_guard = Some(findings);
    }

    pub fn credential(&mut self, type_: &'static str, provider: &str) {
        self.record.credential = Some(CredentialUsed { type_, name: provider.to_string() });
    }

    /// Refused with a local reply of `status`: nothing went upstream, no
    /// credential was used.
    pub fn refused(&mut self, mode: &'static str, d: &Denial, status: u16) {
        self.record.credential = None;
        self.record.reason = Verdict::Denied(d.reason);
        self.record.detail = d.detail.clone();
        self.record.rule = d.rule.clone();
        self.record.decision = "deny";
        self.record.would_deny = false;
        self.record.mode = mode;
        self.record.status = Some(status);
        self.message = Some(d.message.clone());
    }

    /// The message of the denial the record reports.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// Audit mode: a denial that enforce mode would have made. The first
    /// one is the record's reason.
    pub fn would_deny(&mut self, d: &Denial) {
        self.record.would_deny = true;
        if !self.denied {
            self.denied = true;
            self.record.reason = Verdict::Denied(d.reason);
            self.record.detail = d.detail.clone();
            self.record.rule = d.rule.clone();
            self.message = Some(d.message.clone());
        }
    }

    /// A refusal that overrides an earlier audit-mode denial (a failed rewrite).
    pub fn forget_denial(&mut self) {
        self.denied = false;
    }

    /// The request went upstream.
    pub fn forwarded(&mut self) {
        self.record.decision = "allow";
        if !self.denied {
            self.record.reason = Verdict::Ok;
        }
    }

    /// Refused for want of a configuration.
    pub fn unconfigured(&mut self, d: &Denial) {
        self.record.reason = Verdict::Denied(d.reason);
        self.record.detail = d.detail.clone();
        self.record.decision = "deny";
    }

    /// Whether the status the client received is known.
    pub fn knows_status(&self) -> bool {
        self.record.status.is_some()
    }

    /// The upstream answered with `status`, `now_ms`.
    pub fn upstream(&mut self, status: Option<u16>, now_ms: u64) {
        self.record.upstream = Some(Upstream { status, duration_ms: Some(now_ms.saturating_sub(self.started_ms)) });
    }

    /// Whether the upstream answered at all, and if so with a success.
    pub fn upstream_answered(&self) -> Option<Option<u16>> {
        self.record.upstream.as_ref().map(|u| u.status)
    }

    /// Usage will be read, but is not known yet (a stream), or could not
    /// be (a response too large to hold).
    pub fn usage_incomplete(&mut self) {
        self.record.usage_complete = Some(false);
    }

    /// What a stream reported.
    pub fn stream_usage(&mut self, usage: Option<Usage>, complete: bool, model: Option<String>) {
        self.record.usage = usage;
        self.record.usage_complete = Some(complete);
        if let Some(model) = model {
            self.record.response_model = Some(bounded(&model));
        }
    }

    /// What a JSON response reported.
    pub fn response_usage(&mut self, usage: Option<Usage>, model: Option<&str>) {
        self.record.usage = usage;
        self.record.response_model = model.map(bounded);
    }

    /// The budgets the request drew on, settled at `charge`.
    pub fn budgets(&mut self, plan: &crate::budget::Plan, charge: crate::budget::Amount) {
        use crate::audit::record::{BudgetDrawn, Spend};
        use crate::budget::usd;
        let priced = plan.price.is_some();
        let spend = |tokens: Option<u64>, nano: Option<u64>| Spend { tokens, usd: nano.map(usd) };
        if priced {
            self.record.cost_usd = Some(usd(charge.nano_usd));
        }
        self.record.budgets = plan
            .draws
            .iter()
            .map(|d| {
                let counts = |cap: Option<u64>, v: u64| cap.map(|_| v);
                let charged = d.charged.unwrap_or_default();
                BudgetDrawn {
                    id: d.id.clone(),
                    scope: d.scope.name(),
                    window_end: crate::util::time::rfc3339_millis(d.window_end_ms),
                    reserved: spend(
                        counts(d.limit.tokens, d.reserved.tokens),
                        counts(d.limit.nano_usd, d.reserved.nano_usd),
                    ),
                    charged: spend(counts(d.limit.tokens, charged.tokens), counts(d.limit.nano_usd, charged.nano_usd)),
                    remaining: d.remaining.map_or(Spend::default(), |l| spend(l.tokens, l.nano_usd)),
                    counted: d.local.then_some("local_share"),
                }
            })
            .collect();
    }

    /// Envoy logs the request: the record is final, one JSON line.
    pub fn finish(&mut self, ending: Ending, log: &Logged<'_>) -> String {
        let record = &mut self.record;
        record.time = rfc3339_millis(self.started_ms);
        record.status = log.status.or(record.status);
        if record.request_id.is_none() {
            record.request_id = log.request_id.map(bounded);
        }
        if record.client.address.is_none() {
            record.client = Client::at(log.client_address);
        }
        if ending != Ending::Decided {
            // The request ended before it was decided, or before it went
            // on: the client went away, Envoy refused it first, or a
            // call-out never answered. Nothing went upstream.
            record.decision = "deny";
            record.reason = Verdict::Incomplete;
            record.would_deny = false;
            record.credential = None;
            let why = match ending {
                Ending::AwaitingCredential => "ended while the credential was fetched",
                _ => "ended before a decision",
            };
            record.detail = Some(log.details.map_or_else(|| why.to_string(), bounded));
        }
        if let Some(upstream) = record.upstream.as_mut() {
            upstream.status = upstream.status.or(log.status);
        }
        // A request that went on but failed on the way (no upstream, a
        // reset, a timeout, the client gone): Envoy's reason is the detail.
        if log.forwarded && record.detail.is_none() {
            if let Some(details) = log.details.filter(|d| *d != "via_upstream") {
                record.detail = Some(bounded(details));
            }
        }
        record.to_json()
    }
}
