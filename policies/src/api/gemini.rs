//! The Gemini api (Google AI for developers): the model is in the path,
//! `/v1/models/{model}:{method}` (`v1beta` too); the key in
//! `x-goog-api-key` (a `key=` query parameter is stripped, never read).

use serde_json::{json, Value};

use super::spec::{
    self, count, whole, BodyFormat, Endpoint, Listing, ModelAt, Spec, StreamAt, StreamEvent, Usage, NO_ENDPOINT,
};
use crate::body::json::{Path, Step};

pub static SPEC: Spec = Spec {
    name: "gemini",
    endpoints: ENDPOINTS,
    sdk_key_headers: &["x-goog-api-key"],
    signature_schemes: &[],
    key_header: ("x-goog-api-key", ""),
    required_headers: &[],
    // The Google Cloud project billed for the call.
    account_headers: &["x-goog-user-project"],
    error_body,
    error_headers: spec::no_headers,
    usage,
    listing: Listing::Models,
    model_name,
    encoded_segment: None,
    resolve: spec::model_itself,
    model_headers: &[],
    decode_model: spec::verbatim,
    deployments: None,
    scope: None,
    federation: None,
    base_model: spec::no_spelling,
    stream_event,
};

pub(super) const MAX_OUTPUT_TOKENS: Path = &[Step::Key("generationConfig"), Step::Key("maxOutputTokens")];
/// How many candidates to generate: each up to the output bound.
pub(super) const CANDIDATE_COUNT: &[Path] = &[&[Step::Key("generationConfig"), Step::Key("candidateCount")]];
/// What the model was told before: its earlier turns.
pub(super) const CONTENTS: &[Path] = &[&[Step::Key("contents")]];

const fn method(path: &'static str, stream: StreamAt, tokens: bool) -> Endpoint {
    Endpoint {
        method: "POST",
        path,
        body: BodyFormat::Json,
        model: ModelAt::Capture("model"),
        stream,
        max_tokens: if tokens { &[MAX_OUTPUT_TOKENS] } else { &[] },
        max_tokens_default: if tokens { Some(MAX_OUTPUT_TOKENS) } else { None },
        multipliers: CANDIDATE_COUNT,
        history: CONTENTS,
        // `alt=sse` chooses server-sent events for a stream.
        query: &["alt"],
        ..NO_ENDPOINT
    }
}

const fn listing(path: &'static str) -> Endpoint {
    Endpoint {
        method: "GET",
        path,
        body: BodyFormat::None,
        model: ModelAt::Listing,
        stream: StreamAt::Never,
        query: &["pageSize", "pageToken"],
        ..NO_ENDPOINT
    }
}

/// SPEC §3, for both api versions the SDK speaks (`google-genai` 3.x
/// defaults to `v1`). `embed_content` is sent as `batchEmbedContents`,
/// whose `requests[].model` names the model again: each is decided.
static ENDPOINTS: &[Endpoint] = &[
    method("/v1/models/{model}:generateContent", StreamAt::Never, true),
    method("/v1/models/{model}:streamGenerateContent", StreamAt::Always, true),
    method("/v1/models/{model}:countTokens", StreamAt::Never, false),
    method("/v1/models/{model}:embedContent", StreamAt::Never, false),
    method("/v1/models/{model}:batchEmbedContents", StreamAt::Never, false),
    listing("/v1/models"),
    method("/v1beta/models/{model}:generateContent", StreamAt::Never, true),
    method("/v1beta/models/{model}:streamGenerateContent", StreamAt::Always, true),
    method("/v1beta/models/{model}:countTokens", StreamAt::Never, false),
    method("/v1beta/models/{model}:embedContent", StreamAt::Never, false),
    method("/v1beta/models/{model}:batchEmbedContents", StreamAt::Never, false),
    listing("/v1beta/models"),
];

/// `models/gemini-2.5-flash` (a body's or a listing's spelling) is the
/// model `gemini-2.5-flash`.
pub(super) fn model_name(name: &str) -> &str {
    name.strip_prefix("models/").unwrap_or(name)
}

/// Google's `{"error":{"code","message","status"}}`, which `google-genai`
/// raises as `ClientError`/`ServerError` with the status.
pub(super) fn error_body(status: u16, _code: &str, message: &str) -> Value {
    let canonical = match status {
        400 | 413 | 415 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    json!({ "error": { "code": status, "message": message, "status": canonical } })
}

/// `usageMetadata`: prompt, candidates (and thoughts) and total.
pub(super) fn usage(body: &Value) -> Option<Usage> {
    let u = body.get("usageMetadata").filter(|u| u.is_object())?;
    let input = count(u, "promptTokenCount");
    let output = match (count(u, "candidatesTokenCount"), count(u, "thoughtsTokenCount")) {
        (None, None) => None,
        (c, t) => Some(c.unwrap_or(0) + t.unwrap_or(0)),
    };
    let total = count(u, "totalTokenCount").or_else(|| Some(input? + output.unwrap_or(0)));
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
        total_tokens: total,
        cached_input_tokens: None,
        cache_write_tokens: None,
    })
}

/// A streamed `GenerateContentResponse`: its `usageMetadata` so far, the
/// model version, and a candidate's `finishReason` on the last.
pub(super) fn stream_event<'v>(v: &'v Value, _frame: Option<&str>) -> Option<StreamEvent<'v>> {
    if v.get("usageMetadata").is_none() && v.get("candidates").is_none() {
        return None;
    }
    let last = v
        .get("candidates")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c.get("finishReason").is_some_and(|r| !r.is_null())));
    Some(StreamEvent {
        model: v.get("modelVersion").and_then(Value::as_str),
        counts: whole(usage(v)),
        last,
        inner: None,
    })
}

#[cfg(test)]
#[path = "gemini_tests.rs"]
mod tests;
