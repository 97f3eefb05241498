//! Streamed usage, fed whole, in every split, and cut short.

use base64::Engine;
use serde_json::json;

use super::*;

fn sse(events: &[(Option<&str>, Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in events {
        if let Some(name) = name {
            out.extend_from_slice(format!("event: {name}\n").as_bytes());
        }
        out.extend_from_slice(format!("data: {data}\n\n").as_bytes());
    }
    out
}

fn frame(event_type: &str, payload: &Value) -> Vec<u8> {
    let mut headers = Vec::new();
    for (name, value) in
        [(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")]
    {
        headers.push(name.len() as u8);
        headers.extend_from_slice(name.as_bytes());
        headers.push(7);
        headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        headers.extend_from_slice(value.as_bytes());
    }
    let payload = payload.to_string().into_bytes();
    let total = 12 + headers.len() + payload.len() + 4;
    let mut out = Vec::new();
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&headers);
    out.extend_from_slice(&payload);
    out.extend_from_slice(&[0; 4]);
    out
}

/// The usage read with the stream fed whole, byte by byte, and in thirds:
/// all the same, or the test fails.
fn read(api: Api, framing: Framing, stream: &[u8], ended: bool) -> (Option<Usage>, bool, Option<String>) {
    let mut results = Vec::new();
    for size in [stream.len().max(1), 1, stream.len() / 3 + 1] {
        let mut u = StreamUsage::new(framing, api);
        for piece in stream.chunks(size) {
            u.feed(piece);
        }
        let (usage, complete) = u.finish(ended);
        results.push((usage, complete, u.model.clone()));
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
    results.remove(0)
}

fn usage(i: u64, o: u64, t: u64) -> Option<Usage> {
    Some(Usage {
        input_tokens: Some(i),
        output_tokens: Some(o),
        total_tokens: Some(t),
        cached_input_tokens: None,
        cache_write_tokens: None,
    })
}

fn openai_chat(include_usage: bool) -> Vec<u8> {
    let mut events = vec![
        (None, json!({"id": "c", "model": "gpt-4o-mini-2024-07-18", "choices": [{"delta": {"content": "Hé"}}]})),
        (
            None,
            json!({"id": "c", "model": "gpt-4o-mini-2024-07-18", "choices": [{"delta": {}, "finish_reason": "stop"}]}),
        ),
    ];
    if include_usage {
        events.push((
            None,
            json!({"id": "c", "model": "gpt-4o-mini-2024-07-18", "choices": [],
                                  "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}}),
        ));
    }
    let mut out = sse(&events);
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

#[test]
fn openai_chat_usage_with_and_without_include_usage() {
    assert_eq!(
        read(Api::OpenAi, Framing::Sse, &openai_chat(true), true),
        (usage(9, 7, 16), true, Some("gpt-4o-mini-2024-07-18".into()))
    );
    let (u, complete, _) = read(Api::OpenAi, Framing::Sse, &openai_chat(false), true);
    assert_eq!((u, complete), (None, false));
}

#[test]
fn responses_completed_event() {
    let r = json!({"id": "r", "model": "gpt-4.1-mini", "usage": {"input_tokens": 5, "output_tokens": 6, "total_tokens": 11}});
    let stream = sse(&[
        (Some("response.created"), json!({"type": "response.created", "response": {"model": "gpt-4.1-mini"}})),
        (Some("response.output_text.delta"), json!({"type": "response.output_text.delta", "delta": "é"})),
        (Some("response.completed"), json!({"type": "response.completed", "response": r})),
    ]);
    assert_eq!(read(Api::OpenAi, Framing::Sse, &stream, true), (usage(5, 6, 11), true, Some("gpt-4.1-mini".into())));
}

fn anthropic_events() -> Vec<Value> {
    vec![
        json!({"type": "message_start", "message": {"model": "claude-haiku-4-5", "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        json!({"type": "content_block_delta", "delta": {"text": "ü"}}),
        json!({"type": "message_delta", "usage": {"output_tokens": 30}}),
        json!({"type": "message_stop"}),
    ]
}

#[test]
fn anthropic_cumulative_output_tokens() {
    let events: Vec<(Option<&str>, Value)> = anthropic_events().into_iter().map(|e| (Some("x"), e)).collect();
    let stream = sse(&events);
    assert_eq!(
        read(Api::Anthropic, Framing::Sse, &stream, true),
        (usage(12, 30, 42), true, Some("claude-haiku-4-5".into()))
    );
    // Cut before message_stop: what was counted, not complete.
    let cut = sse(&events[..3]);
    assert_eq!(read(Api::Anthropic, Framing::Sse, &cut, false).0, usage(12, 30, 42));
    assert!(!read(Api::Anthropic, Framing::Sse, &cut, false).1);
    assert!(!read(Api::Anthropic, Framing::Sse, &cut, true).1, "no message_stop");
}

#[test]
fn crlf_and_cr_line_ends() {
    let text = String::from_utf8(sse(&anthropic_events().into_iter().map(|e| (None, e)).collect::<Vec<_>>())).unwrap();
    for end in ["\r\n", "\r"] {
        let stream = text.replace('\n', end);
        assert_eq!(read(Api::Anthropic, Framing::Sse, stream.as_bytes(), true).0, usage(12, 30, 42), "{end:?}");
    }
}

#[test]
fn gemini_usage_metadata() {
    let stream = sse(&[
        (None, json!({"candidates": [{"content": {"parts": [{"text": "ñ"}]}}], "modelVersion": "gemini-2.5-flash"})),
        (
            None,
            json!({"candidates": [{"content": {"parts": [{"text": "!"}]}, "finishReason": "STOP"}],
                      "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}}),
        ),
    ]);
    assert_eq!(read(Api::Gemini, Framing::Sse, &stream, true), (usage(3, 4, 7), true, Some("gemini-2.5-flash".into())));
    // The server's CRLF framing (as Google's servers send it).
    let crlf = String::from_utf8(stream.clone()).unwrap().replace("\n\n", "\r\n\r\n");
    assert_eq!(read(Api::Gemini, Framing::Sse, crlf.as_bytes(), true).0, usage(3, 4, 7));
}

#[test]
fn bedrock_eventstreams() {
    let mut converse = Vec::new();
    converse.extend(frame("messageStart", &json!({"role": "assistant"})));
    converse.extend(frame("contentBlockDelta", &json!({"delta": {"text": "hi"}})));
    converse.extend(frame("messageStop", &json!({"stopReason": "end_turn"})));
    converse.extend(frame("metadata", &json!({"usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}})));
    assert_eq!(read(Api::Bedrock, Framing::EventStream, &converse, true).0, usage(5, 2, 7));
    assert!(read(Api::Bedrock, Framing::EventStream, &converse, true).1);
    assert!(!read(Api::Bedrock, Framing::EventStream, &converse[..converse.len() - 5], false).1);

    let b64 = |v: &Value| base64::engine::general_purpose::STANDARD.encode(v.to_string());
    let mut invoke = Vec::new();
    for e in anthropic_events() {
        invoke.extend(frame("chunk", &json!({"bytes": b64(&e)})));
    }
    assert_eq!(
        read(Api::Bedrock, Framing::EventStream, &invoke, true),
        (usage(12, 30, 42), true, Some("claude-haiku-4-5".into()))
    );
}

#[test]
fn an_oversized_event_is_skipped_and_marks_usage_incomplete() {
    let mut stream = format!("data: {{\"x\":\"{}\"}}\n\n", "a".repeat(MAX_EVENT_BYTES)).into_bytes();
    stream.extend(openai_chat(true));
    let mut u = StreamUsage::new(Framing::Sse, Api::OpenAi);
    for piece in stream.chunks(64 * 1024) {
        u.feed(piece);
        assert!(u.held() <= 2 * MAX_EVENT_BYTES + 64 * 1024);
    }
    assert_eq!(u.finish(true), (usage(9, 7, 16), false));
    let mut bad = StreamUsage::new(Framing::EventStream, Api::Bedrock);
    bad.feed(&[0xff; 64]);
    assert_eq!(bad.finish(true), (None, false));
}

#[test]
fn framing_by_media_type() {
    assert_eq!(Framing::of("text/event-stream; charset=utf-8"), Some(Framing::Sse));
    assert_eq!(Framing::of("application/vnd.amazon.eventstream"), Some(Framing::EventStream));
    assert_eq!(Framing::of("application/json"), None);
}

/// Vertex `streamRawPredict` serves every publisher's own stream; Mistral's
/// (`publishers/mistralai/…`) is OpenAI-shaped chunks with a final `usage`.
/// The redesign's first per-api reader (Anthropic's or Gemini's events
/// only) dropped it: the attack review's finding R1.
#[test]
fn a_vertex_partner_models_openai_shaped_stream_usage_is_read() {
    let stream = openai_chat(true);
    let (got, complete, model) = read(Api::Vertex, Framing::Sse, &stream, true);
    assert_eq!(got, usage(9, 7, 16), "Vertex streamRawPredict usage of a non-Anthropic publisher was lost");
    assert!(complete);
    assert_eq!(model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
}

/// Bedrock's `invoke-with-response-stream` for Meta Llama (and Mistral,
/// Titan, Cohere) carries no `type`; its last chunk holds Bedrock's
/// `amazon-bedrock-invocationMetrics`, once read only on an Anthropic
/// `message_stop`: every other family's usage was recorded as unknown
/// (found by the redesign's attack review, older than it).
#[test]
fn a_bedrock_invoke_streams_own_counts_are_read_for_every_model_family() {
    let b64 = |v: &Value| base64::engine::general_purpose::STANDARD.encode(v.to_string());
    let mut invoke = Vec::new();
    for e in [
        json!({"generation": "Hello", "prompt_token_count": 10, "generation_token_count": 1, "stop_reason": null}),
        json!({"generation": "", "prompt_token_count": null, "generation_token_count": 5, "stop_reason": "stop",
               "amazon-bedrock-invocationMetrics": {"inputTokenCount": 10, "outputTokenCount": 5,
                                                    "invocationLatency": 300, "firstByteLatency": 100}}),
    ] {
        invoke.extend(frame("chunk", &json!({"bytes": b64(&e)})));
    }
    assert_eq!(read(Api::Bedrock, Framing::EventStream, &invoke, true).0, usage(10, 5, 15));
}
