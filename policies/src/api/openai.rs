//! The OpenAI api, and any private endpoint that speaks it
//! (`openai_compatible`: vLLM, llama.cpp, Ollama's `/v1`, …).

use serde_json::{json, Value};

use super::spec::{
    self, count, whole, BodyFormat, Counts, Encoding, Endpoint, Federation, Grant, ModelAt, Spec, StreamAt,
    StreamEvent, StreamSwitch, Usage, MODEL, MODEL_LIST, STREAM,
};
use crate::body::json::{Path, Step};

pub static SPEC: Spec = Spec {
    name: "openai",
    endpoints: ENDPOINTS,
    sdk_key_headers: &[],
    signature_schemes: &[],
    key_header: ("authorization", "Bearer "),
    required_headers: &[],
    account_headers: &["openai-organization", "openai-project"],
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
    base_model: fine_tuned,
    stream_event,
};

/// The same api at a private endpoint (which federates no identity).
pub static COMPATIBLE: Spec = Spec { name: "openai_compatible", federation: None, ..SPEC };

/// openai/auth/_workload.py: RFC 8693 field names, JSON body.
const FEDERATION: Federation = Federation {
    authority: "auth.openai.com",
    path: "/oauth/token",
    grant: Grant::TokenExchange,
    encoding: Encoding::Json,
    exchange_headers: &[],
    with_token: &[],
    required: &["identity_provider_id", "service_account_id"],
};

const MAX_TOKENS: Path = &[Step::Key("max_tokens")];
const MAX_COMPLETION_TOKENS: Path = &[Step::Key("max_completion_tokens")];
const MAX_OUTPUT_TOKENS: Path = &[Step::Key("max_output_tokens")];

/// Members through which OpenAI-compatible routers (OpenRouter, LiteLLM)
/// take fallback models: a second model modelgate did not decide on.
pub(super) const FALLBACKS: &[(Path, &str)] = &[
    (&[Step::Key("models")], "member_models"),
    (&[Step::Key("fallbacks")], "member_fallbacks"),
    (&[Step::Key("fallback_models")], "member_fallback_models"),
];

/// The Responses api also takes a stored prompt, whose template can choose
/// its own model.
/// Responses tools that run a model of their own (the default otherwise).
pub(super) const RESPONSES_TOOL_MODELS: &[&str] = &["image_generation"];

pub(super) const RESPONSES_REFUSE: &[(Path, &str)] = &[
    (&[Step::Key("models")], "member_models"),
    (&[Step::Key("fallbacks")], "member_fallbacks"),
    (&[Step::Key("fallback_models")], "member_fallback_models"),
    (&[Step::Key("prompt")], "stored_prompt"),
];

const N: Path = &[Step::Key("n")];
const BEST_OF: Path = &[Step::Key("best_of")];
/// OpenAI's end-user field for abuse reports (`user` is its deprecated
/// predecessor).
pub(super) const SAFETY_IDENTIFIER: Path = &[Step::Key("safety_identifier")];
/// The older end-user field, still read by the provider.
pub(super) const USER: Path = &[Step::Key("user")];
/// Where chat and responses name the end user: both fields.
pub(super) const END_USER: &[Path] = &[SAFETY_IDENTIFIER, USER];
pub(super) const INCLUDE_USAGE: Path = &[Step::Key("stream_options"), Step::Key("include_usage")];

/// `/v1/audio/speech` streams server-sent events with `stream_format: "sse"`.
const SPEECH_STREAM: &[StreamSwitch] = &[StreamSwitch::Equals(&[Step::Key("stream_format")], "sse", &["audio"])];

const fn json(path: &'static str, max_tokens: &'static [Path], default: Option<Path>) -> Endpoint {
    Endpoint {
        method: "POST",
        path,
        body: BodyFormat::Json,
        model: ModelAt::Body(MODEL),
        stream: StreamAt::Body(STREAM),
        max_tokens,
        max_tokens_default: default,
        multipliers: &[],
        refuse: FALLBACKS,
        tool_models: &[],
        history: &[],
        query: &[],
        stream_usage: None,
        end_user: &[],
    }
}

const fn multipart(path: &'static str) -> Endpoint {
    Endpoint { body: BodyFormat::Multipart, ..json(path, &[], None) }
}

/// SPEC §3. `max_completion_tokens` is chat's current field (`max_tokens` is
/// deprecated there and refused by reasoning models), so it is the one set.
static ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        multipliers: &[N],
        history: &[&[Step::Key("messages")]],
        stream_usage: Some(INCLUDE_USAGE),
        end_user: END_USER,
        ..json("/v1/chat/completions", &[MAX_TOKENS, MAX_COMPLETION_TOKENS], Some(MAX_COMPLETION_TOKENS))
    },
    Endpoint {
        multipliers: &[N, BEST_OF],
        stream_usage: Some(INCLUDE_USAGE),
        end_user: &[USER],
        ..json("/v1/completions", &[MAX_TOKENS], Some(MAX_TOKENS))
    },
    Endpoint {
        refuse: RESPONSES_REFUSE,
        tool_models: RESPONSES_TOOL_MODELS,
        history: &[&[Step::Key("input")]],
        end_user: END_USER,
        ..json("/v1/responses", &[MAX_OUTPUT_TOKENS], Some(MAX_OUTPUT_TOKENS))
    },
    Endpoint { end_user: &[USER], ..json("/v1/embeddings", &[], None) },
    json("/v1/moderations", &[], None),
    Endpoint { end_user: &[USER], ..json("/v1/images/generations", &[], None) },
    Endpoint { stream: StreamAt::Body(SPEECH_STREAM), ..json("/v1/audio/speech", &[], None) },
    multipart("/v1/audio/transcriptions"),
    multipart("/v1/audio/translations"),
    MODEL_LIST,
];

/// `{"error":{"message","type","code","param"}}`: the SDK raises its typed
/// error by status and exposes `code`.
fn error_body(_status: u16, code: &str, message: &str) -> Value {
    json!({ "error": { "message": message, "type": "modelgate_error", "code": code, "param": null } })
}

/// `usage` of chat/completions/embeddings (`prompt_tokens`,
/// `completion_tokens`) or of responses (`input_tokens`, `output_tokens`).
fn usage(body: &Value) -> Option<Usage> {
    let u = body.get("usage").filter(|u| u.is_object())?;
    let input = count(u, "prompt_tokens").or_else(|| count(u, "input_tokens"));
    let output = count(u, "completion_tokens").or_else(|| count(u, "output_tokens"));
    let total = count(u, "total_tokens").or_else(|| Some(input? + output.unwrap_or(0)));
    let details = u.get("prompt_tokens_details").or_else(|| u.get("input_tokens_details"));
    let cached = details.and_then(|d| count(d, "cached_tokens"));
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
        total_tokens: total,
        cached_input_tokens: cached,
        cache_write_tokens: None,
    })
}

/// The model a fine-tune was trained from: `ft:<base>:<org>:<name>:<id>`,
/// or the legacy `<base>:ft-…` (lower case: deny rules read it so).
fn fine_tuned(model: &str) -> &str {
    let mut base = model;
    if let Some(rest) = base.strip_prefix("ft:") {
        base = rest.split(':').next().unwrap_or(rest);
    }
    if let Some((head, _)) = base.split_once(":ft-") {
        base = head;
    }
    base
}

/// Chat and completions chunks (the last one's `usage`, with
/// `include_usage`), and the Responses api's final event, which repeats
/// the whole response.
pub(super) fn stream_event<'v>(v: &'v Value, _frame: Option<&str>) -> Option<StreamEvent<'v>> {
    let model = |m: Option<&'v Value>| m.and_then(|m| m.get("model")).and_then(Value::as_str);
    Some(match v.get("type").and_then(Value::as_str) {
        Some("response.completed" | "response.incomplete" | "response.failed") => {
            let response = v.get("response");
            StreamEvent { model: model(response), counts: whole(response.and_then(usage)), last: true, inner: None }
        }
        _ => StreamEvent {
            model: model(Some(v)),
            counts: if v.get("usage").is_some_and(Value::is_object) { whole(usage(v)) } else { Counts::Nothing },
            ..StreamEvent::default()
        },
    })
}

#[cfg(test)]
#[path = "openai_tests.rs"]
mod tests;
