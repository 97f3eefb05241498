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
    /// A response arrived (any status).
    Response { status: u16, body: Vec<u8> },
    /// The host could not make the call, or it failed or timed out before a
    /// response (`dispatch_http_call` refused, connect failure, reset,
    /// timeout).
    Failed(String),
}
