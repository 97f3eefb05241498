use super::*;
use crate::api::Api;

#[test]
fn the_model_is_the_path_capture() {
    for path in ["/v1/models/gemini-2.5-flash:generateContent", "/v1beta/models/gemini-2.5-flash:streamGenerateContent"]
    {
        let (e, c) = Api::Gemini.classify("POST", path).unwrap();
        assert_eq!((e.model, c.get("model")), (ModelAt::Capture("model"), Some("gemini-2.5-flash")));
    }
    assert!(Api::Gemini.classify("GET", "/v1/models").is_some());
    for path in [
        "/v1/tunedModels/x:generateContent",
        "/v1/models/gemini:predict",
        "/v2/models/gemini:generateContent",
        "/v1/files",
        "/v1/cachedContents",
        "/v1/models/gemini-2.5-flash:batchGenerateContent",
    ] {
        assert!(Api::Gemini.classify("POST", path).is_none(), "{path}");
    }
    assert_eq!(model_name("models/text-embedding-004"), "text-embedding-004");
}

#[test]
fn reads_usage_metadata() {
    let body = json!({"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":6,"thoughtsTokenCount":2,"totalTokenCount":12}});
    assert_eq!(
        usage(&body),
        Some(Usage {
            input_tokens: Some(4),
            output_tokens: Some(8),
            total_tokens: Some(12),
            cached_input_tokens: None,
            cache_write_tokens: None
        })
    );
    assert_eq!(error_body(403, "x", "m")["error"]["status"], "PERMISSION_DENIED");
}
