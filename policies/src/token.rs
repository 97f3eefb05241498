//! Access tokens from a token endpoint (SPEC §4 `token_exchange`): the
//! exchange request, the strict reading of its answer, and the per-VM cache
//! that lets one exchange serve every request of a workload until the token
//! is about to expire.
//!
//! - A token is cached under its key: the provider, the workload's SPIFFE
//!   ID and, when the assertion names it, the model. Never across
//!   workloads; never an SVID.
//! - It is used until `expires_in − refresh_margin_seconds`; after that the
//!   next request fetches a new one.
//! - A failed fetch is kept only long enough for the requests that waited
//!   on it to get the same answer; the next request tries again.
//! - Other worker VMs reuse a token through Envoy's shared data
//!   ([`TokenCache::export`], [`TokenCache::import`]).

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;

use crate::callout::{is_json, CalloutRequest, CalloutResult};
use crate::config::{Encoding, Grant, Provider, TokenExchange};
use crate::reason::{Denial, Reason};

/// Tokens a VM keeps; beyond this the expired ones go, then all.
const MAX_TOKENS: usize = 16_384;
/// The longest token lifetime believed (a day).
const MAX_EXPIRES_IN: u64 = 86_400;
/// The largest token endpoint answer read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What the cache is keyed by.
pub fn key(provider: &str, spiffe_id: &str, model: Option<&str>) -> String {
    format!("{provider}\n{spiffe_id}\n{}", model.unwrap_or(""))
}

/// A token and when it is to be replaced.
#[derive(Clone, PartialEq, Eq)]
struct Cached {
    value: String,
    refresh_at_ms: u64,
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, Cached>,
    /// The last failure per key, for the requests that waited on it.
    failures: HashMap<String, Denial>,
    stats: TokenStats,
}

/// Counts for the metrics: cache hits, exchanges, failures by cause.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenStats {
    pub hits: u64,
    pub exchanges: u64,
    pub failures: Vec<(String, u64)>,
}

#[derive(Default)]
pub struct TokenCache {
    inner: RefCell<Inner>,
}

/// A token endpoint's answer, read strictly.
#[derive(Debug, PartialEq, Eq)]
pub struct Token {
    pub value: String,
    pub expires_in: u64,
}

impl TokenCache {
    /// The cached token of `key`, if it is not due for refresh.
    pub fn get(&self, key: &str, now_ms: u64) -> Option<String> {
        let mut inner = self.inner.try_borrow_mut().ok()?;
        let hit = inner.tokens.get(key).filter(|c| now_ms < c.refresh_at_ms).map(|c| c.value.clone());
        if hit.is_some() {
            inner.stats.hits += 1;
        }
        hit
    }

    /// Keeps a fetched token until `expires_in − margin`.
    pub fn store(&self, key: &str, token: &Token, margin_seconds: u64, now_ms: u64) {
        let lifetime = token.expires_in.saturating_sub(margin_seconds).saturating_mul(1_000);
        self.insert(key, Cached { value: token.value.clone(), refresh_at_ms: now_ms + lifetime });
    }

    fn insert(&self, key: &str, cached: Cached) {
        let Ok(mut inner) = self.inner.try_borrow_mut() else { return };
        inner.failures.remove(key);
        if inner.tokens.len() >= MAX_TOKENS {
            let now = cached.refresh_at_ms.saturating_sub(MAX_EXPIRES_IN * 1_000);
            inner.tokens.retain(|_, c| c.refresh_at_ms > now);
            if inner.tokens.len() >= MAX_TOKENS {
                inner.tokens.clear();
            }
        }
        inner.tokens.insert(key.to_string(), cached);
    }

    pub fn counted_exchange(&self) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.stats.exchanges += 1;
        }
    }

    /// Remembers why `key` could not be fetched, for its waiters.
    pub fn fail(&self, key: &str, denial: &Denial) {
        let Ok(mut inner) = self.inner.try_borrow_mut() else { return };
        let detail = denial.detail.clone().unwrap_or_else(|| "unknown".into());
        match inner.stats.failures.iter_mut().find(|(d, _)| *d == detail) {
            Some((_, n)) => *n += 1,
            None => inner.stats.failures.push((detail, 1)),
        }
        inner.tokens.remove(key);
        inner.failures.insert(key.to_string(), denial.clone());
    }

    pub fn failure(&self, key: &str) -> Option<Denial> {
        self.inner.try_borrow().ok()?.failures.get(key).cloned()
    }

    pub fn stats(&self) -> TokenStats {
        self.inner.try_borrow().map(|i| i.stats.clone()).unwrap_or_default()
    }

    /// `key`'s token as other VMs read it from shared data.
    pub fn export(&self, key: &str) -> Option<Vec<u8>> {
        let inner = self.inner.try_borrow().ok()?;
        let c = inner.tokens.get(key)?;
        Some(format!("{}\n{key}\n{}", c.refresh_at_ms, c.value).into_bytes())
    }

    /// Takes another VM's token for `key`, if it is fresh. True if taken.
    pub fn import(&self, key: &str, bytes: &[u8], now_ms: u64) -> bool {
        let Ok(text) = std::str::from_utf8(bytes) else { return false };
        let Some((refresh, rest)) = text.split_once('\n') else { return false };
        let Some(value) = rest.strip_prefix(key).and_then(|r| r.strip_prefix('\n')) else { return false };
        match refresh.parse::<u64>() {
            Ok(refresh_at_ms) if now_ms < refresh_at_ms && valid_token(value) => {
                self.insert(key, Cached { value: value.to_string(), refresh_at_ms });
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
        CalloutResult::Response { status: 200..=299, content_type: Some(c), .. } if !is_json(c) => {
            return Err(unavailable(
                "token_response_invalid",
                format!("the token endpoint's answer is {c:?}, not JSON"),
            ))
        }
        CalloutResult::Response { status: 200..=299, body, .. } => body,
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
#[path = "token_tests.rs"]
mod tests;
