//! What every api's spec is made of: the [`Spec`] each provider module
//! fills in, its [`Endpoint`]s and where they name a model, and what the
//! api's hooks return. Below every provider module and the [`Api`]
//! dispatch that names them.
//!
//! [`Api`]: crate::api::Api

use serde::Serialize;
use serde_json::Value;

use crate::body::json::{Path, Step};

/// Everything modelgate knows of one api.
pub struct Spec {
    pub name: &'static str,
    pub endpoints: &'static [Endpoint],
    /// Headers the api's SDK sends its API key in, besides
    /// `authorization: Bearer` (read as the JWT-SVID's carriers).
    pub sdk_key_headers: &'static [&'static str],
    /// `authorization` schemes the api's SDKs send that carry no identity
    /// (Bedrock's SigV4 signature): stripped like every carrier, not read.
    pub signature_schemes: &'static [&'static str],
    /// The header and value prefix a provider key goes in by default.
    pub key_header: (&'static str, &'static str),
    /// Headers the api requires, added when the caller sent none.
    pub required_headers: &'static [(&'static str, &'static str)],
    /// Headers that choose which account, organization or project the
    /// provider's credential acts for: they belong to the gateway (set them
    /// with the provider's `headers`), never to the workload.
    pub account_headers: &'static [&'static str],
    /// The api's own error body, so its SDK raises its usual typed error.
    pub error_body: fn(status: u16, code: &str, message: &str) -> Value,
    /// Headers that go with it (Bedrock's error type).
    pub error_headers: fn(status: u16) -> Vec<(String, String)>,
    /// Usage from a non-streaming JSON response.
    pub usage: fn(&Value) -> Option<Usage>,
    /// The shape of the api's model listing.
    pub listing: Listing,
    /// A model's name as the rules know it, from a body's or a listing's
    /// spelling (Gemini's `models/…`).
    pub model_name: fn(&str) -> &str,
    /// The one path segment (from 1) that may hold percent-encoding: the
    /// model id Bedrock's SDKs encode.
    pub encoded_segment: Option<usize>,
    /// What a name the request gives (in its path or body, own or nested)
    /// selects in the provider's namespace, given the provider's
    /// `deployments`: rules decide on the model it runs, never the alias.
    pub resolve: fn(name: &str, deployments: &[(String, String)]) -> Selects,
    /// Request headers that name a model the provider runs besides the
    /// request's own (Azure's image-generation tool deployment): each is
    /// decided like a nested model, and it names the model of a tool that
    /// names none in the body.
    pub model_headers: &'static [&'static str],
    /// The model id a capture of [`ModelAt::EncodedCapture`] holds,
    /// decoded once (Bedrock's SDKs percent-encode it).
    pub decode_model: fn(raw: &str) -> Result<String, Unreadable>,
    /// The provider's `deployments`, when the api takes them.
    pub deployments: Option<Deployments>,
    /// For apis whose paths name the project and location a call acts in
    /// (Vertex): the provider then has a `project` (required) and
    /// `locations`, and this checks a request's captures against them.
    pub scope: Option<InScope>,
    /// The api's workload identity federation, as its SDK speaks it: a
    /// `token_exchange` credential's `profile` of the api's name.
    pub federation: Option<Federation>,
    /// The model one of the api's own spellings of a model id stands for
    /// (a fine-tune, a version suffix, a region prefix): deny rules match
    /// it too. Applied api after api, in [`crate::api::Api::ALL`]'s order.
    pub base_model: fn(&str) -> &str,
    /// What one event of the api's streamed responses says of usage
    /// (`frame`: the AWS eventstream frame's `:event-type`); `None` for an
    /// event that is none of the api's.
    pub stream_event: for<'v> fn(event: &'v Value, frame: Option<&str>) -> Option<StreamEvent<'v>>,
}

impl Spec {
    /// Whether the api's streams report usage only when asked (OpenAI's
    /// `stream_options.include_usage`): the provider may then take
    /// `include_usage`.
    pub fn asks_stream_usage(&self) -> bool {
        self.endpoints.iter().any(|e| e.stream_usage.is_some())
    }

    /// Whether the api's requests are JSON-RPC messages (an MCP server's):
    /// its providers take a `session_key`, its rules tools and methods.
    pub fn speaks_jsonrpc(&self) -> bool {
        self.endpoints.iter().any(|e| e.model == ModelAt::Message)
    }

    /// Whether the api's requests have a field naming the end user: the
    /// provider may then take `identity_to_provider`.
    pub fn names_end_user(&self) -> bool {
        self.endpoints.iter().any(|e| !e.end_user.is_empty())
    }
}

/// A name the api cannot read as a model id: the audit detail and the
/// message (refused as `invalid_path`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreadable {
    pub detail: &'static str,
    pub message: &'static str,
}

/// For apis whose model ids arrive as sent.
pub(crate) fn verbatim(raw: &str) -> Result<String, Unreadable> {
    Ok(raw.to_string())
}

/// What a provider's `deployments` are for its api.
#[derive(Clone, Copy, Debug)]
pub struct Deployments {
    /// Every request names a deployment: the provider must map them.
    pub required: bool,
    /// Whether `name` is one a request can select a model by.
    pub valid: fn(name: &str) -> bool,
    /// What such a name is, for the configuration's errors.
    pub what: &'static str,
}

/// Whether a request's captures name only the provider's `project` and
/// one of its `locations` (any, when it lists none).
pub type InScope = fn(&Captures, project: Option<&str>, locations: &[String]) -> Result<(), OutOfScope>;

/// A request's path names a project or location the provider's credential
/// does not act in (refused as `endpoint_not_allowed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutOfScope {
    /// `project` or `location`.
    pub what: &'static str,
    pub value: String,
    pub detail: &'static str,
}

/// How a `token_exchange` asks for its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// RFC 8693: `subject_token` + `subject_token_type`.
    TokenExchange,
    /// RFC 7523: `assertion`.
    JwtBearer,
}

/// How a `token_exchange` encodes its request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-www-form-urlencoded`, as the RFCs define.
    Form,
    /// A JSON object of strings (OpenAI, Anthropic).
    Json,
}

/// A provider's workload identity federation, as its SDK speaks it.
#[derive(Clone, Copy, Debug)]
pub struct Federation {
    pub authority: &'static str,
    pub path: &'static str,
    pub grant: Grant,
    pub encoding: Encoding,
    pub exchange_headers: &'static [(&'static str, &'static str)],
    pub with_token: &'static [(&'static str, &'static str)],
    /// Parameters every exchange must carry (from `params` or the caller's
    /// account): checked when the config loads.
    pub required: &'static [&'static str],
}

/// What one event of a streamed response says.
#[derive(Debug, Default)]
pub struct StreamEvent<'v> {
    /// The model that served the request.
    pub model: Option<&'v str>,
    pub counts: Counts,
    /// The stream's last event.
    pub last: bool,
    /// An event carried inside this one (Bedrock's invoke chunks), read
    /// next as one of the same api's.
    pub inner: Option<Value>,
}

/// The token counts an event reports.
#[derive(Debug, Default, PartialEq, Eq)]
pub enum Counts {
    #[default]
    Nothing,
    /// Everything counted so far: replaces what earlier events said.
    Whole(Usage),
    /// Running totals of some counts: each present one replaces its own.
    Cumulative { input: Option<u64>, output: Option<u64> },
}

/// Counts a whole usage replaces, when the event has one.
pub(crate) fn whole(usage: Option<Usage>) -> Counts {
    usage.map_or(Counts::Nothing, Counts::Whole)
}

/// For apis with no spelling of their own.
pub(crate) fn no_spelling(name: &str) -> &str {
    name
}

/// A value that is one path segment, as written in a URL.
pub fn is_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What a name a request gives selects, in the provider's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selects {
    /// The model itself.
    Model,
    /// An alias of this model: a deployment, an inference profile, an ARN.
    Alias(String),
    /// A name that selects something no rule can be decided on (an
    /// unmapped deployment or ARN): refused, with this detail.
    Unmapped(&'static str),
}

/// For apis whose requests name models directly.
pub(crate) fn model_itself(_name: &str, _deployments: &[(String, String)]) -> Selects {
    Selects::Model
}

/// A configured `deployments` entry for `name`, if any.
pub(crate) fn deployment<'d>(name: &str, deployments: &'d [(String, String)]) -> Option<&'d str> {
    deployments.iter().find(|(d, _)| d == name).map(|(_, model)| model.as_str())
}

/// How an api lists its models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    /// `{"data":[{"id":…},…]}` (OpenAI, Anthropic, Azure).
    Data,
    /// `{"models":[{"name":"models/…"},…]}` (Gemini).
    Models,
}

pub(crate) fn no_headers(_status: u16) -> Vec<(String, String)> {
    Vec::new()
}

pub(crate) fn same_name(name: &str) -> &str {
    name
}

/// How an endpoint's request carries its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// A JSON object.
    Json,
    /// A JSON object, also when the request names no content type.
    JsonByDefault,
    /// `multipart/form-data`.
    Multipart,
    /// No body.
    None,
}

/// Where an endpoint names its model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelAt {
    /// A string member of the JSON body (or a multipart field of that name).
    Body(Path),
    /// A body member naming a model of one publisher: the model is the
    /// prefix and the value (Vertex's Anthropic token counting).
    BodyOf(Path, &'static str),
    /// A capture of the path pattern.
    Capture(&'static str),
    /// A capture the SDKs percent-encode (Bedrock's model id: `:` and `/`
    /// of ARNs), decoded once by the spec's `decode_model`.
    EncodedCapture(&'static str),
    /// Vertex: `{publisher}/{model}` from the two captures.
    Publisher(&'static str, &'static str),
    /// Nowhere: the model listing, which modelgate filters.
    Listing,
    /// The request is a JSON-RPC message (an MCP server's): what it asks
    /// for — a tool, a resource, a prompt, a method — is decided, not a model.
    Message,
}

/// What makes a request stream its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamAt {
    /// Any of these switches in the body (or the multipart field of the
    /// path's last name).
    Body(&'static [StreamSwitch]),
    /// The endpoint always streams.
    Always,
    /// The endpoint never streams.
    Never,
}

/// One way a request body switches streaming on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamSwitch {
    /// A boolean member: `true` streams.
    Flag(Path),
    /// A string member: this value streams (any other known value does not).
    Equals(Path, &'static str, &'static [&'static str]),
}

/// One endpoint of an api.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    /// The path pattern: literal segments, and `{name}` captures of one
    /// whole segment or of a segment's part before a `:` (`{model}:generateContent`).
    pub path: &'static str,
    pub body: BodyFormat,
    pub model: ModelAt,
    pub stream: StreamAt,
    /// Request fields that bound the output tokens; `limits.max_tokens`
    /// caps each that is present.
    pub max_tokens: &'static [Path],
    /// Where the cap is written when none of `max_tokens` is present;
    /// `None` for endpoints that generate no tokens (embeddings, …).
    pub max_tokens_default: Option<Path>,
    /// Members that multiply the output a token cap bounds (`n`,
    /// `best_of`): the request may produce cap × the largest of them.
    pub multipliers: &'static [Path],
    /// Members that would make the provider use a model modelgate cannot
    /// decide (a router's fallback list, a stored prompt's own model): a
    /// request carrying one is refused, with the detail given.
    pub refuse: &'static [(Path, &'static str)],
    /// Tool types (in `tools[]`) that run a model of their own: one without
    /// a `model` would run the provider's default, which no rule decided —
    /// refused (`tool_model_missing`).
    pub tool_models: &'static [&'static str],
    /// Members holding conversation history: models named inside them were
    /// used before, and are not decided again. Every other member named
    /// `model`, at any depth, is a model the request can make the provider
    /// use, and is decided like the request's own.
    pub history: &'static [Path],
    /// The query parameters the endpoint takes; every other one is removed
    /// before the request goes on (and a `model` parameter is refused).
    pub query: &'static [&'static str],
    /// Where a streaming request asks for its usage in the stream (OpenAI's
    /// `stream_options.include_usage`), for providers with `include_usage`.
    pub stream_usage: Option<Path>,
    /// Every field where the provider records the end user a request is
    /// for (OpenAI's `safety_identifier` and `user`, Anthropic's
    /// `metadata.user_id`): a provider with `identity_to_provider` puts the
    /// workload in each, over whatever the request said there.
    pub end_user: &'static [Path],
}

/// The values a path pattern captured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captures(Vec<(&'static str, String)>);

impl Captures {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

impl Endpoint {
    /// Whether `method` and `path` (query and provider prefix removed) are
    /// this endpoint, and what the pattern captured. Literal segments match
    /// exactly (case included); a capture takes one non-empty segment, or
    /// the part of one before the pattern's `:suffix`.
    pub fn matches(&self, method: &str, path: &str) -> Option<Captures> {
        if method != self.method {
            return None;
        }
        matches_pattern(self.path, path).map(Captures)
    }
}

/// `path` against a pattern: the captured values, or `None`.
pub(super) fn matches_pattern<'p>(pattern: &'p str, path: &str) -> Option<Vec<(&'p str, String)>> {
    let mut captures = Vec::new();
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(captures),
            (Some(w), Some(g)) => {
                let Some(name) = w.strip_prefix('{') else {
                    if w != g {
                        return None;
                    }
                    continue;
                };
                let (name, suffix) = name.split_once('}')?;
                let value = g.strip_suffix(suffix)?;
                if value.is_empty() || (!suffix.is_empty() && value.contains(':')) {
                    return None;
                }
                captures.push((name, value.to_string()));
            }
            _ => return None,
        }
    }
}

/// Token usage as the audit record reports it, whatever the api called it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    /// Of the input, the tokens read from the provider's prompt cache
    /// (billed at `cached_input` under a USD budget), when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
    /// Of the input, the tokens written to the prompt cache (billed at
    /// `cache_write`), when the provider says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
}

/// What endpoints share unless they say otherwise.
pub const NO_ENDPOINT: Endpoint = Endpoint {
    method: "POST",
    path: "",
    body: BodyFormat::Json,
    model: ModelAt::Listing,
    stream: StreamAt::Never,
    max_tokens: &[],
    max_tokens_default: None,
    multipliers: &[],
    refuse: &[],
    tool_models: &[],
    history: &[],
    query: &[],
    stream_usage: None,
    end_user: &[],
};

/// `GET /v1/models`, the same for OpenAI's and Anthropic's apis.
pub const MODEL_LIST: Endpoint = Endpoint {
    method: "GET",
    path: "/v1/models",
    body: BodyFormat::None,
    query: &["limit", "after", "after_id", "before_id"],
    ..NO_ENDPOINT
};

pub const MODEL: Path = &[Step::Key("model")];
/// `"stream": true`.
pub const STREAM: &[StreamSwitch] = &[StreamSwitch::Flag(&[Step::Key("stream")])];
/// Every member named `model`, at any depth.
pub const ANY_MODEL: Path = &[Step::Deep("model")];
/// Each element of a request's `tools`, its `type` and its `model`.
pub const TOOLS: Path = &[Step::Key("tools"), Step::Each];
pub const TOOL_TYPES: Path = &[Step::Key("tools"), Step::Each, Step::Key("type")];
pub const TOOL_MODELS: Path = &[Step::Key("tools"), Step::Each, Step::Key("model")];

/// A non-negative integer member of `v`, if it is one.
pub(crate) fn count(v: &Value, name: &str) -> Option<u64> {
    v.get(name).and_then(Value::as_u64)
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
