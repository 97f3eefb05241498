use super::*;

#[test]
fn refusals_are_json_rpc_errors_carrying_the_audit_reason() {
    let body = error_body(403, "tool_not_allowed", "modelgate: no (tool_not_allowed)");
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], Value::Null);
    assert_eq!(body["error"]["code"], -32001);
    assert_eq!(body["error"]["data"]["reason"], "tool_not_allowed");
    assert_eq!(error_body(400, "invalid_body", "m")["error"]["code"], -32600);
    assert_eq!(error_body(403, "method_not_allowed", "m")["error"]["code"], -32601);
}

#[test]
fn an_error_answers_with_the_message_id_as_sent() {
    let body = error_body(403, "tool_not_allowed", "m").to_string();
    let with = |id: Value| serde_json::from_slice::<Value>(&with_id(body.as_bytes(), &id)).unwrap()["id"].clone();
    assert_eq!(with(json!(7)), json!(7));
    assert_eq!(with(json!("abc")), json!("abc"));
}

#[test]
fn the_stateless_revision_is_told_by_its_version_header() {
    assert_eq!(era(Some("2026-07-28")), "stateless");
    assert_eq!(era(Some("2025-11-25")), "handshake");
    assert_eq!(era(None), "handshake");
}

#[test]
fn mcp_speaks_json_rpc_and_no_model_api_does() {
    assert!(SPEC.speaks_jsonrpc());
    for api in crate::api::Api::ALL.iter().filter(|a| a.name() != "mcp") {
        assert!(!api.spec().speaks_jsonrpc(), "{}", api.name());
    }
}
