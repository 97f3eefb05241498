//! The whole flow natively: the same scenarios the end-to-end tests run
//! through Envoy.

use serde_json::{json, Value};

use super::*;
use crate::svid::PureRustVerifier;
use crate::testing::*;

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
        }
    }

    fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// Runs a call to its outcome and returns it with the audit record.
fn run(policy: &Policy, c: &Call) -> (Outcome, Value) {
    let mut x = Exchange::new(Some(policy), NOW_MS);
    let head = c.head();
    let mut outcome = x.on_request_headers(policy, &head, &PureRustVerifier, NOW_MS);
    if let Outcome::ReadBody(headers) = outcome {
        outcome = if c.body.len() as u64 > x.body_limit(policy) {
            x.on_body_too_large(policy)
        } else {
            x.on_request_body(policy, &c.body)
        };
        // Fold the header changes into the final outcome, as Envoy sees them.
        if let Outcome::Forward(body) = outcome {
            outcome = Outcome::Forward(Rewrite { body: body.body, ..headers });
        }
    }
    let status = match &outcome {
        Outcome::Reply(r) => Some(r.status),
        _ => {
            x.on_response_headers(Some(200), Some("application/json"), NOW_MS + 5);
            let resp = json!({"model":"gpt-4o-mini-2024-07-18","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}).to_string();
            let (a, b) = resp.as_bytes().split_at(10);
            x.on_response_body(a, false);
            x.on_response_body(b, true);
            Some(200)
        }
    };
    let record: Value = serde_json::from_str(&x.finish(&LogInfo { status, ..Default::default() })).unwrap();
    (outcome, record)
}

fn reply(o: &Outcome) -> &LocalReply {
    match o {
        Outcome::Reply(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn forwarded(o: &Outcome) -> &Rewrite {
    match o {
        Outcome::Forward(r) => r,
        other => panic!("expected a forward, got {other:?}"),
    }
}

fn mini() -> Value {
    json!({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]})
}

#[test]
fn an_allowed_call_is_forwarded_with_the_provider_key_and_audited() {
    let p = policy(json!({}));
    let token = svid(BOT);
    let (o, rec) = run(&p, &chat(Some(&token), mini()));
    let rw = forwarded(&o);
    assert!(rw.remove_headers.contains(&"authorization".to_string()));
    assert!(rw.remove_headers.contains(&"content-length".to_string()));
    assert_eq!(rw.set_headers, vec![("authorization".to_string(), "Bearer sk-openai-upstream".to_string())]);
    // The cap (1024) was written into the body.
    let body: Value = serde_json::from_slice(rw.body.as_ref().unwrap()).unwrap();
    assert_eq!(body["max_completion_tokens"], 1024);
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
}

#[test]
fn a_disallowed_model_is_refused_in_the_api_shape() {
    let p = policy(json!({}));
    let (o, rec) = run(&p, &chat(Some(&svid(BOT)), json!({"model":"gpt-4o"})));
    let r = reply(&o);
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
    let p = policy(json!({}));
    let (_, rec) =
        run(&p, &chat(Some(&svid("spiffe://example.org/ns/research/sa/a")), json!({"model":"gpt-3.5-turbo"})));
    assert_eq!((rec["reason"].as_str(), rec["rule"].as_str()), (Some("model_not_allowed"), Some("no-legacy")));
}

#[test]
fn identity_failures_are_401_with_their_detail() {
    let p = policy(json!({}));
    let expired =
        sign_es256(&ec_key(1), &json!({"alg":"ES256","kid":"k1"}), &json!({"sub":BOT,"aud":AUD,"exp":NOW-100}));
    let cases = [
        (None, "missing_identity", "no_credential"),
        (Some(expired.as_str()), "invalid_svid", "expired"),
        (Some("garbage"), "invalid_svid", "malformed"),
    ];
    for (token, reason, detail) in cases {
        let (o, rec) = run(&p, &chat(token, mini()));
        let r = reply(&o);
        assert_eq!(r.status, 401);
        assert!(r.headers.iter().any(|(k, v)| k == "www-authenticate" && v.contains("invalid_token")));
        assert_eq!((rec["reason"].as_str(), rec["detail"].as_str()), (Some(reason), Some(detail)));
        assert_eq!(rec["workload"], Value::Null);
    }
}

#[test]
fn anthropic_callers_use_x_api_key_and_get_anthropic_errors() {
    let p = policy(json!({}));
    let mut c =
        call("/anthropic/v1/messages", None, json!({"model":"claude-3-5-haiku-latest","max_tokens":100,"messages":[]}));
    c.authority = "gateway.local";
    let c = c.header("x-api-key", &svid(BOT));
    let (o, rec) = run(&p, &c);
    let rw = forwarded(&o);
    assert!(rw.set_headers.contains(&("x-api-key".to_string(), "sk-ant-upstream".to_string())));
    assert!(rw.set_headers.contains(&("anthropic-version".to_string(), "2023-06-01".to_string())));
    assert_eq!((rec["provider"].as_str(), rec["endpoint"].as_str()), (Some("anthropic"), Some("/v1/messages")));
    let mut c = call(
        "/anthropic/v1/messages",
        None,
        json!({"model":"claude-3-5-haiku-latest","max_tokens":5000,"messages":[]}),
    );
    c.authority = "gateway.local";
    let (o, _) = run(&p, &c.header("x-api-key", &svid(BOT)));
    let body: Value = serde_json::from_slice(&reply(&o).body).unwrap();
    assert_eq!(body["error"]["type"], "permission_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("max_tokens_exceeded"));
}

#[test]
fn unknown_paths_and_providers_are_refused() {
    let p = policy(json!({}));
    let t = svid(BOT);
    let (o, rec) = run(&p, &call("/v1/files", Some(&t), mini()));
    assert_eq!((reply(&o).status, rec["reason"].as_str()), (403, Some("endpoint_not_allowed")));
    let mut c = chat(Some(&t), mini());
    c.authority = "api.other.com";
    let (o, rec) = run(&p, &c);
    assert_eq!((reply(&o).status, rec["reason"].as_str()), (403, Some("no_provider")));
    let mut c = chat(Some(&t), mini());
    c.method = "GET";
    assert_eq!(reply(&run(&p, &c).0).status, 403);
}

#[test]
fn the_authority_is_matched_without_port_or_case() {
    let p = policy(json!({}));
    for authority in ["api.openai.com:443", "API.OpenAI.com", "api.openai.com."] {
        let mut c = chat(Some(&svid(BOT)), mini());
        c.authority = authority;
        assert!(matches!(run(&p, &c).0, Outcome::Forward(_)), "{authority}");
    }
    let mut c = chat(Some(&svid(BOT)), mini());
    c.authority = "api.openai.com.evil.com";
    assert_eq!(reply(&run(&p, &c).0).status, 403);
}

#[test]
fn bodies_are_refused_before_and_while_buffering() {
    let p = policy(json!({}));
    let t = svid(BOT);
    let big = json!({"model":"gpt-4o-mini","input":"x".repeat(5000)});
    let (o, rec) = run(&p, &chat(Some(&t), big.clone()));
    assert_eq!((reply(&o).status, rec["reason"].as_str()), (413, Some("body_too_large")));
    let c = chat(Some(&t), mini()).header("content-length", "999999");
    assert_eq!(reply(&run(&p, &c).0).status, 413);
    let c = chat(Some(&t), mini()).header("content-encoding", "gzip");
    let (o, rec) = run(&p, &c);
    assert_eq!(
        (reply(&o).status, rec["reason"].as_str(), rec["detail"].as_str()),
        (415, Some("unsupported_encoding"), Some("gzip"))
    );
    let c = chat(Some(&t), mini()).header("content-encoding", "identity");
    assert!(matches!(run(&p, &c).0, Outcome::Forward(_)));
    let mut c = chat(Some(&t), mini());
    c.body = br#"{"model":"gpt-4o-mini","model":"gpt-4o"}"#.to_vec();
    assert_eq!(run(&p, &c).1["reason"], "ambiguous_model");
}

#[test]
fn stream_limits_apply_per_rule() {
    let p = policy(json!({}));
    let batch = svid("spiffe://example.org/ns/batch/summarizer");
    let (o, rec) = run(&p, &chat(Some(&batch), json!({"model":"gpt-4o-mini","stream":true})));
    assert_eq!(
        (reply(&o).status, rec["reason"].as_str(), rec["rule"].as_str()),
        (403, Some("stream_not_allowed"), Some("batch"))
    );
    let (o, _) = run(&p, &chat(Some(&svid(BOT)), json!({"model":"gpt-4o-mini","stream":true})));
    assert!(matches!(o, Outcome::Forward(_)));
}

#[test]
fn key_query_parameters_are_removed() {
    let p = policy(json!({}));
    let mut c = chat(Some(&svid(BOT)), mini());
    c.path = "/v1/chat/completions?key=sk-caller&x=1".into();
    assert_eq!(forwarded(&run(&p, &c).0).path.as_deref(), Some("/v1/chat/completions?x=1"));
}

#[test]
fn audit_mode_forwards_what_it_would_deny() {
    let p = policy(json!({"mode":"audit"}));
    let (o, rec) = run(&p, &chat(Some(&svid(BOT)), json!({"model":"gpt-4o"})));
    let rw = forwarded(&o);
    assert!(rw.remove_headers.contains(&"authorization".to_string()));
    assert_eq!(
        (rec["decision"].as_str(), rec["would_deny"].as_bool(), rec["reason"].as_str()),
        (Some("allow"), Some(true), Some("model_not_allowed"))
    );
    assert_eq!(rec["mode"], "audit");
    // The first denial is the one recorded, and the model is still read.
    let (o, rec) = run(&p, &chat(None, json!({"model":"gpt-4o"})));
    assert!(matches!(o, Outcome::Forward(_)));
    assert_eq!(
        (rec["reason"].as_str(), rec["model"].as_str(), rec["would_deny"].as_bool()),
        (Some("missing_identity"), Some("gpt-4o"), Some(true))
    );
    // An allowed call in audit mode is not marked.
    let (_, rec) = run(&p, &chat(Some(&svid(BOT)), mini()));
    assert_eq!((rec["reason"].as_str(), rec["would_deny"].as_bool()), (Some("ok"), Some(false)));
}

#[test]
fn a_request_that_ends_before_a_decision_is_still_audited() {
    let p = policy(json!({}));
    let mut x = Exchange::new(Some(&p), NOW_MS);
    let c = chat(Some(&svid(BOT)), mini());
    let head = c.head();
    assert!(matches!(x.on_request_headers(&p, &head, &PureRustVerifier, NOW_MS), Outcome::ReadBody(_)));
    let rec: Value = serde_json::from_str(&x.finish(&LogInfo { status: None, ..Default::default() })).unwrap();
    assert_eq!((rec["decision"].as_str(), rec["reason"].as_str()), (Some("deny"), Some("incomplete")));
    assert_eq!(rec["workload"]["spiffe_id"], BOT);

    // Envoy refused the request before modelgate saw its headers.
    let mut x = Exchange::new(Some(&p), NOW_MS);
    let log = LogInfo {
        status: Some(400),
        request_id: Some("rid-9".into()),
        details: Some("path_normalization_failed".into()),
        client_address: Some("10.0.0.9:4000".into()),
    };
    let rec: Value = serde_json::from_str(&x.finish(&log)).unwrap();
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
    let p = policy(json!({}));
    let long = "é".repeat(300);
    let (_, rec) = run(&p, &chat(Some(&svid(BOT)), json!({"model": long})));
    let model = rec["model"].as_str().unwrap();
    assert!(model.len() <= MAX_AUDIT_VALUE + '…'.len_utf8() && model.ends_with('…'));
    let (_, rec) = run(&p, &call(&format!("/v1/{}", "x".repeat(5000)), Some(&svid(BOT)), mini()));
    assert!(rec["endpoint"].as_str().unwrap().len() < 300);
}

#[test]
fn model_listings_are_allowed_to_named_workloads_and_filtered() {
    let p = policy(json!({}));
    let mut x = Exchange::new(Some(&p), NOW_MS);
    let mut c = call("/v1/models", Some(&svid(BOT)), json!({}));
    c.method = "GET";
    let head = c.head();
    let rw = match x.on_request_headers(&p, &head, &PureRustVerifier, NOW_MS) {
        Outcome::Forward(rw) => rw,
        other => panic!("{other:?}"),
    };
    assert!(rw.set_headers.iter().any(|(k, _)| k == "authorization"));
    x.on_response_headers(Some(200), Some("application/json"), NOW_MS);
    assert!(x.rewrites_response());
    let listing = br#"{"object":"list","data":[{"id":"gpt-4o"},{"id":"gpt-4o-mini"},{"id":"gpt-3.5-turbo"}]}"#;
    let out: Value = serde_json::from_slice(&x.filter_response(&p, listing)).unwrap();
    assert_eq!(out["data"], json!([{"id":"gpt-4o-mini"}]));
    let rec: Value = serde_json::from_str(&x.finish(&LogInfo { status: Some(200), ..Default::default() })).unwrap();
    assert_eq!(
        (rec["decision"].as_str(), rec["rule"].as_str(), rec["endpoint"].as_str()),
        (Some("allow"), Some("support-bot"), Some("/v1/models"))
    );

    // A workload no rule names for the provider may not list it.
    let mut c = call("/v1/models", Some(&svid("spiffe://example.org/ns/batch/x")), json!({}));
    c.method = "GET";
    c.path = "/anthropic/v1/models".into();
    let (o, rec) = run(&p, &c);
    assert_eq!((reply(&o).status, rec["reason"].as_str()), (403, Some("model_not_allowed")));
}

#[test]
fn a_rewrite_the_host_refused_is_a_503_in_every_mode() {
    let p = policy(json!({"mode":"audit"}));
    let mut x = Exchange::new(Some(&p), NOW_MS);
    let c = chat(Some(&svid(BOT)), mini());
    let head = c.head();
    assert!(matches!(x.on_request_headers(&p, &head, &PureRustVerifier, NOW_MS), Outcome::ReadBody(_)));
    assert_eq!(reply(&x.on_rewrite_failed()).status, 503);
    let rec: Value = serde_json::from_str(&x.finish(&LogInfo { status: Some(503), ..Default::default() })).unwrap();
    assert_eq!(
        (rec["decision"].as_str(), rec["reason"].as_str(), rec["detail"].as_str()),
        (Some("deny"), Some("credential_unavailable"), Some("rewrite_failed"))
    );
}
