use super::*;
use crate::api::Api;

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
        Some(Usage {
            input_tokens: Some(100),
            output_tokens: Some(5),
            total_tokens: Some(105),
            cached_input_tokens: Some(90),
            cache_write_tokens: None
        })
    );
    let count_tokens = json!({"input_tokens": 12});
    assert_eq!(usage(&count_tokens), None);
}

#[test]
fn errors_use_anthropics_types() {
    for (status, kind) in [
        (401, "authentication_error"),
        (403, "permission_error"),
        (400, "invalid_request_error"),
        (415, "invalid_request_error"),
        (413, "request_too_large"),
        (503, "api_error"),
    ] {
        let b = error_body(status, "x", "m");
        assert_eq!((b["type"].as_str(), b["error"]["type"].as_str()), (Some("error"), Some(kind)));
    }
}

#[test]
fn a_streams_running_totals_keep_the_cached_input() {
    let delta = json!({"type": "message_delta", "usage": {"input_tokens": 54, "cache_read_input_tokens": 60000, "output_tokens": 12}});
    let event = stream_event(&delta, None).unwrap();
    assert_eq!(event.counts, Counts::Cumulative { input: Some(60054), output: Some(12) });
}
