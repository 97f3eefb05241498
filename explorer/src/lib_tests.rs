use super::*;

const POLICY: &str = r#"{"version":1,"trust_domains":[{"name":"example.org"}],
    "identity":{"x509_svid":{"source":"connection"},"require":"x509"},
    "providers":[{"name":"openai","api":"openai","match":{"path_prefix":"/openai/"},
                  "credential":{"type":"api_key","env":"OPENAI_API_KEY"}}],
    "rules":[{"id":"bot","effect":"allow","workloads":["spiffe://example.org/bot"],"providers":["openai"],
              "models":["gpt-4o-mini"]}]}"#;

#[test]
fn checks_and_explains_as_the_cli_does() {
    let c: serde_json::Value = serde_json::from_str(&check(POLICY)).unwrap();
    assert_eq!(c["ok"], true, "{c}");
    let bad: serde_json::Value = serde_json::from_str(&check(&POLICY.replace("gpt-4o-mini", ""))).unwrap();
    assert_eq!(bad["path"], "rules[0].models[0]");
    let q = r#"{"spiffe_id":"spiffe://example.org/bot","provider":"openai","model":"gpt-4o-mini","svid":"x509"}"#;
    let a: serde_json::Value = serde_json::from_str(&explain(POLICY, q, 1.8e9)).unwrap();
    assert_eq!((a["decision"].as_str(), a["rule"].as_str()), (Some("allow"), Some("bot")));
}

#[test]
fn explains_a_tool_question_of_an_mcp_server() {
    let mut policy: serde_json::Value = serde_json::from_str(POLICY).unwrap();
    policy["providers"].as_array_mut().unwrap().push(serde_json::json!({
        "name": "github", "api": "mcp", "match": {"path_prefix": "/github/"},
        "credential": {"type": "api_key", "env": "GITHUB_MCP_TOKEN"}, "session_key": {"env": "MCP_SESSION_KEY"}}));
    policy["rules"].as_array_mut().unwrap().push(serde_json::json!({
        "id": "agent", "effect": "allow", "workloads": ["spiffe://example.org/agent"], "providers": ["github"],
        "tools": ["get_issue"], "arguments": {"get_issue": {"repo": ["acme/*"]}}}));
    let policy = policy.to_string();
    let ask = |q: serde_json::Value| -> serde_json::Value {
        let mut base =
            serde_json::json!({"spiffe_id": "spiffe://example.org/agent", "provider": "github", "svid": "x509"});
        for (k, v) in q.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_str(&explain(&policy, &base.to_string(), 1.8e9)).unwrap()
    };
    let a = ask(serde_json::json!({"tool": "get_issue", "arguments": {"repo": "acme/api"}}));
    assert_eq!((a["decision"].as_str(), a["rule"].as_str()), (Some("allow"), Some("agent")), "{a}");
    let a = ask(serde_json::json!({"tool": "get_issue", "arguments": {"repo": "other/x"}}));
    assert_eq!(a["reason"], "argument_not_allowed", "{a}");
    let a = ask(serde_json::json!({"provider": "openai", "tool": "get_issue"}));
    assert_eq!(a["detail"], "not_mcp_provider", "{a}");
}
