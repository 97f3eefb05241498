use super::*;
use crate::api::Api;

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
        ("POST", ""),
        ("POST", "v1/chat/completions"),
    ] {
        assert!(api.classify(method, path).is_none(), "{method} {path}");
    }
}

#[test]
fn reads_chat_and_responses_usage() {
    let chat = json!({"model":"m","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}});
    assert_eq!(
        usage(&chat),
        Some(Usage {
            input_tokens: Some(3),
            output_tokens: Some(4),
            total_tokens: Some(7),
            cached_input_tokens: None,
            cache_write_tokens: None
        })
    );
    let responses = json!({"usage":{"input_tokens":5,"output_tokens":6,"total_tokens":11}});
    assert_eq!(usage(&responses).unwrap().total_tokens, Some(11));
    let embeddings = json!({"usage":{"prompt_tokens":8,"total_tokens":8}});
    assert_eq!(
        usage(&embeddings),
        Some(Usage {
            input_tokens: Some(8),
            output_tokens: None,
            total_tokens: Some(8),
            cached_input_tokens: None,
            cache_write_tokens: None
        })
    );
    assert_eq!(usage(&json!({"usage":null})), None);
    assert_eq!(usage(&json!({})), None);
}
