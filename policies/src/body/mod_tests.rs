use super::*;
use crate::api::spec::MODEL_LIST;
use crate::api::Api;
use crate::body::json::Step;

const JSON: Option<&str> = Some("application/json");

fn chat() -> &'static Endpoint {
    Api::OpenAi.classify("POST", "/v1/chat/completions").unwrap().0
}

fn reason(r: Result<RequestBody, Denial>) -> (Reason, Option<String>) {
    let d = r.unwrap_err();
    (d.reason, d.detail)
}

#[test]
fn reads_model_and_stream() {
    let b = parse(chat(), JSON, br#"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#).unwrap();
    assert_eq!((b.model.as_deref(), b.stream), (Some("gpt-4o-mini"), true));
    let b = parse(chat(), Some("Application/JSON; charset=utf-8"), br#"{"model":"m"}"#).unwrap();
    assert!(!b.stream);
}

#[test]
fn body_edge_cases_are_refused_with_their_reason() {
    let cases: &[(&[u8], Reason, &str)] = &[
        (b"", Reason::InvalidBody, "not_json"),
        (b"not json", Reason::InvalidBody, "not_json"),
        (b"[{\"model\":\"m\"}]", Reason::InvalidBody, "not_object"),
        (b"\"model\"", Reason::InvalidBody, "not_object"),
        (b"{\"model\":\"m\"} {}", Reason::InvalidBody, "not_json"),
        (b"{\"model\":\"m\",}", Reason::InvalidBody, "not_json"),
        (b"\xef\xbb\xbf{\"model\":\"m\"}", Reason::InvalidBody, "encoding"),
        (b"{\"model\":\"m\xff\"}", Reason::InvalidBody, "encoding"),
        (b"{\"model\":\"m\",\"x\":\"\\ud800\"}", Reason::InvalidBody, "encoding"),
        (b"{}", Reason::ModelMissing, "missing"),
        (b"{\"model\":null}", Reason::ModelMissing, "missing"),
        (b"{\"model\":\"\"}", Reason::ModelMissing, "missing"),
        (b"{\"model\":[\"a\"]}", Reason::ModelMissing, "not_string"),
        (b"{\"model\":1}", Reason::ModelMissing, "not_string"),
        (b"{\"Model\":\"gpt-4o\"}", Reason::ModelMissing, "missing"),
        (b"{\"model\":\"a\",\"model\":\"b\"}", Reason::AmbiguousModel, "duplicate_model"),
        (b"{\"model\":\"a\",\"\\u006dodel\":\"b\"}", Reason::AmbiguousModel, "duplicate_model"),
        (b"{\"model\":\"a\",\"models\":[\"a\",\"gpt-4o\"]}", Reason::AmbiguousModel, "member_models"),
        (b"{\"model\":\"a\",\"fallbacks\":[\"gpt-4o\"]}", Reason::AmbiguousModel, "member_fallbacks"),
        (b"{\"model\":\"a\",\"stream\":false,\"stream\":true}", Reason::InvalidBody, "duplicate_key"),
        (
            b"{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"role\":\"system\"}]}",
            Reason::InvalidBody,
            "duplicate_key",
        ),
        (b"{\"model\":\"a\",\"stream\":\"true\"}", Reason::InvalidBody, "stream_not_boolean"),
        (b"{\"model\":\"a\",\"stream\":1}", Reason::InvalidBody, "stream_not_boolean"),
        (b"{\"model\":\"gpt-4.1-x\\u0000gpt-4o\"}", Reason::InvalidBody, "model_control_chars"),
        (b"{\"model\":\"gpt-4.1-x\\n\"}", Reason::InvalidBody, "model_control_chars"),
    ];
    for (body, want, detail) in cases {
        assert_eq!(
            reason(parse(chat(), JSON, body)),
            (*want, Some(detail.to_string())),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn json_endpoints_need_a_json_content_type() {
    for ct in [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/jsonx")] {
        assert_eq!(
            reason(parse(chat(), ct, br#"{"model":"m"}"#)),
            (Reason::InvalidBody, Some("content_type".into())),
            "{ct:?}"
        );
    }
}

#[test]
fn bodiless_endpoints_take_no_body() {
    assert!(parse(&MODEL_LIST, None, b"").is_ok());
    assert_eq!(reason(parse(&MODEL_LIST, JSON, b"{}")).1.as_deref(), Some("unexpected_body"));
}

fn limits(max_tokens: Option<u64>, stream: bool) -> RuleLimits {
    RuleLimits { max_tokens, stream }
}

/// The body after the limits, or the denial.
fn apply_to(ep: &Endpoint, body: &[u8], l: RuleLimits) -> Result<Vec<u8>, Denial> {
    let edits = parse(ep, JSON, body).unwrap().apply_limits(&l)?;
    Ok(apply_edits(body, &edits))
}

fn apply(body: &[u8], l: RuleLimits) -> Result<Vec<u8>, Denial> {
    apply_to(chat(), body, l)
}

#[test]
fn stream_false_refuses_streaming() {
    let d = apply(br#"{"model":"m","stream":true}"#, limits(None, false)).unwrap_err();
    assert_eq!(d.reason, Reason::StreamNotAllowed);
    let body = br#"{"model":"m","stream":false}"#;
    assert_eq!(apply(body, limits(None, false)).unwrap(), body.to_vec());
}

#[test]
fn max_tokens_caps_both_chat_fields() {
    for body in [&br#"{"model":"m","max_tokens":2000}"#[..], br#"{"model":"m","max_completion_tokens":1025}"#] {
        assert_eq!(apply(body, limits(Some(1024), true)).unwrap_err().reason, Reason::MaxTokensExceeded);
    }
    let body = br#"{"model":"m","max_tokens":1024}"#;
    assert_eq!(apply(body, limits(Some(1024), true)).unwrap(), body.to_vec());
    for body in [
        &br#"{"model":"m","max_tokens":"5000"}"#[..],
        br#"{"model":"m","max_tokens":-1}"#,
        br#"{"model":"m","max_tokens":10.5}"#,
        br#"{"model":"m","max_tokens":1e3}"#,
        br#"{"model":"m","max_tokens":99999999999999999999999}"#,
    ] {
        assert_eq!(apply(body, limits(Some(1024), true)).unwrap_err().reason, Reason::InvalidBody);
    }
}

#[test]
fn an_absent_limit_is_set_to_the_cap_and_nothing_else_changes() {
    let body = br#" {"model":"m","messages":[{"role":"user","content":"hi \u00e9"}]}"#;
    assert_eq!(
        apply(body, limits(Some(64), true)).unwrap(),
        br#" {"max_completion_tokens":64,"model":"m","messages":[{"role":"user","content":"hi \u00e9"}]}"#.to_vec()
    );
    // A null field takes the cap in its place.
    assert_eq!(
        apply(br#"{"model":"m", "max_tokens" : null ,"z":1}"#, limits(Some(64), true)).unwrap(),
        br#"{"model":"m", "max_tokens" : 64 ,"z":1}"#.to_vec()
    );
}

/// The provider must receive exactly the bytes that were checked, plus the
/// cap: no re-serialization (which reordered keys and turned big integers
/// into floats when a `max_tokens` was null).
#[test]
fn bodies_are_forwarded_byte_exact() {
    let body = "{\"zeta\":12345678901234567890123,\"model\":\"gpt-4o-mini\",\"alpha\":1.50E+3,\
                \"max_tokens\":null,\"text\":\"\\u00e9t\u{e9} \\\"q\\\" \\ud83d\\ude00 日本\",\"nums\":[-0,0.0e0]}";
    let out = apply(body.as_bytes(), limits(Some(77), true)).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), body.replace("null", "77"));
    let untouched = "{\"b\":1,\"a\":12345678901234567890123,\"model\":\"m\",\"max_tokens\":5}";
    assert_eq!(apply(untouched.as_bytes(), limits(Some(77), true)).unwrap(), untouched.as_bytes());
}

#[test]
fn anthropic_messages_get_max_tokens() {
    let ep = Api::Anthropic.classify("POST", "/v1/messages").unwrap().0;
    let out = apply_to(ep, br#"{"model":"claude","messages":[]}"#, limits(Some(10), true)).unwrap();
    assert_eq!(out, br#"{"max_tokens":10,"model":"claude","messages":[]}"#.to_vec());
}

#[test]
fn embeddings_have_no_token_field() {
    let ep = Api::OpenAi.classify("POST", "/v1/embeddings").unwrap().0;
    let body = br#"{"model":"e","input":"x"}"#;
    assert_eq!(apply_to(ep, body, limits(Some(10), true)).unwrap(), body.to_vec());
}

const NESTED: Endpoint = Endpoint {
    method: "POST",
    path: "/x",
    body: BodyFormat::Json,
    model: ModelAt::Capture("model"),
    stream: StreamAt::Never,
    max_tokens: &[&[Step::Key("generationConfig"), Step::Key("maxOutputTokens")]],
    max_tokens_default: Some(&[Step::Key("generationConfig"), Step::Key("maxOutputTokens")]),
    multipliers: &[],
    refuse: &[],
    tool_models: &[],
    history: &[],
    query: &[],
    stream_usage: None,
    end_user: &[],
};

#[test]
fn nested_caps_are_written_into_their_object() {
    let cap = limits(Some(50), true);
    assert_eq!(
        apply_to(&NESTED, br#"{"contents":[]}"#, cap).unwrap(),
        br#"{"generationConfig":{"maxOutputTokens":50},"contents":[]}"#
    );
    assert_eq!(apply_to(&NESTED, br#"{}"#, cap).unwrap(), br#"{"generationConfig":{"maxOutputTokens":50}}"#);
    assert_eq!(
        apply_to(&NESTED, br#"{"generationConfig":{"temperature":1}}"#, cap).unwrap(),
        br#"{"generationConfig":{"maxOutputTokens":50,"temperature":1}}"#
    );
    assert_eq!(
        apply_to(&NESTED, br#"{"generationConfig":{}}"#, cap).unwrap(),
        br#"{"generationConfig":{"maxOutputTokens":50}}"#
    );
    assert_eq!(
        apply_to(&NESTED, br#"{"generationConfig":null}"#, cap).unwrap(),
        br#"{"generationConfig":{"maxOutputTokens":50}}"#
    );
    assert_eq!(
        apply_to(&NESTED, br#"{"generationConfig":{"maxOutputTokens":51}}"#, cap).unwrap_err().reason,
        Reason::MaxTokensExceeded
    );
    assert_eq!(parse(&NESTED, JSON, br#"{"generationConfig":[]}"#).unwrap_err().reason, Reason::InvalidBody);
    // The model of this endpoint is in its path: none is read from the body.
    assert_eq!(parse(&NESTED, JSON, br#"{"model":"x"}"#).unwrap().model, None);
}

fn form(parts: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (disposition, value) in parts {
        out.extend_from_slice(format!("--XyZ\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"--XyZ--\r\n");
    out
}

#[test]
fn multipart_model_is_read_strictly() {
    let ep = Api::OpenAi.classify("POST", "/v1/audio/transcriptions").unwrap().0;
    let ct = Some("multipart/form-data; boundary=XyZ");
    let ok = form(&[
        ("form-data; name=\"file\"; filename=\"a.wav\"", "RIFF...."),
        ("form-data; name=\"model\"", "whisper-1"),
    ]);
    assert_eq!(parse(ep, ct, &ok).unwrap().model.as_deref(), Some("whisper-1"));
    let twice = form(&[("form-data; name=\"model\"", "a"), ("form-data; name=model", "b")]);
    assert_eq!(reason(parse(ep, ct, &twice)).0, Reason::AmbiguousModel);
    let starred = form(&[("form-data; name*=UTF-8''model", "a"), ("form-data; name=\"model\"", "b")]);
    assert_eq!(reason(parse(ep, ct, &starred)).0, Reason::InvalidBody);
    let none = form(&[("form-data; name=\"file\"", "x")]);
    assert_eq!(reason(parse(ep, ct, &none)).0, Reason::ModelMissing);
    assert_eq!(reason(parse(ep, Some("multipart/form-data"), &ok)).0, Reason::InvalidBody);
    assert_eq!(reason(parse(ep, ct, b"garbage")).0, Reason::InvalidBody);
    assert_eq!(reason(parse(ep, JSON, br#"{"model":"whisper-1"}"#)).0, Reason::InvalidBody);
}

/// Bodies at the size limit that are built to be slow: many members, deep
/// nesting, long escaped strings. The scan's work must grow like n log n.
#[test]
fn worst_case_bodies_cost_n_log_n() {
    let many = |n: usize| {
        let members: Vec<String> = (0..n).map(|i| format!("\"m{i}\":{i}")).collect();
        format!(
            "{{\"model\":\"m\",\"x\":[{}]}}",
            members.chunks(1000).map(|c| format!("{{{}}}", c.join(","))).collect::<Vec<_>>().join(",")
        )
    };
    let work = |body: &str| json::scan(body.as_bytes(), &[]).unwrap().comparisons;
    let (n, n8) = (work(&many(10_000)), work(&many(80_000)));
    assert!(n8 < n * 12, "{n} → {n8}");
    // Escapes and depth cost nothing beyond their bytes, and are decided.
    let escaped = format!("{{\"model\":\"m\",\"t\":\"{}\"}}", "\\u00e9\\n".repeat(100_000));
    assert_eq!(parse(chat(), JSON, escaped.as_bytes()).unwrap().model.as_deref(), Some("m"));
    let deep =
        format!("{{\"model\":\"m\",\"t\":{}{}}}", "[".repeat(json::MAX_DEPTH + 1), "]".repeat(json::MAX_DEPTH + 1));
    assert_eq!(reason(parse(chat(), JSON, deep.as_bytes())).1.as_deref(), Some("too_deep"));
}

#[test]
fn json_is_read_as_utf8_only() {
    for ct in ["application/json; charset=utf-8", "application/json;charset=\"UTF-8\""] {
        parse(chat(), Some(ct), br#"{"model":"m"}"#).unwrap();
    }
    for (ct, reason, detail) in [
        ("application/json; charset=utf-7", Reason::UnsupportedEncoding, "charset"),
        ("application/json; charset=utf-16", Reason::UnsupportedEncoding, "charset"),
        ("application/json; charset=utf-8; charset=utf-7", Reason::InvalidBody, "content_type"),
        ("application/json; profile=x", Reason::InvalidBody, "content_type"),
    ] {
        assert_eq!(reason_of(parse(chat(), Some(ct), br#"{"model":"m"}"#)), (reason, Some(detail.to_string())), "{ct}");
    }
}

fn reason_of(r: Result<RequestBody, Denial>) -> (Reason, Option<String>) {
    reason(r)
}

fn responses() -> &'static Endpoint {
    Api::OpenAi.classify("POST", "/v1/responses").unwrap().0
}

/// Models the provider can be made to use outside the top-level `model`.
#[test]
fn other_models_in_the_body_are_found_for_a_decision() {
    let body = br#"{"model":"gpt-5","tools":[{"type":"image_generation","model":"gpt-image-1"},{"type":"x","svg":{"model":"gpt-image-1"}}],
                    "moderation":{"model":"omni-moderation-latest"},"input":[{"type":"image_generation_call","usage":{"model":"old"}}]}"#;
    let b = parse(responses(), JSON, body).unwrap();
    assert_eq!(b.model.as_deref(), Some("gpt-5"));
    assert_eq!(b.other_models, ["gpt-image-1", "omni-moderation-latest"]);
    // Chat history names no model the request uses.
    let b = parse(chat(), JSON, br#"{"model":"m","messages":[{"role":"assistant","model":"other"}]}"#).unwrap();
    assert!(b.other_models.is_empty());
    for (body, detail) in [
        (&br#"{"model":"m","tools":[{"model":5}]}"#[..], "nested_model_not_string"),
        (br#"{"model":"m","tools":[{"model":""}]}"#, "nested_model_not_string"),
        (br#"{"model":"m","prompt":{"id":"pmpt_1"}}"#, "stored_prompt"),
    ] {
        assert_eq!(reason(parse(responses(), JSON, body)), (Reason::AmbiguousModel, Some(detail.to_string())));
    }
    let many = format!(
        "{{\"model\":\"m\",\"tools\":[{}]}}",
        (0..20).map(|i| format!("{{\"model\":\"t{i}\"}}")).collect::<Vec<_>>().join(",")
    );
    assert_eq!(reason(parse(responses(), JSON, many.as_bytes())).1.as_deref(), Some("too_many_models"));
}

/// `n` and `best_of` multiply what one cap was meant to bound.
#[test]
fn the_cap_bounds_every_output_together() {
    let cap = limits(Some(1000), true);
    let body = br#"{"model":"m","n":4,"max_tokens":250}"#;
    assert_eq!(apply(body, cap).unwrap(), body.to_vec());
    let d = apply(br#"{"model":"m","n":4,"max_tokens":251}"#, cap).unwrap_err();
    assert_eq!((d.reason, d.detail.as_deref()), (Reason::MaxTokensExceeded, Some("n*max_tokens>1000")));
    // The cap written in for one output cannot be written in for four.
    assert_eq!(apply(br#"{"model":"m","n":4}"#, cap).unwrap_err().reason, Reason::MaxTokensExceeded);
    assert_eq!(
        apply(br#"{"model":"m","n":1}"#, cap).unwrap().len(),
        br#"{"max_completion_tokens":1000,"model":"m","n":1}"#.len()
    );
    let completions = Api::OpenAi.classify("POST", "/v1/completions").unwrap().0;
    assert_eq!(
        apply_to(completions, br#"{"model":"m","best_of":3,"n":2,"max_tokens":400}"#, cap).unwrap_err().reason,
        Reason::MaxTokensExceeded
    );
    apply_to(completions, br#"{"model":"m","best_of":2,"n":2,"max_tokens":500}"#, cap).unwrap();
    for body in [&br#"{"model":"m","n":0}"#[..], br#"{"model":"m","n":"4"}"#, br#"{"model":"m","n":1.5}"#] {
        assert_eq!(reason(parse(chat(), JSON, body)).1.as_deref(), Some("multiplier_not_integer"));
    }
    // Without a cap, n is the provider's business.
    apply(br#"{"model":"m","n":8}"#, limits(None, true)).unwrap();
}

/// `/v1/audio/speech` streams with `stream_format: "sse"`, not `stream`.
#[test]
fn every_streaming_switch_is_gated() {
    let speech = Api::OpenAi.classify("POST", "/v1/audio/speech").unwrap().0;
    let no_stream = limits(None, false);
    let sse = br#"{"model":"tts-1","input":"hi","voice":"alloy","stream_format":"sse"}"#;
    assert_eq!(apply_to(speech, sse, no_stream).unwrap_err().reason, Reason::StreamNotAllowed);
    apply_to(speech, br#"{"model":"tts-1","input":"hi","voice":"alloy","stream_format":"audio"}"#, no_stream).unwrap();
    assert_eq!(
        reason(parse(speech, JSON, br#"{"model":"tts-1","stream_format":"SSE"}"#)).1.as_deref(),
        Some("stream_switch")
    );
}

fn transcription_form(extra: &[(&str, &str)]) -> Vec<u8> {
    let mut parts =
        vec![("Content-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav", "RIFF")];
    parts.extend_from_slice(extra);
    let mut out = Vec::new();
    for (headers, value) in parts {
        out.extend_from_slice(format!("--XyZ\r\n{headers}\r\n\r\n{value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"--XyZ--\r\n");
    out
}

#[test]
fn multipart_forms_are_refused_where_servers_disagree() {
    let ep = Api::OpenAi.classify("POST", "/v1/audio/transcriptions").unwrap().0;
    let ct = Some("multipart/form-data; boundary=XyZ");
    let model = |headers: &str| transcription_form(&[(headers, "whisper-1")]);
    assert_eq!(
        parse(ep, ct, &model("Content-Disposition: form-data; name=\"model\"")).unwrap().model.as_deref(),
        Some("whisper-1")
    );
    let cases: Vec<(Vec<u8>, Option<&str>, Reason, &str)> = vec![
        (
            model("Content-Disposition: form-data; name=\"model\"; name=\"file\""),
            ct,
            Reason::InvalidBody,
            "multipart_repeated_parameter",
        ),
        (model("Content-Disposition: form-data; name=\"x;name=model\""), ct, Reason::ModelMissing, "missing"),
        (
            model("Content-Disposition: form-data; name=\"model\"\r\nContent-Transfer-Encoding: quoted-printable"),
            ct,
            Reason::InvalidBody,
            "multipart_part_header_not_allowed",
        ),
        (
            model("Content-Disposition: form-data; name=\"model\"; filename=\"m.txt\""),
            ct,
            Reason::InvalidBody,
            "multipart_model",
        ),
        (
            model("Content-Disposition: form-data; name=\"model\"\r\nContent-Type: application/octet-stream"),
            ct,
            Reason::InvalidBody,
            "multipart_model",
        ),
        (
            transcription_form(&[
                ("Content-Disposition: form-data; name=\"model\"", "a"),
                ("Content-Disposition: form-data; name=\"model\"", "b"),
            ]),
            ct,
            Reason::AmbiguousModel,
            "multipart_repeated_field",
        ),
        (
            model("Content-Disposition: form-data; name=\"model\""),
            Some("multipart/form-data; boundary=XyZ; boundary=Other"),
            Reason::InvalidBody,
            "multipart_repeated_parameter",
        ),
        (
            model("Content-Disposition: form-data; name=\"model\""),
            Some("multipart/form-data; boundary=\"Xy\\Z\""),
            Reason::InvalidBody,
            "multipart_quoted_string",
        ),
        (
            model("Content-Disposition: form-data; name=\"model\""),
            Some("multipart/form-data; boundary=XyZ; charset=utf-7"),
            Reason::InvalidBody,
            "multipart_content_type_parameters",
        ),
        (
            transcription_form(&[
                ("Content-Disposition: form-data; name=\"model\"", "whisper-1"),
                ("Content-Disposition: form-data; name=\"stream\"", "1"),
            ]),
            ct,
            Reason::InvalidBody,
            "stream_not_boolean",
        ),
    ];
    for (body, ct, reason_want, detail) in cases {
        assert_eq!(
            reason(parse(ep, ct, &body)),
            (reason_want, Some(detail.to_string())),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    let streamed = transcription_form(&[
        ("Content-Disposition: form-data; name=\"model\"", "whisper-1"),
        ("Content-Disposition: form-data; name=\"stream\"", "true"),
    ]);
    assert!(parse(ep, ct, &streamed).unwrap().stream);
}

#[test]
fn a_streaming_request_that_says_nothing_of_usage_can_be_asked_for_it() {
    let ask = |body: &[u8]| {
        let parsed = parse(chat(), JSON, body).unwrap();
        let mut edits = parsed.apply_limits(&RuleLimits { max_tokens: Some(50), stream: true }).unwrap();
        edits.extend(parsed.ask_stream_usage());
        edits.sort_by_key(|e| e.at);
        String::from_utf8(apply_edits(body, &edits)).unwrap()
    };
    assert_eq!(
        ask(br#"{"model":"m","stream":true}"#),
        r#"{"max_completion_tokens":50,"stream_options":{"include_usage":true},"model":"m","stream":true}"#
    );
    assert_eq!(
        ask(br#"{"model":"m","stream":true,"stream_options":{}}"#),
        r#"{"max_completion_tokens":50,"model":"m","stream":true,"stream_options":{"include_usage":true}}"#
    );
    assert_eq!(
        ask(br#"{"model":"m","stream":true,"stream_options":null}"#),
        r#"{"max_completion_tokens":50,"model":"m","stream":true,"stream_options":{"include_usage":true}}"#
    );
    // Said already (either way), or not streaming: unchanged but the cap.
    for body in [&br#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#[..], br#"{"model":"m"}"#] {
        assert!(!ask(body).contains(r#""include_usage":true"#), "{}", ask(body));
        assert!(parse(chat(), JSON, body).unwrap().ask_stream_usage().is_none());
    }
}

#[test]
fn the_end_user_field_is_the_gateways() {
    let name = |api: Api, path: &str, body: &[u8]| {
        let endpoint = api.classify("POST", path).unwrap().0;
        let parsed = parse(endpoint, JSON, body).unwrap();
        let edits: Vec<Edit> = parsed.name_end_user("sha256:ab").into_iter().collect();
        String::from_utf8(apply_edits(body, &edits)).unwrap()
    };
    let chat = |b: &[u8]| name(Api::OpenAi, "/v1/chat/completions", b);
    // Every field the api has for the end user: safety_identifier and user.
    assert_eq!(chat(br#"{"model":"m"}"#), r#"{"safety_identifier":"sha256:ab","user":"sha256:ab","model":"m"}"#);
    assert_eq!(
        chat(br#"{"model":"m","safety_identifier":"someone-else"}"#),
        r#"{"user":"sha256:ab","model":"m","safety_identifier":"sha256:ab"}"#
    );
    assert_eq!(
        chat(br#"{"model":"m","user":"spiffe://example.org/ns/other/sa/x","safety_identifier":{"x":[1]}}"#),
        r#"{"model":"m","user":"sha256:ab","safety_identifier":"sha256:ab"}"#
    );
    for path in ["/v1/completions", "/v1/embeddings", "/v1/images/generations"] {
        assert_eq!(
            name(Api::OpenAi, path, br#"{"model":"m","user":"someone-else"}"#),
            r#"{"model":"m","user":"sha256:ab"}"#,
            "{path}"
        );
    }
    let parsed = parse(Api::OpenAi.classify("POST", "/v1/responses").unwrap().0, JSON, br#"{"model":"m"}"#).unwrap();
    assert_eq!(parsed.name_end_user("h").len(), 1, "two members inserted in one object are one edit");
    let messages = |b: &[u8]| name(Api::Anthropic, "/v1/messages", b);
    assert_eq!(messages(br#"{"model":"m"}"#), r#"{"metadata":{"user_id":"sha256:ab"},"model":"m"}"#);
    assert_eq!(messages(br#"{"model":"m","metadata":{}}"#), r#"{"model":"m","metadata":{"user_id":"sha256:ab"}}"#);
    assert_eq!(
        messages(br#"{"model":"m","metadata":{"user_id":"spoofed","x":1}}"#),
        r#"{"model":"m","metadata":{"user_id":"sha256:ab","x":1}}"#
    );
    assert_eq!(name(Api::OpenAi, "/v1/moderations", br#"{"model":"m"}"#), r#"{"model":"m"}"#);
}
