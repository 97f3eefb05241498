//! Vertex AI: `/v1/projects/{project}/locations/{location}/publishers/
//! {publisher}/models/{model}:{method}` (`v1beta1` too). Express mode's
//! project-less `/v1beta1/publishers/…` is not served: the gateway's
//! credential acts for the configured project only. The model is
//! `{publisher}/{model}` (`google/gemini-2.5-pro`,
//! `anthropic/claude-sonnet-4@20250514`). Gemini models take Gemini
//! bodies; `rawPredict` takes the publisher's own (Anthropic's Messages
//! body for Claude). The project and location are the provider's, checked
//! against its `project` and `locations`.

use serde_json::Value;

use super::spec::{
    self, BodyFormat, Captures, Endpoint, Listing, ModelAt, OutOfScope, Spec, StreamAt, StreamEvent, Usage,
    NO_ENDPOINT, STREAM,
};
use super::{anthropic, gemini, openai};
use crate::body::json::{Path, Step};

pub static SPEC: Spec = Spec {
    name: "vertex",
    endpoints: ENDPOINTS,
    // Express mode sends an API key; every other caller a bearer token.
    sdk_key_headers: &["x-goog-api-key"],
    signature_schemes: &[],
    key_header: ("authorization", "Bearer "),
    required_headers: &[],
    account_headers: &["x-goog-user-project"],
    error_body: gemini::error_body,
    error_headers: spec::no_headers,
    usage,
    listing: Listing::Models,
    model_name: gemini::model_name,
    encoded_segment: None,
    resolve: spec::model_itself,
    model_headers: &[],
    decode_model: spec::verbatim,
    deployments: None,
    scope: Some(pinned),
    federation: None,
    base_model: versioned,
    stream_event,
};

/// A request's project and location must be its provider's: the
/// gateway's credential acts for the projects it is configured for only.
fn pinned(captures: &Captures, project: Option<&str>, locations: &[String]) -> Result<(), OutOfScope> {
    let out = |what, value: &str, detail| Err(OutOfScope { what, value: value.to_string(), detail });
    if let (Some(named), Some(pinned)) = (captures.get("project"), project) {
        if named != pinned {
            return out("project", named, "vertex_project");
        }
    }
    if let Some(location) = captures.get("location") {
        if !locations.is_empty() && !locations.iter().any(|l| l == location) {
            return out("location", location, "vertex_location");
        }
    }
    Ok(())
}

/// A model version, `claude-3-opus@20240229`, is of its model.
fn versioned(model: &str) -> &str {
    model.split('@').next().unwrap_or(model)
}

const MAX_TOKENS: Path = &[Step::Key("max_tokens")];

const fn gemini(path: &'static str, stream: StreamAt, tokens: bool) -> Endpoint {
    Endpoint {
        method: "POST",
        path,
        body: BodyFormat::Json,
        model: ModelAt::Publisher("publisher", "model"),
        stream,
        max_tokens: if tokens { &[gemini::MAX_OUTPUT_TOKENS] } else { &[] },
        max_tokens_default: if tokens { Some(gemini::MAX_OUTPUT_TOKENS) } else { None },
        multipliers: gemini::CANDIDATE_COUNT,
        history: gemini::CONTENTS,
        query: &["alt"],
        ..NO_ENDPOINT
    }
}

const fn raw(path: &'static str, stream: StreamAt) -> Endpoint {
    Endpoint {
        max_tokens: &[MAX_TOKENS],
        max_tokens_default: Some(MAX_TOKENS),
        // Partner models in the OpenAI chat shape take `n`.
        multipliers: &[&[Step::Key("n")]],
        history: &[&[Step::Key("messages")]],
        query: &[],
        ..gemini(path, stream, false)
    }
}

/// Anthropic's token counting on Vertex names its model in the body.
const fn count_tokens(path: &'static str) -> Endpoint {
    Endpoint {
        model: ModelAt::BodyOf(spec::MODEL, "anthropic/"),
        max_tokens: &[],
        max_tokens_default: None,
        stream: StreamAt::Never,
        ..raw(path, StreamAt::Never)
    }
}

macro_rules! surface {
    ($prefix:literal) => {
        [
            count_tokens(concat!($prefix, "/publishers/anthropic/models/count-tokens:rawPredict")),
            gemini(concat!($prefix, "/publishers/{publisher}/models/{model}:generateContent"), StreamAt::Never, true),
            gemini(
                concat!($prefix, "/publishers/{publisher}/models/{model}:streamGenerateContent"),
                StreamAt::Always,
                true,
            ),
            gemini(concat!($prefix, "/publishers/{publisher}/models/{model}:countTokens"), StreamAt::Never, false),
            gemini(
                concat!($prefix, "/publishers/{publisher}/models/{model}:batchEmbedContents"),
                StreamAt::Never,
                false,
            ),
            gemini(concat!($prefix, "/publishers/{publisher}/models/{model}:predict"), StreamAt::Never, false),
            raw(concat!($prefix, "/publishers/{publisher}/models/{model}:rawPredict"), StreamAt::Body(STREAM)),
            raw(concat!($prefix, "/publishers/{publisher}/models/{model}:streamRawPredict"), StreamAt::Always),
        ]
    };
}

const V1: [Endpoint; 8] = surface!("/v1/projects/{project}/locations/{location}");
const V1BETA1: [Endpoint; 8] = surface!("/v1beta1/projects/{project}/locations/{location}");

static ENDPOINTS: &[Endpoint] = &[
    V1[0], V1[1], V1[2], V1[3], V1[4], V1[5], V1[6], V1[7], V1BETA1[0], V1BETA1[1], V1BETA1[2], V1BETA1[3], V1BETA1[4],
    V1BETA1[5], V1BETA1[6], V1BETA1[7],
];

/// Gemini's `usageMetadata`, or from `rawPredict` Anthropic's `usage` or a
/// partner publisher's OpenAI-shaped one (Mistral, AI21).
fn usage(body: &Value) -> Option<Usage> {
    let counted = |u: &Usage| u.input_tokens.is_some() || u.output_tokens.is_some() || u.total_tokens.is_some();
    gemini::usage(body)
        .or_else(|| (anthropic::SPEC.usage)(body).filter(counted))
        .or_else(|| (openai::SPEC.usage)(body).filter(counted))
}

/// Anthropic's events from `streamRawPredict`, Gemini's chunks, or a
/// partner publisher's OpenAI-shaped chunks (read last: that reader takes
/// any event).
fn stream_event<'v>(v: &'v Value, frame: Option<&str>) -> Option<StreamEvent<'v>> {
    anthropic::stream_event(v, frame)
        .or_else(|| gemini::stream_event(v, frame))
        .or_else(|| openai::stream_event(v, frame))
}

#[cfg(test)]
#[path = "vertex_tests.rs"]
mod tests;
