//! One request, followed one way: headers → identity → body → decision →
//! credential → forward → response → audit.
//!
//! [`Exchange`] holds the request's state and is driven by the filter's
//! callbacks. Each step returns an [`Outcome`] the filter carries out;
//! nothing here calls the host, so the whole flow runs natively in tests.
//! Every denial passes through [`Exchange::deny`], the one place where a
//! decision becomes a reply (or, in audit mode, a `would_deny`).

use serde_json::Value;

use crate::api::{self, Api, BodyFormat, Endpoint};
use crate::audit::{Client, CredentialUsed, JwtInfo, Prompt, Record, Upstream, Workload};
use crate::body;
use crate::config::{Mode, Policy, PromptAudit, Provider};
use crate::credential::{self, Rewrite};
use crate::decision;
use crate::reason::{Denial, LocalReply, Reason};
use crate::spiffe::SpiffeId;
use crate::svid::{jwt, SignatureVerifier};
use crate::time::rfc3339_millis;

/// The request as the filter sees it when its headers arrive.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// `:path`, query included.
    pub path: &'a str,
    pub authority: &'a str,
    /// Regular headers (no pseudo-headers), names in lower case, repeats kept.
    pub headers: &'a [(String, String)],
    pub request_id: Option<&'a str>,
    pub client_address: Option<&'a str>,
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

/// What the filter does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send this reply instead of forwarding.
    Reply(LocalReply),
    /// Let the headers go on with these changes, buffer the whole request
    /// body, then call [`Exchange::on_request_body`] (or
    /// [`Exchange::on_body_too_large`] once it grows past
    /// [`Exchange::body_limit`]).
    ///
    /// Envoy cannot hold a wasm filter's request headers while the filter
    /// reads the body, so the credential swap happens here, and a buffer
    /// filter after modelgate keeps the request from the upstream until the
    /// body is decided (see `envoy/envoy.yaml`).
    ReadBody(Rewrite),
    /// Forward the request with these changes.
    Forward(Rewrite),
}

/// Responses larger than this are forwarded without reading their usage.
const MAX_RESPONSE_BUFFER: usize = 4 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct Exchange {
    record: Record,
    started_ms: u64,
    provider: Option<usize>,
    api: Option<Api>,
    endpoint: Option<&'static Endpoint>,
    identity: Option<SpiffeId>,
    denial: Option<Denial>,
    content_type: Option<String>,
    headers: Vec<(String, String)>,
    path: String,
    request_id: Option<String>,
    decided: bool,
    replied: bool,
    headers_forwarded: bool,
    /// The response is a model listing to filter.
    lists_models: bool,
    response: Option<ResponseReader>,
}

#[derive(Debug, Default)]
struct ResponseReader {
    json: bool,
    buffer: Vec<u8>,
    overflow: bool,
}

impl Exchange {
    /// A request starts. `policy` is `None` only when the filter has no
    /// valid configuration (Envoy should have refused it).
    pub fn new(policy: Option<&Policy>, now_ms: u64) -> Self {
        let record =
            Record { time: rfc3339_millis(now_ms), mode: policy.map_or("", |p| p.mode.name()), ..Default::default() };
        Exchange { started_ms: now_ms, record, ..Default::default() }
    }

    /// The request headers arrived.
    pub fn on_request_headers(
        &mut self,
        policy: &Policy,
        head: &RequestHead<'_>,
        verifier: &dyn SignatureVerifier,
        now_ms: u64,
    ) -> Outcome {
        self.record.time = rfc3339_millis(now_ms);
        self.record.mode = policy.mode.name();
        self.record.request_id = head.request_id.map(str::to_string);
        self.record.trace_id = trace_id(head.headers);
        self.record.client = Client { address: head.client_address.map(str::to_string) };
        self.request_id = head.request_id.map(str::to_string);
        self.headers = head.headers.to_vec();
        self.path = head.path.to_string();
        self.content_type = header(head.headers, "content-type").map(str::to_string);

        let provider = match_provider(policy, head.authority, head.path);
        self.provider = provider.map(|(i, _)| i);
        if let Some((_, p)) = provider {
            self.api = Some(p.api);
            self.record.provider = Some(p.name.clone());
            self.record.api = Some(p.api.name());
        }

        let identity = credential::find_svid(&policy.jwt_svid.carrier, self.api, head.headers).and_then(|token| {
            jwt::validate(token, &policy.jwt_svid, &policy.trust_domains, verifier, now_ms / 1000)
                .map_err(|e| e.denial())
        });
        match identity {
            Ok(svid) => {
                self.record.workload = Some(Workload {
                    spiffe_id: svid.spiffe_id.to_string(),
                    trust_domain: svid.spiffe_id.trust_domain().to_string(),
                    svid: "jwt",
                    jwt: Some(JwtInfo { kid: svid.kid.clone(), exp: svid.exp, jti: svid.jti.clone() }),
                    x509: None,
                });
                self.identity = Some(svid.spiffe_id);
            }
            Err(d) => {
                if let Some(reply) = self.deny(policy, d) {
                    return reply;
                }
            }
        }

        let Some((_, provider)) = provider else {
            let d = Denial::new(
                Reason::NoProvider,
                format!("no provider is configured for {}{}", head.authority, path_only(head.path)),
            );
            return self.deny_or_forward(policy, d);
        };
        let endpoint_path = strip_prefix(provider, path_only(head.path));
        let Some(endpoint) = provider.api.classify(head.method, endpoint_path) else {
            let d = Denial::new(
                Reason::EndpointNotAllowed,
                format!(
                    "{} {endpoint_path} is not an endpoint modelgate allows for provider {:?}",
                    head.method, provider.name
                ),
            );
            self.record.endpoint = Some(bounded(endpoint_path));
            return self.deny_or_forward(policy, d);
        };
        self.endpoint = Some(endpoint);
        self.record.endpoint = Some(endpoint.path.to_string());
        if endpoint.body == BodyFormat::ModelList {
            return self.list_models(policy, provider);
        }

        let encodings = head.headers.iter().filter(|(k, _)| k == "content-encoding");
        if let Some((_, enc)) = encodings.into_iter().find(|(_, v)| !v.trim().eq_ignore_ascii_case("identity")) {
            let d = Denial::new(
                Reason::UnsupportedEncoding,
                format!("request bodies in content-encoding {:?} are not accepted; send them uncompressed", enc.trim()),
            )
            .with_detail(bounded(&enc.trim().to_ascii_lowercase()));
            return self.deny_or_forward(policy, d);
        }
        let declared = header(head.headers, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > policy.max_body_bytes) {
            return self.on_body_too_large(policy);
        }
        let mut rewrite = self.credential_rewrite(policy);
        if policy.mode == Mode::Enforce && endpoint.max_tokens_default.is_some() {
            // The body may grow when the token cap is written in; the length
            // is set again once the body is final.
            rewrite.remove_headers.push("content-length".to_string());
        }
        self.headers_forwarded = true;
        Outcome::ReadBody(rewrite)
    }

    /// `GET /v1/models`: allowed to a workload some allow rule names for the
    /// provider; the response is cut down to the models it may call.
    fn list_models(&mut self, policy: &Policy, provider: &Provider) -> Outcome {
        let Some(identity) = &self.identity else {
            // Only in audit mode, after an identity failure.
            return self.forward(policy, None);
        };
        match decision::rule_naming(&policy.rules, identity, &provider.name) {
            Some(rule) => {
                self.record.rule = Some(rule.id.clone());
                self.lists_models = policy.mode == Mode::Enforce;
                self.forward(policy, None)
            }
            None => {
                let d = Denial::new(
                    Reason::ModelNotAllowed,
                    format!("no rule allows {identity} any model at provider {:?}", provider.name),
                )
                .with_detail("no_matching_rule");
                self.deny_or_forward(policy, d)
            }
        }
    }

    /// The most body bytes the filter may buffer.
    pub fn body_limit(&self, policy: &Policy) -> u64 {
        policy.max_body_bytes
    }

    /// The body grew past [`Self::body_limit`].
    pub fn on_body_too_large(&mut self, policy: &Policy) -> Outcome {
        let d = Denial::new(
            Reason::BodyTooLarge,
            format!("the request body is larger than {} bytes", policy.max_body_bytes),
        );
        self.deny_or_forward(policy, d)
    }

    /// The whole request body arrived.
    pub fn on_request_body(&mut self, policy: &Policy, body: &[u8]) -> Outcome {
        self.record.prompt = Some(Prompt::of(body, policy.prompt_audit == PromptAudit::Sha256));
        let (Some(endpoint), Some(provider)) = (self.endpoint, self.provider.and_then(|i| policy.providers.get(i)))
        else {
            // Only reachable in audit mode, after an earlier would-deny.
            return self.forward(policy, None);
        };
        let parsed = match body::parse(endpoint, self.content_type.as_deref(), body) {
            Ok(parsed) => parsed,
            Err(d) => return self.deny_or_forward(policy, d),
        };
        self.record.model = Some(bounded(&parsed.model));
        self.record.stream = Some(parsed.stream);
        let Some(identity) = &self.identity else {
            return self.forward(policy, None);
        };
        let rule = match decision::decide(&policy.rules, identity, &provider.name, &parsed.model) {
            Ok(rule) => rule,
            Err(d) => return self.deny_or_forward(policy, d),
        };
        if self.denial.is_none() {
            self.record.rule = Some(rule.id.clone());
        }
        match parsed.apply_limits(endpoint, &rule.limits, body) {
            Ok(new_body) => self.forward(policy, new_body),
            Err(d) => self.deny_or_forward(policy, d.with_rule(rule.id.clone())),
        }
    }

    /// The upstream's response headers arrived (not called for our own
    /// replies' sake: those are ignored).
    pub fn on_response_headers(&mut self, status: Option<u16>, content_type: Option<&str>, now_ms: u64) {
        if self.replied || !self.decided {
            return;
        }
        self.record.upstream = Some(Upstream { status, duration_ms: Some(now_ms.saturating_sub(self.started_ms)) });
        let media = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        self.response = Some(ResponseReader { json: media == "application/json", ..Default::default() });
    }

    /// The host would not apply a rewrite: refuse the request, whatever the
    /// mode (forwarding it could leak the workload's credential).
    pub fn on_rewrite_failed(&mut self) -> Outcome {
        let d = Denial::new(Reason::CredentialUnavailable, "the gateway could not swap the request's credentials")
            .with_detail("rewrite_failed");
        self.record.reason = d.reason.code();
        self.record.detail = d.detail.clone();
        self.record.decision = "deny";
        self.record.credential = None;
        self.decided = true;
        self.replied = true;
        Outcome::Reply(d.reply(self.api, self.request_id.as_deref()))
    }

    /// Whether the response body must be held whole and passed through
    /// [`Self::filter_response`]: a successful model listing.
    pub fn rewrites_response(&self) -> bool {
        self.lists_models && self.record.upstream.as_ref().and_then(|u| u.status) == Some(200)
    }

    /// The whole response body, as the client may see it.
    pub fn filter_response(&self, policy: &Policy, body: &[u8]) -> Vec<u8> {
        let (Some(identity), Some(provider)) = (&self.identity, self.provider.and_then(|i| policy.providers.get(i)))
        else {
            return api::filter_model_list(body, |_| false);
        };
        api::filter_model_list(body, |model| decision::decide(&policy.rules, identity, &provider.name, model).is_ok())
    }

    /// A chunk of the upstream's response body; `end` on the last.
    pub fn on_response_body(&mut self, chunk: &[u8], end: bool) {
        let Some(reader) = self.response.as_mut() else {
            return;
        };
        if !reader.json {
            return;
        }
        if reader.buffer.len() + chunk.len() > MAX_RESPONSE_BUFFER {
            reader.overflow = true;
            reader.buffer = Vec::new();
        }
        if !reader.overflow {
            reader.buffer.extend_from_slice(chunk);
        }
        if end && !reader.overflow {
            if let (Ok(v), Some(api)) = (serde_json::from_slice::<Value>(&reader.buffer), self.api) {
                let (usage, model) = api.response_usage(&v);
                self.record.usage = usage;
                self.record.response_model = model;
            }
            reader.buffer = Vec::new();
        }
    }

    /// Whether the filter's own reply is what the client gets.
    pub fn replied_locally(&self) -> bool {
        self.replied
    }

    /// Envoy is logging the request: the record is final. `log` is what
    /// Envoy knows of the request's end.
    pub fn finish(&mut self, log: &LogInfo) -> String {
        self.record.status = log.status;
        if self.record.request_id.is_none() {
            self.record.request_id = log.request_id.as_deref().map(bounded);
        }
        if self.record.client.address.is_none() {
            self.record.client.address = log.client_address.clone();
        }
        if !self.decided {
            // The request ended before a decision: the client went away, or
            // Envoy refused it before modelgate saw its headers.
            self.record.decision = "deny";
            self.record.reason = "incomplete";
            if self.record.detail.is_none() {
                self.record.detail =
                    Some(log.details.as_deref().map_or_else(|| "ended before a decision".to_string(), bounded));
            }
        }
        if let Some(upstream) = self.record.upstream.as_mut() {
            upstream.status = upstream.status.or(log.status);
        }
        self.record.to_json()
    }

    /// Records a denial. In enforce mode returns the reply to send; in audit
    /// mode only the first denial is kept, as `would_deny`, and `None` says
    /// "go on".
    fn deny(&mut self, policy: &Policy, d: Denial) -> Option<Outcome> {
        if self.denial.is_none() {
            self.record.reason = d.reason.code();
            self.record.detail = d.detail.clone();
            self.record.rule = d.rule.clone();
            self.denial = Some(d);
        }
        if policy.mode == Mode::Audit {
            self.record.would_deny = true;
            return None;
        }
        self.decided = true;
        self.replied = true;
        self.record.decision = "deny";
        let reply = self.denial.as_ref().map(|d| d.reply(self.api, self.request_id.as_deref()))?;
        Some(Outcome::Reply(reply))
    }

    /// A denial after which nothing more can be read: reply, or in audit
    /// mode forward now.
    fn deny_or_forward(&mut self, policy: &Policy, d: Denial) -> Outcome {
        match self.deny(policy, d) {
            Some(reply) => reply,
            None => self.forward(policy, None),
        }
    }

    /// Every caller credential out, the provider's in: the header changes
    /// every forwarded request gets.
    fn credential_rewrite(&mut self, policy: &Policy) -> Rewrite {
        let provider = self.provider.and_then(|i| policy.providers.get(i));
        credential::rewrite(provider, &policy.jwt_svid.carrier, &self.headers, &self.path)
    }

    fn forward(&mut self, policy: &Policy, new_body: Option<Vec<u8>>) -> Outcome {
        let mut rewrite = if self.headers_forwarded { Rewrite::default() } else { self.credential_rewrite(policy) };
        // Audit mode changes nothing but credentials: no body rewrite.
        if policy.mode == Mode::Enforce {
            rewrite.body = new_body;
        }
        if let Some(p) = self.provider.and_then(|i| policy.providers.get(i)) {
            self.record.credential = Some(CredentialUsed { type_: p.credential.type_name(), name: p.name.clone() });
        }
        self.decided = true;
        self.record.decision = "allow";
        if self.denial.is_none() {
            self.record.reason = "ok";
        }
        Outcome::Forward(rewrite)
    }
}

/// Values a workload chose are cut to this many bytes in the audit record,
/// so no request can flood the log.
const MAX_AUDIT_VALUE: usize = 256;

fn bounded(value: &str) -> String {
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

/// `host[:port]` or `[v6]:port` → lower-case host.
fn host(authority: &str) -> String {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                authority
            }
        })
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The first provider whose authorities and path prefix both match.
fn match_provider<'p>(policy: &'p Policy, authority: &str, path: &str) -> Option<(usize, &'p Provider)> {
    let host = host(authority);
    let path = path_only(path);
    policy.providers.iter().enumerate().find(|(_, p)| {
        (p.authorities.is_empty() || p.authorities.contains(&host))
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
mod tests;
