//! HTTP call-outs: requests the filter makes for the engine through an
//! Envoy cluster (`dispatch_http_call`) while the workload's request waits,
//! and what comes back. The engine says what to call and reads the answer;
//! only the filter touches the host.

/// A call to make. Its `Debug` shows no header values or body: a call-out
/// may carry a credential.
#[derive(Clone, PartialEq, Eq)]
pub struct CalloutRequest {
    pub cluster: String,
    pub method: &'static str,
    pub authority: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

impl std::fmt::Debug for CalloutRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalloutRequest")
            .field("cluster", &self.cluster)
            .field("method", &self.method)
            .field("authority", &self.authority)
            .field("path", &self.path)
            .field("headers", &self.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .field("body", &self.body.len())
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// What a call-out came back with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CalloutResult {
    /// A response arrived (any status), with its `content-type` if it had
    /// one. `body` holds at most one byte more than its reader accepts.
    Response { status: u16, content_type: Option<String>, body: Vec<u8> },
    /// The host could not make the call, or it failed or timed out before a
    /// response (`dispatch_http_call` refused, connect failure, reset,
    /// timeout).
    Failed(String),
}

/// What a call-out's answer is, from what the host delivered to
/// `on_http_call_response`: `headers`, the header count it gave (0 when the
/// call failed: a connect failure Envoy could not answer for, a reset — also
/// after the headers or mid-body — or a timeout after the headers); the
/// `:status` and `content-type` read from the answer; the body as read
/// (`None`: the host would not give it); `body_size`, its size as the host
/// announced it; `limit`, the most its reader accepts.
///
/// Only a final status with a body read whole, or cut at `limit + 1` bytes
/// when larger (so the reader refuses it as too large), is a `Response`;
/// every other shape is `Failed`, which the engine refuses (503
/// `credential_unavailable` for a token, the last good bundle kept for a
/// bundle).
pub fn delivered(
    headers: usize,
    status: Option<&str>,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
    body_size: usize,
    limit: usize,
) -> CalloutResult {
    if headers == 0 {
        return CalloutResult::Failed("no response (connect failure, reset or timeout)".into());
    }
    let status = match status.map(|s| (s, s.parse::<u16>())) {
        Some((_, Ok(status @ 200..=599))) => status,
        // Envoy forwards no 1xx as an answer; a host that did would have
        // delivered headers that are not one.
        Some((s, _)) => {
            return CalloutResult::Failed(format!("an answer with status {:?} is not a final answer", truncated(s)))
        }
        None => return CalloutResult::Failed("an answer without a :status".into()),
    };
    let wanted = body_size.min(limit.saturating_add(1));
    let body = match body {
        Some(body) if body.len() == wanted => body,
        Some(body) => {
            return CalloutResult::Failed(format!(
                "the answer's body is {} bytes, not the {wanted} announced",
                body.len()
            ))
        }
        None if wanted == 0 => Vec::new(),
        None => return CalloutResult::Failed("the answer's body could not be read".into()),
    };
    CalloutResult::Response { status, content_type: content_type.map(|c| truncated(c).to_string()), body }
}

/// At most 64 bytes of a header value, for messages (cut at a char).
fn truncated(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether a `content-type` names JSON: `application/json` or a `+json`
/// type, parameters aside.
pub fn is_json(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

#[cfg(test)]
#[path = "callout_tests.rs"]
mod tests;
