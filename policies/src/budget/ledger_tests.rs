use super::*;

fn ok(body: &str) -> CalloutResult {
    CalloutResult::Response {
        status: 200,
        content_type: Some("application/json".into()),
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn only_a_whole_admission_admits() {
    let keys = ["a/x/1", "b/group/1"];
    let both = r#"{"admitted":true,"draws":[{"key":"a/x/1","remaining":{"tokens":5,"nano_usd":null}},{"key":"b/group/1","remaining":{"tokens":null,"nano_usd":7}}]}"#;
    assert!(matches!(reserved(&ok(both), &keys), Reserved::Admitted(l) if l.len() == 2));
    let one = r#"{"admitted":true,"draws":[{"key":"a/x/1","remaining":{"tokens":5,"nano_usd":null}}]}"#;
    assert!(matches!(reserved(&ok(one), &keys), Reserved::Unavailable(_)), "a key left out is not admitted");
    let out = r#"{"admitted":false,"exhausted":"b/group/1","draws":[]}"#;
    assert_eq!(reserved(&ok(out), &keys), Reserved::Exhausted("b/group/1".into(), Vec::new()));
    let stranger = r#"{"admitted":false,"exhausted":"c/1/1","draws":[]}"#;
    assert!(matches!(reserved(&ok(stranger), &keys), Reserved::Unavailable(_)));
}

#[test]
fn every_other_answer_is_unavailable() {
    let keys = ["a/x/1"];
    for result in [
        CalloutResult::Failed("timeout".into()),
        CalloutResult::Response { status: 503, content_type: None, body: b"{}".to_vec() },
        CalloutResult::Response { status: 401, content_type: None, body: Vec::new() },
        ok(""),
        ok("{\"admitted\":true}"),
        ok("{\"admitted\":\"yes\",\"draws\":[]}"),
        // An answer in another shape than the ledger's is not read loosely.
        ok(r#"{"admitted":true,"draws":[{"key":"a/x/1","remaining":{"tokens":5,"nano_usd":null}}],"held":false}"#),
        ok(&format!("{{\"admitted\":true,\"draws\":[],\"pad\":\"{}\"}}", "x".repeat(MAX_ANSWER_BYTES))),
    ] {
        assert!(matches!(reserved(&result, &keys), Reserved::Unavailable(_)), "{result:?}");
    }
}

#[test]
fn a_call_envoy_did_not_send_says_why_in_words() {
    let Reserved::Unavailable(why) = reserved(&CalloutResult::Failed("InternalFailure".into()), &["a/x/1"]) else {
        panic!("not unavailable")
    };
    assert!(why.contains("no ledger host") && !why.contains("InternalFailure"), "{why}");
    let Reserved::Unavailable(why) = reserved(&CalloutResult::Failed("no response (timeout)".into()), &["a/x/1"])
    else {
        panic!("not unavailable")
    };
    assert_eq!(why, "no response (timeout)");
}
