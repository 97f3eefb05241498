//! Request bodies through the strict JSON reader and every JSON endpoint's
//! body rules: a decision or a denial, never a panic; what is accepted is
//! JSON serde_json reads too, and the edits keep it JSON.
#![no_main]

use modelgate_policies::parsers::{Api, BodyFormat};
use modelgate_policies::parsers::body;
use modelgate_policies::RuleLimits;
use modelgate_policies::parsers::json;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if json::scan(data, &[]).is_ok() {
        assert!(serde_json::from_slice::<serde_json::Value>(data).is_ok(), "strict JSON that serde_json refuses");
    }
    for api in [Api::OpenAi, Api::Anthropic] {
        for endpoint in api.spec().endpoints.iter().filter(|e| e.body == BodyFormat::Json) {
            let Ok(parsed) = body::parse(endpoint, Some("application/json"), data) else { continue };
            for limits in [RuleLimits { max_tokens: Some(64), stream: false }, RuleLimits { max_tokens: None, stream: true }] {
                if let Ok(edits) = parsed.apply_limits(&limits) {
                    let out = body::apply_edits(data, &edits);
                    assert!(json::scan(&out, &[]).is_ok(), "an edit broke the body");
                }
            }
        }
    }
});
