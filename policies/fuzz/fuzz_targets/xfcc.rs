//! `x-forwarded-client-cert`: any header is read or refused, never a panic;
//! what an encoder writes the way Envoy does is read back exactly.
#![no_main]

use arbitrary::Arbitrary;
use modelgate_policies::parsers::SpiffeId;
use modelgate_policies::parsers::{forwarded_leaf, parse, Element};

#[derive(Arbitrary, Debug)]
struct Hop {
    by: Vec<String>,
    hash: Option<String>,
    cert: Option<String>,
    uri: Vec<String>,
    dns: Vec<String>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    raw: String,
    hops: Vec<Hop>,
}

/// Envoy's quoting: a value holding `,`, `;`, `=` or `"` is quoted, with
/// `\"` for a quote (backslashes are left out of the generated values:
/// Envoy does not escape them either, so a trailing one is ambiguous).
fn quoted(v: &str) -> String {
    if v.contains([',', ';', '=', '"']) {
        format!("\"{}\"", v.replace('"', "\\\""))
    } else {
        v.to_string()
    }
}

fn encode(hops: &[Element]) -> String {
    let mut elements = Vec::new();
    for e in hops {
        let mut pairs = Vec::new();
        pairs.extend(e.by.iter().map(|v| format!("By={}", quoted(v))));
        pairs.extend(e.hash.iter().map(|v| format!("Hash={}", quoted(v))));
        pairs.extend(e.cert.iter().map(|v| format!("Cert={}", quoted(v))));
        pairs.extend(e.uri.iter().map(|v| format!("URI={}", quoted(v))));
        pairs.extend(e.dns.iter().map(|v| format!("DNS={}", quoted(v))));
        elements.push(pairs.join(";"));
    }
    elements.join(",")
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    if let Ok(elements) = parse(&input.raw) {
        assert!(!elements.is_empty());
    }
    let hop = SpiffeId::parse("spiffe://example.org/front").expect("a SPIFFE ID");
    let headers = vec![("x-forwarded-client-cert".to_string(), input.raw.clone())];
    let _ = forwarded_leaf(&headers, &hop, None);
    let _ = forwarded_leaf(&headers, &hop, Some("spiffe://example.org/front"));

    let clean = |v: &String| v.replace('\\', "");
    let hops: Vec<Element> = input
        .hops
        .iter()
        .map(|h| Element {
            by: h.by.iter().map(clean).collect(),
            hash: h.hash.as_ref().map(clean),
            cert: h.cert.as_ref().map(clean),
            uri: h.uri.iter().map(clean).collect(),
            dns: h.dns.iter().map(clean).collect(),
            ..Element::default()
        })
        .filter(|e| !(e.by.is_empty() && e.hash.is_none() && e.cert.is_none() && e.uri.is_empty() && e.dns.is_empty()))
        .collect();
    if hops.is_empty() {
        return;
    }
    let header = encode(&hops);
    assert_eq!(parse(&header).as_ref(), Ok(&hops), "{header:?}");
});
