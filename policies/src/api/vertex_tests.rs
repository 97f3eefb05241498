use super::*;
use crate::api::Api;

#[test]
fn the_model_is_publisher_slash_model() {
    let path = "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-3-5-haiku@20241022:rawPredict";
    let (e, c) = Api::Vertex.classify("POST", path).unwrap();
    assert_eq!(e.model, ModelAt::Publisher("publisher", "model"));
    assert_eq!(
        (c.get("project"), c.get("location"), c.get("publisher")),
        (Some("p"), Some("us-east5"), Some("anthropic"))
    );
    assert_eq!(c.get("model"), Some("claude-3-5-haiku@20241022"));
    let count = "/v1/projects/p/locations/us-east5/publishers/anthropic/models/count-tokens:rawPredict";
    assert_eq!(Api::Vertex.classify("POST", count).unwrap().0.model, ModelAt::BodyOf(spec::MODEL, "anthropic/"));
    for path in [
        "/v1/projects/p/locations/l/endpoints/123:generateContent",
        "/v1/projects/p/locations/l/publishers/google/models/gemini:batchPredict",
        "/v1beta1/publishers/google/models",
        "/v1beta1/publishers/google/models/gemini-2.5-flash:generateContent",
    ] {
        assert!(Api::Vertex.classify("POST", path).is_none(), "{path}");
    }
}

/// A Vertex partner model's `rawPredict` answer (Mistral's, OpenAI-shaped
/// `usage: {prompt_tokens, …}`) was read as Anthropic's: every count null,
/// so the call looked free (found by the redesign's attack review, older
/// than it).
#[test]
fn a_vertex_partner_models_raw_predict_usage_is_read() {
    let body = serde_json::json!({
        "id": "x", "object": "chat.completion", "model": "mistral-large-2411",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}
    });
    let (usage, _) = Api::Vertex.response_usage(&body);
    let usage = usage.expect("usage");
    assert_eq!((usage.input_tokens, usage.output_tokens, usage.total_tokens), (Some(9), Some(7), Some(16)));
}
