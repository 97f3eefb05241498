//! Azure OpenAI: `/openai/deployments/{deployment}/…` (the body's own
//! `model`, which the SDK sets to the deployment name, is not read) and the
//! `/openai/v1/…` and `/openai/responses` surfaces, where the body's `model`
//! is a deployment name too. Every name a request gives — in the path, the
//! body, or nested in a tool — selects a *deployment*: the model is the one
//! the provider's `deployments` map names for it, and a deployment it does
//! not name is refused. The key goes in `api-key`.

use super::openai;
use super::spec::{
    self, BodyFormat, Deployments, Endpoint, Listing, ModelAt, Selects, Spec, StreamAt, MODEL, MODEL_LIST, NO_ENDPOINT,
    STREAM,
};
use crate::body::json::{Path, Step};

pub static SPEC: Spec = Spec {
    name: "azure_openai",
    endpoints: ENDPOINTS,
    sdk_key_headers: &["api-key"],
    signature_schemes: &[],
    key_header: ("api-key", ""),
    required_headers: &[],
    account_headers: &[],
    error_body: openai::SPEC.error_body,
    error_headers: spec::no_headers,
    usage: openai::SPEC.usage,
    listing: Listing::Data,
    model_name: spec::same_name,
    encoded_segment: None,
    resolve,
    // The deployment the Responses image_generation tool runs on.
    model_headers: &["x-ms-oai-image-generation-deployment"],
    decode_model: spec::verbatim,
    // Every request names a deployment, which rules cannot read: the
    // provider maps each to the model it serves.
    deployments: Some(Deployments {
        required: true,
        valid: spec::is_segment,
        what: "a deployment name (letters, digits, . - _)",
    }),
    scope: None,
    federation: None,
    base_model: spec::no_spelling,
    stream_event: openai::SPEC.stream_event,
};

const MAX_TOKENS: Path = &[Step::Key("max_tokens")];
const MAX_COMPLETION_TOKENS: Path = &[Step::Key("max_completion_tokens")];
const MAX_OUTPUT_TOKENS: Path = &[Step::Key("max_output_tokens")];
const N: Path = &[Step::Key("n")];
const BEST_OF: Path = &[Step::Key("best_of")];
const MESSAGES: Path = &[Step::Key("messages")];

/// Every name an Azure request gives is a deployment.
fn resolve(name: &str, deployments: &[(String, String)]) -> Selects {
    match spec::deployment(name, deployments) {
        Some(model) => Selects::Alias(model.to_string()),
        None => Selects::Unmapped("unknown_deployment"),
    }
}

/// "On Your Data": `data_sources` sends the conversation to a search
/// endpoint the caller names and selects an embedding deployment no rule
/// sees — the gateway's key would act for both.
const DATA_SOURCES: (Path, &str) = (&[Step::Key("data_sources")], "data_sources");
const CHAT_REFUSE: &[(Path, &str)] = &[
    (&[Step::Key("models")], "member_models"),
    (&[Step::Key("fallbacks")], "member_fallbacks"),
    (&[Step::Key("fallback_models")], "member_fallback_models"),
    DATA_SOURCES,
];

const fn deployment(path: &'static str, max_tokens: &'static [Path], default: Option<Path>) -> Endpoint {
    Endpoint {
        method: "POST",
        path,
        body: BodyFormat::Json,
        model: ModelAt::Capture("deployment"),
        stream: StreamAt::Body(STREAM),
        max_tokens,
        max_tokens_default: default,
        // The body's `model` is the deployment's name (not a model), and
        // earlier turns name models used before.
        history: &[MODEL, MESSAGES],
        query: &["api-version"],
        refuse: CHAT_REFUSE,
        end_user: &[openai::USER],
        ..NO_ENDPOINT
    }
}

const fn surface(path: &'static str, max_tokens: &'static [Path], default: Option<Path>) -> Endpoint {
    Endpoint { model: ModelAt::Body(MODEL), history: &[MESSAGES], ..deployment(path, max_tokens, default) }
}

/// Responses, as OpenAI's: stored prompts refused, tools that run a model
/// of their own must name it, every end-user field the gateway's.
const fn responses(path: &'static str) -> Endpoint {
    Endpoint {
        history: &[&[Step::Key("input")]],
        refuse: openai::RESPONSES_REFUSE,
        tool_models: openai::RESPONSES_TOOL_MODELS,
        end_user: openai::END_USER,
        ..surface(path, &[MAX_OUTPUT_TOKENS], Some(MAX_OUTPUT_TOKENS))
    }
}

static ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        multipliers: &[N],
        stream_usage: Some(openai::INCLUDE_USAGE),
        ..deployment(
            "/openai/deployments/{deployment}/chat/completions",
            &[MAX_TOKENS, MAX_COMPLETION_TOKENS],
            Some(MAX_COMPLETION_TOKENS),
        )
    },
    Endpoint {
        multipliers: &[N, BEST_OF],
        ..deployment("/openai/deployments/{deployment}/completions", &[MAX_TOKENS], Some(MAX_TOKENS))
    },
    deployment("/openai/deployments/{deployment}/embeddings", &[], None),
    responses("/openai/responses"),
    Endpoint { path: "/openai/models", query: &["api-version"], ..MODEL_LIST },
    Endpoint {
        multipliers: &[N],
        stream_usage: Some(openai::INCLUDE_USAGE),
        end_user: openai::END_USER,
        ..surface("/openai/v1/chat/completions", &[MAX_TOKENS, MAX_COMPLETION_TOKENS], Some(MAX_COMPLETION_TOKENS))
    },
    surface("/openai/v1/embeddings", &[], None),
    responses("/openai/v1/responses"),
    Endpoint { path: "/openai/v1/models", query: &["api-version"], ..MODEL_LIST },
];

#[cfg(test)]
#[path = "azure_tests.rs"]
mod tests;
