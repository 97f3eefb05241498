//! The query string a provider receives: only the parameters the endpoint
//! takes. Everything else a workload adds is removed — a credential
//! (`key=`, `api-key=`, `access_token=`, …) the provider might read, a
//! parameter an OpenAI-compatible router might act on — and a `model`
//! parameter, which routers read as the model, is refused.

use crate::reason::{Denial, Reason};

/// Credential-bearing parameters, removed even where the endpoint is
/// unknown (audit mode forwards such requests).
const CREDENTIALS: &[&str] =
    &["key", "api-key", "api_key", "apikey", "access_token", "token", "auth", "x-api-key", "x-goog-api-key", "sig"];

/// The path with only `allowed` parameters kept (each at most once);
/// `None` when nothing changes.
pub fn sanitize(path: &str, allowed: &[&str]) -> Result<Option<String>, Denial> {
    filter(path, |name| {
        if name.eq_ignore_ascii_case("model") {
            return Err(Denial::new(
                Reason::AmbiguousModel,
                "the query names a model; name it in the request body, once",
            )
            .with_detail("query_model"));
        }
        Ok(allowed.contains(&name))
    })
    .and_then(|(kept, changed)| {
        let mut seen: Vec<&str> = Vec::new();
        for param in kept.iter().map(|p| p.split('=').next().unwrap_or("")) {
            if seen.contains(&param) {
                return Err(
                    Denial::new(Reason::InvalidPath, "a query parameter is repeated").with_detail("repeated_query")
                );
            }
            seen.push(param);
        }
        Ok(changed.then(|| join(path, &kept)))
    })
}

/// The path with every credential-bearing parameter removed (for requests
/// to endpoints modelgate does not know, forwarded in audit mode).
pub fn strip_credentials(path: &str) -> Option<String> {
    let (kept, changed) = filter(path, |name| Ok(!CREDENTIALS.iter().any(|c| name.eq_ignore_ascii_case(c)))).ok()?;
    changed.then(|| join(path, &kept))
}

/// The query's parameters that `keep` keeps (by decoded name), and whether
/// any was dropped.
fn filter(path: &str, keep: impl Fn(&str) -> Result<bool, Denial>) -> Result<(Vec<&str>, bool), Denial> {
    let Some((_, query)) = path.split_once('?') else { return Ok((Vec::new(), false)) };
    let mut kept = Vec::new();
    let mut changed = false;
    for param in query.split('&') {
        let name = percent_decode(param.split('=').next().unwrap_or(""));
        if !param.is_empty() && keep(&name)? {
            kept.push(param);
        } else {
            changed = true;
        }
    }
    Ok((kept, changed))
}

fn join(path: &str, kept: &[&str]) -> String {
    let base = path.split('?').next().unwrap_or(path);
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// `%6bey` → `key`, `+` → space: how servers decode a parameter name.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
