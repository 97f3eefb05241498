//! Request bodies: the model, the stream flag, and the token limit, read
//! strictly (SPEC §3). What cannot be read with certainty is refused, so a
//! workload cannot show us one model and the provider another.

use serde_json::Value;

use crate::api::{BodyFormat, Endpoint};
use crate::config::RuleLimits;
use crate::json::{Object, ObjectError};
use crate::reason::{Denial, Reason};

/// What the body says, as far as policy is concerned.
#[derive(Debug, PartialEq)]
pub struct RequestBody {
    pub model: String,
    pub stream: bool,
    /// The JSON object, for rewriting; `None` for multipart bodies.
    object: Option<Object>,
}

/// Members through which some OpenAI-compatible servers accept models other
/// than `model`. The providers' own APIs reject them as unknown anyway.
const ALTERNATE_MODEL_MEMBERS: &[&str] = &["models", "fallbacks", "fallback_models"];

fn invalid(detail: &str, message: impl Into<String>) -> Denial {
    Denial::new(Reason::InvalidBody, message).with_detail(detail)
}

/// Reads the body of a request to `endpoint`. `content_type` is the
/// request's `content-type` header.
pub fn parse(endpoint: &Endpoint, content_type: Option<&str>, body: &[u8]) -> Result<RequestBody, Denial> {
    match endpoint.body {
        BodyFormat::Json => parse_json(content_type, body),
        BodyFormat::Multipart => parse_multipart(content_type, body),
        BodyFormat::ModelList => Err(invalid("no_body", "this endpoint takes no body")),
    }
}

fn media_type(content_type: Option<&str>) -> String {
    content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

fn parse_json(content_type: Option<&str>, body: &[u8]) -> Result<RequestBody, Denial> {
    // A provider may read a body by its content type; only JSON is JSON.
    if media_type(content_type) != "application/json" {
        return Err(invalid("content_type", "the request body must be sent as content-type: application/json"));
    }
    let object = Object::parse(body).map_err(|e| match e {
        ObjectError::Syntax => invalid("not_json", "the request body is not valid JSON"),
        ObjectError::NotAnObject => invalid("not_object", "the request body is not a JSON object"),
        ObjectError::Duplicate(name) if name == "model" => {
            Denial::new(Reason::AmbiguousModel, "the request body names \"model\" more than once")
                .with_detail("duplicate_model")
        }
        ObjectError::Duplicate(name) => {
            invalid("duplicate_key", format!("the request body has the member {name:?} more than once"))
        }
    })?;
    let model = match object.get("model") {
        // A control character could end the name early for some parser.
        Some(Value::String(m)) if m.chars().any(char::is_control) => {
            return Err(invalid("model_control_chars", "the request body's \"model\" holds control characters"))
        }
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(Denial::new(Reason::ModelMissing, "the request body has no \"model\"").with_detail("missing"))
        }
        Some(_) => {
            return Err(Denial::new(Reason::ModelMissing, "the request body's \"model\" is not a string")
                .with_detail("not_string"))
        }
    };
    // OpenAI-compatible routers (OpenRouter, LiteLLM) take fallback models
    // from these members: a second model modelgate did not decide on.
    if let Some(name) = ALTERNATE_MODEL_MEMBERS.iter().find(|m| object.contains(m)) {
        return Err(Denial::new(
            Reason::AmbiguousModel,
            format!("the request body names other models in {name:?}; send one \"model\""),
        )
        .with_detail(format!("member_{name}")));
    }
    // Lenient upstream parsers read "true" or 1 as true; anything but a JSON
    // boolean is refused rather than guessed at.
    let stream = match object.get("stream") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => return Err(invalid("stream_not_boolean", "\"stream\" must be true or false")),
    };
    Ok(RequestBody { model, stream, object: Some(object) })
}

/// `multipart/form-data` (audio transcriptions and translations): exactly
/// one `model` field.
fn parse_multipart(content_type: Option<&str>, body: &[u8]) -> Result<RequestBody, Denial> {
    if media_type(content_type) != "multipart/form-data" {
        return Err(invalid("content_type", "the request body must be sent as content-type: multipart/form-data"));
    }
    let boundary = content_type
        .and_then(|ct| parameter(ct, "boundary"))
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(|| invalid("multipart", "the multipart body has no boundary"))?;
    let fields = multipart_fields(body, boundary.as_bytes())
        .ok_or_else(|| invalid("multipart", "the multipart body is malformed"))?;
    let mut model: Option<String> = None;
    let mut stream = false;
    for (name, value) in fields {
        match name.as_str() {
            "model" => {
                if model.is_some() {
                    return Err(Denial::new(Reason::AmbiguousModel, "the form names \"model\" more than once")
                        .with_detail("duplicate_model"));
                }
                let text =
                    std::str::from_utf8(value).map_err(|_| invalid("multipart", "the form's model is not UTF-8"))?;
                model = Some(text.to_string());
            }
            "stream" => stream = value != b"false",
            _ => {}
        }
    }
    match model {
        Some(m) if !m.is_empty() => Ok(RequestBody { model: m, stream, object: None }),
        _ => Err(Denial::new(Reason::ModelMissing, "the form has no \"model\" field").with_detail("missing")),
    }
}

/// A `name=value` or `name="value"` parameter of a header value.
fn parameter(header: &str, name: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let v = v.trim();
        Some(v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v).to_string())
    })
}

/// The form fields of a multipart body, as (name, value). `None` when the
/// body is not well formed or a part's name cannot be read with certainty.
fn multipart_fields<'b>(body: &'b [u8], boundary: &[u8]) -> Option<Vec<(String, &'b [u8])>> {
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let mut fields = Vec::new();
    let mut rest = body.strip_prefix(delimiter.as_slice())?;
    let mut separator = b"\r\n".to_vec();
    separator.extend_from_slice(&delimiter);
    loop {
        if rest.starts_with(b"--") {
            return Some(fields);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let end = find(rest, &separator)?;
        let part = &rest[..end];
        rest = &rest[end + separator.len()..];
        let head_end = find(part, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&part[..head_end]).ok()?;
        let value = &part[head_end + 4..];
        let mut name: Option<String> = None;
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(':')?;
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                if name.is_some() || v.contains("name*") {
                    return None;
                }
                if !v.trim().to_ascii_lowercase().starts_with("form-data") {
                    return None;
                }
                name = Some(parameter(v, "name")?);
            }
        }
        fields.push((name?, value));
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl RequestBody {
    /// Applies the deciding rule's limits. Returns the body to forward when
    /// it must change (the token cap written in), `None` when it need not.
    pub fn apply_limits(
        &self,
        endpoint: &Endpoint,
        limits: &RuleLimits,
        original: &[u8],
    ) -> Result<Option<Vec<u8>>, Denial> {
        if self.stream && !limits.stream {
            return Err(Denial::new(Reason::StreamNotAllowed, "streaming is not allowed for this workload and model")
                .with_detail("stream"));
        }
        let (Some(cap), Some(object)) = (limits.max_tokens, &self.object) else {
            return Ok(None);
        };
        let mut present = false;
        let mut has_null = false;
        for field in endpoint.max_tokens_fields {
            match object.get(field) {
                None => {}
                Some(Value::Null) => has_null = true,
                Some(v) => {
                    let n = v.as_u64().ok_or_else(|| {
                        invalid("max_tokens_not_integer", format!("{field:?} must be a non-negative integer"))
                    })?;
                    if n > cap {
                        return Err(Denial::new(
                            Reason::MaxTokensExceeded,
                            format!("{field} {n} is above this workload's cap of {cap}"),
                        )
                        .with_detail(format!("{field}>{cap}")));
                    }
                    present = true;
                }
            }
        }
        let Some(field) = endpoint.max_tokens_default.filter(|_| !present) else {
            return Ok(None);
        };
        if has_null {
            let mut object = object.clone();
            for f in endpoint.max_tokens_fields {
                if object.get(f) == Some(&Value::Null) {
                    object.set(f, Value::from(cap));
                }
            }
            if !endpoint.max_tokens_fields.iter().any(|f| object.get(f).is_some_and(|v| !v.is_null())) {
                object.set(field, Value::from(cap));
            }
            return Ok(Some(object.to_vec()));
        }
        Ok(Some(insert_member(original, field, cap)))
    }
}

/// Inserts `"field":value,` right after the object's opening brace, leaving
/// every other byte as the workload sent it. The object is known to have a
/// `model` member, so a comma always follows.
fn insert_member(original: &[u8], field: &str, value: u64) -> Vec<u8> {
    let brace = original.iter().position(|b| *b == b'{').unwrap_or(0);
    let member = format!("\"{field}\":{value},");
    let mut out = Vec::with_capacity(original.len() + member.len());
    out.extend_from_slice(&original[..=brace]);
    out.extend_from_slice(member.as_bytes());
    out.extend_from_slice(&original[brace + 1..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Api;

    const JSON: Option<&str> = Some("application/json");

    fn chat() -> &'static Endpoint {
        Api::OpenAi.classify("POST", "/v1/chat/completions").unwrap()
    }

    fn reason(r: Result<RequestBody, Denial>) -> (Reason, Option<String>) {
        let d = r.unwrap_err();
        (d.reason, d.detail)
    }

    #[test]
    fn reads_model_and_stream() {
        let b = parse(chat(), JSON, br#"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#).unwrap();
        assert_eq!((b.model.as_str(), b.stream), ("gpt-4o-mini", true));
        let b = parse(chat(), Some("Application/JSON; charset=utf-8"), br#"{"model":"m"}"#).unwrap();
        assert!(!b.stream);
    }

    #[test]
    fn body_edge_cases_are_refused_with_their_reason() {
        let cases: &[(&[u8], Reason)] = &[
            (b"", Reason::InvalidBody),
            (b"not json", Reason::InvalidBody),
            (b"[{\"model\":\"m\"}]", Reason::InvalidBody),
            (b"\"model\"", Reason::InvalidBody),
            (b"{\"model\":\"m\"} {}", Reason::InvalidBody),
            (b"{\"model\":\"m\",}", Reason::InvalidBody),
            (b"\xef\xbb\xbf{\"model\":\"m\"}", Reason::InvalidBody),
            (b"{\"model\":\"m\xff\"}", Reason::InvalidBody),
            (b"{}", Reason::ModelMissing),
            (b"{\"model\":null}", Reason::ModelMissing),
            (b"{\"model\":\"\"}", Reason::ModelMissing),
            (b"{\"model\":[\"a\"]}", Reason::ModelMissing),
            (b"{\"model\":1}", Reason::ModelMissing),
            (b"{\"Model\":\"gpt-4o\"}", Reason::ModelMissing),
            (b"{\"model\":\"a\",\"model\":\"b\"}", Reason::AmbiguousModel),
            (b"{\"model\":\"a\",\"\\u006dodel\":\"b\"}", Reason::AmbiguousModel),
            (b"{\"model\":\"a\",\"models\":[\"a\",\"gpt-4o\"]}", Reason::AmbiguousModel),
            (b"{\"model\":\"a\",\"fallbacks\":[\"gpt-4o\"]}", Reason::AmbiguousModel),
            (b"{\"model\":\"a\",\"stream\":false,\"stream\":true}", Reason::InvalidBody),
            (b"{\"model\":\"a\",\"stream\":\"true\"}", Reason::InvalidBody),
            (b"{\"model\":\"a\",\"stream\":1}", Reason::InvalidBody),
            (b"{\"model\":\"gpt-4.1-x\\u0000gpt-4o\"}", Reason::InvalidBody),
            (b"{\"model\":\"gpt-4.1-x\\n\"}", Reason::InvalidBody),
        ];
        for (body, want) in cases {
            assert_eq!(reason(parse(chat(), JSON, body)).0, *want, "{}", String::from_utf8_lossy(body));
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

    fn limits(max_tokens: Option<u64>, stream: bool) -> RuleLimits {
        RuleLimits { max_tokens, stream }
    }

    fn apply(body: &[u8], l: RuleLimits) -> Result<Option<Vec<u8>>, Denial> {
        parse(chat(), JSON, body).unwrap().apply_limits(chat(), &l, body)
    }

    #[test]
    fn stream_false_refuses_streaming() {
        let d = apply(br#"{"model":"m","stream":true}"#, limits(None, false)).unwrap_err();
        assert_eq!(d.reason, Reason::StreamNotAllowed);
        assert_eq!(apply(br#"{"model":"m","stream":false}"#, limits(None, false)).unwrap(), None);
    }

    #[test]
    fn max_tokens_caps_both_chat_fields() {
        for body in [&br#"{"model":"m","max_tokens":2000}"#[..], br#"{"model":"m","max_completion_tokens":1025}"#] {
            assert_eq!(apply(body, limits(Some(1024), true)).unwrap_err().reason, Reason::MaxTokensExceeded);
        }
        assert_eq!(apply(br#"{"model":"m","max_tokens":1024}"#, limits(Some(1024), true)).unwrap(), None);
        for body in [
            &br#"{"model":"m","max_tokens":"5000"}"#[..],
            br#"{"model":"m","max_tokens":-1}"#,
            br#"{"model":"m","max_tokens":10.5}"#,
        ] {
            assert_eq!(apply(body, limits(Some(1024), true)).unwrap_err().reason, Reason::InvalidBody);
        }
    }

    #[test]
    fn an_absent_limit_is_set_to_the_cap_and_nothing_else_changes() {
        let body = br#" {"model":"m","messages":[{"role":"user","content":"hi \u00e9"}]}"#;
        let out = apply(body, limits(Some(64), true)).unwrap().unwrap();
        assert_eq!(
            out,
            br#" {"max_completion_tokens":64,"model":"m","messages":[{"role":"user","content":"hi \u00e9"}]}"#.to_vec()
        );
        let out = apply(br#"{"model":"m","max_tokens":null}"#, limits(Some(64), true)).unwrap().unwrap();
        assert_eq!(out, br#"{"model":"m","max_tokens":64}"#.to_vec());
    }

    #[test]
    fn anthropic_messages_get_max_tokens() {
        let ep = Api::Anthropic.classify("POST", "/v1/messages").unwrap();
        let body = br#"{"model":"claude","messages":[]}"#;
        let out = parse(ep, JSON, body).unwrap().apply_limits(ep, &limits(Some(10), true), body).unwrap().unwrap();
        assert_eq!(out, br#"{"max_tokens":10,"model":"claude","messages":[]}"#.to_vec());
    }

    #[test]
    fn embeddings_have_no_token_field() {
        let ep = Api::OpenAi.classify("POST", "/v1/embeddings").unwrap();
        let body = br#"{"model":"e","input":"x"}"#;
        assert_eq!(parse(ep, JSON, body).unwrap().apply_limits(ep, &limits(Some(10), true), body).unwrap(), None);
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
        let ep = Api::OpenAi.classify("POST", "/v1/audio/transcriptions").unwrap();
        let ct = Some("multipart/form-data; boundary=XyZ");
        let ok = form(&[
            ("form-data; name=\"file\"; filename=\"a.wav\"", "RIFF...."),
            ("form-data; name=\"model\"", "whisper-1"),
        ]);
        assert_eq!(parse(ep, ct, &ok).unwrap().model, "whisper-1");
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
}
