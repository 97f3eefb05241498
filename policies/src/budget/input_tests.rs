use super::*;

fn extra(body: serde_json::Value) -> Result<u64, String> {
    scan(body.to_string().as_bytes()).map(|s| s.extra_tokens)
}

fn unpriced(body: serde_json::Value) -> Option<String> {
    scan(body.to_string().as_bytes()).ok().and_then(|s| s.unpriced)
}

// gpt-4o-mini bills up to 48,169 tokens for one image.
const _: () = assert!(MEDIA_TOKENS >= 48_169);

#[test]
fn images_reserve_their_allowance_each() {
    let chat = serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]});
    assert_eq!(extra(chat), Ok(2 * MEDIA_TOKENS));
    let gemini =
        serde_json::json!({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA"}}]}]});
    assert_eq!(extra(gemini), Ok(MEDIA_TOKENS));
    let bedrock =
        serde_json::json!({"messages": [{"content": [{"image": {"format": "png", "source": {"bytes": "AA"}}}]}]});
    assert_eq!(extra(bedrock), Ok(MEDIA_TOKENS));
    let screenshot = serde_json::json!({"input": [{"type": "computer_call_output", "output": {"type": "computer_screenshot", "image_url": "data:"}}]});
    assert_eq!(extra(screenshot), Ok(MEDIA_TOKENS));
    assert_eq!(extra(serde_json::json!({"messages": [{"content": "text only"}]})), Ok(0));
}

#[test]
fn what_the_body_only_names_is_unbounded() {
    for body in [
        serde_json::json!({"messages": [{"content": [{"type": "file", "file": {"file_id": "file-1"}}]}]}),
        serde_json::json!({"input": [{"content": [{"type": "input_file", "file_id": "file-1"}]}]}),
        serde_json::json!({"input": [{"type": "item_reference", "id": "msg_1"}]}),
        serde_json::json!({"messages": [{"content": [{"type": "document", "source": {"type": "url", "url": "https://x"}}]}]}),
        serde_json::json!({"contents": [{"parts": [{"fileData": {"fileUri": "gs://b/v.mp4"}}]}]}),
        serde_json::json!({"contents": [{"parts": [{"inlineData": {"mimeType": "application/pdf", "data": "AA"}}]}]}),
        serde_json::json!({"contents": [{"parts": [{"inline_data": {"mime_type": "video/mp4", "data": "AA"}}]}]}),
        serde_json::json!({"cachedContent": "cachedContents/1", "contents": []}),
        serde_json::json!({"previous_response_id": "resp_1", "input": "go on"}),
        serde_json::json!({"conversation": "conv_1", "input": "go on"}),
        serde_json::json!({"mcp_servers": [{"url": "https://x"}]}),
        serde_json::json!({"web_search_options": {}, "messages": []}),
    ] {
        assert!(extra(body.clone()).is_err(), "{body}");
    }
    assert_eq!(extra(serde_json::json!({"previous_response_id": null})), Ok(0), "null names nothing");
}

#[test]
fn a_body_too_deep_to_read_is_unbounded() {
    let mut deep = serde_json::json!({"type": "document", "source": {"type": "url", "url": "https://x"}});
    for _ in 0..200 {
        deep = serde_json::json!([deep]);
    }
    let body = format!("{{\"messages\": {deep}}}");
    assert_eq!(scan(body.as_bytes()), Err("unreadable".to_string()), "what cannot be read cannot be bounded");
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
fn only_the_prices_the_table_holds_pass() {
    assert_eq!(unpriced(serde_json::json!({"service_tier": "priority"})), Some("service_tier:\"priority\"".into()));
    assert_eq!(unpriced(serde_json::json!({"service_tier": "flex"})), None);
    assert_eq!(unpriced(serde_json::json!({"service_tier": null})), None);
    assert!(unpriced(serde_json::json!({"speed": "fast"})).is_some());
    assert!(unpriced(serde_json::json!({"inference_geo": "us"})).is_some());
    assert!(unpriced(serde_json::json!({"modalities": ["text", "audio"], "audio": {"voice": "alloy"}})).is_some());
    assert_eq!(unpriced(serde_json::json!({"modalities": ["text"]})), None);
    let audio_in =
        serde_json::json!({"messages": [{"content": [{"type": "input_audio", "input_audio": {"data": "AA"}}]}]});
    assert!(unpriced(audio_in).is_some());
    assert_eq!(unpriced(serde_json::json!({"model": "m"})), None);
}
