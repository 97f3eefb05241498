//! The Anthropic Messages api.

use serde_json::Value;

use super::{count, BodyFormat, Endpoint, Usage, MODEL_LIST};

/// Sent upstream when the caller sent no `anthropic-version`.
pub const VERSION: &str = "2023-06-01";

pub static ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "POST",
        path: "/v1/messages",
        body: BodyFormat::Json,
        max_tokens_fields: &["max_tokens"],
        max_tokens_default: Some("max_tokens"),
    },
    Endpoint {
        method: "POST",
        path: "/v1/messages/count_tokens",
        body: BodyFormat::Json,
        max_tokens_fields: &[],
        max_tokens_default: None,
    },
    MODEL_LIST,
];

/// `usage` of a message: input counts the prompt, including the parts read
/// from or written to the prompt cache, which Anthropic reports apart.
pub fn usage(body: &Value) -> Option<Usage> {
    let u = body.get("usage").filter(|u| u.is_object())?;
    let cached =
        count(u, "cache_creation_input_tokens").unwrap_or(0) + count(u, "cache_read_input_tokens").unwrap_or(0);
    let input = count(u, "input_tokens").map(|n| n + cached);
    let output = count(u, "output_tokens");
    let total = match (input, output) {
        (None, None) => None,
        (i, o) => Some(i.unwrap_or(0) + o.unwrap_or(0)),
    };
    Some(Usage { input_tokens: input, output_tokens: output, total_tokens: total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Api;
    use serde_json::json;

    #[test]
    fn classifies_messages_endpoints() {
        assert!(Api::Anthropic.classify("POST", "/v1/messages").is_some());
        assert!(Api::Anthropic.classify("POST", "/v1/messages/count_tokens").is_some());
        assert!(Api::Anthropic.classify("POST", "/v1/messages/batches").is_none());
        assert!(Api::Anthropic.classify("POST", "/v1/chat/completions").is_none());
        assert!(Api::Anthropic.classify("GET", "/v1/messages").is_none());
    }

    #[test]
    fn counts_cached_input() {
        let body = json!({"usage":{"input_tokens":10,"cache_read_input_tokens":90,"output_tokens":5}});
        assert_eq!(
            usage(&body),
            Some(Usage { input_tokens: Some(100), output_tokens: Some(5), total_tokens: Some(105) })
        );
        let count_tokens = json!({"input_tokens": 12});
        assert_eq!(usage(&count_tokens), None);
    }
}
