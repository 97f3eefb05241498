//! What a request's input can cost beyond its bytes. A token of text is at
//! least a byte, so the body's length bounds its text; but an image is
//! billed by its size, not its bytes, and some members make the provider
//! read what the body only names — a stored file, an earlier response, a
//! cached context, a web search. Under a budget, each image reserves
//! [`MEDIA_TOKENS`] more, and a request with a member whose input nothing
//! in the body bounds is refused; so is a body this reader cannot read
//! (deeper than serde_json goes): what it cannot see it cannot bound.
//! Members that switch the provider to a price the table does not hold
//! (a faster or priority tier, a region's surcharge, audio) are named, so
//! a dollar budget refuses them.

use serde_json::{Map, Value};

/// Tokens reserved per image, above its bytes: more than any provider
/// bills for one image at its largest resolution. The largest is
/// gpt-4o-mini's count (2,833 + 5,667 per 512-pixel tile, up to 48,169
/// for a 2048×768 image at high detail); OpenAI's patch-based models bill
/// up to about 3,800, Gemini's tiles about 4,100, Anthropic about 1,600.
pub const MEDIA_TOKENS: u64 = 49_152;

/// Content part types that carry an image (by URL, file id or inline).
const MEDIA_TYPES: &[&str] = &["image_url", "input_image", "image", "computer_screenshot"];
/// Content part types whose input is a document or file the body does
/// not hold whole (a PDF's pages are billed as images and text), or an
/// item the provider stored earlier.
const UNBOUNDED_TYPES: &[&str] = &["file", "input_file", "document", "container_upload", "item_reference"];
/// Members, at any depth, that make the provider read input the body only
/// names (Gemini's file URIs and cached contents; Bedrock's documents and
/// videos, which may live in S3).
const UNBOUNDED_MEMBERS: &[&str] = &[
    "fileData",
    "file_data",
    "cachedContent",
    "cached_content",
    "previous_response_id",
    "conversation",
    "mcp_servers",
    "document",
    "video",
    "web_search_options",
];
/// Top-level members that switch to a price the table does not hold,
/// with the values that do not (the default tier, standard speed).
const PRICE_SWITCHES: &[(&str, &[&str])] = &[
    ("service_tier", &["auto", "default", "flex", "standard_only"]),
    ("speed", &["standard"]),
    ("inference_geo", &[]),
    ("audio", &[]),
];
/// Content part types billed at another rate than text.
const UNPRICED_TYPES: &[&str] = &["input_audio"];
/// Members whose values are the caller's own data, named as it likes (a
/// tool's schema, a call's arguments, metadata): not read for parts.
const OPAQUE_MEMBERS: &[&str] = &[
    "input_schema",
    "parameters",
    "schema",
    "json_schema",
    "response_format",
    "responseSchema",
    "response_schema",
    "responseJsonSchema",
    "response_json_schema",
    "toolSpec",
    "functionDeclarations",
    "function_declarations",
    "function",
    "metadata",
    "args",
    "arguments",
];
/// Parts whose `input` is a tool call's arguments.
const TOOL_CALLS: &[&str] = &["tool_use", "server_tool_use", "mcp_tool_use"];

/// Tool types the caller runs itself: their results come back in a later
/// body, where their bytes are counted.
const CLIENT_TOOL_TYPES: &[&str] = &["function", "custom"];
const CLIENT_TOOL_PREFIXES: &[&str] = &["bash_", "text_editor_", "computer_", "memory_"];
/// The members of a tool declared without a `type` (Anthropic's custom
/// tools, Bedrock's `toolSpec`, Gemini's `functionDeclarations`).
const CLIENT_TOOL_MEMBERS: &[&str] = &[
    "name",
    "description",
    "input_schema",
    "cache_control",
    "strict",
    "toolSpec",
    "cachePoint",
    "functionDeclarations",
    "function_declarations",
];

/// What a budget reads of a body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Tokens beyond the body's bytes: [`MEDIA_TOKENS`] per image.
    pub extra_tokens: u64,
    /// A member that switches to a price the table does not hold.
    pub unpriced: Option<String>,
}

/// What a request's input may cost beyond its bytes, or what in it
/// nothing bounds (and a body that cannot be read).
pub fn scan(body: &[u8]) -> Result<Scan, String> {
    let doc = serde_json::from_slice::<Value>(body).map_err(|_| "unreadable".to_string())?;
    let mut unpriced = None;
    if let Some(root) = doc.as_object() {
        for (name, free) in PRICE_SWITCHES {
            match root.get(*name) {
                None | Some(Value::Null) => {}
                Some(Value::String(v)) if free.contains(&v.as_str()) => {}
                Some(other) => {
                    unpriced
                        .get_or_insert_with(|| format!("{name}:{}", crate::util::text::bounded(&other.to_string())));
                }
            }
        }
        if let Some(Value::Array(m)) = root.get("modalities") {
            if m.iter().any(|v| v.as_str() != Some("text")) {
                unpriced.get_or_insert_with(|| "modalities".to_string());
            }
        }
        for name in ["tools", "toolConfig"] {
            let tools = match root.get(name) {
                Some(Value::Object(config)) => config.get("tools"),
                other => other,
            };
            if let Some(Value::Array(tools)) = tools {
                for tool in tools {
                    server_tool(tool)?;
                }
            }
        }
    }
    let mut parts = Parts { media: 0, unpriced: None };
    walk(&doc, &mut parts)?;
    Ok(Scan { extra_tokens: parts.media.saturating_mul(MEDIA_TOKENS), unpriced: unpriced.or(parts.unpriced) })
}

/// What the walk found.
struct Parts {
    media: u64,
    unpriced: Option<String>,
}

/// A tool the provider runs itself (a web search, code execution, a file
/// search, an MCP connector): what it reads is billed as input nothing in
/// the body bounds.
fn server_tool(tool: &Value) -> Result<(), String> {
    let Value::Object(t) = tool else { return Ok(()) };
    match t.get("type").and_then(Value::as_str) {
        Some(kind) if CLIENT_TOOL_TYPES.contains(&kind) || CLIENT_TOOL_PREFIXES.iter().any(|p| kind.starts_with(p)) => {
            Ok(())
        }
        Some(kind) => Err(format!("tool:{}", crate::util::text::bounded(kind))),
        None => match t.keys().find(|k| !CLIENT_TOOL_MEMBERS.contains(&k.as_str())) {
            Some(k) => Err(format!("tool:{}", crate::util::text::bounded(k))),
            None => Ok(()),
        },
    }
}

fn walk(v: &Value, found: &mut Parts) -> Result<(), String> {
    match v {
        Value::Object(o) => object(o, found),
        Value::Array(a) => a.iter().try_for_each(|v| walk(v, found)),
        _ => Ok(()),
    }
}

fn object(o: &Map<String, Value>, found: &mut Parts) -> Result<(), String> {
    let kind = o.get("type").and_then(Value::as_str);
    if let Some(kind) = kind {
        if MEDIA_TYPES.contains(&kind) {
            found.media += 1;
        } else if UNBOUNDED_TYPES.contains(&kind) {
            return Err(format!("part:{kind}"));
        } else if UNPRICED_TYPES.contains(&kind) {
            found.unpriced.get_or_insert_with(|| format!("part:{kind}"));
        }
    }
    for (k, v) in o.iter().filter(|(k, _)| !OPAQUE_MEMBERS.contains(&k.as_str())) {
        if UNBOUNDED_MEMBERS.contains(&k.as_str()) && !v.is_null() {
            return Err(format!("member:{k}"));
        }
        // Gemini's inline data: an image is one; a PDF, a video or audio
        // is billed per page, frame or second, which its bytes do not bound.
        if matches!(k.as_str(), "inlineData" | "inline_data") {
            let mime = v.get("mimeType").or_else(|| v.get("mime_type")).and_then(Value::as_str).unwrap_or("");
            if !mime.to_ascii_lowercase().starts_with("image/") {
                return Err(format!("inline:{}", crate::util::text::bounded(mime)));
            }
            found.media += 1;
        }
        // Bedrock's image blocks.
        if k == "image" && v.is_object() {
            found.media += 1;
        }
    }
    let call = kind.is_some_and(|k| TOOL_CALLS.contains(&k)) || o.contains_key("toolUseId");
    o.iter()
        .filter(|(k, _)| !(OPAQUE_MEMBERS.contains(&k.as_str()) || call && k.as_str() == "input"))
        .try_for_each(|(_, v)| walk(v, found))
}

#[cfg(test)]
#[path = "input_tests.rs"]
mod tests;
