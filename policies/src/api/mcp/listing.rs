//! A `tools/list`, `resources/list` or `prompts/list` answer cut down to
//! what the workload may use, whether the server answered in JSON or in an
//! SSE stream (held whole: chunk boundaries fall anywhere). An answer that
//! cannot be read becomes a JSON-RPC error: a listing never passes
//! unfiltered.

use serde_json::{json, Value};

use super::message::Listed;
use crate::body::json;

/// The answer to send for a listing held whole: `body` as the server sent
/// it (`sse`: an event stream), keeping the items `keep` allows.
pub fn filter(body: &[u8], sse: bool, listed: Listed, keep: &dyn Fn(&str) -> bool) -> Vec<u8> {
    filter_answer(body, sse, listed, keep, None)
}

/// [`filter`], and the answer to the id the gateway sent the request under
/// (`restore`: that id and the client's) given back the client's id.
pub fn filter_answer(
    body: &[u8],
    sse: bool,
    listed: Listed,
    keep: &dyn Fn(&str) -> bool,
    restore: Option<(&str, &Value)>,
) -> Vec<u8> {
    let cut = Cut { listed, keep, restore };
    if sse {
        filter_stream(body, &cut)
    } else {
        filter_message(body, &cut).unwrap_or_else(|| unreadable(restore.map(|(_, id)| id)))
    }
}

struct Cut<'a> {
    listed: Listed,
    keep: &'a dyn Fn(&str) -> bool,
    restore: Option<(&'a str, &'a Value)>,
}

/// What replaces a listing too large or too broken to filter.
pub fn unreadable_answer(sse: bool) -> Vec<u8> {
    let message = unreadable(None);
    if sse {
        event(&[], &message)
    } else {
        message
    }
}

fn unreadable(id: Option<&Value>) -> Vec<u8> {
    json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": { "code": -32603, "message": "modelgate: the server's listing could not be filtered" },
    })
    .to_string()
    .into_bytes()
}

/// One JSON-RPC message: a result's items cut down; an error passes; a
/// message that is neither (a notification, a request of the server's)
/// passes. `None` only when it cannot be read at all.
fn filter_message(bytes: &[u8], cut: &Cut<'_>) -> Option<Vec<u8>> {
    let mut message = json::object(bytes).ok()?;
    if let Some((ours, theirs)) = cut.restore {
        if message.get("id").and_then(Value::as_str) == Some(ours) {
            message.insert("id".into(), theirs.clone());
        }
    }
    if let Some(result) = message.get_mut("result") {
        let (member, name) = cut.listed.members();
        let Some(Value::Array(items)) = result.get_mut(member) else {
            return Some(unreadable(message.get("id")));
        };
        items.retain(|item| item.get(name).and_then(Value::as_str).is_some_and(cut.keep));
    }
    Some(Value::Object(message).to_string().into_bytes())
}

/// Whether an SSE line is one a client reads: a comment, or a field it
/// knows besides `data` (anything else — a JSON body mislabelled as a
/// stream — is dropped, never passed as it came).
fn sse_field(line: &str) -> bool {
    let name = line.split_once(':').map_or(line, |(name, _)| name);
    line.is_empty() || line.starts_with(':') || matches!(name, "id" | "event" | "retry")
}

/// An SSE stream: each event whose data is a JSON-RPC message, filtered;
/// an event whose data cannot be read, dropped.
fn filter_stream(body: &[u8], cut: &Cut<'_>) -> Vec<u8> {
    // An SSE reader drops one leading byte-order mark, then splits lines
    // at CRLF, LF or CR: so does this.
    let body = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(body);
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n").replace('\r', "\n");
    let mut out = Vec::with_capacity(body.len());
    for block in text.split("\n\n") {
        if block.trim().is_empty() {
            continue;
        }
        let mut fields: Vec<&str> = Vec::new();
        let mut data: Vec<&str> = Vec::new();
        for line in block.split('\n') {
            match line.strip_prefix("data") {
                Some(d) if d.is_empty() || d.starts_with(':') => {
                    let d = d.strip_prefix(':').unwrap_or(d);
                    data.push(d.strip_prefix(' ').unwrap_or(d));
                }
                _ if sse_field(line) => fields.push(line),
                _ => {}
            }
        }
        if data.is_empty() {
            // A comment, a retry or an id alone: nothing listed.
            if !fields.is_empty() {
                out.extend_from_slice(fields.join("\n").as_bytes());
                out.extend_from_slice(b"\n\n");
            }
            continue;
        }
        if let Some(message) = filter_message(data.join("\n").as_bytes(), cut) {
            out.extend_from_slice(&event(&fields, &message));
        }
    }
    out
}

/// One SSE event: its other fields as they were, then the data.
fn event(fields: &[&str], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        out.extend_from_slice(f.as_bytes());
        out.push(b'\n');
    }
    if fields.is_empty() {
        out.extend_from_slice(b"event: message\n");
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    out
}

#[cfg(test)]
#[path = "listing_tests.rs"]
mod tests;
