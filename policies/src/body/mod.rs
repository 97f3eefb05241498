//! Request bodies: the model, the stream flag, and the token limit, read
//! strictly (SPEC §3). What cannot be read with certainty is refused, so a
//! workload cannot show modelgate one model and the provider another.
//!
//! A body is never re-serialized: the provider receives the bytes the
//! workload sent, with the token cap spliced in where one was needed
//! ([`Edit`]).

mod detectors;
pub mod guard;
pub mod json;
pub mod multipart;

use crate::api::{BodyFormat, Endpoint, ModelAt, StreamAt, StreamSwitch, ANY_MODEL, TOOLS, TOOL_MODELS, TOOL_TYPES};
use crate::body::json::{Document, JsonError, Kind, Path, Value};
use crate::config::RuleLimits;
use crate::reason::{Denial, Reason};

/// What the body says, as far as policy is concerned.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestBody {
    /// The model the body names (`None` when the endpoint names it elsewhere).
    pub model: Option<String>,
    /// Other models the body can make the provider use (a tool's image
    /// model, a moderation model, …), each to be decided too.
    pub other_models: Vec<String>,
    pub stream: bool,
    /// The token-bounding fields present, in the endpoint's order.
    tokens: Vec<TokenField>,
    /// Where the cap goes when no token field is present.
    insert: Option<Insert>,
    /// How many outputs the request asks for (`n`, `best_of`), at least 1.
    multiplier: u64,
    /// The endpoint bounds its output only where the body says so (a
    /// Bedrock invoke body is the model family's own): a capped workload
    /// must send a bound.
    bound_required: bool,
    /// Where a streaming request's usage switch goes (OpenAI's
    /// `stream_options.include_usage`) when it has none.
    stream_usage: Option<Insert>,
    /// Where the end user a request is for goes (each of the provider's
    /// fields).
    end_user: Vec<EndUser>,
    /// A tool that runs a model of its own and names none.
    tool_without_model: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum EndUser {
    /// The request named one: its value at `start..end` is replaced.
    Replace {
        start: usize,
        end: usize,
    },
    Insert(Insert),
}

/// At most this many distinct other models are decided in one request.
const MAX_OTHER_MODELS: usize = 16;

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
        // Bedrock reads a body sent without a content type as JSON (its
        // `contentType` defaults to application/json; boto3 sends none).
        BodyFormat::JsonByDefault => parse_json(endpoint, Some(content_type.unwrap_or("application/json")), body),
        BodyFormat::Multipart => parse_multipart(endpoint, content_type, body),
        BodyFormat::None if body.is_empty() => Ok(RequestBody::empty()),
        BodyFormat::None => Err(invalid("unexpected_body", "this endpoint takes no request body")),
    }
}

fn last(path: Path) -> &'static str {
    match path.last() {
        Some(json::Step::Key(k)) => k,
        _ => "",
    }
}

/// JSON is read only as UTF-8 (RFC 8259): a body declared in another
/// charset could spell one model for modelgate and another for a provider
/// that honours the charset.
fn check_json_type(content_type: Option<&str>) -> Result<(), Denial> {
    let wrong = || invalid("content_type", "the request body must be sent as content-type: application/json");
    let media = multipart::media_type(content_type.unwrap_or("")).map_err(|_| wrong())?;
    if media.essence != "application/json" {
        return Err(wrong());
    }
    for (name, value) in &media.params {
        if name != "charset" {
            return Err(wrong());
        }
        if !value.eq_ignore_ascii_case("utf-8") {
            return Err(Denial::new(
                Reason::UnsupportedEncoding,
                format!("JSON request bodies are read as UTF-8 only, not charset {:?}", bounded_name(value)),
            )
            .with_detail("charset"));
        }
    }
    Ok(())
}

/// The indices of each group of paths in one scan's list.
struct Layout {
    model: Option<usize>,
    stream: usize,
    tokens: usize,
    parent: Option<usize>,
    multipliers: usize,
    refuse: usize,
    history: usize,
    any_model: usize,
    /// `tools[*]`, their `type`s and their `model`s.
    tools: usize,
    /// The stream options object and its usage switch.
    stream_usage: Option<usize>,
    /// Each end-user field's parent (or itself, for a top-level field) and
    /// it, in pairs.
    end_user: usize,
}

fn parse_json(endpoint: &Endpoint, content_type: Option<&str>, body: &[u8]) -> Result<RequestBody, Denial> {
    check_json_type(content_type)?;
    let switches = match endpoint.stream {
        StreamAt::Body(switches) => switches,
        _ => &[],
    };
    let mut paths: Vec<Path> = vec![&[]];
    let at = |paths: &mut Vec<Path>, more: &[Path]| {
        let i = paths.len();
        paths.extend_from_slice(more);
        i
    };
    let model = match endpoint.model {
        ModelAt::Body(p) | ModelAt::BodyOf(p, _) => Some(at(&mut paths, &[p])),
        _ => None,
    };
    let switch_paths: Vec<Path> = switches.iter().map(StreamSwitch::path).collect();
    let layout = Layout {
        model,
        stream: at(&mut paths, &switch_paths),
        tokens: at(&mut paths, endpoint.max_tokens),
        parent: match endpoint.max_tokens_default {
            Some(p) if p.len() == 2 => Some(at(&mut paths, &[&p[..1]])),
            _ => None,
        },
        multipliers: at(&mut paths, endpoint.multipliers),
        refuse: at(&mut paths, &endpoint.refuse.iter().map(|(p, _)| *p).collect::<Vec<_>>()),
        history: at(&mut paths, endpoint.history),
        any_model: at(&mut paths, &[ANY_MODEL]),
        tools: at(&mut paths, &[TOOLS, TOOL_TYPES, TOOL_MODELS]),
        stream_usage: endpoint.stream_usage.map(|p| at(&mut paths, &[&p[..1], p])),
        end_user: at(&mut paths, &endpoint.end_user.iter().flat_map(|p| [&p[..1], *p]).collect::<Vec<Path>>()),
    };

    let doc = json::scan(body, &paths).map_err(json_denial)?;
    let model = match layout.model {
        Some(i) => Some(read_model(doc.get(i))?),
        None => None,
    };
    for (j, (_, detail)) in endpoint.refuse.iter().enumerate() {
        if doc.get(layout.refuse + j).is_some() {
            return Err(Denial::new(
                Reason::AmbiguousModel,
                format!("the request body's {detail:?} could make the provider use another model than the one modelgate decides"),
            )
            .with_detail(*detail));
        }
    }
    let tool_without_model = tool_without_model(&doc, &layout, endpoint.tool_models);
    let other_models = other_models(&doc, &layout, endpoint.history.len())?;
    let mut stream = endpoint.stream == StreamAt::Always;
    for (j, switch) in switches.iter().enumerate() {
        stream |= switch.read(doc.get(layout.stream + j))?;
    }
    let tokens = endpoint
        .max_tokens
        .iter()
        .enumerate()
        .filter_map(|(j, p)| doc.get(layout.tokens + j).map(|v| (last(p), v)))
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
    let mut multiplier = 1;
    for (j, p) in endpoint.multipliers.iter().enumerate() {
        let Some(v) = doc.get(layout.multipliers + j).filter(|v| !v.is_null()) else { continue };
        let n = v
            .as_u64()
            .filter(|n| *n >= 1)
            .ok_or_else(|| invalid("multiplier_not_integer", format!("{:?} must be a positive integer", last(p))))?;
        multiplier = multiplier.max(n);
    }
    let insert = insertion(&doc, endpoint.max_tokens_default, layout.parent)?;
    let bound_required = !endpoint.max_tokens.is_empty() && endpoint.max_tokens_default.is_none();
    // Where `include_usage: true` would go, when the request streams and
    // says nothing of its usage.
    let stream_usage = match (endpoint.stream_usage, layout.stream_usage) {
        (Some(path), Some(i)) if stream && doc.get(i + 1).is_none() => insertion(&doc, Some(path), Some(i))?,
        _ => None,
    };
    // Where the workload's identity goes for the provider's abuse reports:
    // over whatever the request said there, or inserted.
    let mut end_user = Vec::with_capacity(endpoint.end_user.len());
    for (j, path) in endpoint.end_user.iter().enumerate() {
        let i = layout.end_user + 2 * j;
        match doc.get(i + 1) {
            Some(v) => end_user.push(EndUser::Replace { start: v.found.start, end: v.found.end }),
            None => end_user.extend(insertion(&doc, Some(path), Some(i))?.map(EndUser::Insert)),
        }
    }
    Ok(RequestBody {
        model,
        other_models,
        stream,
        tokens,
        insert,
        multiplier,
        bound_required,
        stream_usage,
        end_user,
        tool_without_model,
    })
}

/// The first tool of a type that runs a model of its own and names none
/// (it would run the provider's default, unless a header names it).
fn tool_without_model(doc: &Document<'_>, layout: &Layout, kinds: &[&str]) -> Option<String> {
    if kinds.is_empty() {
        return None;
    }
    let models: Vec<usize> = doc.all(layout.tools + 2).map(|m| m.found.start).collect();
    doc.all(layout.tools + 1).find_map(|kind| {
        let name = kind.as_str().filter(|k| kinds.contains(&k.as_ref()))?;
        let at = kind.found.start;
        let tool = doc.all(layout.tools).find(|t| (t.found.start..t.found.end).contains(&at));
        let named = tool.is_some_and(|t| models.iter().any(|m| (t.found.start..t.found.end).contains(m)));
        (!named).then(|| name.into_owned())
    })
}

impl RequestBody {
    /// A tool would run the provider's default model: refused unless
    /// `named_elsewhere` (a header names its model).
    pub fn check_tool_models(&self, named_elsewhere: bool) -> Result<(), Denial> {
        match &self.tool_without_model {
            Some(name) if !named_elsewhere => Err(Denial::new(
                Reason::AmbiguousModel,
                format!("the {name:?} tool names no model: it would run the provider's default, which no rule decided; name its model"),
            )
            .with_detail("tool_model_missing")),
            _ => Ok(()),
        }
    }
}

/// Every member named `model` outside the request's own model and its
/// history: each a model the provider could be made to use.
fn other_models(doc: &Document<'_>, layout: &Layout, history: usize) -> Result<Vec<String>, Denial> {
    let own = layout.model.and_then(|i| doc.get(i)).map(|v| v.found.start);
    let history: Vec<(usize, usize)> =
        (0..history).flat_map(|j| doc.all(layout.history + j)).map(|v| (v.found.start, v.found.end)).collect();
    let mut out: Vec<String> = Vec::new();
    for v in doc.all(layout.any_model) {
        let at = v.found.start;
        if Some(at) == own || history.iter().any(|(start, end)| (*start..*end).contains(&at)) {
            continue;
        }
        let model = match (v.kind(), v.as_str()) {
            (Kind::String, Some(m)) if !m.is_empty() && !m.chars().any(char::is_control) => m.into_owned(),
            _ => {
                return Err(Denial::new(Reason::AmbiguousModel, "a nested \"model\" is not a model name")
                    .with_detail("nested_model_not_string"))
            }
        };
        if !out.contains(&model) {
            if out.len() == MAX_OTHER_MODELS {
                return Err(Denial::new(Reason::AmbiguousModel, "the request body names too many models")
                    .with_detail("too_many_models"));
            }
            out.push(model);
        }
    }
    Ok(out)
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
        JsonError::NumberOutOfRange => {
            invalid("number_out_of_range", "the request body holds a number too large for a double")
        }
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

/// `multipart/form-data` (audio transcriptions and translations), read by
/// the strict reader of [`multipart`]: the model is exactly one text field
/// (no file name, no content type but text/plain).
fn parse_multipart(endpoint: &Endpoint, content_type: Option<&str>, body: &[u8]) -> Result<RequestBody, Denial> {
    let form_error = |e: multipart::MultipartError| {
        invalid(&format!("multipart_{}", e.0), "the multipart body is not a form modelgate can read with certainty")
    };
    let boundary = multipart::boundary(content_type.unwrap_or("")).map_err(|e| match e.0 {
        "content_type" | "media_type" => {
            invalid("content_type", "the request body must be sent as content-type: multipart/form-data")
        }
        _ => form_error(e),
    })?;
    let fields = multipart::fields(body, &boundary).map_err(|e| match e.0 {
        "repeated_field" => Denial::new(Reason::AmbiguousModel, "the form names a field more than once")
            .with_detail("multipart_repeated_field"),
        _ => form_error(e),
    })?;
    let model_field = match endpoint.model {
        ModelAt::Body(p) | ModelAt::BodyOf(p, _) => last(p),
        _ => "",
    };
    let mut result = RequestBody::empty();
    for field in &fields {
        if field.name == model_field {
            let text_only = field.filename.is_none()
                && field
                    .content_type
                    .as_deref()
                    .is_none_or(|ct| multipart::media_type(ct).is_ok_and(|m| m.essence == "text/plain"));
            let model = std::str::from_utf8(field.value)
                .ok()
                .filter(|_| text_only)
                .ok_or_else(|| invalid("multipart_model", "the form's \"model\" must be a plain UTF-8 text field"))?;
            if model.chars().any(char::is_control) {
                return Err(invalid("model_control_chars", "the form's \"model\" holds control characters"));
            }
            result.model = Some(model.to_string()).filter(|m| !m.is_empty());
        } else if let StreamAt::Body(switches) = endpoint.stream {
            if switches.iter().any(|s| last(s.path()) == field.name) {
                result.stream |= match field.value {
                    b"true" => true,
                    b"false" => false,
                    _ => return Err(invalid("stream_not_boolean", "the form's \"stream\" must be true or false")),
                };
            }
        }
    }
    if result.model.is_none() {
        return Err(Denial::new(Reason::ModelMissing, "the form has no \"model\" field").with_detail("missing"));
    }
    Ok(result)
}

impl StreamSwitch {
    fn path(&self) -> Path {
        match *self {
            StreamSwitch::Flag(p) | StreamSwitch::Equals(p, _, _) => p,
        }
    }

    /// Whether this switch is on. Lenient upstream parsers read `"true"` or
    /// 1 as true; anything but the documented values is refused rather than
    /// guessed at.
    fn read(&self, v: Option<Value<'_>>) -> Result<bool, Denial> {
        let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(false) };
        let name = last(self.path());
        match *self {
            StreamSwitch::Flag(_) => {
                v.as_bool().ok_or_else(|| invalid("stream_not_boolean", format!("{name:?} must be true or false")))
            }
            StreamSwitch::Equals(_, on, off) => match v.as_str() {
                Some(s) if s == on => Ok(true),
                Some(s) if off.contains(&s.as_ref()) => Ok(false),
                _ => Err(invalid("stream_switch", format!("{name:?} has a value modelgate does not know"))),
            },
        }
    }
}

impl RequestBody {
    fn empty() -> RequestBody {
        RequestBody {
            model: None,
            other_models: vec![],
            stream: false,
            tokens: vec![],
            insert: None,
            multiplier: 1,
            bound_required: false,
            stream_usage: None,
            end_user: Vec::new(),
            tool_without_model: None,
        }
    }
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
        // Each output may produce its own max: the cap bounds the product.
        let mut per_output = 0;
        for field in &self.tokens {
            match field.value {
                TokenValue::Count(n) if n > cap => {
                    return Err(Denial::new(
                        Reason::MaxTokensExceeded,
                        format!("{} {n} is above this workload's cap of {cap}", field.name),
                    )
                    .with_detail(format!("{}>{cap}", field.name)));
                }
                TokenValue::Count(n) => per_output = per_output.max(n),
                TokenValue::Null => {
                    edits.push(Edit {
                        at: field.start,
                        remove: field.end - field.start,
                        insert: cap.to_string().into_bytes(),
                    });
                    per_output = cap;
                }
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
                per_output = cap;
            } else if self.bound_required {
                return Err(Denial::new(
                    Reason::MaxTokensExceeded,
                    format!("this workload's output is capped at {cap} tokens: the request must bound its output (max_tokens or the model family's own field)"),
                )
                .with_detail("max_tokens_missing"));
            }
        }
        if per_output.saturating_mul(self.multiplier) > cap {
            return Err(self.multiplied(per_output, cap));
        }
        edits.sort_by_key(|e| e.at);
        Ok(edits)
    }

    /// The edit that asks a streaming response for its usage, when the
    /// request streams and did not say (a provider's `include_usage`).
    pub fn ask_stream_usage(&self) -> Option<Edit> {
        self.stream_usage.as_ref().map(|i| i.edit("true"))
    }

    /// The edit that names the end user (`value`, a JSON-safe string) in
    /// the provider's field, replacing what the workload put there.
    pub fn name_end_user(&self, value: &str) -> Vec<Edit> {
        let quoted = format!("\"{value}\"");
        let mut edits: Vec<Edit> = Vec::with_capacity(self.end_user.len());
        for field in &self.end_user {
            let edit = match field {
                EndUser::Replace { start, end } => {
                    Edit { at: *start, remove: end - start, insert: quoted.clone().into_bytes() }
                }
                EndUser::Insert(i) => i.edit(&quoted),
            };
            // Two members inserted in one object: one edit, comma-joined.
            match edits.iter_mut().find(|e| e.remove == 0 && edit.remove == 0 && e.at == edit.at) {
                Some(joined) => {
                    if joined.insert.last() != Some(&b',') {
                        joined.insert.push(b',');
                    }
                    joined.insert.extend(edit.insert);
                }
                None => edits.push(edit),
            }
        }
        edits.sort_by_key(|e| e.at);
        edits
    }

    /// The most tokens the request can make the provider generate once the
    /// rule's limits apply (`cap`: the rule's `max_tokens`, written where
    /// the request sent no bound): the largest bound field times the
    /// outputs asked for. `None` when nothing bounds it.
    pub fn output_bound(&self, cap: Option<u64>) -> Option<u64> {
        let mut per_output: Option<u64> = None;
        for field in &self.tokens {
            let n = match field.value {
                TokenValue::Count(n) => n,
                TokenValue::Null => cap?,
                TokenValue::Invalid => return None,
            };
            per_output = Some(per_output.map_or(n, |p| p.max(n)));
        }
        let per_output = match per_output {
            Some(p) => p,
            None => cap?,
        };
        per_output.checked_mul(self.multiplier)
    }

    fn multiplied(&self, per_output: u64, cap: u64) -> Denial {
        let n = self.multiplier;
        Denial::new(
            Reason::MaxTokensExceeded,
            format!("{n} outputs of up to {per_output} tokens each exceed this workload's cap of {cap}; lower n (or best_of) or set max_tokens to at most {}", cap / n),
        )
        .with_detail(format!("n*max_tokens>{cap}"))
    }
}

impl Insert {
    fn edit(&self, value: impl std::fmt::Display) -> Edit {
        let cap = value;
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
#[path = "mod_tests.rs"]
mod tests;
