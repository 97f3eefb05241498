//! An MCP server's JSON-RPC: any bytes through the message reader and the
//! listing filter (JSON and SSE answers, each listing), never a panic.
//! What the reader accepts, serde_json reads too, and its re-serialization
//! is read as the same message (kind, method, what it asks for). What the
//! filter answers holds no listed item `keep` refused, read as a client
//! reads it (an SSE stream per the spec: a leading BOM dropped, `data`
//! lines joined); and a refused item's name that appears nowhere else in a
//! listing is nowhere in the answer.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use modelgate_policies::parsers::mcp::listing;
use modelgate_policies::parsers::mcp::message::{self, Ask, Listed};
use serde_json::{json, Value};

const LISTED: [Listed; 3] = [Listed::Tools, Listed::Resources, Listed::Prompts];

/// What the filter keeps: names without an `x`.
fn keep(name: &str) -> bool {
    !name.contains('x')
}

/// Equal JSON, numbers within a few ULP: serde_json (without
/// `float_roundtrip`) may read a printed float back one ULP off.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y
                || match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs()),
                    _ => false,
                }
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn same_ask(a: &Ask, b: &Ask) -> bool {
    match (a, b) {
        (Ask::Tool { name: n, arguments: x }, Ask::Tool { name: m, arguments: y }) => {
            n == m
                && match (x, y) {
                    (Some(x), Some(y)) => same(&Value::Object(x.clone()), &Value::Object(y.clone())),
                    (x, y) => x.is_none() && y.is_none(),
                }
        }
        _ => a == b,
    }
}

/// The messages a client reads from the filter's answer: the body, or each
/// SSE event's data (the stream's leading BOM dropped; lines end in CRLF,
/// LF or CR; `data` fields joined by LF, one leading space dropped).
fn client_reads(out: &[u8], sse: bool) -> Vec<Value> {
    if !sse {
        return serde_json::from_slice(out).into_iter().collect();
    }
    let text = String::from_utf8_lossy(out);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text).replace("\r\n", "\n").replace('\r', "\n");
    let mut messages = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if line.is_empty() {
            messages.extend(serde_json::from_str::<Value>(&data.join("\n")));
            data.clear();
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            data.push(value);
        }
    }
    // A last event without its blank line: a client drops it, but read it
    // anyway (the filter should not count on that).
    messages.extend(serde_json::from_str::<Value>(&data.join("\n")));
    messages
}

/// Every item the answer lists, as a client reads it, is one `keep` keeps.
fn lists_only_kept(out: &[u8], sse: bool, listed: Listed) {
    let (member, name) = listed.members();
    for m in client_reads(out, sse) {
        let Some(items) = m.get("result").and_then(|r| r.get(member)).and_then(Value::as_array) else { continue };
        for item in items {
            let n = item.get(name).and_then(Value::as_str);
            assert!(n.is_some_and(keep), "the {member} listing holds an item keep refused: {item}");
        }
    }
}

/// A listing answer built from the input: items named `item<i>-<suffix>`
/// (a name no other one holds), other members, and, in a stream, any
/// events around it.
#[derive(Arbitrary, Debug)]
struct Listing {
    listed: u8,
    sse: bool,
    crlf: bool,
    id: u32,
    items: Vec<(String, Option<String>)>,
    cursor: Option<String>,
    before: Vec<u8>,
    after: Vec<u8>,
}

fn built_listing(input: Listing) {
    let listed = LISTED[usize::from(input.listed) % LISTED.len()];
    let (member, name) = listed.members();
    let names: Vec<String> = input
        .items
        .iter()
        .enumerate()
        .map(|(i, (suffix, _))| {
            let suffix: String = suffix.chars().filter(char::is_ascii_alphanumeric).collect();
            format!("item{i}-{suffix}")
        })
        .collect();
    let items: Vec<Value> = names
        .iter()
        .zip(&input.items)
        .map(|(n, (_, description))| match description {
            Some(d) => json!({ name: n, "description": d }),
            None => json!({ name: n }),
        })
        .collect();
    let mut result = json!({ member: items });
    if let Some(cursor) = &input.cursor {
        result["nextCursor"] = json!(cursor);
    }
    let message = json!({"jsonrpc": "2.0", "id": input.id, "result": result}).to_string();
    let body = if input.sse {
        let nl = if input.crlf { "\r\n" } else { "\n" };
        let mut body = input.before.clone();
        body.extend_from_slice(format!("{nl}{nl}event: message{nl}data: {message}{nl}{nl}").as_bytes());
        body.extend_from_slice(&input.after);
        body
    } else {
        message.into_bytes()
    };
    let out = listing::filter(&body, input.sse, listed, &keep);
    lists_only_kept(&out, input.sse, listed);
    // Escapes around the listing could spell a name: only literal text.
    if input.before.contains(&b'\\') || input.after.contains(&b'\\') {
        return;
    }
    let count = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).filter(|w| *w == needle).count();
    for n in names.iter().filter(|n| !keep(n)) {
        if count(&body, n.as_bytes()) == 1 {
            assert_eq!(count(&out, n.as_bytes()), 0, "the refused item {n:?} is in the answer");
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(m) = message::read(data) {
        let doc: Value = serde_json::from_slice(data).expect("the reader accepted what serde_json refuses");
        let again = serde_json::to_vec(&doc).expect("serializable");
        match message::read(&again) {
            Ok(a) => {
                assert_eq!((m.kind, &m.method), (a.kind, &a.method), "read again differently");
                assert!(same_ask(&m.ask, &a.ask), "asks differently read again: {:?} vs {:?}", m.ask, a.ask);
            }
            Err(d) => panic!("the message re-serialized is refused: {d:?}"),
        }
    }
    for listed in LISTED {
        for sse in [false, true] {
            lists_only_kept(&listing::filter(data, sse, listed, &keep), sse, listed);
        }
    }
    if let Ok(input) = Listing::arbitrary_take_rest(Unstructured::new(data)) {
        built_listing(input);
    }
});
