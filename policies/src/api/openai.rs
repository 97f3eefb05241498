//! The OpenAI api, and any private endpoint that speaks it
//! (`openai_compatible`: vLLM, llama.cpp, Ollama's `/v1`, …).

use serde_json::Value;

use super::{count, BodyFormat, Endpoint, Usage, MODEL_LIST};

const fn json(
    path: &'static str,
    max_tokens_fields: &'static [&'static str],
    default: Option<&'static str>,
) -> Endpoint {
    Endpoint { method: "POST", path, body: BodyFormat::Json, max_tokens_fields, max_tokens_default: default }
}

const fn multipart(path: &'static str) -> Endpoint {
    Endpoint { method: "POST", path, body: BodyFormat::Multipart, max_tokens_fields: &[], max_tokens_default: None }
}

/// SPEC §3. `max_completion_tokens` is chat's current field (`max_tokens` is
/// deprecated there and refused by reasoning models), so it is the one set.
pub static ENDPOINTS: &[Endpoint] = &[
    json("/v1/chat/completions", &["max_tokens", "max_completion_tokens"], Some("max_completion_tokens")),
    json("/v1/completions", &["max_tokens"], Some("max_tokens")),
    json("/v1/responses", &["max_output_tokens"], Some("max_output_tokens")),
    json("/v1/embeddings", &[], None),
    json("/v1/moderations", &[], None),
    json("/v1/images/generations", &[], None),
    json("/v1/audio/speech", &[], None),
    multipart("/v1/audio/transcriptions"),
    multipart("/v1/audio/translations"),
    MODEL_LIST,
];

/// `usage` of chat/completions/embeddings (`prompt_tokens`,
/// `completion_tokens`) or of responses (`input_tokens`, `output_tokens`).
pub fn usage(body: &Value) -> Option<Usage> {
    let u = body.get("usage").filter(|u| u.is_object())?;
    let input = count(u, "prompt_tokens").or_else(|| count(u, "input_tokens"));
    let output = count(u, "completion_tokens").or_else(|| count(u, "output_tokens"));
    let total = count(u, "total_tokens").or_else(|| Some(input? + output.unwrap_or(0)));
    Some(Usage { input_tokens: input, output_tokens: output, total_tokens: total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Api;
    use serde_json::json;

    #[test]
    fn classifies_exact_paths_only() {
        let api = Api::OpenAi;
        assert!(api.classify("POST", "/v1/chat/completions").is_some());
        for (method, path) in [
            ("GET", "/v1/chat/completions"),
            ("POST", "/v1/chat/completions/"),
            ("POST", "/v1/chat/completions/x"),
            ("POST", "/V1/chat/completions"),
            ("POST", "/v1/files"),
            ("POST", "/v1/batches"),
            ("POST", "/v1/fine_tuning/jobs"),
            ("POST", "/v1/messages"),
            ("post", "/v1/chat/completions"),
        ] {
            assert!(api.classify(method, path).is_none(), "{method} {path}");
        }
    }

    #[test]
    fn reads_chat_and_responses_usage() {
        let chat = json!({"model":"m","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}});
        assert_eq!(usage(&chat), Some(Usage { input_tokens: Some(3), output_tokens: Some(4), total_tokens: Some(7) }));
        let responses = json!({"usage":{"input_tokens":5,"output_tokens":6,"total_tokens":11}});
        assert_eq!(usage(&responses).unwrap().total_tokens, Some(11));
        let embeddings = json!({"usage":{"prompt_tokens":8,"total_tokens":8}});
        assert_eq!(
            usage(&embeddings),
            Some(Usage { input_tokens: Some(8), output_tokens: None, total_tokens: Some(8) })
        );
        assert_eq!(usage(&json!({"usage":null})), None);
        assert_eq!(usage(&json!({})), None);
    }
}
