//! Why a request was refused, and the one place that turns that into what
//! goes on the wire: the status, the error body in the provider api's own
//! shape (so official SDKs raise their usual typed errors), and the audit
//! record's `reason`/`detail`.
//!
//! A [`Denial`]'s message is read by workload owners; it never holds a token,
//! a key or a prompt.

use serde::Serialize;

use crate::api::Api;

/// The reasons of SPEC §5, one per audit `reason` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    MissingIdentity,
    InvalidSvid,
    IdentityMismatch,
    UntrustedDomain,
    ModelNotAllowed,
    ConditionNotMet,
    EndpointNotAllowed,
    NoProvider,
    StreamNotAllowed,
    MaxTokensExceeded,
    PromptBlocked,
    InvalidBody,
    ModelMissing,
    AmbiguousModel,
    InvalidPath,
    BodyTooLarge,
    UnsupportedEncoding,
    CredentialUnavailable,
    BundleUnavailable,
    /// MCP: a tool, method, resource or prompt no rule allows, or a tool
    /// call whose arguments a rule constrains and that does not hold.
    ToolNotAllowed,
    MethodNotAllowed,
    ResourceNotAllowed,
    PromptNotAllowed,
    ArgumentNotAllowed,
    /// MCP: a session id this workload did not open (or no session at all).
    SessionNotFound,
    /// Budgets: a request with no bound on its output; a dollar budget
    /// and no price for the model; no room left; a ledger that cannot
    /// answer.
    MaxTokensMissing,
    PriceUnknown,
    BudgetExhausted,
    BudgetUnavailable,
    /// The gateway itself cannot decide: no valid configuration, or an
    /// Envoy that does not hold requests for it.
    NotConfigured,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::MissingIdentity => "missing_identity",
            Reason::InvalidSvid => "invalid_svid",
            Reason::IdentityMismatch => "identity_mismatch",
            Reason::UntrustedDomain => "untrusted_domain",
            Reason::ModelNotAllowed => "model_not_allowed",
            Reason::ConditionNotMet => "condition_not_met",
            Reason::EndpointNotAllowed => "endpoint_not_allowed",
            Reason::NoProvider => "no_provider",
            Reason::StreamNotAllowed => "stream_not_allowed",
            Reason::MaxTokensExceeded => "max_tokens_exceeded",
            Reason::PromptBlocked => "prompt_blocked",
            Reason::InvalidBody => "invalid_body",
            Reason::ModelMissing => "model_missing",
            Reason::AmbiguousModel => "ambiguous_model",
            Reason::InvalidPath => "invalid_path",
            Reason::BodyTooLarge => "body_too_large",
            Reason::UnsupportedEncoding => "unsupported_encoding",
            Reason::CredentialUnavailable => "credential_unavailable",
            Reason::BundleUnavailable => "bundle_unavailable",
            Reason::ToolNotAllowed => "tool_not_allowed",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::ResourceNotAllowed => "resource_not_allowed",
            Reason::PromptNotAllowed => "prompt_not_allowed",
            Reason::ArgumentNotAllowed => "argument_not_allowed",
            Reason::SessionNotFound => "session_not_found",
            Reason::MaxTokensMissing => "max_tokens_missing",
            Reason::PriceUnknown => "price_unknown",
            Reason::BudgetExhausted => "budget_exhausted",
            Reason::BudgetUnavailable => "budget_unavailable",
            Reason::NotConfigured => "not_configured",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Reason::MissingIdentity | Reason::InvalidSvid | Reason::IdentityMismatch | Reason::UntrustedDomain => 401,
            Reason::ModelNotAllowed
            | Reason::ConditionNotMet
            | Reason::EndpointNotAllowed
            | Reason::NoProvider
            | Reason::StreamNotAllowed
            | Reason::MaxTokensExceeded
            | Reason::PromptBlocked
            | Reason::ToolNotAllowed
            | Reason::MethodNotAllowed
            | Reason::ResourceNotAllowed
            | Reason::PromptNotAllowed
            | Reason::ArgumentNotAllowed
            | Reason::MaxTokensMissing
            | Reason::PriceUnknown => 403,
            Reason::BudgetExhausted => 429,
            Reason::SessionNotFound => 404,
            Reason::InvalidBody | Reason::ModelMissing | Reason::AmbiguousModel | Reason::InvalidPath => 400,
            Reason::BodyTooLarge => 413,
            Reason::UnsupportedEncoding => 415,
            Reason::CredentialUnavailable
            | Reason::BundleUnavailable
            | Reason::BudgetUnavailable
            | Reason::NotConfigured => 503,
        }
    }
}

/// A refusal: the reason, the precise cause for the audit record, the rule
/// that decided (if one did), and a message for the workload owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub reason: Reason,
    pub detail: Option<String>,
    pub rule: Option<String>,
    pub message: String,
    /// Seconds until it may succeed (`Retry-After`): a budget's window end.
    pub retry_after_s: Option<u64>,
}

impl Denial {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Denial { reason, detail: None, rule: None, message: message.into(), retry_after_s: None }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// The reply the filter sends for this denial, in `api`'s error shape
    /// (the OpenAI shape when no provider matched).
    pub fn reply(&self, api: Option<Api>, request_id: Option<&str>) -> LocalReply {
        let status = self.reason.status();
        let code = self.reason.code();
        let message = format!("modelgate: {} ({code})", self.message);
        let spec = api.unwrap_or(Api::FALLBACK).spec();
        let body = (spec.error_body)(status, code, &message);
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("x-modelgate-reason".to_string(), code.to_string()),
        ];
        headers.extend((spec.error_headers)(status));
        if status == 401 {
            headers.push(("www-authenticate".to_string(), "Bearer error=\"invalid_token\"".to_string()));
        }
        if let Some(seconds) = self.retry_after_s {
            headers.push(("retry-after".to_string(), seconds.to_string()));
            // The OpenAI and Anthropic SDKs retry a 429 unless told not
            // to; a window that ends past their patience will not have room.
            if seconds > 60 {
                headers.push(("x-should-retry".to_string(), "false".to_string()));
            }
        }
        if let Some(id) = request_id {
            headers.push(("x-request-id".to_string(), id.to_string()));
        }
        LocalReply { status, headers, body: body.to_string().into_bytes() }
    }
}

/// The audit record's `reason`: `ok` for a request that went on as allowed,
/// the denial's reason, or `incomplete` for one that ended before modelgate
/// decided (the client went away, or Envoy refused it first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verdict {
    #[default]
    Incomplete,
    Ok,
    Denied(Reason),
}

impl Verdict {
    pub fn code(self) -> &'static str {
        match self {
            Verdict::Incomplete => "incomplete",
            Verdict::Ok => "ok",
            Verdict::Denied(reason) => reason.code(),
        }
    }
}

impl Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// A response the filter sends itself instead of forwarding the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[cfg(test)]
#[path = "reason_tests.rs"]
mod tests;
