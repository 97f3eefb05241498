//! "No panic on any input": a trap in wasm takes down every request on the
//! VM. Thousands of mutated requests — headers, tokens, bodies in random
//! pieces, trailers, expired holds, refused steps — go through the engine's
//! one driver, which must answer each event with a step and end with a record.

#![allow(clippy::unwrap_used)] // a test file: a failed unwrap is a failed test

use jwt_simple::prelude::*;
use modelgate_policies::PureRustVerifier;
use std::rc::Rc;

use modelgate_policies::{Env, Event, Flow, LogInfo, Phase, Policy, RequestHead, ResponseMemory, Step};
use modelgate_policies::{SvidCache, TrustStore};

/// xorshift64*: deterministic, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"{",
    b"}",
    b"\"",
    b"\\u0000",
    b"\\ud800",
    b"\xff",
    b"\xc3",
    b",",
    b":",
    b"null",
    b"1e999",
    b"-0",
    b"[",
    b"]",
    b"\"model\"",
    b"\"stream\"",
    b"\"max_tokens\"",
    b"\\u006d",
    b".",
    b"=",
    b"%",
    b"\r\n",
    b"--XyZ",
    b"name=\"model\"",
];

/// The input, mutated two times in three.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    if rng.below(3) == 0 {
        return out;
    }
    for _ in 0..=rng.below(4) {
        let at = if out.is_empty() { 0 } else { rng.below(out.len() + 1) };
        match rng.below(4) {
            0 if at < out.len() => out[at] = rng.next() as u8,
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            2 if at < out.len() => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// The demo policy, with a fresh key as example.org's JWT authority, and a
/// valid JWT-SVID from that key.
fn policy_and_token() -> (Policy, String) {
    let config = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../envoy/envoy.yaml")).unwrap();
    // The plugin configuration is the YAML block scalar under `value: |`:
    // the lines indented at least as deep as its first.
    let start = config.find("value: |").unwrap();
    let mut lines = config[start..].lines().skip(1).peekable();
    let indent = lines.peek().map(|l| l.len() - l.trim_start().len()).unwrap();
    let json = lines.take_while(|l| l.len() - l.trim_start().len() >= indent).collect::<Vec<_>>().join("\n");
    let mut json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let key = ES256KeyPair::generate().with_key_id("fuzz");
    let point = key.public_key().public_key().to_bytes_uncompressed();
    let b64 = |b: &[u8]| Base64UrlSafeNoPadding::encode_to_string(b).unwrap();
    json["trust_domains"][0]["jwt_bundle"]["keys"] = serde_json::json!([{"kty":"EC","crv":"P-256","kid":"fuzz","use":"jwt-svid","x":b64(&point[1..33]),"y":b64(&point[33..65])}]);
    let policy = Policy::from_json(json.to_string().as_bytes(), &|_| Some("sk-test".to_string())).unwrap();
    let claims = Claims::create(Duration::from_hours(1))
        .with_subject("spiffe://example.org/ns/research/sa/agent")
        .with_audience("spiffe://example.org/modelgate");
    (policy, key.sign(claims).unwrap())
}

#[test]
fn mutated_requests_never_panic() {
    let (policy, valid) = policy_and_token();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let now_ms = Clock::now_since_epoch().as_millis();
    let mut allowed = 0;
    let memory = Rc::new(ResponseMemory::new(1 << 20));
    let svids = SvidCache::new(64);
    let trust = TrustStore::new(&policy.trust_domains);
    let tokens = modelgate_policies::TokenCache::default();
    let shared = modelgate_policies::MemoryStore::default();
    let body = br#"{"model":"gpt-4o-mini","stream":false,"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    let form = b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ--\r\n";
    let paths = [
        "/openai/v1/chat/completions",
        "/anthropic/v1/messages",
        "/openai/v1/audio/transcriptions",
        "/openai/v1/models",
        "/private/v1/embeddings",
    ];
    for round in 0..4000 {
        let path = String::from_utf8_lossy(&mutate(&mut rng, paths[round % paths.len()].as_bytes())).into_owned();
        // Half the rounds carry the valid SVID, so bodies reach the decision.
        let token = if round % 2 == 0 {
            valid.clone()
        } else {
            String::from_utf8_lossy(&mutate(&mut rng, valid.as_bytes())).into_owned()
        };
        let multipart = path.contains("audio");
        let content_type = if multipart { "multipart/form-data; boundary=XyZ" } else { "application/json" };
        let headers = vec![
            ("authorization".to_string(), format!("Bearer {token}")),
            ("x-api-key".to_string(), if round % 7 == 0 { token.clone() } else { String::new() }),
            ("content-type".to_string(), content_type.to_string()),
        ];
        let head = RequestHead {
            method: if round % 11 == 0 { "GET" } else { "POST" },
            path: &path,
            authority: "localhost:10000",
            headers: &headers,
            request_id: Some("r"),
            client_address: None,
            peer: None,
            metadata: &[],
        };
        let mut exchange = Flow::new(Some(&policy), now_ms);
        let env = Env {
            policy: &policy,
            verifier: &PureRustVerifier,
            now_ms,
            memory: &memory,
            svids: &svids,
            trust: &trust,
            tokens: &tokens,
            random: &|| [1; 16],
            shared: &shared,
        };
        let body = mutate(&mut rng, if multipart { form } else { body });
        let no_body = rng.below(13) == 0;
        let mut step = exchange.drive(&env, Event::RequestHeaders { head, end_of_stream: no_body });
        // The body in random pieces; sometimes trailers end it, sometimes
        // it never comes (the hold expires), sometimes the host refuses a step.
        let mut held = 0;
        while exchange.phase() == Phase::ReadingBody && held < body.len() {
            held = (held + 1 + rng.below(body.len())).min(body.len());
            let so_far = &body[..held];
            step = match rng.below(10) {
                0 => exchange.drive(&env, Event::RequestTrailers { body: &so_far }),
                1 => exchange.drive(&env, Event::HoldExpired),
                _ => exchange
                    .drive(&env, Event::RequestBody { size: held, end_of_stream: held == body.len(), body: &so_far }),
            };
        }
        if let Step::Callout { .. } = step {
            step = exchange.drive(&env, Event::Callout(modelgate_policies::CalloutResult::Failed("x".into())));
        }
        if rng.below(17) == 0 {
            step = exchange.drive(&env, Event::StepFailed);
        }
        if let Step::Continue(_) = step {
            allowed += 1;
        }
        let content_type = ["application/json", "text/event-stream", "application/json; charset=utf-8"][rng.below(3)];
        exchange
            .drive(&env, Event::ResponseHeaders { status: Some(200), content_type: Some(content_type), session: None });
        let response = mutate(
            &mut rng,
            br#"{"model":"m","usage":{"prompt_tokens":1,"completion_tokens":2},"data":[{"id":"gpt-4o"}]}"#,
        );
        let cut = rng.below(response.len() + 1);
        exchange.drive(&env, Event::ResponseBody { size: cut, end_of_stream: false, body: &&response[..cut] });
        exchange
            .drive(&env, Event::ResponseBody { size: response.len(), end_of_stream: true, body: &response.as_slice() });
        let Step::Audit(line) = exchange.drive(&env, Event::Log(LogInfo { status: Some(200), ..Default::default() }))
        else {
            panic!("round {round}: no record");
        };
        let record: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(record["decision"].is_string(), "round {round}");
    }
    assert_eq!(memory.in_use(), 0, "every response gave its bytes back");
    assert!(allowed > 50, "too few rounds reached a decision to mean much: {allowed}");
}
