//! Amazon Bedrock's runtime: `/model/{modelId}/{invoke,
//! invoke-with-response-stream, converse, converse-stream, count-tokens}`.
//! The model id is whatever the SDK names — a model id, an inference
//! profile id, or an ARN — percent-encoded once by the SDKs (boto3 encodes
//! `:` and `/`, the Anthropic SDK only `/`) and decoded once here.
//!
//! Credentials: a Bedrock API key (`Authorization: Bearer`), or none here
//! and Envoy's `aws_request_signing` filter after modelgate signing with
//! the gateway's AWS identity. A caller's own SigV4 signature is stripped
//! (with `x-amz-date`, `x-amz-security-token`, `x-amz-content-sha256`),
//! never read as identity.

use base64::Engine;
use serde_json::{json, Value};

use super::spec::{
    self, count, whole, BodyFormat, Counts, Deployments, Endpoint, Listing, ModelAt, Selects, Spec, StreamAt,
    StreamEvent, Unreadable, Usage, NO_ENDPOINT,
};
use super::{anthropic, openai};
use crate::body::json::{Path, Step};

pub static SPEC: Spec = Spec {
    name: "bedrock",
    endpoints: ENDPOINTS,
    sdk_key_headers: &[],
    signature_schemes: &["AWS4-HMAC-SHA256"],
    key_header: ("authorization", "Bearer "),
    required_headers: &[],
    account_headers: &[
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        // Guardrails and tracing belong to the gateway's configuration.
        "x-amzn-bedrock-guardrailidentifier",
        "x-amzn-bedrock-guardrailversion",
        "x-amzn-bedrock-trace",
    ],
    error_body,
    error_headers,
    usage,
    listing: Listing::Data,
    model_name: spec::same_name,
    encoded_segment: Some(2),
    resolve,
    model_headers: &[],
    decode_model,
    // Application inference profiles, provisioned and custom model ARNs
    // name no model a rule can read: unmapped ones are refused.
    deployments: Some(Deployments {
        required: false,
        valid: |name| decode_model(name).is_ok_and(|id| id == name),
        what: "a Bedrock model id, inference profile id or ARN",
    }),
    scope: None,
    federation: None,
    base_model: vendored,
    stream_event,
};

/// The geographies of Bedrock's system-defined (cross-region) inference
/// profiles: `us.anthropic.claude-…` runs `anthropic.claude-…`.
const PROFILE_GEOGRAPHIES: &[&str] = &["us", "us-gov", "eu", "apac", "global", "jp", "au", "ca"];

/// What a Bedrock model id selects. A model id is the model; a
/// system-defined inference profile or a foundation-model or
/// inference-profile ARN runs the model it names; any other ARN
/// (application inference profiles, provisioned throughput, custom and
/// imported models, prompts, prompt routers) names nothing a rule can read,
/// so it must be in the provider's `deployments`, or it is refused.
fn resolve(name: &str, deployments: &[(String, String)]) -> Selects {
    if let Some(model) = spec::deployment(name, deployments) {
        return Selects::Alias(model.to_string());
    }
    let unprofiled = |id: &str| {
        PROFILE_GEOGRAPHIES
            .iter()
            .find_map(|geo| id.strip_prefix(geo).and_then(|rest| rest.strip_prefix('.')))
            .map(str::to_string)
    };
    if let Some(rest) = name.strip_prefix("arn:") {
        // arn:PARTITION:bedrock:REGION:ACCOUNT:TYPE/ID
        let resource = rest.splitn(5, ':').nth(4).unwrap_or("");
        return match resource.split_once('/') {
            Some(("foundation-model", id)) if !id.contains('/') => Selects::Alias(id.to_string()),
            Some(("inference-profile", id)) if !id.contains('/') => {
                Selects::Alias(unprofiled(id).unwrap_or_else(|| id.to_string()))
            }
            _ => Selects::Unmapped("unmapped_model_arn"),
        };
    }
    match unprofiled(name) {
        Some(model) => Selects::Alias(model),
        None => Selects::Model,
    }
}

/// A Bedrock model id as botocore sends it: percent-encoded once (`:` as
/// `%3A`, `/` as `%2F`), decoded here once. Only the characters of model
/// ids, inference profile ids and ARNs may result; an encoded `%` (double
/// encoding) or any other escape is refused.
pub fn decode_model(raw: &str) -> Result<String, Unreadable> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let escape = raw.get(i + 1..i + 3).map(str::to_ascii_uppercase);
            match escape.as_deref() {
                Some("3A") => out.push(':'),
                Some("2F") => out.push('/'),
                _ => {
                    return Err(Unreadable {
                        detail: "percent_encoded",
                        message: "the model id holds an escape other than %3A or %2F",
                    })
                }
            }
            i += 3;
            continue;
        }
        out.push(char::from(b));
        i += 1;
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/');
    if out.is_empty() || !out.chars().all(allowed) {
        return Err(unreadable("the model id holds characters no Bedrock model id has"));
    }
    if out.starts_with('/') || out.ends_with('/') || out.contains("//") || out.split('/').any(|s| s == "." || s == "..")
    {
        return Err(unreadable("the model id is not a model id, inference profile id or ARN"));
    }
    if out.contains('/') && !out.starts_with("arn:") {
        return Err(unreadable("only an ARN holds a /"));
    }
    Ok(out)
}

fn unreadable(message: &'static str) -> Unreadable {
    Unreadable { detail: "model_id", message }
}

/// Bedrock's vendor prefixes (`anthropic.claude-…`, `us.meta.llama…`).
const VENDORS: &[&str] =
    &["anthropic.", "meta.", "amazon.", "cohere.", "mistral.", "ai21.", "deepseek.", "openai.", "qwen.", "writer."];
/// The model a Bedrock id names: `us.anthropic.claude-3-haiku-v1:0` is
/// `claude-3-haiku-v1` (lower case: deny rules read it so).
fn vendored(model: &str) -> &str {
    let mut base = model;
    // Deny rules see through every geography a profile can name (the
    // same list that resolves a Bedrock request's profile).
    for geography in PROFILE_GEOGRAPHIES {
        if let Some(rest) = base.strip_prefix(geography).and_then(|r| r.strip_prefix('.')) {
            base = rest;
        }
    }
    for vendor in VENDORS {
        if let Some(rest) = base.strip_prefix(vendor) {
            base = rest;
            if let Some((head, version)) = base.rsplit_once(':') {
                if version.bytes().all(|b| b.is_ascii_digit()) {
                    base = head;
                }
            }
        }
    }
    base
}

/// `application/vnd.amazon.eventstream` frames: Converse's `metadata`
/// (its usage, and the stream's end), and `invoke-with-response-stream`'s
/// `chunk`s, each a model family's own event (Anthropic's, OpenAI's)
/// base64-encoded inside; Bedrock adds its own counts to the last
/// (`amazon-bedrock-invocationMetrics`).
fn stream_event<'v>(v: &'v Value, frame: Option<&str>) -> Option<StreamEvent<'v>> {
    match frame {
        Some("chunk") => {
            let inner = v
                .get("bytes")
                .and_then(Value::as_str)
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            return Some(StreamEvent { inner, ..StreamEvent::default() });
        }
        Some("metadata") => return Some(StreamEvent { counts: whole(usage(v)), last: true, ..StreamEvent::default() }),
        _ => {}
    }
    // Bedrock's own counts end every family's invoke stream (Anthropic's
    // `message_stop`, Llama's, Mistral's, Titan's, Cohere's last chunk).
    if let Some(m) = v.get("amazon-bedrock-invocationMetrics") {
        let count = |k: &str| m.get(k).and_then(Value::as_u64);
        let counts = match (count("inputTokenCount"), count("outputTokenCount")) {
            (Some(i), Some(o)) => Counts::Cumulative { input: Some(i), output: Some(o) },
            _ => Counts::Nothing,
        };
        return Some(StreamEvent { counts, last: true, ..StreamEvent::default() });
    }
    anthropic::stream_event(v, frame).or_else(|| openai::stream_event(v, frame))
}

const MAX_TOKENS: Path = &[Step::Key("max_tokens")];
const CONVERSE_MAX_TOKENS: Path = &[Step::Key("inferenceConfig"), Step::Key("maxTokens")];
/// The output bounds of the model families' own bodies: Anthropic and
/// Mistral, Meta, Amazon Titan, Amazon Nova.
const INVOKE_MAX_TOKENS: &[Path] = &[
    MAX_TOKENS,
    &[Step::Key("max_gen_len")],
    &[Step::Key("textGenerationConfig"), Step::Key("maxTokenCount")],
    &[Step::Key("inferenceConfig"), Step::Key("max_new_tokens")],
];
/// The families' fields for several generations per call (Jamba `n`,
/// Cohere `num_generations`, AI21 Jurassic `numResults`).
const INVOKE_MULTIPLIERS: &[Path] = &[&[Step::Key("n")], &[Step::Key("num_generations")], &[Step::Key("numResults")]];
const MESSAGES: &[Path] = &[&[Step::Key("messages")]];

const fn endpoint(path: &'static str, stream: StreamAt) -> Endpoint {
    Endpoint {
        method: "POST",
        path,
        body: BodyFormat::JsonByDefault,
        model: ModelAt::EncodedCapture("modelId"),
        stream,
        history: MESSAGES,
        ..NO_ENDPOINT
    }
}

/// An invoke body is the model family's own: its output bound is capped
/// where present, and a capped workload must send one (there is no field
/// every family reads to write a default into).
const fn invoke(path: &'static str, stream: StreamAt) -> Endpoint {
    Endpoint {
        max_tokens: INVOKE_MAX_TOKENS,
        max_tokens_default: None,
        multipliers: INVOKE_MULTIPLIERS,
        ..endpoint(path, stream)
    }
}

const fn converse(path: &'static str, stream: StreamAt) -> Endpoint {
    Endpoint {
        max_tokens: &[CONVERSE_MAX_TOKENS],
        max_tokens_default: Some(CONVERSE_MAX_TOKENS),
        ..endpoint(path, stream)
    }
}

static ENDPOINTS: &[Endpoint] = &[
    invoke("/model/{modelId}/invoke", StreamAt::Never),
    invoke("/model/{modelId}/invoke-with-response-stream", StreamAt::Always),
    converse("/model/{modelId}/converse", StreamAt::Never),
    converse("/model/{modelId}/converse-stream", StreamAt::Always),
    endpoint("/model/{modelId}/count-tokens", StreamAt::Never),
];

/// `{"message"}` with the error's type in `x-amzn-errortype`: botocore
/// raises it as that typed exception (`AccessDeniedException`, …).
fn error_body(_status: u16, _code: &str, message: &str) -> Value {
    json!({ "message": message })
}

fn error_headers(status: u16) -> Vec<(String, String)> {
    let kind = match status {
        400 | 413 | 415 => "ValidationException",
        401 => "UnrecognizedClientException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    };
    vec![("x-amzn-errortype".to_string(), kind.to_string())]
}

/// Converse's `usage` (camelCase), or an Anthropic invoke body's; the
/// input with what was read from or written to the prompt cache, which
/// both report apart.
fn usage(body: &Value) -> Option<Usage> {
    let u = body.get("usage").filter(|u| u.is_object())?;
    let read = count(u, "cacheReadInputTokens").or_else(|| count(u, "cache_read_input_tokens"));
    let written = count(u, "cacheWriteInputTokens").or_else(|| count(u, "cache_creation_input_tokens"));
    let cached = read.unwrap_or(0) + written.unwrap_or(0);
    let input = count(u, "inputTokens").or_else(|| count(u, "input_tokens")).map(|n| n + cached);
    let output = count(u, "outputTokens").or_else(|| count(u, "output_tokens"));
    let total = count(u, "totalTokens").or_else(|| Some(input? + output.unwrap_or(0)));
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
        total_tokens: total,
        cached_input_tokens: read,
        cache_write_tokens: written,
    })
}

#[cfg(test)]
#[path = "bedrock_tests.rs"]
mod tests;
