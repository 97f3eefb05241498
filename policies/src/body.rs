//! Request bodies: the model, the stream flag, and the token limit, read
//! strictly (SPEC §3). What cannot be read with certainty is refused, so a
//! workload cannot show modelgate one model and the provider another.
//!
//! A body is never re-serialized: the provider receives the bytes the
//! workload sent, with the token cap spliced in where one was needed
//! ([`Edit`]).

use crate::api::{BodyFormat, Endpoint, ModelAt, StreamAt};
use crate::config::RuleLimits;
use crate::json::{self, Document, JsonError, Kind, Path, Value};
use crate::reason::{Denial, Reason};

/// What the body says, as far as policy is concerned.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestBody {
    /// The model the body names (`None` when the endpoint names it elsewhere).
    pub model: Option<String>,
    pub stream: bool,
    /// The token-bounding fields present, in the endpoint's order.
    tokens: Vec<TokenField>,
    /// Where the cap goes when no token field is present.
    insert: Option<Insert>,
}

#[derive(Debug, PartialEq, Eq)]
struct TokenField {
    name: &'static str,
    value: TokenValue,
    start: usize,
    end: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum TokenValue {
    Null,
    Count(u64),
    /// Present, but not a non-negative integer.
    Invalid,
}

/// Where and how the default token field is written.
#[derive(Debug, PartialEq, Eq)]
enum Insert {
    /// Into the object whose `{` is at `brace`: `"name":cap`.
    Member { brace: usize, has_members: bool, name: &'static str },
    /// Into the root object: `"parent":{"name":cap}` (the parent is absent).
    Nested { brace: usize, has_members: bool, parent: &'static str, name: &'static str },
    /// Replace the parent's `null` (at `start..end`) with `{"name":cap}`.
    NullParent { start: usize, end: usize, name: &'static str },
}

/// One change to a body: `remove` bytes at `at` replaced by `insert`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    pub at: usize,
    pub remove: usize,
    pub insert: Vec<u8>,
}

/// The body with `edits` (sorted, not overlapping) applied.
pub fn apply_edits(body: &[u8], edits: &[Edit]) -> Vec<u8> {
    let grow: usize = edits.iter().map(|e| e.insert.len()).sum();
    let mut out = Vec::with_capacity(body.len() + grow);
    let mut from = 0;
    for e in edits {
        let at = e.at.clamp(from, body.len());
        out.extend_from_slice(&body[from..at]);
        out.extend_from_slice(&e.insert);
        from = (at + e.remove).min(body.len());
    }
    out.extend_from_slice(&body[from..]);
    out
}

fn invalid(detail: &str, message: impl Into<String>) -> Denial {
    Denial::new(Reason::InvalidBody, message).with_detail(detail)
}

/// Reads the body of a request to `endpoint`. `content_type` is the
/// request's `content-type` header.
pub fn parse(endpoint: &Endpoint, content_type: Option<&str>, body: &[u8]) -> Result<RequestBody, Denial> {
    match endpoint.body {
        BodyFormat::Json => parse_json(endpoint, content_type, body),
        BodyFormat::Multipart => parse_multipart(endpoint, content_type, body),
        BodyFormat::None if body.is_empty() => {
            Ok(RequestBody { model: None, stream: false, tokens: vec![], insert: None })
        }
        BodyFormat::None => Err(invalid("unexpected_body", "this endpoint takes no request body")),
    }
}

fn media_type(content_type: Option<&str>) -> String {
    content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

fn last(path: Path) -> &'static str {
    match path.last() {
        Some(json::Step::Key(k)) => k,
        _ => "",
    }
}

fn parse_json(endpoint: &Endpoint, content_type: Option<&str>, body: &[u8]) -> Result<RequestBody, Denial> {
    // A provider may read a body by its content type; only JSON is JSON.
    if media_type(content_type) != "application/json" {
        return Err(invalid("content_type", "the request body must be sent as content-type: application/json"));
    }
    // The paths scanned, in this order: the root, the model, the stream
    // flag, the token fields, the default field's parent, other models.
    let mut paths: Vec<Path> = vec![&[]];
    let model_at = match endpoint.model {
        ModelAt::Body(p) => {
            paths.push(p);
            Some(paths.len() - 1)
        }
        _ => None,
    };
    let stream_at = match endpoint.stream {
        StreamAt::Body(p) => {
            paths.push(p);
            Some(paths.len() - 1)
        }
        _ => None,
    };
    let tokens_from = paths.len();
    paths.extend_from_slice(endpoint.max_tokens);
    let parent_at = match endpoint.max_tokens_default {
        Some(p) if p.len() == 2 => {
            paths.push(&p[..1]);
            Some(paths.len() - 1)
        }
        _ => None,
    };
    let others_from = paths.len();
    paths.extend_from_slice(endpoint.other_models);

    let doc = json::scan(body, &paths).map_err(json_denial)?;
    let model = match model_at {
        Some(i) => Some(read_model(doc.get(i))?),
        None => None,
    };
    if let Some(name) =
        endpoint.other_models.iter().enumerate().find_map(|(j, p)| doc.get(others_from + j).map(|_| last(p)))
    {
        return Err(Denial::new(
            Reason::AmbiguousModel,
            format!("the request body names other models in {name:?}; send one \"model\""),
        )
        .with_detail(format!("member_{name}")));
    }
    // Lenient upstream parsers read "true" or 1 as true; anything but a JSON
    // boolean is refused rather than guessed at.
    let stream = match (endpoint.stream, stream_at.and_then(|i| doc.get(i))) {
        (StreamAt::Always, _) => true,
        (_, None) => false,
        (_, Some(v)) if v.is_null() => false,
        (_, Some(v)) => v.as_bool().ok_or_else(|| invalid("stream_not_boolean", "\"stream\" must be true or false"))?,
    };
    let tokens = endpoint
        .max_tokens
        .iter()
        .enumerate()
        .filter_map(|(j, p)| doc.get(tokens_from + j).map(|v| (last(p), v)))
        .map(|(name, v)| TokenField {
            name,
            value: match v.kind() {
                Kind::Null => TokenValue::Null,
                _ => v.as_u64().map_or(TokenValue::Invalid, TokenValue::Count),
            },
            start: v.found.start,
            end: v.found.end,
        })
        .collect();
    let insert = insertion(&doc, endpoint.max_tokens_default, parent_at)?;
    Ok(RequestBody { model, stream, tokens, insert })
}

/// Where the default token field would go.
fn insertion(doc: &Document<'_>, default: Option<Path>, parent_at: Option<usize>) -> Result<Option<Insert>, Denial> {
    let Some(path) = default else { return Ok(None) };
    let root = doc.get(0).map(|v| v.found);
    let Some(root) = root else { return Ok(None) };
    match (path, parent_at) {
        ([_], _) => Ok(Some(Insert::Member { brace: root.start, has_members: root.has_members, name: last(path) })),
        ([json::Step::Key(parent), _], Some(i)) => match doc.get(i) {
            None => {
                Ok(Some(Insert::Nested { brace: root.start, has_members: root.has_members, parent, name: last(path) }))
            }
            Some(v) if v.kind() == Kind::Object => {
                Ok(Some(Insert::Member { brace: v.found.start, has_members: v.found.has_members, name: last(path) }))
            }
            Some(v) if v.is_null() => {
                Ok(Some(Insert::NullParent { start: v.found.start, end: v.found.end, name: last(path) }))
            }
            Some(_) => Err(invalid("not_object", format!("\"{parent}\" must be an object"))),
        },
        _ => Ok(None),
    }
}

fn json_denial(e: JsonError) -> Denial {
    match e {
        JsonError::Syntax => invalid("not_json", "the request body is not valid JSON"),
        JsonError::Encoding => invalid(
            "encoding",
            "the request body is not UTF-8 JSON (a byte-order mark, invalid UTF-8, or a lone surrogate escape)",
        ),
        JsonError::NotAnObject => invalid("not_object", "the request body is not a JSON object"),
        JsonError::TooDeep => {
            invalid("too_deep", format!("the request body nests deeper than {} levels", json::MAX_DEPTH))
        }
        JsonError::TooManyMembers => invalid(
            "too_many_members",
            format!("an object in the request body has more than {} members", json::MAX_MEMBERS),
        ),
        JsonError::Duplicate(name) if name == "model" => {
            Denial::new(Reason::AmbiguousModel, "the request body names \"model\" more than once")
                .with_detail("duplicate_model")
        }
        JsonError::Duplicate(name) => invalid(
            "duplicate_key",
            format!("the request body has the member {:?} more than once in one object", bounded_name(&name)),
        ),
    }
}

fn bounded_name(name: &str) -> String {
    name.chars().take(64).collect()
}

/// The model: a non-empty string without control characters (one could end
/// the name early for some parser).
fn read_model(v: Option<Value<'_>>) -> Result<String, Denial> {
    let missing = || Denial::new(Reason::ModelMissing, "the request body has no \"model\"").with_detail("missing");
    let Some(v) = v else { return Err(missing()) };
    match v.kind() {
        Kind::Null => Err(missing()),
        Kind::String => {
            let model = v.as_str().ok_or_else(missing)?;
            if model.is_empty() {
                return Err(missing());
            }
            if model.chars().any(char::is_control) {
                return Err(invalid("model_control_chars", "the request body's \"model\" holds control characters"));
            }
            Ok(model.into_owned())
        }
        _ => {
            Err(Denial::new(Reason::ModelMissing, "the request body's \"model\" is not a string")
                .with_detail("not_string"))
        }
    }
}

/// `multipart/form-data` (audio transcriptions and translations): exactly
/// one `model` field.
fn parse_multipart(endpoint: &Endpoint, content_type: Option<&str>, body: &[u8]) -> Result<RequestBody, Denial> {
    if media_type(content_type) != "multipart/form-data" {
        return Err(invalid("content_type", "the request body must be sent as content-type: multipart/form-data"));
    }
    let boundary = content_type
        .and_then(|ct| parameter(ct, "boundary"))
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(|| invalid("multipart", "the multipart body has no boundary"))?;
    let fields = multipart_fields(body, boundary.as_bytes())
        .ok_or_else(|| invalid("multipart", "the multipart body is malformed"))?;
    let model_field = match endpoint.model {
        ModelAt::Body(p) => last(p),
        _ => "",
    };
    let mut model: Option<String> = None;
    let mut stream = false;
    for (name, value) in fields {
        if name == model_field {
            if model.is_some() {
                return Err(Denial::new(Reason::AmbiguousModel, "the form names \"model\" more than once")
                    .with_detail("duplicate_model"));
            }
            let text = std::str::from_utf8(value).map_err(|_| invalid("multipart", "the form's model is not UTF-8"))?;
            model = Some(text.to_string());
        } else if name == "stream" {
            stream = value != b"false";
        }
    }
    match model {
        Some(m) if m.chars().any(char::is_control) => {
            Err(invalid("model_control_chars", "the form's \"model\" holds control characters"))
        }
        Some(m) if !m.is_empty() => Ok(RequestBody { model: Some(m), stream, tokens: vec![], insert: None }),
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

/// Linear in `haystack` for the short needles used here (boundaries are at
/// most 72 bytes).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl RequestBody {
    /// Applies the deciding rule's limits: the edits that write the token
    /// cap in (none when nothing must change), or the denial.
    pub fn apply_limits(&self, limits: &RuleLimits) -> Result<Vec<Edit>, Denial> {
        if self.stream && !limits.stream {
            return Err(Denial::new(Reason::StreamNotAllowed, "streaming is not allowed for this workload and model")
                .with_detail("stream"));
        }
        let Some(cap) = limits.max_tokens else { return Ok(Vec::new()) };
        let mut edits = Vec::new();
        for field in &self.tokens {
            match field.value {
                TokenValue::Count(n) if n > cap => {
                    return Err(Denial::new(
                        Reason::MaxTokensExceeded,
                        format!("{} {n} is above this workload's cap of {cap}", field.name),
                    )
                    .with_detail(format!("{}>{cap}", field.name)));
                }
                TokenValue::Count(_) => {}
                TokenValue::Null => edits.push(Edit {
                    at: field.start,
                    remove: field.end - field.start,
                    insert: cap.to_string().into_bytes(),
                }),
                TokenValue::Invalid => {
                    return Err(invalid(
                        "max_tokens_not_integer",
                        format!("{:?} must be a non-negative integer", field.name),
                    ))
                }
            }
        }
        if self.tokens.is_empty() {
            if let Some(insert) = &self.insert {
                edits.push(insert.edit(cap));
            }
        }
        edits.sort_by_key(|e| e.at);
        Ok(edits)
    }
}

impl Insert {
    fn edit(&self, cap: u64) -> Edit {
        let member = |name: &str, has_members: bool| {
            format!("\"{name}\":{cap}{}", if has_members { "," } else { "" }).into_bytes()
        };
        match *self {
            Insert::Member { brace, has_members, name } => {
                Edit { at: brace + 1, remove: 0, insert: member(name, has_members) }
            }
            Insert::Nested { brace, has_members, parent, name } => Edit {
                at: brace + 1,
                remove: 0,
                insert: format!("\"{parent}\":{{\"{name}\":{cap}}}{}", if has_members { "," } else { "" }).into_bytes(),
            },
            Insert::NullParent { start, end, name } => {
                Edit { at: start, remove: end - start, insert: format!("{{\"{name}\":{cap}}}").into_bytes() }
            }
        }
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
