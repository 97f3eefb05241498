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
mod tests {
    use super::*;

    fn failed(r: &CalloutResult) -> bool {
        matches!(r, CalloutResult::Failed(_))
    }

    #[test]
    fn a_call_that_failed_after_its_headers_is_failed() {
        // Envoy's onHttpCallFailure: (token, 0, 0, 0), whatever arrived.
        assert!(failed(&delivered(0, None, None, None, 0, 1024)));
        assert!(failed(&delivered(0, Some("200"), None, Some(b"{}".to_vec()), 2, 1024)));
    }

    #[test]
    fn headers_without_a_final_status_are_failed() {
        assert!(failed(&delivered(3, None, None, Some(Vec::new()), 0, 1024)));
        for odd in ["100", "103", "199", "600", "999", "2OO", "", "-200", "20000000"] {
            assert!(failed(&delivered(3, Some(odd), None, Some(Vec::new()), 0, 1024)), "{odd:?}");
        }
    }

    #[test]
    fn a_status_with_an_unreadable_or_short_body_is_failed() {
        assert!(failed(&delivered(3, Some("200"), None, None, 10, 1024)));
        assert!(failed(&delivered(3, Some("200"), None, Some(b"{}".to_vec()), 10, 1024)));
        // No body announced, none read: an empty answer, for the reader to judge.
        assert_eq!(
            delivered(3, Some("204"), None, None, 0, 1024),
            CalloutResult::Response { status: 204, content_type: None, body: Vec::new() }
        );
    }

    #[test]
    fn an_oversized_body_is_cut_one_byte_past_the_limit() {
        let body = vec![b' '; 11];
        let r = delivered(3, Some("200"), Some("application/json"), Some(body), 1 << 20, 10);
        let CalloutResult::Response { body, .. } = r else { panic!("{r:?}") };
        assert_eq!(body.len(), 11);
    }

    #[test]
    fn json_content_types() {
        for yes in ["application/json", "Application/JSON; charset=utf-8", "application/jwk-set+json"] {
            assert!(is_json(yes), "{yes}");
        }
        for no in ["text/html", "text/json", "application/jsonx", "", "application/x-www-form-urlencoded"] {
            assert!(!is_json(no), "{no}");
        }
    }
}
