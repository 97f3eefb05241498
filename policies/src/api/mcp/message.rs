//! One JSON-RPC message, read strictly: the strict JSON reader first
//! (repeated names at any depth, bad UTF-8, trailing data — a second
//! message hidden after the first — refused), then the JSON-RPC 2.0 shape,
//! then what the method asks for. Linear in the message.

use serde_json::{Map, Value};

use crate::body::json::{self, JsonError, Step};
use crate::reason::{Denial, Reason};
use crate::util::text::bounded;

/// Longest method name, tool or prompt name, resource URI, `id` string.
pub const MAX_NAME: usize = 1024;

/// What a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A request: it has an `id` and waits for an answer.
    Request,
    /// A notification: no `id`, no answer.
    Notification,
    /// The client answering a request of the server's (sampling,
    /// elicitation, roots): `result` or `error`, no `method`.
    Response,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Notification => "notification",
            Kind::Response => "response",
        }
    }
}

/// What a message asks the server for: what the rules decide on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ask {
    /// `tools/call`: the tool and its arguments (`None`: no arguments).
    Tool { name: String, arguments: Option<Map<String, Value>> },
    /// `resources/read`, `resources/subscribe`, `resources/unsubscribe`.
    Resource(String),
    /// `prompts/get`.
    Prompt(String),
    /// Any other method or notification.
    Method(String),
    /// The client's answer to the server.
    Answer,
}

/// Which listing a request asks for: its answer is cut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    Tools,
    Resources,
    Prompts,
}

impl Listed {
    /// The result member holding the items, and the item member naming each.
    pub fn members(self) -> (&'static str, &'static str) {
        match self {
            Listed::Tools => ("tools", "name"),
            Listed::Resources => ("resources", "uri"),
            Listed::Prompts => ("prompts", "name"),
        }
    }
}

/// A message, read.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub kind: Kind,
    /// The `id`: a string or an integer (`None` for a notification).
    pub id: Option<Value>,
    pub method: Option<String>,
    pub ask: Ask,
    /// The raw bytes of `params.arguments`, as sent (their digest is recorded).
    pub arguments_raw: Option<(usize, usize)>,
    /// Where the `id` is in the body (a listing's is replaced on the way).
    pub id_span: Option<(usize, usize)>,
    /// What else the message makes the server run or send: the prompt or
    /// resource template a `completion/complete` completes (`params.ref`),
    /// the resources a `subscriptions/listen` subscribes to.
    pub refers_to: Vec<Ask>,
}

impl Message {
    /// The listing the request asks for, if it is one that is cut down.
    pub fn listing(&self) -> Option<Listed> {
        match self.method.as_deref() {
            Some("tools/list") if self.kind == Kind::Request => Some(Listed::Tools),
            Some("resources/list") if self.kind == Kind::Request => Some(Listed::Resources),
            Some("prompts/list") if self.kind == Kind::Request => Some(Listed::Prompts),
            _ => None,
        }
    }

    /// The name the request names and which header mirrors it
    /// (the 2026-07-28 `Mcp-Name`).
    pub fn named(&self) -> Option<&str> {
        match &self.ask {
            Ask::Tool { name, .. } => Some(name),
            Ask::Resource(uri) => Some(uri),
            Ask::Prompt(name) => Some(name),
            Ask::Method(_) | Ask::Answer => None,
        }
    }
}

/// Every method a client sends in the revisions modelgate knows: a method
/// that is one of these but for the case of its letters is refused (one
/// server's dispatch may fold case where another's does not).
pub const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/tasks/status",
];

/// Methods decided by name (`tools`, `resources`, `prompts`), never by a
/// rule's `mcp` list.
pub const NAMED_METHODS: &[&str] =
    &["tools/call", "resources/read", "resources/subscribe", "resources/unsubscribe", "prompts/get"];

/// Methods any workload some rule names for the server may send (SPEC §8):
/// the session's lifecycle, discovery, notifications, and the listings
/// (whose answers are cut down). Deny rules may still name them.
pub fn open_to_named_workloads(method: &str) -> bool {
    matches!(method, "initialize" | "ping" | "server/discover" | "tools/list" | "resources/list" | "prompts/list")
        || method.starts_with("notifications/")
}

fn invalid(detail: &str, message: impl Into<String>) -> Denial {
    Denial::new(Reason::InvalidBody, message).with_detail(detail)
}

/// Reads one message.
pub fn read(body: &[u8]) -> Result<Message, Denial> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return Err(invalid("jsonrpc_batch", "JSON-RPC batches are not accepted: send one message per request"));
    }
    const ARGUMENTS: json::Path = &[Step::Key("params"), Step::Key("arguments")];
    const ID: json::Path = &[Step::Key("id")];
    let doc = json::scan(body, &[ARGUMENTS, ID]).map_err(|e| match e {
        JsonError::Duplicate(name) => invalid(
            "duplicate_key",
            format!(
                "the message repeats the member {:?}: one reader would take the first, another the last",
                bounded(&name)
            ),
        ),
        JsonError::Encoding => invalid("encoding", "the message is not UTF-8 JSON"),
        JsonError::NotAnObject => invalid("not_an_object", "the message is not a JSON-RPC object"),
        JsonError::TooDeep => invalid("too_deep", "the message is nested too deep"),
        _ => invalid("syntax", "the message is not one JSON value (nothing may follow it)"),
    })?;
    let arguments_raw = doc.get(0).map(|v| (v.found.start, v.found.end));
    let id_span = doc.get(1).map(|v| (v.found.start, v.found.end));
    let Ok(Value::Object(mut o)) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid("syntax", "the message is not a JSON-RPC object"));
    };
    if let Some(other) =
        o.keys().find(|k| !matches!(k.as_str(), "jsonrpc" | "id" | "method" | "params" | "result" | "error"))
    {
        return Err(invalid("unknown_member", format!("JSON-RPC has no member {:?}", bounded(other))));
    }
    if o.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("jsonrpc_version", "\"jsonrpc\" must be \"2.0\""));
    }
    let id = match o.remove("id") {
        None => None,
        Some(Value::String(s)) if s.len() <= MAX_NAME => Some(Value::String(s)),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(Value::Number(n)),
        Some(_) => return Err(invalid("id_type", "\"id\" must be a string or an integer")),
    };
    let params = match o.remove("params") {
        None => None,
        Some(Value::Object(p)) => Some(p),
        Some(_) => return Err(invalid("params_type", "\"params\" must be an object")),
    };
    let method = match o.remove("method") {
        None => None,
        Some(Value::String(m)) => Some(m),
        Some(_) => return Err(invalid("method_type", "\"method\" must be a string")),
    };
    let answers = (o.contains_key("result"), o.contains_key("error"));
    let Some(method) = method else {
        // The client's answer to the server: an id and exactly one of result and error.
        if id.is_none() || params.is_some() || answers.0 == answers.1 {
            return Err(invalid("not_a_message", "a message has a method, or an id and one of result and error"));
        }
        if o.get("error").is_some_and(|e| !e.is_object()) {
            return Err(invalid("error_type", "\"error\" must be an object"));
        }
        return Ok(Message {
            kind: Kind::Response,
            id,
            method: None,
            ask: Ask::Answer,
            arguments_raw: None,
            id_span,
            refers_to: Vec::new(),
        });
    };
    if answers.0 || answers.1 {
        return Err(invalid("not_a_message", "a request carries no result or error"));
    }
    check_method(&method)?;
    let kind = if id.is_some() { Kind::Request } else { Kind::Notification };
    let ask = ask(&method, params.as_ref())?;
    let arguments_raw = if matches!(ask, Ask::Tool { .. }) { arguments_raw } else { None };
    let refers_to = match method.as_str() {
        "completion/complete" => vec![reference(params.as_ref())?],
        "subscriptions/listen" => subscriptions(params.as_ref())?,
        _ => Vec::new(),
    };
    Ok(Message { kind, id, method: Some(method), ask, arguments_raw, id_span, refers_to })
}

/// Most resources one `subscriptions/listen` may name.
pub const MAX_SUBSCRIPTIONS: usize = 256;

/// The resources a `subscriptions/listen` subscribes to
/// (`params.notifications.resourceSubscriptions`): each is decided.
fn subscriptions(params: Option<&Map<String, Value>>) -> Result<Vec<Ask>, Denial> {
    let listed = params.and_then(|p| p.get("notifications")).and_then(|n| n.get("resourceSubscriptions"));
    let Some(listed) = listed else { return Ok(Vec::new()) };
    let uris = listed.as_array().filter(|a| a.len() <= MAX_SUBSCRIPTIONS).and_then(|a| {
        a.iter()
            .map(|u| u.as_str().filter(|s| !s.is_empty() && s.len() <= MAX_NAME).map(|s| Ask::Resource(s.to_string())))
            .collect::<Option<Vec<_>>>()
    });
    uris.ok_or_else(|| {
        invalid(
            "subscriptions",
            format!("resourceSubscriptions must be a list of at most {MAX_SUBSCRIPTIONS} resource URIs"),
        )
    })
}

/// The prompt or resource template a completion is for (`params.ref`):
/// the server runs that one's completion, so it is decided too.
fn reference(params: Option<&Map<String, Value>>) -> Result<Ask, Denial> {
    let r = params.and_then(|p| p.get("ref")).and_then(Value::as_object);
    let text = |member: &str| {
        r.and_then(|r| r.get(member)).and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= MAX_NAME)
    };
    match (r.and_then(|r| r.get("type")).and_then(Value::as_str), text("name"), text("uri")) {
        (Some("ref/prompt"), Some(name), _) => Ok(Ask::Prompt(name.to_string())),
        (Some("ref/resource"), _, Some(uri)) => Ok(Ask::Resource(uri.to_string())),
        _ => Err(invalid(
            "completion_ref",
            "completion/complete needs params.ref: a ref/prompt with its name or a ref/resource with its uri",
        )),
    }
}

/// A method name: segments of `[A-Za-z0-9_.-]` joined by `/`; a known
/// method but for case is refused.
fn check_method(method: &str) -> Result<(), Denial> {
    let well_formed = !method.is_empty()
        && method.len() <= MAX_NAME
        && method
            .split('/')
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
    if !well_formed {
        return Err(invalid("method_name", format!("{:?} is not a method name", bounded(method))));
    }
    if !KNOWN_METHODS.contains(&method) && KNOWN_METHODS.iter().any(|k| k.eq_ignore_ascii_case(method)) {
        return Err(invalid("method_case", format!("{:?} differs from a known method only in case", bounded(method))));
    }
    Ok(())
}

/// What `method` asks for, read from its `params`.
fn ask(method: &str, params: Option<&Map<String, Value>>) -> Result<Ask, Denial> {
    let name = |member: &str| -> Result<String, Denial> {
        match params.and_then(|p| p.get(member)) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_NAME => Ok(s.clone()),
            _ => Err(invalid(
                "params_name",
                format!("{method} needs params.{member}: a string of 1 to {MAX_NAME} bytes"),
            )),
        }
    };
    Ok(match method {
        "tools/call" => {
            let arguments = match params.and_then(|p| p.get("arguments")) {
                None | Some(Value::Null) => None,
                Some(Value::Object(a)) => Some(a.clone()),
                Some(_) => return Err(invalid("arguments_type", "tools/call's params.arguments must be an object")),
            };
            Ask::Tool { name: name("name")?, arguments }
        }
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Ask::Resource(name("uri")?),
        "prompts/get" => {
            if params.and_then(|p| p.get("arguments")).is_some_and(|a| !a.is_object() && !a.is_null()) {
                return Err(invalid("arguments_type", "prompts/get's params.arguments must be an object"));
            }
            Ask::Prompt(name("name")?)
        }
        _ => Ask::Method(method.to_string()),
    })
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
