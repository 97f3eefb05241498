//! The policy explorer's engine: the `policies` crate compiled for the
//! browser with wasm-bindgen. Two calls, JSON in and out, so the page stays
//! plain JavaScript: `check(config)` and `explain(config, question, now)`.
//! Exactly what `modelgate check` and `modelgate explain` do.

use modelgate_policies::explain::{self, Question};
use modelgate_policies::Policy;
use serde_json::json;
use wasm_bindgen::prelude::wasm_bindgen;

/// `{"ok": true, "summary": …}` or `{"ok": false, "path": …, "message": …}`.
#[wasm_bindgen]
pub fn check(config: &str) -> String {
    match Policy::for_checking(config, &|_| None) {
        Ok(p) => json!({
            "ok": true,
            "summary": format!(
                "mode {}, {} trust domain(s), {} provider(s), {} rule(s)",
                p.mode.name(),
                p.trust_domains.len(),
                p.providers.len(),
                p.rules.len()
            ),
            "providers": p.providers.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        }),
        Err(e) => json!({"ok": false, "path": e.path, "message": e.to_string()}),
    }
    .to_string()
}

/// The answer (`decision`, `reason`, `detail`, `rule`, `conditions`,
/// `message`) for a question (`spiffe_id`, `provider`, `model`, `endpoint`,
/// `time`, `peer`, `svid`, `svid_age_seconds`, `claims`, `metadata`), or
/// `{"error": …}`.
#[wasm_bindgen]
pub fn explain(config: &str, question: &str, now_secs: f64) -> String {
    let policy = match Policy::for_checking(config, &|_| None) {
        Ok(p) => p,
        Err(e) => return json!({"error": e.to_string(), "path": e.path}).to_string(),
    };
    let q: Question = match serde_json::from_str(question) {
        Ok(q) => q,
        Err(e) => return json!({"error": format!("the request: {e}")}).to_string(),
    };
    let now = if now_secs.is_finite() && now_secs > 0.0 { now_secs as u64 } else { 0 };
    serde_json::to_string(&explain::explain(&policy, &q, now)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
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
}
