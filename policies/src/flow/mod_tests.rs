//! The whole flow natively, through the one driver the filter calls: the
//! same scenarios the end-to-end tests run through Envoy.

use serde_json::{json, Value};

use std::rc::Rc;

use super::*;
use crate::api;
use crate::body::apply_edits;
use crate::config::Credential;
use crate::credential::token_exchange::TokenCache;
use crate::flow::headers::trace_id;
use crate::flow::memory::MAX_LISTING_BYTES;
use crate::identity::svid::PureRustVerifier;
use crate::identity::svid::{SvidCache, TrustStore};
use crate::testing::*;
use crate::util::text::MAX_AUDIT_VALUE;

const NOW_MS: u64 = NOW * 1000;

struct Call {
    method: &'static str,
    path: String,
    authority: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn call(path: &str, token: Option<&str>, body: Value) -> Call {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(t) = token {
        headers.push(("authorization".into(), format!("Bearer {t}")));
    }
    Call {
        method: "POST",
        path: path.into(),
        authority: "api.openai.com",
        headers,
        body: body.to_string().into_bytes(),
    }
}

fn chat(token: Option<&str>, body: Value) -> Call {
    call("/v1/chat/completions", token, body)
}

impl Call {
    fn head(&self) -> RequestHead<'_> {
        RequestHead {
            method: self.method,
            path: &self.path,
            authority: self.authority,
            headers: &self.headers,
            request_id: Some("rid-1"),
            client_address: Some("10.0.0.7:51234"),
            peer: None,
            metadata: &[],
        }
    }

    fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// A test's engine: the policy, a VM's response memory, a clock.
struct Vm {
    policy: Policy,
    memory: Rc<ResponseMemory>,
    svids: SvidCache,
    trust: TrustStore,
    tokens: TokenCache,
    shared: crate::budget::slots::MemoryStore,
}

impl Vm {
    fn new(patch: Value) -> Vm {
        Vm::with(policy(patch))
    }

    fn with(policy: Policy) -> Vm {
        let svids = SvidCache::new(policy.jwt_svid.cache_size);
        let trust = TrustStore::new(&policy.trust_domains);
        Vm {
            policy,
            memory: Rc::new(ResponseMemory::new(MAX_RESPONSE_HELD_PER_VM)),
            svids,
            trust,
            tokens: TokenCache::default(),
            shared: crate::budget::slots::MemoryStore::default(),
        }
    }

    fn env(&self, now_ms: u64) -> Env<'_> {
        Env {
            policy: &self.policy,
            verifier: &PureRustVerifier,
            now_ms,
            memory: &self.memory,
            svids: &self.svids,
            trust: &self.trust,
            tokens: &self.tokens,
            random: &|| [9; 16],
            shared: &self.shared,
        }
    }

    /// Sends the request's headers, then its body in one piece.
    fn send(&self, x: &mut Flow, c: &Call) -> Step {
        let env = self.env(NOW_MS);
        let step = x.drive(&env, Event::RequestHeaders { head: c.head(), end_of_stream: c.body.is_empty() });
        if step != Step::Hold || x.phase() != Phase::ReadingBody {
            return step;
        }
        x.drive(&env, Event::RequestBody { size: c.body.len(), end_of_stream: true, body: &c.body.as_slice() })
    }

    /// Runs a call to its end: the step the request got, and the record.
    fn run(&self, c: &Call) -> (Step, Value) {
        let mut x = Flow::new(Some(&self.policy), NOW_MS);
        let step = self.send(&mut x, c);
        let status = match &step {
            Step::Reply(r) => Some(r.status),
            Step::Continue(_) => {
                let env = self.env(NOW_MS + 5);
                x.drive(
                    &env,
                    Event::ResponseHeaders { status: Some(200), content_type: Some("application/json"), session: None },
                );
                let resp = json!({"model":"gpt-4o-mini-2024-07-18","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}).to_string();
                let (a, b) = resp.as_bytes().split_at(10);
                x.drive(&env, Event::ResponseBody { size: a.len(), end_of_stream: false, body: &a });
                x.drive(&env, Event::ResponseBody { size: b.len(), end_of_stream: true, body: &b });
                Some(200)
            }
            _ => None,
        };
        (step, self.log(&mut x, status))
    }

    fn log(&self, x: &mut Flow, status: Option<u16>) -> Value {
        match x.drive(&self.env(NOW_MS), Event::Log(LogInfo { status, ..Default::default() })) {
            Step::Audit(line) => serde_json::from_str(&line).unwrap(),
            other => panic!("expected the record, got {other:?}"),
        }
    }
}

fn reply(s: &Step) -> &LocalReply {
    match s {
        Step::Reply(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn forwarded(s: &Step) -> &Rewrite {
    match s {
        Step::Continue(r) => r,
        other => panic!("expected the request to go on, got {other:?}"),
    }
}

fn mini() -> Value {
    json!({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]})
}

#[test]
fn an_allowed_call_is_forwarded_with_the_provider_key_and_audited() {
    let vm = Vm::new(json!({}));
    let token = svid(BOT);
    let c = chat(Some(&token), mini());
    let (s, rec) = vm.run(&c);
    let rw = forwarded(&s);
    assert!(rw.remove_headers.contains(&"authorization".to_string()));
    assert_eq!(rw.set_headers, vec![("authorization".to_string(), "Bearer sk-openai-upstream".to_string())]);
    // The cap (1024) was written into the body, and nothing else changed.
    let body = apply_edits(&c.body, &rw.body_edits);
    let mut want = c.body.clone();
    want.splice(1..1, b"\"max_completion_tokens\":1024,".iter().copied());
    assert_eq!(body, want);
    assert_eq!(rec["decision"], "allow");
    assert_eq!(rec["reason"], "ok");
    assert_eq!(rec["rule"], "support-bot");
    assert_eq!(rec["workload"]["spiffe_id"], BOT);
    assert_eq!(rec["workload"]["jwt"]["kid"], "k1");
    assert_eq!(rec["provider"], "openai");
    assert_eq!(rec["endpoint"], "/v1/chat/completions");
    assert_eq!(rec["model"], "gpt-4o-mini");
    assert_eq!(rec["response_model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(rec["usage"], json!({"input_tokens":3,"output_tokens":4,"total_tokens":7}));
    assert_eq!(rec["credential"], json!({"type":"api_key","name":"openai"}));
    assert_eq!(rec["upstream"], json!({"status":200,"duration_ms":5}));
    assert_eq!(rec["client"]["address"], "10.0.0.7:51234");
    assert_eq!(rec["time"], "2026-11-18T11:06:40.000Z");
    let text = rec.to_string();
    assert!(!text.contains(&token) && !text.contains("sk-openai-upstream") && !text.contains("\"hi\""));
    assert_eq!(vm.memory.in_use(), 0, "the response's bytes went back to the VM");
}

#[test]
fn nothing_goes_on_before_the_body_is_decided() {
    let vm = Vm::new(json!({}));
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    let c = chat(Some(&svid(BOT)), json!({"model":"gpt-4o"}));
    let env = vm.env(NOW_MS);
    assert_eq!(x.drive(&env, Event::RequestHeaders { head: c.head(), end_of_stream: false }), Step::Hold);
    let (a, b) = c.body.split_at(5);
    assert_eq!(x.drive(&env, Event::RequestBody { size: a.len(), end_of_stream: false, body: &a }), Step::Hold);
    let s = x.drive(&env, Event::RequestBody { size: c.body.len(), end_of_stream: true, body: &c.body.as_slice() });
    assert_eq!(reply(&s).status, 403);
    let _ = b;
    // Whatever comes after a refusal stays held.
    assert_eq!(x.drive(&env, Event::RequestBody { size: 1, end_of_stream: true, body: &&b"x"[..] }), Step::Hold);
}

#[test]
fn a_disallowed_model_is_refused_in_the_api_shape() {
    let vm = Vm::new(json!({}));
    let (s, rec) = vm.run(&chat(Some(&svid(BOT)), json!({"model":"gpt-4o"})));
    let r = reply(&s);
    assert_eq!(r.status, 403);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "model_not_allowed");
    assert_eq!(
        (rec["decision"].as_str(), rec["reason"].as_str(), rec["status"].as_u64()),
        (Some("deny"), Some("model_not_allowed"), Some(403))
    );
    assert_eq!(rec["model"], "gpt-4o");
    assert_eq!(rec["rule"], Value::Null);
    assert_eq!(rec["upstream"], Value::Null);
}

#[test]
fn deny_rules_win_and_name_themselves() {
    let vm = Vm::new(json!({}));
    let (_, rec) =
        vm.run(&chat(Some(&svid("spiffe://example.org/ns/research/sa/a")), json!({"model":"gpt-3.5-turbo"})));
    assert_eq!((rec["reason"].as_str(), rec["rule"].as_str()), (Some("model_not_allowed"), Some("no-legacy")));
}

#[test]
fn identity_failures_are_401_with_their_detail_before_any_body() {
    let vm = Vm::new(json!({}));
    let expired =
        sign_es256(&ec_key(1), &json!({"alg":"ES256","kid":"k1"}), &json!({"sub":BOT,"aud":AUD,"exp":NOW-100}));
    let cases = [
        (None, "missing_identity", "no_credential"),
        (Some(expired.as_str()), "invalid_svid", "expired"),
        (Some("garbage"), "invalid_svid", "malformed"),
    ];
    for (token, reason, detail) in cases {
        let c = chat(token, mini());
        let mut x = Flow::new(Some(&vm.policy), NOW_MS);
        // Refused on the headers: the body is never held.
        let s = x.drive(&vm.env(NOW_MS), Event::RequestHeaders { head: c.head(), end_of_stream: false });
        let r = reply(&s);
        assert_eq!(r.status, 401);
        assert!(r.headers.iter().any(|(k, v)| k == "www-authenticate" && v.contains("invalid_token")));
        let rec = vm.log(&mut x, Some(401));
        assert_eq!((rec["reason"].as_str(), rec["detail"].as_str()), (Some(reason), Some(detail)));
        assert_eq!(rec["workload"], Value::Null);
    }
}

#[test]
fn a_workload_no_rule_names_is_refused_before_its_body() {
    let vm = Vm::new(json!({}));
    let c = chat(Some(&svid("spiffe://example.org/ns/nobody/sa/x")), mini());
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    let s = x.drive(&vm.env(NOW_MS), Event::RequestHeaders { head: c.head(), end_of_stream: false });
    assert_eq!(reply(&s).status, 403);
    let rec = vm.log(&mut x, Some(403));
    assert_eq!((rec["reason"].as_str(), rec["detail"].as_str()), (Some("model_not_allowed"), Some("no_matching_rule")));
    // batch may use openai, but nothing at anthropic.
    let mut c = call("/anthropic/v1/messages", None, json!({"model":"claude-x","max_tokens":5}));
    c.authority = "gateway.local";
    let c = c.header("x-api-key", &svid("spiffe://example.org/ns/batch/x"));
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    let s = x.drive(&vm.env(NOW_MS), Event::RequestHeaders { head: c.head(), end_of_stream: false });
    assert_eq!(reply(&s).status, 403);
}

#[test]
fn anthropic_callers_use_x_api_key_and_get_anthropic_errors() {
    let vm = Vm::new(json!({}));
    let mut c =
        call("/anthropic/v1/messages", None, json!({"model":"claude-3-5-haiku-latest","max_tokens":100,"messages":[]}));
    c.authority = "gateway.local";
    let c = c.header("x-api-key", &svid(BOT));
    let (s, rec) = vm.run(&c);
    let rw = forwarded(&s);
    assert!(rw.set_headers.contains(&("x-api-key".to_string(), "sk-ant-upstream".to_string())));
    assert!(rw.set_headers.contains(&("anthropic-version".to_string(), "2023-06-01".to_string())));
    assert_eq!((rec["provider"].as_str(), rec["endpoint"].as_str()), (Some("anthropic"), Some("/v1/messages")));
    let mut c = call(
        "/anthropic/v1/messages",
        None,
        json!({"model":"claude-3-5-haiku-latest","max_tokens":5000,"messages":[]}),
    );
    c.authority = "gateway.local";
    let (s, _) = vm.run(&c.header("x-api-key", &svid(BOT)));
    let body: Value = serde_json::from_slice(&reply(&s).body).unwrap();
    assert_eq!(body["error"]["type"], "permission_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("max_tokens_exceeded"));
}

#[test]
fn unknown_paths_and_providers_are_refused() {
    let vm = Vm::new(json!({}));
    let t = svid(BOT);
    let (s, rec) = vm.run(&call("/v1/files", Some(&t), mini()));
    assert_eq!((reply(&s).status, rec["reason"].as_str()), (403, Some("endpoint_not_allowed")));
    let mut c = chat(Some(&t), mini());
    c.authority = "api.other.com";
    let (s, rec) = vm.run(&c);
    assert_eq!((reply(&s).status, rec["reason"].as_str()), (403, Some("no_provider")));
    let mut c = chat(Some(&t), mini());
    c.method = "GET";
    assert_eq!(reply(&vm.run(&c).0).status, 403);
}

/// Envoy routes on the whole authority: `api.openai.com:443` or
/// `api.openai.com.` may reach another virtual host, so they are not the
/// provider `api.openai.com` (and never get its key).
#[test]
fn the_authority_is_matched_as_envoy_routes_it() {
    let vm = Vm::new(json!({}));
    let mut c = chat(Some(&svid(BOT)), mini());
    c.authority = "API.OpenAI.com";
    assert!(matches!(vm.run(&c).0, Step::Continue(_)));
    for authority in ["api.openai.com:443", "api.openai.com.", "api.openai.com.evil.com", "evil.com"] {
        let mut c = chat(Some(&svid(BOT)), mini());
        c.authority = authority;
        let (s, rec) = vm.run(&c);
        assert_eq!((reply(&s).status, rec["reason"].as_str()), (403, Some("no_provider")), "{authority}");
    }
}

#[test]
fn bodies_are_refused_before_and_while_buffering() {
    let vm = Vm::new(json!({}));
    let t = svid(BOT);
    let big = json!({"model":"gpt-4o-mini","input":"x".repeat(5000)});
    let (s, rec) = vm.run(&chat(Some(&t), big.clone()));
    assert_eq!((reply(&s).status, rec["reason"].as_str()), (413, Some("body_too_large")));
    // A declared length over the limit is refused on the headers.
    let c = chat(Some(&t), mini()).header("content-length", "999999");
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    assert_eq!(
        reply(&x.drive(&vm.env(NOW_MS), Event::RequestHeaders { head: c.head(), end_of_stream: false })).status,
        413
    );
    // A chunked body is refused as soon as it grows past the limit.
    let c = chat(Some(&t), mini());
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    x.drive(&vm.env(NOW_MS), Event::RequestHeaders { head: c.head(), end_of_stream: false });
    let chunk = [b'x'; 4097];
    let s = x.drive(&vm.env(NOW_MS), Event::RequestBody { size: chunk.len(), end_of_stream: false, body: &&chunk[..] });
    assert_eq!(reply(&s).status, 413);
    let c = chat(Some(&t), mini()).header("content-encoding", "gzip");
    let (s, rec) = vm.run(&c);
    assert_eq!(
        (reply(&s).status, rec["reason"].as_str(), rec["detail"].as_str()),
        (415, Some("unsupported_encoding"), Some("gzip"))
    );
    let c = chat(Some(&t), mini()).header("content-encoding", "identity");
    assert!(matches!(vm.run(&c).0, Step::Continue(_)));
    let mut c = chat(Some(&t), mini());
    c.body = br#"{"model":"gpt-4o-mini","model":"gpt-4o"}"#.to_vec();
    assert_eq!(vm.run(&c).1["reason"], "ambiguous_model");
}

/// Over HTTP/2 a body can end in trailers, with no end-of-stream on the
/// body: the trailers decide it, exactly as the end of the body would.
#[test]
fn trailers_end_the_body_and_decide_it() {
    let vm = Vm::new(json!({}));
    for (model, allowed) in [("gpt-4o", false), ("gpt-4o-mini", true)] {
        let c = chat(Some(&svid(BOT)), json!({"model": model}));
        let mut x = Flow::new(Some(&vm.policy), NOW_MS);
        let env = vm.env(NOW_MS);
        x.drive(&env, Event::RequestHeaders { head: c.head(), end_of_stream: false });
        assert_eq!(
            x.drive(&env, Event::RequestBody { size: c.body.len(), end_of_stream: false, body: &c.body.as_slice() }),
            Step::Hold
        );
        let s = x.drive(&env, Event::RequestTrailers { body: &c.body.as_slice() });
        assert_eq!(matches!(s, Step::Continue(_)), allowed, "{model}: {s:?}");
        let rec = vm.log(&mut x, Some(if allowed { 200 } else { 403 }));
        assert_eq!(
            (rec["model"].as_str(), rec["decision"].as_str()),
            (Some(model), Some(if allowed { "allow" } else { "deny" }))
        );
    }
}

#[test]
fn a_held_request_whose_body_never_comes_fails_closed() {
    let vm = Vm::new(json!({}));
    let c = chat(Some(&svid(BOT)), mini());
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    x.drive(&vm.env(NOW_MS), Event::RequestHeaders { head: c.head(), end_of_stream: false });
    let s = x.drive(&vm.env(NOW_MS), Event::HoldExpired);
    let r = reply(&s);
    assert_eq!(
        (r.status, r.headers.iter().find(|(k, _)| k == "x-modelgate-reason").map(|(_, v)| v.as_str())),
        (503, Some("not_configured"))
    );
    assert!(String::from_utf8_lossy(&r.body).contains("allow_on_headers_stop_iteration"));
    let rec = vm.log(&mut x, Some(503));
    assert_eq!(
        (rec["decision"].as_str(), rec["reason"].as_str(), rec["detail"].as_str()),
        (Some("deny"), Some("not_configured"), Some("hold_unsupported"))
    );
    // Once the body is being read, a late expiry changes nothing.
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    let s = vm.send(&mut x, &c);
    assert!(matches!(s, Step::Continue(_)));
    assert_eq!(x.drive(&vm.env(NOW_MS), Event::HoldExpired), Step::Hold);
}

#[test]
fn stream_limits_apply_per_rule() {
    let vm = Vm::new(json!({}));
    let batch = svid("spiffe://example.org/ns/batch/summarizer");
    let (s, rec) = vm.run(&chat(Some(&batch), json!({"model":"gpt-4o-mini","stream":true})));
    assert_eq!(
        (reply(&s).status, rec["reason"].as_str(), rec["rule"].as_str()),
        (403, Some("stream_not_allowed"), Some("batch"))
    );
    let (s, _) = vm.run(&chat(Some(&svid(BOT)), json!({"model":"gpt-4o-mini","stream":true})));
    assert!(matches!(s, Step::Continue(_)));
}

#[test]
fn query_parameters_the_endpoint_does_not_take_are_removed() {
    let vm = Vm::new(json!({}));
    let mut c = chat(Some(&svid(BOT)), mini());
    c.path = "/v1/chat/completions?key=sk-caller&x=1".into();
    assert_eq!(forwarded(&vm.run(&c).0).path.as_deref(), Some("/v1/chat/completions"));
}

#[test]
fn audit_mode_forwards_what_it_would_deny_but_never_an_unknown_caller() {
    let vm = Vm::new(json!({"mode":"audit"}));
    let (s, rec) = vm.run(&chat(Some(&svid(BOT)), json!({"model":"gpt-4o"})));
    let rw = forwarded(&s);
    assert!(rw.remove_headers.contains(&"authorization".to_string()));
    assert!(rw.body_edits.is_empty(), "audit mode changes nothing but credentials");
    assert_eq!(
        (rec["decision"].as_str(), rec["would_deny"].as_bool(), rec["reason"].as_str()),
        (Some("allow"), Some(true), Some("model_not_allowed"))
    );
    assert_eq!(rec["mode"], "audit");
    // A caller without a valid SVID is refused in audit mode too: the
    // gateway's key is never handed to a caller it could not identify.
    for token in [None, Some("garbage")] {
        let (s, rec) = vm.run(&chat(token, json!({"model":"gpt-4o"})));
        assert_eq!(reply(&s).status, 401);
        assert_eq!(
            (rec["decision"].as_str(), rec["would_deny"].as_bool(), rec["mode"].as_str()),
            (Some("deny"), Some(false), Some("audit"))
        );
    }
    // An allowed call in audit mode is not marked.
    let (_, rec) = vm.run(&chat(Some(&svid(BOT)), mini()));
    assert_eq!((rec["reason"].as_str(), rec["would_deny"].as_bool()), (Some("ok"), Some(false)));
}

#[test]
fn a_request_that_ends_before_a_decision_is_still_audited() {
    let vm = Vm::new(json!({}));
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    let c = chat(Some(&svid(BOT)), mini());
    assert_eq!(x.drive(&vm.env(NOW_MS), Event::RequestHeaders { head: c.head(), end_of_stream: false }), Step::Hold);
    let rec = vm.log(&mut x, None);
    assert_eq!((rec["decision"].as_str(), rec["reason"].as_str()), (Some("deny"), Some("incomplete")));
    assert_eq!(rec["workload"]["spiffe_id"], BOT);

    // Envoy refused the request before modelgate saw its headers.
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    let log = LogInfo {
        status: Some(400),
        request_id: Some("rid-9".into()),
        details: Some("path_normalization_failed".into()),
        client_address: Some("10.0.0.9:4000".into()),
    };
    let Step::Audit(line) = x.drive(&vm.env(NOW_MS), Event::Log(log)) else { panic!() };
    let rec: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (rec["reason"].as_str(), rec["detail"].as_str(), rec["request_id"].as_str()),
        (Some("incomplete"), Some("path_normalization_failed"), Some("rid-9"))
    );
    assert_eq!(rec["time"], "2026-11-18T11:06:40.000Z");
    assert_eq!((rec["mode"].as_str(), rec["client"]["address"].as_str()), (Some("enforce"), Some("10.0.0.9:4000")));
}

#[test]
fn trace_ids_are_read_from_traceparent_or_b3() {
    let h = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    assert_eq!(
        trace_id(&h("traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")).as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(trace_id(&h("x-b3-traceid", "463ac35c9f6413ad")).as_deref(), Some("463ac35c9f6413ad"));
    assert_eq!(trace_id(&h("traceparent", "garbage")), None);
}

#[test]
fn values_a_workload_chose_are_bounded_in_the_record() {
    let vm = Vm::new(json!({}));
    let long = "é".repeat(300);
    let (_, rec) = vm.run(&chat(Some(&svid(BOT)), json!({"model": long})));
    let model = rec["model"].as_str().unwrap();
    assert!(model.len() <= MAX_AUDIT_VALUE + '…'.len_utf8() && model.ends_with('…'));
    let (_, rec) = vm.run(&call(&format!("/v1/{}", "x".repeat(5000)), Some(&svid(BOT)), mini()));
    assert!(rec["endpoint"].as_str().unwrap().len() < 300);
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    let c = chat(Some(&svid(BOT)), mini());
    let id = "r".repeat(5000);
    let head = RequestHead { request_id: Some(&id), client_address: Some(&id), ..c.head() };
    x.drive(&vm.env(NOW_MS), Event::RequestHeaders { head, end_of_stream: false });
    let rec = vm.log(&mut x, None);
    assert!(rec["request_id"].as_str().unwrap().len() < 300 && rec["client"]["address"].as_str().unwrap().len() < 300);
}

#[test]
fn model_listings_are_allowed_to_named_workloads_and_filtered() {
    let vm = Vm::new(json!({}));
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    let mut c = call("/v1/models", Some(&svid(BOT)), json!({}));
    c.method = "GET";
    c.body.clear();
    let env = vm.env(NOW_MS);
    let s = x.drive(&env, Event::RequestHeaders { head: c.head(), end_of_stream: true });
    assert!(forwarded(&s).set_headers.iter().any(|(k, _)| k == "authorization"));
    let s = x.drive(
        &env,
        Event::ResponseHeaders { status: Some(200), content_type: Some("application/json"), session: None },
    );
    assert_eq!(forwarded(&s).remove_headers, ["content-length"]);
    let listing = br#"{"object":"list","data":[{"id":"gpt-4o"},{"id":"gpt-4o-mini"},{"id":"gpt-3.5-turbo"}]}"#;
    let (a, _) = listing.split_at(10);
    assert_eq!(x.drive(&env, Event::ResponseBody { size: a.len(), end_of_stream: false, body: &a }), Step::Hold);
    let s = x.drive(&env, Event::ResponseBody { size: listing.len(), end_of_stream: true, body: &&listing[..] });
    let out: Value = serde_json::from_slice(&apply_edits(listing, &forwarded(&s).body_edits)).unwrap();
    assert_eq!(out["data"], json!([{"id":"gpt-4o-mini"}]));
    let rec = vm.log(&mut x, Some(200));
    assert_eq!(
        (rec["decision"].as_str(), rec["rule"].as_str(), rec["endpoint"].as_str()),
        (Some("allow"), Some("support-bot"), Some("/v1/models"))
    );

    // A workload no rule names for the provider may not list it.
    let mut c = call("/anthropic/v1/models", Some(&svid("spiffe://example.org/ns/batch/x")), json!({}));
    c.method = "GET";
    c.body.clear();
    let (s, rec) = vm.run(&c);
    assert_eq!((reply(&s).status, rec["reason"].as_str()), (403, Some("model_not_allowed")));
}

#[test]
fn a_listing_too_large_to_filter_becomes_an_empty_one() {
    let vm = Vm::new(json!({}));
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    let mut c = call("/v1/models", Some(&svid(BOT)), json!({}));
    c.method = "GET";
    c.body.clear();
    let env = vm.env(NOW_MS);
    x.drive(&env, Event::RequestHeaders { head: c.head(), end_of_stream: true });
    x.drive(&env, Event::ResponseHeaders { status: Some(200), content_type: Some("application/json"), session: None });
    let big = vec![b' '; MAX_LISTING_BYTES + 1];
    let s = x.drive(&env, Event::ResponseBody { size: big.len(), end_of_stream: false, body: &&big[..] });
    assert_eq!(apply_edits(&big, &forwarded(&s).body_edits), api::EMPTY_LISTING);
    let s = x.drive(&env, Event::ResponseBody { size: 3, end_of_stream: true, body: &&b"abc"[..] });
    assert_eq!(apply_edits(b"abc", &forwarded(&s).body_edits), b"");
}

#[test]
fn held_responses_are_bounded_per_request_and_per_vm() {
    let mut vm = Vm::new(json!({}));
    vm.memory = Rc::new(ResponseMemory::new(100));
    let c = chat(Some(&svid(BOT)), mini());
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    assert!(matches!(vm.send(&mut x, &c), Step::Continue(_)));
    let env = vm.env(NOW_MS);
    x.drive(&env, Event::ResponseHeaders { status: Some(200), content_type: Some("application/json"), session: None });
    let chunk = [b' '; 60];
    x.drive(&env, Event::ResponseBody { size: 60, end_of_stream: false, body: &&chunk[..] });
    assert_eq!(vm.memory.in_use(), 60);
    // A second request on the same VM cannot take what is left and more.
    let mut y = Flow::new(Some(&vm.policy), NOW_MS);
    vm.send(&mut y, &c);
    y.drive(&env, Event::ResponseHeaders { status: Some(200), content_type: Some("application/json"), session: None });
    assert_eq!(
        y.drive(&env, Event::ResponseBody { size: 60, end_of_stream: true, body: &&chunk[..] }),
        Step::Continue(Rewrite::default())
    );
    assert_eq!(vm.log(&mut y, Some(200))["usage_complete"], false);
    assert_eq!(vm.memory.in_use(), 60);
    drop(x);
    assert_eq!(vm.memory.in_use(), 0, "a request that ends gives its bytes back");
}

/// The call-out outcome: the request waits, held, for the credential.
#[test]
fn a_credential_from_a_call_out_is_awaited_and_failures_refused() {
    let mut vm = Vm::new(json!({}));
    let openai = vm.policy.providers.iter_mut().find(|p| p.name == "openai").unwrap();
    openai.credential = Credential::TestCallout { cluster: "token_server".into() };
    let c = chat(Some(&svid(BOT)), mini());

    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    let Step::Callout { call, .. } = vm.send(&mut x, &c) else { panic!("expected a call-out") };
    assert_eq!((call.cluster.as_str(), x.phase()), ("token_server", Phase::AwaitingCredential));
    // Nothing else moves it while it waits.
    assert_eq!(x.drive(&vm.env(NOW_MS), Event::RequestTrailers { body: &c.body.as_slice() }), Step::Hold);
    let answer = CalloutResult::Response {
        content_type: None,
        status: 200,
        body: br#"{"access_token":"at-1","token_type":"Bearer","expires_in":60}"#.to_vec(),
    };
    let s = x.drive(&vm.env(NOW_MS), Event::Callout(answer));
    let rw = forwarded(&s);
    assert!(rw.set_headers.contains(&("authorization".to_string(), "Bearer at-1".to_string())));
    assert!(!rw.body_edits.is_empty(), "the cap decided before the call-out is still written");
    assert_eq!(vm.log(&mut x, Some(200))["decision"], "allow");

    for answer in [
        CalloutResult::Failed("timeout".into()),
        CalloutResult::Response { content_type: None, status: 500, body: vec![] },
        CalloutResult::Response { content_type: None, status: 200, body: b"not json".to_vec() },
    ] {
        let mut x = Flow::new(Some(&vm.policy), NOW_MS);
        assert!(matches!(vm.send(&mut x, &c), Step::Callout { .. }));
        let s = x.drive(&vm.env(NOW_MS), Event::Callout(answer.clone()));
        assert_eq!(reply(&s).status, 503, "{answer:?}");
        let rec = vm.log(&mut x, Some(503));
        assert_eq!((rec["decision"].as_str(), rec["reason"].as_str()), (Some("deny"), Some("credential_unavailable")));
        assert_eq!(rec["credential"], Value::Null, "a refused exchange used no credential");
    }

    // The client leaves while the credential is fetched: nothing went on.
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    vm.send(&mut x, &c);
    let rec = vm.log(&mut x, None);
    assert_eq!(
        (rec["decision"].as_str(), rec["reason"].as_str(), rec["credential"].clone()),
        (Some("deny"), Some("incomplete"), Value::Null)
    );
}

/// Requests of one workload that need the same token: one fetches, the
/// others share its answer — the token, or the refusal.
#[test]
fn requests_waiting_on_the_same_credential_share_its_answer() {
    let mut vm = Vm::new(json!({}));
    let openai = vm.policy.providers.iter_mut().find(|p| p.name == "openai").unwrap();
    openai.credential = Credential::TestCallout { cluster: "token_server".into() };
    let c = chat(Some(&svid(BOT)), mini());
    let (mut first, mut second) = (Flow::new(Some(&vm.policy), NOW_MS), Flow::new(Some(&vm.policy), NOW_MS));
    let Step::Callout { key: k1, .. } = vm.send(&mut first, &c) else { panic!("a call-out") };
    let Step::Callout { key: k2, .. } = vm.send(&mut second, &c) else { panic!("a call-out") };
    assert_eq!(k1, k2, "the same key: one call can serve both");
    let failed = CalloutResult::Response { content_type: None, status: 500, body: vec![] };
    assert_eq!(reply(&first.drive(&vm.env(NOW_MS), Event::Callout(failed))).status, 503);
    let shared = reply(&second.drive(&vm.env(NOW_MS), Event::CredentialShared)).clone();
    assert_eq!(shared.status, 503);
    assert_eq!(vm.log(&mut second, Some(503))["detail"], "token_endpoint_status");
    // And a token, once fetched, serves the waiter as it is.
    let mut third = Flow::new(Some(&vm.policy), NOW_MS);
    assert!(matches!(vm.send(&mut third, &c), Step::Callout { .. }));
    let mut fourth = Flow::new(Some(&vm.policy), NOW_MS);
    assert!(matches!(vm.send(&mut fourth, &c), Step::Callout { .. }));
    let ok = CalloutResult::Response {
        content_type: None,
        status: 200,
        body: br#"{"access_token":"at-2","token_type":"Bearer","expires_in":60}"#.to_vec(),
    };
    forwarded(&third.drive(&vm.env(NOW_MS), Event::Callout(ok)));
    let rw = forwarded(&fourth.drive(&vm.env(NOW_MS), Event::CredentialShared)).clone();
    assert!(rw.set_headers.contains(&("authorization".to_string(), "Bearer at-2".to_string())));
}

#[test]
fn a_rewrite_the_host_refused_is_a_503_in_every_mode() {
    let vm = Vm::new(json!({"mode":"audit"}));
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    let c = chat(Some(&svid(BOT)), mini());
    assert!(matches!(vm.send(&mut x, &c), Step::Continue(_)));
    assert_eq!(reply(&x.drive(&vm.env(NOW_MS), Event::StepFailed)).status, 503);
    let rec = vm.log(&mut x, Some(503));
    assert_eq!(
        (rec["decision"].as_str(), rec["reason"].as_str(), rec["detail"].as_str()),
        (Some("deny"), Some("credential_unavailable"), Some("rewrite_failed"))
    );
    // On the response side, a failed listing rewrite resets the response.
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    vm.send(&mut x, &c);
    x.drive(&vm.env(NOW_MS), Event::ResponseHeaders { status: Some(200), content_type: None, session: None });
    assert_eq!(x.drive(&vm.env(NOW_MS), Event::StepFailed), Step::ResetResponse);
}

#[test]
fn only_the_decision_to_forward_releases_the_request() {
    let vm = Vm::new(json!({}));
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    let Step::Continue(decided) = vm.send(&mut x, &chat(Some(&svid(BOT)), mini())) else { panic!("not forwarded") };
    assert!(decided.release);
    // What passes after it (trailers, the response) releases nothing again.
    let env = vm.env(NOW_MS);
    for step in [
        x.drive(&env, Event::RequestTrailers { body: &b"".as_slice() }),
        x.drive(&env, Event::ResponseHeaders { status: Some(200), content_type: None, session: None }),
    ] {
        assert!(matches!(step, Step::Continue(Rewrite { release: false, .. })), "{step:?}");
    }
    // A refusal releases nothing.
    let mut y = Flow::new(Some(&vm.policy), NOW_MS);
    assert!(matches!(vm.send(&mut y, &chat(None, mini())), Step::Reply(_)));
}

#[test]
fn envoys_own_replies_pass_in_any_phase() {
    let vm = Vm::new(json!({}));
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    let c = chat(Some(&svid(BOT)), mini());
    x.drive(&vm.env(NOW_MS), Event::RequestHeaders { head: c.head(), end_of_stream: false });
    let s = x.drive(&vm.env(NOW_MS), Event::ResponseHeaders { status: Some(408), content_type: None, session: None });
    assert_eq!(s, Step::Continue(Rewrite::default()));
}

/// Every name that selects what the provider runs is mapped to the model
/// before a rule sees it: Azure deployments on every surface (path, body,
/// nested), Bedrock inference profiles and ARNs; an unmapped one is refused.
#[test]
fn aliases_are_decided_as_the_model_they_run() {
    let providers = json!([
        {"name": "azure", "api": "azure_openai", "match": {"path_prefix": "/azure/"},
         "credential": {"type": "none"},
         "deployments": {"prod-gpt": "gpt-4o-mini", "legacy-gpt": "gpt-3.5-turbo"}},
        {"name": "bedrock", "api": "bedrock", "match": {"path_prefix": "/bedrock/"}, "credential": {"type": "none"},
         "deployments": {"arn:aws:bedrock:us-east-1:1:application-inference-profile/abc": "anthropic.claude-3-haiku-v1:0"}}
    ]);
    let vm = Vm::new(json!({"providers": providers, "rules": [
        {"id": "research", "effect": "allow", "workloads": ["spiffe://example.org/ns/research/**"],
         "providers": ["*"], "models": ["*"]},
        {"id": "no-legacy", "effect": "deny", "workloads": ["spiffe://example.org/**"], "providers": ["*"], "models": ["gpt-3.5-*"]}
    ]}));
    let research = svid("spiffe://example.org/ns/research/sa/agent");
    let run = |path: &str, body: Value| {
        let c = call(path, None, body).header("authorization", &format!("Bearer {research}"));
        vm.run(&c)
    };
    let hi = json!([{"role": "user", "content": "hi"}]);
    // The deny rule covers gpt-3.5-*: whichever surface names the deployment.
    for path in ["/azure/openai/v1/chat/completions", "/azure/openai/deployments/legacy-gpt/chat/completions"] {
        let (s, rec) = run(path, json!({"model": "legacy-gpt", "messages": hi}));
        assert_eq!(reply(&s).status, 403, "{path}");
        assert_eq!(
            (rec["model"].as_str(), rec["requested_model"].as_str()),
            (Some("gpt-3.5-turbo"), Some("legacy-gpt"))
        );
        assert_eq!(rec["rule"], "no-legacy", "{path}");
    }
    let (s, rec) = run("/azure/openai/v1/chat/completions", json!({"model": "prod-gpt", "messages": hi}));
    forwarded(&s);
    assert_eq!((rec["model"].as_str(), rec["requested_model"].as_str()), (Some("gpt-4o-mini"), Some("prod-gpt")));
    // A model name is no deployment: unmapped, refused.
    let (s, rec) = run("/azure/openai/v1/chat/completions", json!({"model": "gpt-4o-mini", "messages": hi}));
    assert_eq!((reply(&s).status, rec["detail"].as_str()), (403, Some("unknown_deployment")));
    // Nested: a tool's model is a deployment too.
    let nested =
        json!({"model": "prod-gpt", "input": "hi", "tools": [{"type": "image_generation", "model": "legacy-gpt"}]});
    let (s, rec) = run("/azure/openai/v1/responses", nested);
    assert_eq!((reply(&s).status, rec["detail"].as_str()), (403, Some("nested_model")));

    // Bedrock: the deny covers the model whatever profile or ARN names it.
    let vm = Vm::new(json!({"providers": providers, "rules": [
        {"id": "all", "effect": "allow", "workloads": ["spiffe://example.org/**"], "providers": ["*"], "models": ["*"]},
        {"id": "no-haiku", "effect": "deny", "workloads": ["spiffe://example.org/**"], "providers": ["*"],
         "models": ["anthropic.claude-3-haiku*"]}
    ]}));
    let run = |id: &str| {
        let c = call(&format!("/bedrock/model/{id}/converse"), None, json!({"messages": []}))
            .header("authorization", &format!("Bearer {research}"));
        vm.run(&c)
    };
    for id in [
        "anthropic.claude-3-haiku-v1:0",
        "us.anthropic.claude-3-haiku-v1:0",
        "global.anthropic.claude-3-haiku-v1:0",
        "arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Fanthropic.claude-3-haiku-v1%3A0",
        "arn%3Aaws%3Abedrock%3Aeu-west-1%3A1%3Ainference-profile%2Feu.anthropic.claude-3-haiku-v1%3A0",
        "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aapplication-inference-profile%2Fabc",
    ] {
        let (s, rec) = run(id);
        assert_eq!((reply(&s).status, rec["rule"].as_str()), (403, Some("no-haiku")), "{id}");
        assert_eq!(rec["model"], "anthropic.claude-3-haiku-v1:0", "{id}");
    }
    let (s, rec) = run("us.anthropic.claude-3-5-sonnet-v2:0");
    forwarded(&s);
    assert_eq!(rec["model"], "anthropic.claude-3-5-sonnet-v2:0");
    for id in [
        "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aprovisioned-model%2Fxyz",
        "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Acustom-model%2Fa.b",
        "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Adefault-prompt-router%2Fanthropic.claude%3A1",
    ] {
        let (s, rec) = run(id);
        assert_eq!((reply(&s).status, rec["detail"].as_str()), (403, Some("unmapped_model_arn")), "{id}");
    }
}

// ---- MCP servers (docs/mcp.md) ----

const TRIAGE: &str = "spiffe://example.org/ns/agents/sa/triage";
const OTHER_AGENT: &str = "spiffe://example.org/ns/agents/sa/other";

fn mcp_vm(mode: &str) -> Vm {
    mcp_vm_with(
        mode,
        &[
            json!({"id": "triage-tools", "effect": "allow", "workloads": ["spiffe://example.org/ns/agents/**"],
                   "providers": ["github"], "mcp": ["initialize", "notifications/*", "tools/list"],
                   "tools": ["search_issues", "get_issue"],
                   "arguments": {"search_issues": {"repo": ["acme/*"]}}}),
            json!({"id": "never-delete", "effect": "deny", "workloads": ["spiffe://example.org/**"],
                   "providers": ["github"], "tools": ["delete_*"]}),
        ],
    )
}

fn mcp_vm_with(mode: &str, rules: &[Value]) -> Vm {
    Vm::with(Policy::from_json(mcp_config(mode, rules).to_string().as_bytes(), &env).unwrap())
}

fn rpc(who: &str, message: Value) -> Call {
    let mut c = call("/github/mcp", Some(&svid(who)), message);
    c.authority = "gateway";
    c.header("accept", "application/json, text/event-stream")
}

fn tool_call(who: &str, name: &str, args: Value) -> Call {
    rpc(who, json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": args}}))
}

#[test]
fn an_allowed_tool_call_goes_on_with_the_servers_key_and_is_recorded() {
    let vm = mcp_vm("enforce");
    let (step, record) = vm.run(&tool_call(TRIAGE, "search_issues", json!({"repo": "acme/api", "query": "flaky"})));
    let rw = forwarded(&step);
    assert!(rw.set_headers.contains(&("authorization".into(), "Bearer ghp-mcp-upstream".into())), "{rw:?}");
    assert_eq!((record["decision"].as_str(), record["rule"].as_str()), (Some("allow"), Some("triage-tools")));
    let mcp = &record["mcp"];
    assert_eq!(
        (mcp["method"].as_str(), mcp["tool"].as_str(), mcp["kind"].as_str()),
        (Some("tools/call"), Some("search_issues"), Some("request"))
    );
    assert_eq!(mcp["id"], json!(7));
    let args = br#"{"query":"flaky","repo":"acme/api"}"#;
    assert_eq!(mcp["arguments_sha256"].as_str(), Some(crate::util::digest::sha256_hex(args).as_str()));
}

#[test]
fn a_denied_tool_is_a_json_rpc_error_with_the_request_id() {
    let vm = mcp_vm("enforce");
    let (step, record) = vm.run(&tool_call(TRIAGE, "delete_repo", json!({"repo": "acme/api"})));
    let r = reply(&step);
    assert_eq!(r.status, 403);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((body["id"].clone(), body["error"]["data"]["reason"].clone()), (json!(7), json!("tool_not_allowed")));
    assert!(r.headers.contains(&("x-modelgate-reason".into(), "tool_not_allowed".into())));
    assert_eq!((record["reason"].as_str(), record["rule"].as_str()), (Some("tool_not_allowed"), Some("never-delete")));
    let (step, _) = vm.run(&tool_call(TRIAGE, "search_issues", json!({"repo": "other/secret"})));
    assert_eq!(reply(&step).status, 403);
}

#[test]
fn a_session_is_handed_out_bound_and_only_its_workload_may_use_it() {
    let vm = mcp_vm("enforce");
    let init = rpc(TRIAGE, json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}));
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    assert!(matches!(vm.send(&mut x, &init), Step::Continue(_)));
    let env = vm.env(NOW_MS);
    let s = x.drive(
        &env,
        Event::ResponseHeaders { status: Some(200), content_type: Some("application/json"), session: Some("srv-42") },
    );
    let wrapped = forwarded(&s).set_headers.iter().find(|(k, _)| k == "mcp-session-id").unwrap().1.clone();
    assert!(wrapped.starts_with("srv-42.mg1."), "{wrapped}");

    let ping = |who: &str, session: &str| {
        rpc(who, json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).header("mcp-session-id", session)
    };
    let (step, _) = vm.run(&ping(TRIAGE, &wrapped));
    assert!(forwarded(&step).set_headers.contains(&("mcp-session-id".into(), "srv-42".into())));
    for (who, session) in [(OTHER_AGENT, wrapped.as_str()), (TRIAGE, "srv-42"), (TRIAGE, "srv-43.mg1.AAAA")] {
        let (step, record) = vm.run(&ping(who, session));
        assert_eq!(reply(&step).status, 404, "{who} {session}");
        assert_eq!(record["reason"].as_str(), Some("session_not_found"));
        assert_eq!(
            record["mcp"]["session"].as_str(),
            Some(crate::util::digest::sha256_hex(session.as_bytes()).as_str())
        );
    }
    // Audit mode observes policy; it hands no one another's session.
    let audit = mcp_vm("audit");
    let (step, _) = audit.run(&ping(OTHER_AGENT, &wrapped));
    assert_eq!(reply(&step).status, 404);
}

#[test]
fn a_tools_listing_is_cut_down_in_an_sse_answer_split_anywhere() {
    let vm = mcp_vm("enforce");
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    let list = rpc(TRIAGE, json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    assert!(matches!(vm.send(&mut x, &list), Step::Continue(_)));
    let env = vm.env(NOW_MS);
    let s = x.drive(
        &env,
        Event::ResponseHeaders { status: Some(200), content_type: Some("text/event-stream"), session: None },
    );
    assert!(forwarded(&s).remove_headers.contains(&"content-length".into()));
    let answer = format!(
        "event: message\ndata: {}\n\n",
        json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": [{"name": "search_issues"}, {"name": "delete_repo"}, {"name": "push_code"}]}})
    );
    let (a, _) = answer.as_bytes().split_at(17);
    assert_eq!(x.drive(&env, Event::ResponseBody { size: a.len(), end_of_stream: false, body: &a }), Step::Hold);
    let whole = answer.as_bytes();
    let s = x.drive(&env, Event::ResponseBody { size: whole.len(), end_of_stream: true, body: &whole });
    let out = String::from_utf8(apply_edits(whole, &forwarded(&s).body_edits)).unwrap();
    assert!(out.contains("search_issues") && !out.contains("delete_repo") && !out.contains("push_code"), "{out}");
}

#[test]
fn the_old_transport_and_other_paths_are_refused_with_the_fix() {
    let vm = mcp_vm("enforce");
    let mut get = rpc(TRIAGE, json!({}));
    get.method = "GET";
    get.body = Vec::new();
    for path in ["/github/mcp", "/github/sse"] {
        get.path = path.into();
        let (step, record) = vm.run(&get);
        assert_eq!(reply(&step).status, 403, "{path}");
        assert_eq!(record["detail"].as_str(), Some("http_sse_transport"), "{path}");
    }
    let mut messages = rpc(TRIAGE, json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}));
    messages.path = "/github/messages?session_id=abc".into();
    let (step, record) = vm.run(&messages);
    assert_eq!(reply(&step).status, 403);
    assert_eq!(record["reason"].as_str(), Some("endpoint_not_allowed"));
}

#[test]
fn routing_headers_must_say_what_the_body_says() {
    let vm = mcp_vm("enforce");
    let call = || tool_call(TRIAGE, "get_issue", json!({"repo": "acme/api", "number": 3}));
    assert!(matches!(
        vm.run(&call().header("mcp-method", "tools/call").header("mcp-name", "get_issue")).0,
        Step::Continue(_)
    ));
    assert!(matches!(vm.run(&call().header("mcp-name", "=?base64?Z2V0X2lzc3Vl?=")).0, Step::Continue(_)));
    assert!(matches!(
        vm.run(&call().header("mcp-param-repo", "acme/api").header("mcp-param-number", "3")).0,
        Step::Continue(_)
    ));
    for (k, v) in [
        ("mcp-method", "tools/list"),
        ("mcp-name", "delete_repo"),
        ("mcp-name", "=?base64?ZGVsZXRlX3JlcG8=?="),
        ("mcp-param-repo", "other/x"),
    ] {
        let (step, record) = vm.run(&call().header(k, v));
        assert_eq!(reply(&step).status, 400, "{k}: {v}");
        assert_eq!(record["detail"].as_str(), Some("header_mismatch"));
    }
}

#[test]
fn an_mcp_param_header_must_hold_the_argument_it_is_named_for() {
    let vm = mcp_vm("enforce");
    let call =
        || tool_call(TRIAGE, "search_issues", json!({"repo": "acme/api", "query": "other/secret", "page_size": 5}));
    assert!(matches!(vm.run(&call().header("mcp-param-repo", "acme/api")).0, Step::Continue(_)));
    assert!(matches!(vm.run(&call().header("mcp-param-page-size", "5")).0, Step::Continue(_)));
    for (k, v) in [("mcp-param-repo", "other/secret"), ("mcp-param-region", "acme/api")] {
        let (step, record) = vm.run(&call().header(k, v));
        assert_eq!(reply(&step).status, 400, "{k}: {v}");
        assert_eq!(record["detail"].as_str(), Some("header_mismatch"));
    }
}

#[test]
fn a_session_stream_carries_no_routing_header_and_is_never_resumed() {
    let vm = mcp_vm("enforce");
    let init = rpc(TRIAGE, json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}));
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    vm.send(&mut x, &init);
    let s =
        x.drive(&vm.env(NOW_MS), Event::ResponseHeaders { status: Some(200), content_type: None, session: Some("s1") });
    let wrapped = forwarded(&s).set_headers.iter().find(|(k, _)| k == "mcp-session-id").unwrap().1.clone();
    let mut get = rpc(TRIAGE, json!({})).header("mcp-session-id", &wrapped).header("last-event-id", "77_3");
    get.method = "GET";
    get.body = Vec::new();
    let (step, _) = vm.run(&get);
    assert!(forwarded(&step).remove_headers.contains(&"last-event-id".into()), "a replay would pass answers uncut");
    let (step, record) = vm.run(&get.header("mcp-name", "delete_repo"));
    assert_eq!(reply(&step).status, 400);
    assert_eq!(record["detail"].as_str(), Some("header_mismatch"));
}

#[test]
fn a_completion_is_decided_on_the_prompt_it_completes() {
    // A rule granted completion/complete and one prompt.
    let vm = mcp_vm_with(
        "enforce",
        &[json!({"id": "t", "effect": "allow", "workloads": ["spiffe://example.org/ns/agents/**"],
                 "providers": ["github"], "prompts": ["triage"], "mcp": ["completion/complete"]})],
    );
    let complete = |name: &str| {
        rpc(
            TRIAGE,
            json!({"jsonrpc": "2.0", "id": 3, "method": "completion/complete",
            "params": {"ref": {"type": "ref/prompt", "name": name}, "argument": {"name": "repo", "value": "a"}}}),
        )
    };
    let (step, record) = vm.run(&complete("triage"));
    assert!(matches!(step, Step::Continue(_)));
    assert_eq!(record["mcp"]["prompt"].as_str(), Some("triage"));
    let (step, record) = vm.run(&complete("admin"));
    assert_eq!(reply(&step).status, 403);
    assert_eq!(record["reason"].as_str(), Some("prompt_not_allowed"));
}

#[test]
fn a_listing_goes_on_under_the_gateways_id_and_comes_back_under_the_clients() {
    // A server that routes answers by id (the SDK's) could otherwise hand
    // the uncut listing to another request reusing the client's id.
    let vm = mcp_vm("enforce");
    let mut x = Flow::new(Some(&vm.policy), NOW_MS);
    let list = rpc(TRIAGE, json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    let Step::Continue(rw) = vm.send(&mut x, &list) else { panic!() };
    let sent: Value = serde_json::from_slice(&apply_edits(&list.body, &rw.body_edits)).unwrap();
    let ours = sent["id"].as_str().unwrap().to_string();
    assert!(ours.starts_with("modelgate-") && ours.len() == "modelgate-".len() + 32, "{ours}");
    let env = vm.env(NOW_MS);
    x.drive(&env, Event::ResponseHeaders { status: Some(200), content_type: Some("application/json"), session: None });
    let answer =
        json!({"jsonrpc": "2.0", "id": ours, "result": {"tools": [{"name": "get_issue"}, {"name": "delete_repo"}]}})
            .to_string();
    let s = x.drive(&env, Event::ResponseBody { size: answer.len(), end_of_stream: true, body: &answer.as_bytes() });
    let out: Value = serde_json::from_slice(&apply_edits(answer.as_bytes(), &forwarded(&s).body_edits)).unwrap();
    assert_eq!(out["id"], json!(2));
    assert_eq!(out["result"]["tools"], json!([{"name": "get_issue"}]));
    // Another request's answer under the client's id is not a listing's.
    let (step, _) = vm.run(&rpc(TRIAGE, json!({"jsonrpc": "2.0", "id": 2, "method": "ping"})));
    assert!(forwarded(&step).body_edits.is_empty(), "only a listing's id is the gateway's");
}
