//! The Anthropic Messages api.

use serde_json::{json, Value};

use super::spec::{
    self, count, whole, BodyFormat, Counts, Encoding, Endpoint, Federation, Grant, ModelAt, Spec, StreamAt,
    StreamEvent, Usage, MODEL, MODEL_LIST, STREAM,
};
use crate::body::json::{Path, Step};

/// Sent upstream when the caller sent no `anthropic-version`.
pub const VERSION: &str = "2023-06-01";

pub static SPEC: Spec = Spec {
    name: "anthropic",
    endpoints: ENDPOINTS,
    sdk_key_headers: &["x-api-key"],
    signature_schemes: &[],
    key_header: ("x-api-key", ""),
    required_headers: &[("anthropic-version", VERSION)],
    account_headers: &["anthropic-workspace-id", "anthropic-organization-id", "anthropic-user-profile-id"],
    error_body,
    error_headers: spec::no_headers,
    usage,
    listing: spec::Listing::Data,
    model_name: spec::same_name,
    encoded_segment: None,
    resolve: spec::model_itself,
    model_headers: &[],
    decode_model: spec::verbatim,
    deployments: None,
    scope: None,
    federation: Some(FEDERATION),
    base_model: spec::no_spelling,
    stream_event,
};

/// anthropic/lib/credentials/_workload.py, _auth.py: RFC 7523, JSON body,
/// the federation beta on the exchange and the OAuth beta on every call
/// made with the token.
const FEDERATION: Federation = Federation {
    authority: "api.anthropic.com",
    path: "/v1/oauth/token",
    grant: Grant::JwtBearer,
    encoding: Encoding::Json,
    exchange_headers: &[("anthropic-beta", "oauth-2025-04-20,oidc-federation-2026-04-01")],
    with_token: &[("anthropic-beta", "oauth-2025-04-20")],
    required: &["federation_rule_id", "organization_id", "service_account_id"],
};

const MAX_TOKENS: Path = &[Step::Key("max_tokens")];
/// Where Anthropic records the end user a request is for.
const END_USER: &[Path] = &[&[Step::Key("metadata"), Step::Key("user_id")]];

static ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "POST",
        path: "/v1/messages",
        body: BodyFormat::Json,
        model: ModelAt::Body(MODEL),
        stream: StreamAt::Body(STREAM),
        max_tokens: &[MAX_TOKENS],
        max_tokens_default: Some(MAX_TOKENS),
        multipliers: &[],
        refuse: &[],
        tool_models: &[],
        history: &[&[Step::Key("messages")]],
        // The SDK's beta namespace adds `?beta=true`.
        query: &["beta"],
        stream_usage: None,
        end_user: END_USER,
    },
    Endpoint {
        method: "POST",
        path: "/v1/messages/count_tokens",
        body: BodyFormat::Json,
        model: ModelAt::Body(MODEL),
        stream: StreamAt::Never,
        max_tokens: &[],
        max_tokens_default: None,
        multipliers: &[],
        refuse: &[],
        tool_models: &[],
        history: &[&[Step::Key("messages")]],
        query: &["beta"],
        stream_usage: None,
        end_user: &[],
    },
    MODEL_LIST,
];

/// `{"type":"error","error":{"type","message"}}` with Anthropic's error
/// types, which its SDK maps to typed errors by status.
fn error_body(status: u16, _code: &str, message: &str) -> Value {
    let kind = match status {
        401 => "authentication_error",
        403 => "permission_error",
        413 => "request_too_large",
        400 | 415 => "invalid_request_error",
        429 => "rate_limit_error",
        _ => "api_error",
    };
    json!({ "type": "error", "error": { "type": kind, "message": message } })
}

/// `usage` of a message: input counts the prompt, including the parts read
/// from or written to the prompt cache, which Anthropic reports apart.
fn usage(body: &Value) -> Option<Usage> {
    let u = body.get("usage").filter(|u| u.is_object())?;
    let cached =
        count(u, "cache_creation_input_tokens").unwrap_or(0) + count(u, "cache_read_input_tokens").unwrap_or(0);
    let input = count(u, "input_tokens").map(|n| n + cached);
    let output = count(u, "output_tokens");
    let total = match (input, output) {
        (None, None) => None,
        (i, o) => Some(i.unwrap_or(0) + o.unwrap_or(0)),
    };
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
        total_tokens: total,
        cached_input_tokens: count(u, "cache_read_input_tokens"),
        cache_write_tokens: count(u, "cache_creation_input_tokens"),
    })
}

/// Messages events: `message_start` names the model and the input,
/// `message_delta` carries running totals, `message_stop` ends the stream.
pub(super) fn stream_event<'v>(v: &'v Value, _frame: Option<&str>) -> Option<StreamEvent<'v>> {
    match v.get("type").and_then(Value::as_str)? {
        "message_start" => {
            let message = v.get("message");
            Some(StreamEvent {
                model: message.and_then(|m| m.get("model")).and_then(Value::as_str),
                counts: whole(message.and_then(usage)),
                ..StreamEvent::default()
            })
        }
        "message_delta" => {
            // Cumulative counts: each replaces what an earlier said; the
            // input with the prompt cache's reads and writes, as in a message.
            let counts = match usage(v) {
                Some(u) => Counts::Cumulative { input: u.input_tokens, output: u.output_tokens },
                None => Counts::Nothing,
            };
            Some(StreamEvent { counts, ..StreamEvent::default() })
        }
        "message_stop" => Some(StreamEvent { last: true, ..StreamEvent::default() }),
        _ => None,
    }
}

#[cfg(test)]
#[path = "anthropic_tests.rs"]
mod tests;
