use super::*;

fn extra(body: serde_json::Value) -> Result<u64, String> {
    extra_input(body.to_string().as_bytes())
}

#[test]
fn images_reserve_their_allowance_each() {
    let chat = serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]});
    assert_eq!(extra(chat), Ok(2 * MEDIA_TOKENS));
    let gemini =
        serde_json::json!({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA"}}]}]});
    assert_eq!(extra(gemini), Ok(MEDIA_TOKENS));
    let bedrock =
        serde_json::json!({"messages": [{"content": [{"image": {"format": "png", "source": {"bytes": "AA"}}}]}]});
    assert_eq!(extra(bedrock), Ok(MEDIA_TOKENS));
    assert_eq!(extra(serde_json::json!({"messages": [{"content": "text only"}]})), Ok(0));
}

#[test]
fn what_the_body_only_names_is_unbounded() {
    for body in [
        serde_json::json!({"messages": [{"content": [{"type": "file", "file": {"file_id": "file-1"}}]}]}),
        serde_json::json!({"input": [{"content": [{"type": "input_file", "file_id": "file-1"}]}]}),
        serde_json::json!({"messages": [{"content": [{"type": "document", "source": {"type": "url", "url": "https://x"}}]}]}),
        serde_json::json!({"contents": [{"parts": [{"fileData": {"fileUri": "gs://b/v.mp4"}}]}]}),
        serde_json::json!({"cachedContent": "cachedContents/1", "contents": []}),
        serde_json::json!({"previous_response_id": "resp_1", "input": "go on"}),
        serde_json::json!({"conversation": "conv_1", "input": "go on"}),
        serde_json::json!({"mcp_servers": [{"url": "https://x"}]}),
    ] {
        assert!(extra(body.clone()).is_err(), "{body}");
    }
    assert_eq!(extra(serde_json::json!({"previous_response_id": null})), Ok(0), "null names nothing");
}

#[test]
fn a_tool_the_provider_runs_is_unbounded_and_one_the_caller_runs_is_not() {
    for tools in [
        serde_json::json!([{"type": "web_search"}]),
        serde_json::json!([{"type": "web_search_20250305", "name": "web_search"}]),
        serde_json::json!([{"type": "code_interpreter", "container": {"type": "auto"}}]),
        serde_json::json!([{"type": "image_generation"}]),
        serde_json::json!([{"type": "mcp", "server_url": "https://x"}]),
        serde_json::json!([{"googleSearch": {}}]),
        serde_json::json!([{"urlContext": {}}]),
    ] {
        assert!(extra(serde_json::json!({"tools": tools})).is_err(), "{tools}");
    }
    for tools in [
        serde_json::json!([{"type": "function", "function": {"name": "f"}}]),
        serde_json::json!([{"name": "get_weather", "description": "d", "input_schema": {}}]),
        serde_json::json!([{"type": "bash_20250124", "name": "bash"}]),
        serde_json::json!([{"functionDeclarations": [{"name": "f"}]}]),
    ] {
        assert_eq!(extra(serde_json::json!({"tools": tools})), Ok(0), "{tools}");
    }
    let bedrock = serde_json::json!({"toolConfig": {"tools": [{"toolSpec": {"name": "f"}}]}});
    assert_eq!(extra(bedrock), Ok(0));
    // History of a server tool's earlier results is in the body: counted by its bytes.
    let history = serde_json::json!({"messages": [{"content": [{"type": "web_search_tool_result", "content": []}]}]});
    assert_eq!(extra(history), Ok(0));
}

#[test]
fn the_callers_own_names_are_not_read_as_parts() {
    let tools = serde_json::json!({"tools": [{"type": "function", "function": {"name": "f", "parameters":
        {"type": "object", "properties": {"document": {"type": "string"}, "video": {"type": "string"}}}}}],
        "messages": [{"content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"document": "x", "conversation": "y"}}]}],
        "response_format": {"type": "json_schema", "json_schema": {"schema": {"properties": {"file": {}}}}}});
    assert_eq!(extra(tools), Ok(0));
    let gemini =
        serde_json::json!({"contents": [{"parts": [{"functionCall": {"name": "f", "args": {"fileData": 1}}}]}]});
    assert_eq!(extra(gemini), Ok(0));
}

#[test]
fn only_the_tiers_the_prices_cover_pass() {
    assert_eq!(service_tier(br#"{"service_tier": "priority"}"#), Some("\"priority\"".into()));
    assert_eq!(service_tier(br#"{"service_tier": "flex"}"#), None);
    assert_eq!(service_tier(br#"{"service_tier": null}"#), None);
    assert_eq!(service_tier(br#"{"model": "m"}"#), None);
}
