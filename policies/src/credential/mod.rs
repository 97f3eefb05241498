//! Credentials on the wire (SPEC §4): where the caller's JWT-SVID is read
//! from, what is stripped before forwarding, and what is injected.

pub mod callout;
pub mod mint;
pub mod sign;
pub mod token_exchange;

use crate::api::Api;
use crate::body::Edit;
use crate::config::{Carrier, Credential, Provider, Subject};
use crate::credential::callout::{CalloutRequest, CalloutResult};
use crate::credential::token_exchange::TokenCache;
use crate::identity::spiffe::SpiffeId;
use crate::identity::svid::jwt::MAX_TOKEN_BYTES;
use crate::identity::svid::SignatureVerifier;
use crate::reason::{Denial, Reason};

/// Every header a caller could put a credential in: `authorization`,
/// `proxy-authorization`, and each header some api's SDK sends its key in.
/// All are removed from every forwarded request, whatever the api.
pub fn caller_credential_headers() -> Vec<&'static str> {
    let mut out = vec!["authorization", "proxy-authorization"];
    out.extend(crate::api::sdk_key_headers());
    out
}

/// Headers that would let a workload change what the provider does with
/// the gateway's credential: cookies, and method overrides (some servers
/// serve a POST as the method these name). Removed from every forwarded
/// request, with each api's account and project selectors.
pub const STEERING_HEADERS: &[&str] = &["cookie", "x-http-method-override", "x-http-method", "x-method-override"];

/// Headers that carry the caller's identity as a hop in front of the
/// gateway saw it (the workload's certificate): for modelgate only, never
/// for the provider.
pub const HOP_IDENTITY_HEADERS: &[&str] = &["x-forwarded-client-cert"];

/// Finds the caller's JWT-SVID. Exactly one carrier may hold a credential,
/// once: two filled carriers, or a repeated carrier header, are ambiguous
/// (we might validate one token and the provider read another).
pub fn find_svid<'h>(carrier: &Carrier, api: Option<Api>, headers: &'h [(String, String)]) -> Result<&'h str, Denial> {
    let ambiguous = || {
        Denial::new(Reason::InvalidSvid, "send the JWT-SVID in exactly one header, once")
            .with_detail("ambiguous_credentials")
    };
    let mut found: Option<&str> = None;
    let mut take = |name: &str, scheme: Option<&str>| -> Result<(), Denial> {
        let mut values = headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let Some(value) = values.next() else {
            return Ok(());
        };
        if values.next().is_some() {
            return Err(ambiguous());
        }
        let value = value.trim();
        if value.is_empty() {
            return Ok(());
        }
        // Envoy folds a repeated header into one value joined by commas; a
        // JWT never holds a comma.
        if value.contains(',') {
            return Err(ambiguous());
        }
        let token = match scheme {
            None => value,
            Some(scheme) => strip_scheme(value, scheme).ok_or_else(|| {
                Denial::new(Reason::InvalidSvid, format!("the {name} header must be \"{scheme} <JWT-SVID>\""))
                    .with_detail("unsupported_scheme")
            })?,
        };
        if token.is_empty() {
            return Ok(());
        }
        if found.replace(token).is_some() {
            return Err(ambiguous());
        }
        Ok(())
    };
    match carrier {
        Carrier::Header { name, scheme } => take(name, scheme.as_deref())?,
        Carrier::SdkKeyHeaders => {
            // An AWS SDK's own SigV4 signature is no identity: stripped
            // with every other carrier, never read.
            let signed = |(k, v): &&(String, String)| {
                k == "authorization"
                    && api.is_some_and(|a| {
                        a.spec().signature_schemes.iter().any(|s| {
                            v.trim_start().get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s))
                                && v.trim_start().as_bytes().get(s.len()) == Some(&b' ')
                        })
                    })
            };
            let authorizations = headers.iter().filter(|(k, _)| k == "authorization").count();
            if authorizations == 1 && headers.iter().any(|h| signed(&h)) {
                // Read the other carriers only.
            } else {
                take("authorization", Some("Bearer"))?;
            }
            for name in api.map_or(&[][..], |a| a.spec().sdk_key_headers) {
                take(name, None)?;
            }
        }
    }
    let token = found.ok_or_else(|| {
        Denial::new(Reason::MissingIdentity, "no JWT-SVID: send it as the API key (Authorization: Bearer <JWT-SVID>)")
            .with_detail("no_credential")
    })?;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Denial::new(Reason::InvalidSvid, "the JWT-SVID is too long").with_detail("too_long"));
    }
    Ok(token)
}

/// `Bearer abc` → `abc` (scheme case-insensitive, RFC 7235).
fn strip_scheme<'v>(value: &'v str, scheme: &str) -> Option<&'v str> {
    if value.eq_ignore_ascii_case(scheme) {
        return Some("");
    }
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// How a request's (or response's) headers, path and body change before
/// they go on. Its `Debug` shows header names only: the values hold the
/// provider key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Rewrite {
    pub remove_headers: Vec<String>,
    pub set_headers: Vec<(String, String)>,
    /// The new `:path`, when a `key=` query parameter was removed.
    pub path: Option<String>,
    /// Changes to the whole held body (the token cap written in, a listing
    /// filtered); `content-length` is set to the new length.
    pub body_edits: Vec<Edit>,
    /// The decision that lets the request go upstream (set once, by the
    /// flow): the filter marks the request released for Envoy's backstop
    /// after modelgate (docs/reliability.md#hot-reload).
    pub release: bool,
}

impl std::fmt::Debug for Rewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewrite")
            .field("remove_headers", &self.remove_headers)
            .field("set_headers", &self.set_headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .field("path", &self.path.as_ref().map(|_| "…"))
            .field("body_edits", &self.body_edits.len())
            .field("release", &self.release)
            .finish()
    }
}

/// Strips every caller credential and steering header and sets the
/// provider's fixed headers (its credential comes from [`plan`]). `provider` is `None` only in
/// audit mode for a request no provider matched: it is forwarded with no
/// credential at all.
pub fn rewrite(provider: Option<&Provider>, carrier: &Carrier, headers: &[(String, String)]) -> Rewrite {
    let mut out = Rewrite::default();
    let mut remove = |name: &str| {
        if !out.remove_headers.iter().any(|h| h == name) {
            out.remove_headers.push(name.to_string());
        }
    };
    for name in caller_credential_headers().iter().chain(STEERING_HEADERS).chain(HOP_IDENTITY_HEADERS) {
        remove(name);
    }
    if let Carrier::Header { name, .. } = carrier {
        remove(name);
    }
    // Usage is read from the response; ask for it uncompressed.
    remove("accept-encoding");
    if let Some(provider) = provider {
        for name in provider.api.spec().account_headers {
            remove(name);
        }
    }
    // Only what the request carries needs removing (each is a host call).
    out.remove_headers.retain(|name| headers.iter().any(|(k, _)| k == name));
    let Some(provider) = provider else { return out };
    out.set_headers.extend(provider.headers.iter().cloned());
    for (name, value) in provider.api.spec().required_headers {
        if !headers.iter().any(|(k, _)| k == name) && !out.set_headers.iter().any(|(k, _)| k == name) {
            out.set_headers.push((name.to_string(), value.to_string()));
        }
    }
    out
}

/// Who the credential is for.
pub struct Caller<'a> {
    pub spiffe_id: &'a str,
    /// The caller's JWT-SVID, when it sent one.
    pub svid: Option<&'a str>,
    /// The model the rules allowed, when the request names one.
    pub model: Option<&'a str>,
}

/// What the credential step needs before a request can go on.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// These headers, now.
    Ready(Vec<(String, String)>),
    /// This call first (or the answer to another request's call for the
    /// same `key`); [`finish`] reads it.
    Fetch { key: String, call: CalloutRequest },
}

fn unavailable(provider: &Provider, detail: &str, message: &str) -> Denial {
    Denial::new(
        Reason::CredentialUnavailable,
        format!("the gateway could not obtain a credential for provider {:?}: {message}", provider.name),
    )
    .with_detail(detail)
}

/// The provider's credential for this caller: injected now, or fetched
/// first. `request` are the request's headers; `jti` a fresh random value
/// for a JWT minted now.
pub fn plan(
    provider: &Provider,
    caller: &Caller<'_>,
    request: &[(String, String)],
    tokens: &TokenCache,
    now_ms: u64,
    jti: &dyn Fn() -> [u8; 16],
    signer: &dyn SignatureVerifier,
) -> Result<Plan, Denial> {
    let now_secs = now_ms / 1000;
    match &provider.credential {
        Credential::None => Ok(Plan::Ready(Vec::new())),
        Credential::ApiKey { key, header, prefix } => {
            Ok(Plan::Ready(vec![(header.clone(), format!("{prefix}{}", key.expose()))]))
        }
        Credential::MintedJwt { minter, header, prefix } => {
            let jwt = minter.mint(caller.spiffe_id, caller.model, now_secs, &jti(), signer);
            Ok(Plan::Ready(vec![(header.clone(), format!("{prefix}{jwt}"))]))
        }
        Credential::TokenExchange(te) => {
            let (index, account): (Option<usize>, &[(String, String)]) = match &te.accounts {
                None => (None, &[]),
                Some(accounts) => {
                    let id = SpiffeId::parse(caller.spiffe_id)
                        .map_err(|_| unavailable(provider, "no_account", "the caller has no SPIFFE ID"))?;
                    let (index, account) = accounts
                        .iter()
                        .enumerate()
                        .find(|(_, a)| a.workloads.iter().any(|w| w.matches(&id)))
                        .ok_or_else(|| {
                            unavailable(
                                provider,
                                "no_account",
                                &format!("no provider account is configured for {}", caller.spiffe_id),
                            )
                        })?;
                    (Some(index), &account.params)
                }
            };
            // A minted assertion names the model: its token is bound to it
            // (the caches' bounds hold however many models the rules allow).
            let bound = matches!(te.subject, Subject::Minted(_));
            let key = token_exchange::key(&te.digest, index, caller.spiffe_id, if bound { caller.model } else { None });
            // The caller's own JWT-SVID is the subject: a request without
            // one is refused whether or not a token is cached (the same
            // answer every time, not only until another request fetched).
            if matches!(te.subject, Subject::Svid) && caller.svid.is_none() {
                return Err(unavailable(
                    provider,
                    "no_jwt_svid",
                    "this provider exchanges the caller's JWT-SVID, and the request was identified by its \
                     certificate alone",
                ));
            }
            if let Some(token) = tokens.get(&key, now_ms) {
                return Ok(Plan::Ready(token_exchange::headers(te, &token, request)));
            }
            let subject = match &te.subject {
                Subject::Svid => caller.svid.map(str::to_string).unwrap_or_default(),
                Subject::Minted(minter) => minter.mint(caller.spiffe_id, caller.model, now_secs, &jti(), signer),
            };
            Ok(Plan::Fetch { key, call: token_exchange::request(te, &subject, account) })
        }
        #[cfg(test)]
        Credential::TestCallout { cluster } => Ok(Plan::Fetch {
            key: "test".into(),
            call: CalloutRequest {
                cluster: cluster.clone(),
                method: "POST",
                authority: "token.test".into(),
                path: "/token".into(),
                headers: vec![("content-type".into(), "application/json".into())],
                body: b"{}".to_vec(),
                timeout_ms: 2000,
            },
        }),
    }
}

/// The headers a fetched token gives the request (and the token kept for
/// the next requests of its key), or why there are none.
pub fn finish(
    provider: &Provider,
    key: &str,
    result: &CalloutResult,
    request: &[(String, String)],
    tokens: &TokenCache,
    now_ms: u64,
) -> Result<Vec<(String, String)>, Denial> {
    tokens.counted_exchange();
    let read = token_exchange::read(provider, result);
    let token = match read {
        Ok(token) => token,
        Err(d) => {
            tokens.fail(key, &d, now_ms);
            return Err(d);
        }
    };
    let margin = match &provider.credential {
        Credential::TokenExchange(te) => te.refresh_margin_seconds,
        _ => 0,
    };
    tokens.store(key, &token, margin, now_ms);
    Ok(with_token(provider, &token.value, request))
}

/// The headers a fetched token goes in.
fn with_token(provider: &Provider, token: &str, request: &[(String, String)]) -> Vec<(String, String)> {
    match &provider.credential {
        Credential::TokenExchange(te) => token_exchange::headers(te, token, request),
        _ => vec![("authorization".to_string(), format!("Bearer {token}"))],
    }
}

/// For a request that waited on another's fetch of `key`: the token it
/// brought, or the refusal it met.
pub fn shared(
    provider: &Provider,
    key: &str,
    request: &[(String, String)],
    tokens: &TokenCache,
    now_ms: u64,
) -> Result<Vec<(String, String)>, Denial> {
    if let Some(token) = tokens.get(key, now_ms) {
        return Ok(with_token(provider, &token, request));
    }
    Err(tokens
        .failure(key, now_ms)
        .unwrap_or_else(|| unavailable(provider, "token_unavailable", "the token fetched for this workload is gone")))
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
