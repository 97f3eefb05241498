//! Why a call would be allowed or denied. A question describes a request
//! (workload, provider, endpoint, model — or, for an MCP server, a tool and
//! its arguments, a resource, a prompt or a method — and the facts
//! conditions read); explain builds that request as the gateway would
//! receive it and drives it through the same [`Flow`] the filter drives,
//! so the answer cannot drift from the gateway's decision. What `modelgate
//! explain` prints and the browser explorer shows.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use base64::Engine;

use crate::api::{Api, BodyFormat, Endpoint, ModelAt, Selects};
use crate::body::json::Step as PathStep;
use crate::config::{Carrier, Policy, Provider, X509Source};
use crate::credential::token_exchange::TokenCache;
use crate::decision::conditions::{Evaluated, MetadataValue};
use crate::flow::{Env, Event, Flow, Phase, RequestHead, ResponseMemory, Step};
use crate::identity::spiffe::SpiffeId;
use crate::identity::svid::bundle::Bundle;
use crate::identity::svid::jwt::{kept_claims, JwtSvid};
use crate::identity::svid::x509::X509Svid;
use crate::identity::svid::{PureRustVerifier, SvidCache, TrustStore};
use crate::identity::Peer;
use crate::reason::Reason;

/// A request as `explain` is told it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub spiffe_id: String,
    pub provider: String,
    /// `"POST /v1/chat/completions"` or a path (POST); the provider's path
    /// prefix already removed. Absent: a model endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// MCP: a `tools/call` of this tool…
    #[serde(default)]
    pub tool: Option<String>,
    /// …with these arguments (`params.arguments`).
    #[serde(default)]
    pub arguments: Option<serde_json::Map<String, Value>>,
    /// MCP: a `resources/read` (or, with `method`, `resources/subscribe`,
    /// `resources/unsubscribe`) of this URI.
    #[serde(default)]
    pub resource: Option<String>,
    /// MCP: a `prompts/get` of this prompt.
    #[serde(default)]
    pub prompt: Option<String>,
    /// MCP: the JSON-RPC method (`tools/list`, `initialize`,
    /// `notifications/initialized`, …); implied by `tool`, `resource`,
    /// `prompt`.
    #[serde(default)]
    pub method: Option<String>,
    /// The request's output bound (`max_tokens`, or the model family's
    /// own field): what a budget reserves besides the input.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Unix seconds (default: now).
    #[serde(default)]
    pub time: Option<u64>,
    /// The downstream peer, `ip:port` or an address.
    #[serde(default)]
    pub peer: Option<String>,
    /// `jwt` (default), `x509` or `jwt+x509`.
    #[serde(default)]
    pub svid: Option<String>,
    /// The SVIDs' age in seconds (`iat`, `notBefore`): default 0.
    #[serde(default)]
    pub svid_age_seconds: Option<u64>,
    /// JWT-SVID claims: a string or a list of strings each.
    #[serde(default)]
    pub claims: serde_json::Map<String, Value>,
    /// Dynamic metadata: `{"namespace": {"key": value}}`.
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub decision: &'static str,
    pub reason: &'static str,
    pub detail: Option<String>,
    pub rule: Option<String>,
    pub conditions: Vec<Evaluated>,
    pub message: String,
    /// The budgets an allowed request draws on, and what it reserves on
    /// each (the spend so far is the gateway's: explain starts from none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<BudgetDraw>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BudgetDraw {
    pub id: String,
    pub scope: &'static str,
    pub window: &'static str,
    pub reserve_tokens: u64,
    /// Nano-dollars (1e-9 USD), when a price is listed for the model.
    pub reserve_nano_usd: Option<u64>,
}

impl Answer {
    fn deny(reason: Reason, detail: &str, message: String) -> Answer {
        Answer {
            decision: "deny",
            reason: reason.code(),
            detail: Some(detail.to_string()),
            rule: None,
            conditions: Vec::new(),
            message,
            budgets: Vec::new(),
        }
    }
}

/// The decision for `q` under `policy`: the request `q` describes, driven
/// through the same [`Flow`] the filter drives, with the described SVIDs
/// standing in the flow's SVID cache as verified.
pub fn explain(policy: &Policy, q: &Question, now_secs: u64) -> Answer {
    let Ok(workload) = SpiffeId::parse(&q.spiffe_id) else {
        return Answer::deny(Reason::InvalidSvid, "spiffe_id", format!("{:?} is not a SPIFFE ID", q.spiffe_id));
    };
    if !policy.trust_domains.iter().any(|d| d.name.as_str() == workload.trust_domain()) {
        return Answer::deny(
            Reason::UntrustedDomain,
            "untrusted_domain",
            format!("trust domain {:?} is not in trust_domains", workload.trust_domain()),
        );
    }
    let Some(provider) = policy.provider(&q.provider) else {
        return Answer::deny(Reason::NoProvider, "no_provider", format!("no provider is named {:?}", q.provider));
    };
    let now = q.time.unwrap_or(now_secs);
    let (method, path) = match q.endpoint.as_deref() {
        Some(e) => e.split_once(' ').unwrap_or(("POST", e)),
        None => ("POST", ""),
    };
    let request = match Described::new(policy, provider, q, &workload, now, method, path) {
        Ok(request) => request,
        Err(answer) => return *answer,
    };
    let (step, flow) = request.drive(policy, now);
    let record = flow.recorder().record();
    let denied = matches!(step, Step::Reply(_)) || record.would_deny;
    let conditions = record.conditions.clone().unwrap_or_default();
    if denied {
        return Answer {
            decision: "deny",
            reason: record.reason.code(),
            detail: record.detail.clone(),
            rule: record.rule.clone(),
            conditions,
            message: flow.recorder().message().unwrap_or_default().to_string(),
            budgets: Vec::new(),
        };
    }
    let budgets: Vec<BudgetDraw> = flow
        .plan()
        .map(|plan| {
            plan.draws
                .iter()
                .map(|d| BudgetDraw {
                    id: d.id.clone(),
                    scope: d.scope.name(),
                    window: policy.budgets.list.get(d.budget).map_or("", |b| b.window.name()),
                    reserve_tokens: d.reserved.tokens,
                    reserve_nano_usd: plan.price.map(|_| d.reserved.nano_usd),
                })
                .collect()
        })
        .unwrap_or_default();
    let rule = record.rule.clone().unwrap_or_default();
    let message = match (request.endpoint, q.model.as_deref()) {
        _ if request.mcp.is_some() => {
            let ask = request.mcp.as_ref().map_or("", |m| m.what.as_str());
            let listing = request.mcp.as_ref().is_some_and(|m| m.listing);
            format!(
                "rule {rule:?} allows {workload} {ask} at provider {:?}{}",
                provider.name,
                if listing { " (the answer cut to what it may use)" } else { "" }
            )
        }
        (None, _) => format!("rule {rule:?} opens {method} {path} to {workload}"),
        (Some(e), _) if e.model == ModelAt::Listing => {
            format!("{workload} may list the models of {:?} (filtered to what it may call)", provider.name)
        }
        (Some(_), model) => format!(
            "rule {rule:?} allows {workload} the model {:?} at provider {:?}",
            record.model.as_deref().or(model).unwrap_or(""),
            provider.name
        ),
    };
    let message = match budgets.iter().map(|b| format!("{:?} ({} tokens)", b.id, b.reserve_tokens)).collect::<Vec<_>>()
    {
        drawn if drawn.is_empty() => message,
        drawn => format!("{message}; it reserves on budget {}", drawn.join(", ")),
    };
    Answer { decision: "allow", reason: "ok", detail: None, rule: Some(rule), conditions, message, budgets }
}

/// What an MCP question asks: the JSON-RPC message a described request
/// carries, and how the answer names what it asks for.
struct McpAsk {
    message: Value,
    what: String,
    /// A listing: the server's answer is cut down.
    listing: bool,
}

impl McpAsk {
    /// The message `q` describes for `provider`: `None` for a provider that
    /// is no MCP server, or for an MCP endpoint described without one;
    /// a question that cannot be asked of this provider is answered with
    /// what is wrong with it.
    fn of(provider: &Provider, q: &Question) -> Result<Option<McpAsk>, Box<Answer>> {
        let wrong =
            |reason: Reason, detail: &str, message: String| Err(Box::new(Answer::deny(reason, detail, message)));
        let asked = [
            ("tool", q.tool.is_some()),
            ("arguments", q.arguments.is_some()),
            ("resource", q.resource.is_some()),
            ("prompt", q.prompt.is_some()),
            ("method", q.method.is_some()),
        ];
        let asked: Vec<&str> = asked.iter().filter(|(_, given)| *given).map(|(name, _)| *name).collect();
        if !provider.api.spec().speaks_jsonrpc() {
            if let Some(first) = asked.first() {
                return wrong(
                    Reason::EndpointNotAllowed,
                    "not_mcp_provider",
                    format!(
                        "provider {:?} is not an MCP server (its api is {:?}): a {first} is asked of an \"mcp\" provider",
                        provider.name,
                        provider.api.name()
                    ),
                );
            }
            return Ok(None);
        }
        if let Some(model) = &q.model {
            return wrong(
                Reason::EndpointNotAllowed,
                "mcp_provider",
                format!(
                    "provider {:?} is an MCP server: it runs no model ({model:?}); ask about a tool, resource, \
                     prompt or method",
                    provider.name
                ),
            );
        }
        let bad = |message: String| wrong(Reason::InvalidBody, "question", message);
        let named: Vec<(&str, &str, &str)> = [
            ("tool", q.tool.as_deref(), "tools/call"),
            ("resource", q.resource.as_deref(), "resources/read"),
            ("prompt", q.prompt.as_deref(), "prompts/get"),
        ]
        .into_iter()
        .filter_map(|(kind, name, method)| name.map(|n| (kind, n, method)))
        .collect();
        if named.len() > 1 {
            let kinds: Vec<&str> = named.iter().map(|(kind, _, _)| *kind).collect();
            return bad(format!("ask about one of a tool, a resource and a prompt, not {}", kinds.join(" and ")));
        }
        if q.arguments.is_some() && q.tool.is_none() {
            return bad("arguments are a tool call's: give the tool".into());
        }
        let (method, params, what) = match named.first() {
            Some(&(kind, name, implied)) => {
                let method = q.method.as_deref().unwrap_or(implied);
                let fits = match kind {
                    "resource" => ["resources/read", "resources/subscribe", "resources/unsubscribe"].contains(&method),
                    _ => method == implied,
                };
                if !fits {
                    return bad(format!("a {kind} is asked with {implied}, not {method:?}"));
                }
                let params = match kind {
                    "resource" => serde_json::json!({ "uri": name }),
                    "tool" => match &q.arguments {
                        Some(arguments) => serde_json::json!({ "name": name, "arguments": arguments }),
                        None => serde_json::json!({ "name": name }),
                    },
                    _ => serde_json::json!({ "name": name }),
                };
                (method, Some(params), format!("the {kind} {name:?}"))
            }
            None => match q.method.as_deref() {
                Some(method) => {
                    let needs = match method {
                        "tools/call" => Some("tool"),
                        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("resource"),
                        "prompts/get" => Some("prompt"),
                        _ => None,
                    };
                    if let Some(needs) = needs {
                        return bad(format!("{method} names a {needs}: give the {needs}"));
                    }
                    (method, None, format!("the method {method:?}"))
                }
                // An MCP endpoint described bare (`GET /mcp`): no message.
                None if q.endpoint.is_some() => return Ok(None),
                None => {
                    return bad(format!(
                        "provider {:?} is an MCP server: ask about a tool, resource, prompt or method",
                        provider.name
                    ))
                }
            },
        };
        let mut message = serde_json::json!({ "jsonrpc": "2.0", "method": method });
        // A notification has no id; every other message is a request.
        if !method.starts_with("notifications/") {
            message["id"] = Value::from(1);
        }
        if let Some(params) = params {
            message["params"] = params;
        }
        let listing = matches!(method, "tools/list" | "resources/list" | "prompts/list");
        Ok(Some(McpAsk { message, what, listing }))
    }
}

/// The JWT-SVID a described request carries: never verified, it is found
/// in the flow's SVID cache, where the described SVID is held as verified.
const DESCRIBED_TOKEN: &str = "explain.described.svid";

/// A request as the gateway would receive it from the described workload.
struct Described {
    authority: String,
    path: String,
    method: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    peer: Option<String>,
    metadata: Vec<MetadataValue>,
    /// The SVIDs, held in `svids` as verified.
    svids: SvidCache,
    trust: TrustStore,
    certificate: Option<DescribedPeer>,
    endpoint: Option<&'static Endpoint>,
    /// What an MCP question asks (the message the body holds).
    mcp: Option<McpAsk>,
}

/// The mTLS peer of a described request: its certificate's digest names
/// the X.509-SVID held in the cache.
struct DescribedPeer {
    digest: String,
    uri_san: Option<String>,
}

impl Peer for DescribedPeer {
    fn digest(&self) -> Option<String> {
        Some(self.digest.clone())
    }
    fn certificate(&self) -> Option<Vec<u8>> {
        None
    }
    fn uri_san(&self) -> Option<String> {
        self.uri_san.clone()
    }
}

impl Described {
    fn new(
        policy: &Policy,
        provider: &Provider,
        q: &Question,
        workload: &SpiffeId,
        now: u64,
        method: &str,
        path: &str,
    ) -> Result<Self, Box<Answer>> {
        let mcp = McpAsk::of(provider, q)?;
        let kinds = q.svid.as_deref().unwrap_or("jwt");
        let issued = now.saturating_sub(q.svid_age_seconds.unwrap_or(0));
        let mut trust = TrustStore::new(&policy.trust_domains);
        // Every configured domain as if its bundle had loaded.
        for d in &policy.trust_domains {
            if !trust.domain(d.name.as_str()).is_some_and(|d| d.available) {
                trust.install(
                    d.name.as_str(),
                    Bundle { keys: Vec::new(), sequence: None, refresh_hint: None, skipped: 0 },
                );
            }
        }
        let svids = SvidCache::new(2);
        let mut headers = Vec::new();
        if kinds.contains("jwt") {
            // The claims as a verified SVID would keep them.
            let (claims, unread_claims) = kept_claims(&q.claims);
            let svid = JwtSvid {
                spiffe_id: workload.clone(),
                kid: "explain".into(),
                exp: now + 3600,
                nbf: None,
                iat: Some(issued),
                jti: None,
                claims,
                unread_claims,
            };
            svids.hold_jwt(DESCRIBED_TOKEN, svid, &trust);
            headers.push(match &policy.jwt_svid.carrier {
                Carrier::SdkKeyHeaders => ("authorization".to_string(), format!("Bearer {DESCRIBED_TOKEN}")),
                Carrier::Header { name, scheme: Some(scheme) } => (name.clone(), format!("{scheme} {DESCRIBED_TOKEN}")),
                Carrier::Header { name, scheme: None } => (name.clone(), DESCRIBED_TOKEN.to_string()),
            });
        }
        let mut certificate = None;
        if kinds.contains("x509") {
            let svid = X509Svid {
                spiffe_id: workload.clone(),
                serial: "explain".into(),
                not_before: issued,
                not_after: now + 3600,
            };
            let der = b"explain.described.certificate";
            svids.hold_x509(der, svid);
            let digest = crate::util::digest::sha256_hex(der);
            certificate = Some(match &policy.identity.x509 {
                X509Source::Xfcc { trusted_hop } => {
                    let pem = format!(
                        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                        base64::engine::general_purpose::STANDARD.encode(der)
                    );
                    let encoded: String = pem
                        .chars()
                        .map(|c| match c {
                            '\n' => "%0A".to_string(),
                            ' ' => "%20".to_string(),
                            c => c.to_string(),
                        })
                        .collect();
                    headers
                        .push(("x-forwarded-client-cert".to_string(), format!("By={trusted_hop};Cert=\"{encoded}\"")));
                    DescribedPeer { digest, uri_san: Some(trusted_hop.to_string()) }
                }
                _ => DescribedPeer { digest, uri_san: None },
            });
        }
        let metadata: Vec<MetadataValue> = policy
            .metadata_keys()
            .into_iter()
            .map(|(ns, key)| {
                let value = q.metadata.get(&ns).and_then(|m| m.get(&key)).and_then(serialized);
                ((ns, key), value)
            })
            .collect();
        // A bare address is the connection's own peer (as Envoy reports one,
        // with its port); `ip:0` is one Envoy took from a header.
        let peer = q.peer.as_deref().map(|p| match p.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:1"),
            Ok(v4) => format!("{v4}:1"),
            Err(_) => p.to_string(),
        });
        let named = q.model.as_deref().map(|m| selecting(provider, m));
        let (endpoint, path, body) = if provider.api.spec().speaks_jsonrpc() {
            // An MCP server: the message, POSTed to its message endpoint
            // (or to the endpoint the question names).
            let path = match path {
                "" => message_endpoint(provider.api).map_or("", |e| e.path),
                path => path,
            };
            let endpoint = provider.api.classify(method, path).map(|(e, _)| e);
            let body = mcp.as_ref().map(|m| m.message.to_string().into_bytes()).unwrap_or_default();
            if !body.is_empty() {
                headers.push(("accept".to_string(), "application/json, text/event-stream".to_string()));
            }
            (endpoint, path.to_string(), body)
        } else if path.is_empty() {
            let Some(named) = named.as_deref() else {
                return Err(Box::new(Answer::deny(Reason::ModelMissing, "model_missing", "give the model".into())));
            };
            let Some(endpoint) = model_endpoint(provider.api, named) else {
                return Err(Box::new(Answer::deny(
                    Reason::EndpointNotAllowed,
                    "endpoint_not_allowed",
                    "the api has no model endpoint".into(),
                )));
            };
            let (path, body) = naming(provider, endpoint, named, q.max_tokens);
            (Some(endpoint), path, body)
        } else {
            let endpoint = provider.api.classify(method, path).map(|(e, _)| e);
            let body = match (endpoint, named.as_deref()) {
                (Some(e), Some(named)) if e.model != ModelAt::Listing => naming(provider, e, named, q.max_tokens).1,
                (Some(e), None) if e.model != ModelAt::Listing => {
                    return Err(Box::new(Answer::deny(Reason::ModelMissing, "model_missing", "give the model".into())))
                }
                _ => Vec::new(),
            };
            (endpoint, path.to_string(), body)
        };
        let prefix = provider.path_prefix.as_deref().map_or("", |p| p.strip_suffix('/').unwrap_or(p));
        if !body.is_empty() {
            headers.push(("content-type".to_string(), "application/json".to_string()));
        }
        Ok(Described {
            authority: provider.authorities.first().cloned().unwrap_or_else(|| "explain".to_string()),
            path: format!("{prefix}{path}"),
            method: method.to_string(),
            headers,
            body,
            peer,
            metadata,
            svids,
            trust,
            certificate,
            endpoint,
            mcp,
        })
    }

    /// The request, through the flow up to its decision (and the
    /// credential plan): the step it got, and the flow for its record.
    fn drive(&self, policy: &Policy, now: u64) -> (Step, Flow) {
        let now_ms = now * 1000;
        let memory = Rc::new(ResponseMemory::new(0));
        let tokens = TokenCache::new(1);
        let verifier = PureRustVerifier;
        let random = || [7u8; 16];
        let shared = crate::budget::slots::MemoryStore::default();
        let env = Env {
            policy,
            verifier: &verifier,
            now_ms,
            memory: &memory,
            svids: &self.svids,
            trust: &self.trust,
            tokens: &tokens,
            random: &random,
            shared: &shared,
        };
        let mut flow = Flow::new(Some(policy), now_ms);
        let head = RequestHead {
            method: &self.method,
            path: &self.path,
            authority: &self.authority,
            headers: &self.headers,
            request_id: None,
            client_address: self.peer.as_deref(),
            peer: self.certificate.as_ref().map(|p| p as &dyn Peer),
            metadata: &self.metadata,
        };
        let mut step = flow.drive(&env, Event::RequestHeaders { head, end_of_stream: self.body.is_empty() });
        if step == Step::Hold && flow.phase() == Phase::ReadingBody {
            let body: &[u8] = &self.body;
            step = flow.drive(&env, Event::RequestBody { size: body.len(), end_of_stream: true, body: &body });
        }
        (step, flow)
    }
}

/// The name a request gives to have the provider run `model`: the model
/// itself, or the alias (a deployment) the provider maps to it.
fn selecting(provider: &Provider, model: &str) -> String {
    let resolve = provider.api.spec().resolve;
    let selects = |name: &str| match resolve(name, &provider.deployments) {
        Selects::Model => name == model,
        Selects::Alias(m) => m == model,
        Selects::Unmapped(_) => false,
    };
    if selects(model) {
        return model.to_string();
    }
    provider.deployments.iter().map(|(d, _)| d).find(|d| selects(d)).cloned().unwrap_or_else(|| model.to_string())
}

/// The endpoint a described call to `name` goes to: the api's first that
/// runs a model named in a JSON body or the path and can name this one,
/// preferring one whose token cap modelgate writes when the body has none
/// (a question names no output bound).
fn model_endpoint(api: Api, name: &str) -> Option<&'static Endpoint> {
    let fits = |e: &&Endpoint| {
        e.method == "POST"
            && matches!(e.body, BodyFormat::Json | BodyFormat::JsonByDefault)
            && match e.model {
                ModelAt::Listing => false,
                ModelAt::BodyOf(_, prefix) => name.starts_with(prefix),
                _ => true,
            }
    };
    let endpoints = api.spec().endpoints;
    endpoints.iter().filter(fits).find(|e| e.max_tokens_default.is_some()).or_else(|| endpoints.iter().find(fits))
}

/// The endpoint an api's JSON-RPC messages are POSTed to.
fn message_endpoint(api: Api) -> Option<&'static Endpoint> {
    api.spec().endpoints.iter().find(|e| e.method == "POST" && e.model == ModelAt::Message)
}

/// The endpoint's path with its captures filled, and the body, naming
/// `name` where the endpoint reads its model, and `max_tokens` where it
/// writes its output bound.
fn naming(provider: &Provider, endpoint: &Endpoint, name: &str, max_tokens: Option<u64>) -> (String, Vec<u8>) {
    let (publisher, model) = name.split_once('/').unwrap_or(("google", name));
    let capture = |c: &str| -> String {
        match endpoint.model {
            ModelAt::Capture(m) if m == c => name.to_string(),
            ModelAt::EncodedCapture(m) if m == c => name.replace(':', "%3A").replace('/', "%2F"),
            ModelAt::Publisher(p, _) if p == c => publisher.to_string(),
            ModelAt::Publisher(_, m) if m == c => model.to_string(),
            // The values a provider pins (a Vertex project and location).
            _ => match c {
                "project" => provider.project.clone().unwrap_or_else(|| "explain".into()),
                "location" => provider.locations.first().cloned().unwrap_or_else(|| "global".into()),
                _ => "explain".into(),
            },
        }
    };
    let mut path = String::new();
    let mut rest = endpoint.path;
    while let Some(open) = rest.find('{') {
        path.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else { break };
        path.push_str(&capture(&rest[open + 1..open + close]));
        rest = &rest[open + close + 1..];
    }
    path.push_str(rest);
    let at = |steps: &[PathStep], value: &str| -> Value {
        steps.iter().rev().fold(Value::String(value.to_string()), |inner, step| match step {
            PathStep::Key(k) => serde_json::json!({ *k: inner }),
            _ => inner,
        })
    };
    let mut body = match endpoint.model {
        ModelAt::Body(p) => at(p, name),
        ModelAt::BodyOf(p, prefix) => at(p, name.strip_prefix(prefix).unwrap_or(name)),
        _ => serde_json::json!({}),
    };
    if let (Some(n), Some(steps)) = (max_tokens, endpoint.max_tokens_default.or(endpoint.max_tokens.first().copied())) {
        let mut slot = &mut body;
        for step in steps {
            let PathStep::Key(k) = step else { break };
            let Value::Object(map) = slot else { break };
            slot = map.entry(k.to_string()).or_insert_with(|| serde_json::json!({}));
        }
        *slot = Value::from(n);
    }
    (path, body.to_string().into_bytes())
}

/// A metadata value as the host serializes it (string bytes, one byte for
/// a boolean, an 8-byte little-endian double).
fn serialized(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Bool(b) => Some(vec![u8::from(*b)]),
        Value::Number(n) => n.as_f64().map(|f| f.to_le_bytes().to_vec()),
        _ => None,
    }
}

#[cfg(test)]
#[path = "explain_tests.rs"]
mod tests;
