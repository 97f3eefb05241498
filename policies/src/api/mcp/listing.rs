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
    if sse {
        filter_stream(body, listed, keep)
    } else {
        filter_message(body, listed, keep).unwrap_or_else(|| unreadable(None))
    }
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
/// message that is neither (a notification, a request of the server's) is
/// `None` only when it cannot be read at all.
fn filter_message(bytes: &[u8], listed: Listed, keep: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
    let mut message = json::object(bytes).ok()?;
    let Some(result) = message.get_mut("result") else {
        // An error, a notification, a request: nothing listed.
        return Some(bytes.to_vec());
    };
    let (member, name) = listed.members();
    let Some(Value::Array(items)) = result.get_mut(member) else {
        return Some(unreadable(message.get("id")));
    };
    items.retain(|item| item.get(name).and_then(Value::as_str).is_some_and(keep));
    Some(Value::Object(message).to_string().into_bytes())
}

/// An SSE stream: each event whose data is a JSON-RPC message, filtered;
/// an event whose data cannot be read, dropped.
fn filter_stream(body: &[u8], listed: Listed, keep: &dyn Fn(&str) -> bool) -> Vec<u8> {
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
            match line.strip_prefix("data:") {
                Some(d) => data.push(d.strip_prefix(' ').unwrap_or(d)),
                None => fields.push(line),
            }
        }
        if data.is_empty() {
            // A comment, a retry or an id alone: nothing listed.
            out.extend_from_slice(block.as_bytes());
            out.extend_from_slice(b"\n\n");
            continue;
        }
        if let Some(message) = filter_message(data.join("\n").as_bytes(), listed, keep) {
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
