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
