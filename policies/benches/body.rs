#![allow(clippy::unwrap_used)] // a benchmark: a failed unwrap is a failed run
//! Decision time per MiB of request body, for bodies built to be slow:
//! long plain text, many small members, deep nesting, long escaped strings. Linear-time
//! parsing shows as a flat column: the time per MiB does not grow with size.
//!
//!     cargo bench -p modelgate-policies --bench body -- [ITERATIONS]

use std::time::{Duration, Instant};

use modelgate_policies::parsers::body;
use modelgate_policies::parsers::Api;
use modelgate_policies::RuleLimits;

/// A chat completion body of about `size` bytes, shaped by `kind`.
fn make(kind: &str, size: usize) -> Vec<u8> {
    let mut out = String::from(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"x":"#);
    match kind {
        // Objects of 1,000 small members each (the repeat check's worst case).
        "many members" => {
            out.push('[');
            let mut i = 0usize;
            while out.len() < size {
                out.push('{');
                for j in 0..1000 {
                    if j > 0 {
                        out.push(',');
                    }
                    out.push_str(&format!("\"m{i}\":{j}"));
                    i += 1;
                }
                out.push_str("},");
            }
            out.pop();
            out.push(']');
        }
        // Arrays nested 100 deep, over and over.
        "deep nesting" => {
            out.push('[');
            while out.len() < size {
                out.push_str(&"[".repeat(100));
                out.push_str(&"]".repeat(100));
                out.push(',');
            }
            out.pop();
            out.push(']');
        }
        // A prompt: one long string of plain text (the common case).
        "plain text" => {
            out.push('"');
            while out.len() < size {
                out.push_str("The quick brown fox jumps over the lazy dog. ");
            }
            out.push('"');
        }
        // One long string of escapes.
        _ => {
            out.push('"');
            while out.len() < size {
                out.push_str("\\u00e9\\n\\\"");
            }
            out.push('"');
        }
    }
    out.push('}');
    out.into_bytes()
}

fn main() {
    let iterations: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
    let (endpoint, _) = Api::OpenAi.classify("POST", "/v1/chat/completions").unwrap();
    let limits = RuleLimits { max_tokens: Some(1024), stream: true };
    println!("| body | 64 KiB | 1 MiB | 8 MiB |");
    println!("| --- | --- | --- | --- |");
    for kind in ["plain text", "many members", "deep nesting", "escaped strings"] {
        let mut row = format!("| {kind} |");
        for size in [64 << 10, 1 << 20, 8 << 20] {
            let body = make(kind, size);
            let mut times: Vec<Duration> = (0..iterations.max(1))
                .map(|_| {
                    let started = Instant::now();
                    let parsed = body::parse(endpoint, Some("application/json"), &body).unwrap();
                    let edits = parsed.apply_limits(&limits).unwrap();
                    std::hint::black_box(body::apply_edits(&body, &edits));
                    started.elapsed()
                })
                .collect();
            times.sort();
            let median = times[times.len() / 2];
            let per_mib = median.as_secs_f64() * 1000.0 / (body.len() as f64 / (1 << 20) as f64);
            row.push_str(&format!(" {per_mib:.1} ms/MiB |"));
        }
        println!("{row}");
    }
}
