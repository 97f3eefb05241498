//! What a request's input can cost beyond its bytes. A token of text is at
//! least a byte, so the body's length bounds its text; but an image is
//! billed by its size, not its bytes, and some members make the provider
//! read what the body only names — a stored file, an earlier response, a
//! cached context, a web search. Under a budget, each image or inline
//! media part reserves [`MEDIA_TOKENS`] more, and a request with a
//! member whose input nothing in the body bounds is refused.

use serde_json::{Map, Value};

/// Tokens reserved per image or inline media part, above its bytes: more
/// than any provider bills for one image at its largest resolution
/// (OpenAI's patch-based models up to about 3,800; Gemini tiles up to
/// about 4,100; Anthropic about 1,600).
pub const MEDIA_TOKENS: u64 = 8_192;

/// Content part types that carry an image (by URL, file id or inline).
const MEDIA_TYPES: &[&str] = &["image_url", "input_image", "image"];
/// Content part types whose input is a document or file the body does
/// not hold whole (a PDF's pages are billed as images and text).
const UNBOUNDED_TYPES: &[&str] = &["file", "input_file", "document", "container_upload"];
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
];
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

/// What a request's input may cost beyond its bytes: its media parts, or
/// what in it nothing bounds.
pub fn extra_input(body: &[u8]) -> Result<u64, String> {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else { return Ok(0) };
    let mut media = 0u64;
    if let Some(root) = doc.as_object() {
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
    walk(&doc, &mut media)?;
    Ok(media.saturating_mul(MEDIA_TOKENS))
}

/// The service tier a request asks for, when it is one the price table
/// does not price (any but the default, `auto`, `default` and the cheaper
/// `flex`).
pub fn service_tier(body: &[u8]) -> Option<String> {
    let doc = serde_json::from_slice::<Value>(body).ok()?;
    match doc.get("service_tier")? {
        Value::Null => None,
        Value::String(t) if ["auto", "default", "flex", "standard_only"].contains(&t.as_str()) => None,
        other => Some(crate::util::text::bounded(&other.to_string())),
    }
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

fn walk(v: &Value, media: &mut u64) -> Result<(), String> {
    match v {
        Value::Object(o) => object(o, media),
        Value::Array(a) => a.iter().try_for_each(|v| walk(v, media)),
        _ => Ok(()),
    }
}

fn object(o: &Map<String, Value>, media: &mut u64) -> Result<(), String> {
    let kind = o.get("type").and_then(Value::as_str);
    if let Some(kind) = kind {
        if MEDIA_TYPES.contains(&kind) {
            *media += 1;
        } else if UNBOUNDED_TYPES.contains(&kind) {
            return Err(format!("part:{kind}"));
        }
    }
    for (k, v) in o.iter().filter(|(k, _)| !OPAQUE_MEMBERS.contains(&k.as_str())) {
        if UNBOUNDED_MEMBERS.contains(&k.as_str()) && !v.is_null() {
            return Err(format!("member:{k}"));
        }
        // Gemini's inline media, Bedrock's image blocks.
        if matches!(k.as_str(), "inlineData" | "inline_data") || (k == "image" && v.is_object()) {
            *media += 1;
        }
    }
    let call = kind.is_some_and(|k| TOOL_CALLS.contains(&k)) || o.contains_key("toolUseId");
    o.iter()
        .filter(|(k, _)| !(OPAQUE_MEMBERS.contains(&k.as_str()) || call && k.as_str() == "input"))
        .try_for_each(|(_, v)| walk(v, media))
}

#[cfg(test)]
#[path = "input_tests.rs"]
mod tests;
