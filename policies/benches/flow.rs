#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark: a failed unwrap is a failed run
//! One warm request through the whole engine, as the filter drives it:
//! headers (the JWT-SVID from the verified-SVID cache), the body held whole
//! and decided, the response and its usage, the audit record sealed into
//! the chain. Prints µs per request and per phase, so a change to the
//! engine is priced natively and, built for wasm32-wasip1, in V8.
//!
//!     MODELGATE_BENCH_POLICY=<json> MODELGATE_BENCH_TOKEN=<jwt> \
//!       cargo bench -p modelgate-policies --bench flow -- [REQUESTS] [BODY_BYTES]
//!
//! tests/flow_bench.py fills in the demo policy (envoy/envoy.yaml) and a
//! token, and runs it natively and under Node's V8.

use std::rc::Rc;
use std::time::{Duration, Instant};

use modelgate_policies::{
    Chain, Env, Event, Flow, LogInfo, MemoryStore, Policy, PureRustVerifier, RequestHead, ResponseMemory, Step,
    SvidCache, TokenCache, TrustStore, MAX_RESPONSE_HELD_PER_VM,
};

const REPLY: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;

/// A chat completion of about `size` bytes shaped like agent traffic: a
/// conversation whose text has line breaks (`\n` escapes, so the guard
/// decodes every string), numbers and a few long words.
/// With `attachment`, the text is one long run of `x` instead (what
/// `bench.py` sends): it reads like base64, so the guard decodes it as an
/// attachment would be.
fn body_of(size: usize, attachment: bool) -> Vec<u8> {
    let head = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":""#;
    let tail = r#""}]}"#;
    let conversation = "Summarize the ticket history for customer 4411 and draft a reply.\\n- step 2: check the refund (order 88-1203)\\n";
    let filler = if attachment { "xxxxxxxxxxxxxxxx" } else { conversation };
    let mut text = String::new();
    while head.len() + text.len() + tail.len() < size {
        text.push_str(filler);
    }
    text.truncate(size.saturating_sub(head.len() + tail.len()));
    format!("{head}{text}{tail}").into_bytes()
}

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (tests/flow_bench.py sets it)"))
}

fn main() {
    let attachment = std::env::args().any(|a| a == "attachment");
    let mut args = std::env::args().skip(1).filter_map(|a| a.parse::<usize>().ok());
    let requests = args.next().unwrap_or(20_000);
    let size = args.next().unwrap_or(1024);
    let keys = |name: &str| Some(format!("sk-bench-{name}"));
    let policy = Policy::from_json(env_var("MODELGATE_BENCH_POLICY").as_bytes(), &keys).unwrap();
    let token = env_var("MODELGATE_BENCH_TOKEN");
    let now_ms: u64 = env_var("MODELGATE_BENCH_NOW_MS").parse().unwrap();
    let body = body_of(size, attachment);
    let headers: Vec<(String, String)> = vec![
        ("authorization".into(), format!("Bearer {token}")),
        ("content-type".into(), "application/json".into()),
        ("content-length".into(), body.len().to_string()),
        ("user-agent".into(), "OpenAI/Python 1.99.0".into()),
        ("accept".into(), "application/json".into()),
        ("x-stainless-lang".into(), "python".into()),
        ("x-forwarded-proto".into(), "http".into()),
        ("x-request-id".into(), "5b0a4c8e-6a3c-4df0-9a53-6d1b0c3f1e2a".into()),
    ];
    let memory = Rc::new(ResponseMemory::new(MAX_RESPONSE_HELD_PER_VM));
    let svids = SvidCache::new(policy.jwt_svid.cache_size);
    let trust = TrustStore::new(&policy.trust_domains);
    let tokens = TokenCache::new(policy.token_cache_size);
    let shared = MemoryStore::default();
    let random = || [7u8; 16];
    let env = |now_ms| Env {
        policy: &policy,
        verifier: &PureRustVerifier,
        now_ms,
        memory: &memory,
        svids: &svids,
        trust: &trust,
        tokens: &tokens,
        random: &random,
        shared: &shared,
    };
    let mut chain = Chain::new("0123456789abcdef".into());
    let mut phases = [Duration::ZERO; 4];
    let mut run = |count: usize, phases: &mut [Duration; 4]| {
        for _ in 0..count {
            let t0 = Instant::now();
            let mut x = Flow::new(Some(&policy), now_ms);
            let head = RequestHead {
                method: "POST",
                path: "/openai/v1/chat/completions",
                authority: "gateway.local",
                headers: &headers,
                request_id: Some("5b0a4c8e-6a3c-4df0-9a53-6d1b0c3f1e2a"),
                client_address: Some("127.0.0.1:51234"),
                peer: None,
                metadata: &[],
            };
            let step = x.drive(&env(now_ms), Event::RequestHeaders { head, end_of_stream: false });
            assert_eq!(step, Step::Hold, "the headers are held for the body");
            let t1 = Instant::now();
            let step = x.drive(
                &env(now_ms),
                Event::RequestBody { size: body.len(), end_of_stream: true, body: &body.as_slice() },
            );
            let Step::Continue(rewrite) = step else { panic!("the request is not allowed: {step:?}") };
            if !rewrite.body_edits.is_empty() {
                std::hint::black_box(modelgate_policies::apply_edits(&body, &rewrite.body_edits));
            }
            let t2 = Instant::now();
            x.drive(
                &env(now_ms + 3),
                Event::ResponseHeaders { status: Some(200), content_type: Some("application/json"), session: None },
            );
            let reply = REPLY.as_bytes();
            x.drive(&env(now_ms + 3), Event::ResponseBody { size: reply.len(), end_of_stream: true, body: &reply });
            let t3 = Instant::now();
            let Step::Audit(record) =
                x.drive(&env(now_ms + 3), Event::Log(LogInfo { status: Some(200), ..Default::default() }))
            else {
                panic!("no record")
            };
            std::hint::black_box(x.metrics(&policy));
            std::hint::black_box(chain.seal(&record));
            let t4 = Instant::now();
            for (p, d) in phases.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3]) {
                *p += d;
            }
        }
    };
    run(requests / 10 + 1, &mut phases); // warm the caches (and V8's tiers)
    phases = [Duration::ZERO; 4];
    run(requests, &mut phases);
    let us = |d: Duration| d.as_secs_f64() * 1e6 / requests as f64;
    let total: Duration = phases.iter().sum();
    println!(
        "{size} B body, {requests} requests: {:.2} µs/request (headers {:.2}, body {:.2}, response {:.2}, record {:.2})",
        us(total),
        us(phases[0]),
        us(phases[1]),
        us(phases[2]),
        us(phases[3])
    );
}
