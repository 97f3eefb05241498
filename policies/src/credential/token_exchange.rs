//! Access tokens from a token endpoint (SPEC §4 `token_exchange`): the
//! exchange request, the strict reading of its answer, and the per-VM cache
//! that lets one exchange serve every request of a workload until the token
//! is about to expire.
//!
//! - A token is cached under its key ([`key`]): the digest of the
//!   provider's whole credential configuration and the policy generation
//!   ([`crate::config::provider::TokenExchange::digest`]), the account chosen for the
//!   workload, its SPIFFE ID and, when the assertion names it, the model.
//!   Never across workloads or configurations; never an SVID.
//! - It is used until `expires_in − refresh_margin_seconds`; after that the
//!   next request fetches a new one.
//! - A failed fetch is kept only long enough for the requests that waited
//!   on it to get the same answer; the next request tries again.
//! - Both stores are bounded: at most `limits.token_cache_size` tokens and
//!   [`MAX_FAILURES`] failures; when full, the expired go first, then the
//!   oldest.
//! - Other worker VMs reuse a token through Envoy's shared data
//!   ([`TokenCache::export`], [`TokenCache::import`]).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::config::provider::{Encoding, Grant, Provider, TokenExchange};
use crate::credential::callout::{is_json, CalloutRequest, CalloutResult};
use crate::reason::{Denial, Reason};

/// Tokens a VM keeps (and shared-data slots a configuration uses) unless
/// `limits.token_cache_size` says otherwise.
pub const DEFAULT_CACHE_SIZE: usize = 1_024;
/// The most `limits.token_cache_size` may be.
pub const MAX_CACHE_SIZE: usize = 65_536;
/// Failures a VM keeps for the requests that waited on them.
pub const MAX_FAILURES: usize = 256;
/// How long a failure is kept: the longest a waiter can wait (the longest
/// `timeout_ms`); waiters are normally told at once.
const FAILURE_KEPT_MS: u64 = 60_000;
/// Expired entries are swept at most this often (a sweep reads them all).
const SWEEP_EVERY_MS: u64 = 1_000;
/// The longest token lifetime believed (a day).
const MAX_EXPIRES_IN: u64 = 86_400;
/// The largest token endpoint answer read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What the cache is keyed by: the SHA-256 (hex) of the credential's
/// digest (its whole configuration and the policy generation), the
/// chosen account, the workload and the model a minted assertion names.
/// Length-prefixed, so no two different inputs run together.
pub fn key(credential: &str, account: Option<usize>, spiffe_id: &str, model: Option<&str>) -> String {
    let account = account.map_or_else(String::new, |i| i.to_string());
    let mut text = String::new();
    for part in [credential, &account, spiffe_id, model.unwrap_or("")] {
        text.push_str(&format!("{}:{part}\n", part.len()));
    }
    crate::util::digest::sha256_hex(text.as_bytes())
}

/// A map of at most `capacity` entries that expire: an expired entry is
/// never served, and when the map is full the expired go first, then the
/// oldest.
struct Bounded<V> {
    map: HashMap<String, (V, u64, u64)>,
    /// Insertion order: sequence number → key.
    order: BTreeMap<u64, String>,
    next: u64,
    capacity: usize,
    swept_ms: Option<u64>,
}

impl<V> Bounded<V> {
    fn new(capacity: usize) -> Self {
        Bounded { map: HashMap::new(), order: BTreeMap::new(), next: 0, capacity, swept_ms: None }
    }

    fn get(&mut self, key: &str, now_ms: u64) -> Option<&V> {
        if self.map.get(key).is_some_and(|(_, expires, _)| now_ms >= *expires) {
            self.remove(key);
        }
        self.map.get(key).map(|(v, _, _)| v)
    }

    fn insert(&mut self, key: &str, value: V, expires_ms: u64, now_ms: u64) {
        self.remove(key);
        if self.capacity == 0 {
            return;
        }
        if self.map.len() >= self.capacity && self.swept_ms.is_none_or(|t| now_ms >= t + SWEEP_EVERY_MS) {
            self.swept_ms = Some(now_ms);
            self.map.retain(|_, (_, expires, _)| *expires > now_ms);
            let map = &self.map;
            self.order.retain(|_, k| map.contains_key(k));
        }
        while self.map.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            self.map.remove(&oldest);
        }
        self.next += 1;
        self.order.insert(self.next, key.to_string());
        self.map.insert(key.to_string(), (value, expires_ms, self.next));
    }

    fn remove(&mut self, key: &str) {
        if let Some((_, _, seq)) = self.map.remove(key) {
            self.order.remove(&seq);
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

struct Inner {
    /// Tokens until their refresh time.
    tokens: Bounded<String>,
    /// The last failure per key, for the requests that waited on it.
    failures: Bounded<Denial>,
    stats: TokenStats,
}

/// Counts for the metrics: cache hits, exchanges, failures by cause.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenStats {
    pub hits: u64,
    pub exchanges: u64,
    pub failures: Vec<(String, u64)>,
}

pub struct TokenCache {
    inner: RefCell<Inner>,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(DEFAULT_CACHE_SIZE)
    }
}

/// A token endpoint's answer, read strictly.
#[derive(Debug, PartialEq, Eq)]
pub struct Token {
    pub value: String,
    pub expires_in: u64,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (and [`MAX_FAILURES`] failures).
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            inner: RefCell::new(Inner {
                tokens: Bounded::new(capacity),
                failures: Bounded::new(MAX_FAILURES.min(capacity.max(1))),
                stats: TokenStats::default(),
            }),
        }
    }

    /// The cached token of `key`, if it is not due for refresh.
    pub fn get(&self, key: &str, now_ms: u64) -> Option<String> {
        let mut inner = self.inner.try_borrow_mut().ok()?;
        let hit = inner.tokens.get(key, now_ms).cloned();
        if hit.is_some() {
            inner.stats.hits += 1;
        }
        hit
    }

    /// Keeps a fetched token until `expires_in − margin`, the margin at
    /// most half its life: a token that lives no longer than the margin is
    /// still one, for the requests that waited for it and the next ones.
    pub fn store(&self, key: &str, token: &Token, margin_seconds: u64, now_ms: u64) {
        let expires_in = token.expires_in.min(MAX_EXPIRES_IN);
        let lifetime = expires_in.saturating_sub(margin_seconds.min(expires_in / 2)).saturating_mul(1_000);
        self.insert(key, token.value.clone(), now_ms.saturating_add(lifetime), now_ms);
    }

    fn insert(&self, key: &str, value: String, refresh_at_ms: u64, now_ms: u64) {
        let Ok(mut inner) = self.inner.try_borrow_mut() else { return };
        inner.failures.remove(key);
        inner.tokens.insert(key, value, refresh_at_ms, now_ms);
    }

    pub fn counted_exchange(&self) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.stats.exchanges += 1;
        }
    }

    /// Remembers why `key` could not be fetched, for its waiters.
    pub fn fail(&self, key: &str, denial: &Denial, now_ms: u64) {
        let Ok(mut inner) = self.inner.try_borrow_mut() else { return };
        let detail = denial.detail.clone().unwrap_or_else(|| "unknown".into());
        match inner.stats.failures.iter_mut().find(|(d, _)| *d == detail) {
            Some((_, n)) => *n += 1,
            None => inner.stats.failures.push((detail, 1)),
        }
        inner.tokens.remove(key);
        inner.failures.insert(key, denial.clone(), now_ms.saturating_add(FAILURE_KEPT_MS), now_ms);
    }

    pub fn failure(&self, key: &str, now_ms: u64) -> Option<Denial> {
        self.inner.try_borrow_mut().ok()?.failures.get(key, now_ms).cloned()
    }

    pub fn stats(&self) -> TokenStats {
        self.inner.try_borrow().map(|i| i.stats.clone()).unwrap_or_default()
    }

    /// How many tokens and failures are kept (expired ones included until
    /// they are swept), for the gauges.
    pub fn sizes(&self) -> (usize, usize) {
        self.inner.try_borrow().map_or((0, 0), |i| (i.tokens.len(), i.failures.len()))
    }

    /// `key`'s token as other VMs read it from shared data: its refresh
    /// time, the key (compared on import: a slot another key took is a
    /// miss, never a wrong token), and the token.
    pub fn export(&self, key: &str) -> Option<Vec<u8>> {
        let inner = self.inner.try_borrow().ok()?;
        let (value, refresh_at_ms, _) = inner.tokens.map.get(key)?;
        Some(format!("{refresh_at_ms}\n{key}\n{value}").into_bytes())
    }

    /// Takes another VM's token for `key`, if it is fresh. True if taken.
    pub fn import(&self, key: &str, bytes: &[u8], now_ms: u64) -> bool {
        let Ok(text) = std::str::from_utf8(bytes) else { return false };
        let Some((refresh, rest)) = text.split_once('\n') else { return false };
        let Some(value) = rest.strip_prefix(key).and_then(|r| r.strip_prefix('\n')) else { return false };
        match refresh.parse::<u64>() {
            Ok(refresh_at_ms) if now_ms < refresh_at_ms && valid_token(value) => {
                // Believed no longer than a token this VM fetched would be.
                let refresh_at_ms = refresh_at_ms.min(now_ms.saturating_add(MAX_EXPIRES_IN * 1_000));
                self.insert(key, value.to_string(), refresh_at_ms, now_ms);
                true
            }
            _ => false,
        }
    }
}

/// The headers a token goes in: the credential's header, and the
/// comma-list headers the provider wants with it, merged into the
/// request's own values.
pub fn headers(te: &TokenExchange, token: &str, request: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = vec![(te.header.clone(), format!("{}{token}", te.prefix))];
    for (name, value) in &te.with_token {
        let mut items: Vec<&str> = request
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        for item in value.split(',') {
            if !items.contains(&item) {
                items.push(item);
            }
        }
        out.push((name.clone(), items.join(",")));
    }
    out
}

/// The exchange request for a subject token (the caller's JWT-SVID or a
/// minted assertion) with the caller's account parameters.
pub fn request(te: &TokenExchange, subject: &str, account: &[(String, String)]) -> CalloutRequest {
    let mut fields: Vec<(&str, &str)> = match te.grant {
        Grant::TokenExchange => vec![
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("subject_token", subject),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ],
        Grant::JwtBearer => vec![("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", subject)],
    };
    fields.extend(te.params.iter().chain(account).map(|(k, v)| (k.as_str(), v.as_str())));
    let (content_type, body) = match te.encoding {
        Encoding::Json => {
            let object: serde_json::Map<String, Value> =
                fields.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect();
            ("application/json", Value::Object(object).to_string().into_bytes())
        }
        Encoding::Form => {
            let pairs: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", form(k), form(v))).collect();
            ("application/x-www-form-urlencoded", pairs.join("&").into_bytes())
        }
    };
    let mut headers =
        vec![("content-type".to_string(), content_type.to_string()), ("accept".into(), "application/json".into())];
    headers.extend(te.exchange_headers.iter().cloned());
    CalloutRequest {
        cluster: te.cluster.clone(),
        method: "POST",
        authority: te.authority.clone(),
        path: te.path.clone(),
        headers,
        body,
        timeout_ms: te.timeout_ms,
    }
}

/// `application/x-www-form-urlencoded` (the WHATWG serializer: unreserved
/// bytes as they are, space as `+`, everything else percent-encoded).
fn form(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A token that can go in a header as it is.
fn valid_token(t: &str) -> bool {
    !t.is_empty() && t.len() <= 16 * 1024 && t.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads a token endpoint's answer: 2xx, a JSON object with a header-safe
/// `access_token`, `token_type` Bearer (any case) and a positive integer
/// `expires_in`. Anything else is `credential_unavailable` with a detail
/// that names the cause.
pub fn read(provider: &Provider, result: &CalloutResult) -> Result<Token, Denial> {
    let unavailable = |detail: &'static str, message: String| {
        Denial::new(
            Reason::CredentialUnavailable,
            format!("the gateway could not obtain a credential for provider {:?}: {message}", provider.name),
        )
        .with_detail(detail)
    };
    let body = match result {
        CalloutResult::Response { status: 200, content_type: Some(c), .. } if !is_json(c) => {
            return Err(unavailable(
                "token_response_invalid",
                format!("the token endpoint's answer is {c:?}, not JSON"),
            ))
        }
        CalloutResult::Response { status: 200, body, .. } => body,
        // Envoy's own answer when the call's timeout passes (or the
        // endpoint's gateway timed out).
        CalloutResult::Response { status: 504, .. } => {
            return Err(unavailable("token_endpoint_timeout", "the token endpoint did not answer in time (504)".into()))
        }
        // Envoy's own answers when it could not reach the endpoint.
        CalloutResult::Response { status: 503, body, .. }
            if body.starts_with(b"upstream connect error") || body.starts_with(b"no healthy upstream") =>
        {
            return Err(unavailable(
                "token_endpoint_unreachable",
                format!(
                    "Envoy could not reach the token endpoint: {}",
                    String::from_utf8_lossy(&body[..body.len().min(120)])
                ),
            ))
        }
        CalloutResult::Response { status, .. } => {
            return Err(unavailable("token_endpoint_status", format!("the token endpoint answered {status}")))
        }
        CalloutResult::Failed(why) => return Err(unavailable("token_endpoint_unreachable", why.clone())),
    };
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(unavailable("token_response_invalid", "the token endpoint's answer is too large".into()));
    }
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
        return Err(unavailable("token_response_invalid", "the token endpoint's answer is not a JSON object".into()));
    };
    let value = match answer.get("access_token") {
        Some(Value::String(t)) if valid_token(t) => t.clone(),
        _ => {
            return Err(unavailable(
                "token_response_invalid",
                "the token endpoint's answer has no usable access_token".into(),
            ))
        }
    };
    match answer.get("token_type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
        Some(Value::String(t)) => {
            return Err(unavailable("token_type_unsupported", format!("token_type {t:?} is not Bearer")))
        }
        _ => return Err(unavailable("token_response_invalid", "the token endpoint's answer has no token_type".into())),
    }
    let expires_in = match answer.get("expires_in").and_then(Value::as_u64) {
        Some(n) if n > 0 => n.min(MAX_EXPIRES_IN),
        _ => {
            return Err(unavailable(
                "token_response_invalid",
                "the token endpoint's answer has no positive integer expires_in".into(),
            ))
        }
    };
    Ok(Token { value, expires_in })
}

#[cfg(test)]
#[path = "token_exchange_tests.rs"]
mod tests;
