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
/// `time`, `peer`, `svid`, `svid_age_seconds`, `claims`, `metadata`; for an
/// MCP server `tool`, `arguments`, `resource`, `prompt`, `method`), or
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
#[path = "lib_tests.rs"]
mod tests;
