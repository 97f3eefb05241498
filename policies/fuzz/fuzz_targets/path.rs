//! Request paths: whatever `path::check` accepts has no escape outside the
//! one encoded segment, no empty or dot segment and no second method; a
//! Bedrock model id decodes to model-id characters only; every api's
//! endpoint table classifies it without panicking, linear in its length.
#![no_main]

use modelgate_policies::parsers::Api;
use modelgate_policies::parsers::path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(p) = std::str::from_utf8(data) else { return };
    for &api in Api::ALL {
        let encoded = api.spec().encoded_segment;
        if path::check(p, encoded).is_ok() {
            for (i, segment) in p[1..].split('/').enumerate() {
                assert!(segment != "." && segment != "..");
                if encoded != Some(i + 1) {
                    assert!(!segment.contains('%') && segment.matches(':').count() <= 1, "{p:?}");
                }
            }
            assert!(!p.contains("//") && !p.contains(['\\', ';', '#']));
        }
        let _ = api.classify("POST", p);
        let _ = api.classify_ignoring_case("GET", p);
    }
    if let Ok(model) = path::model_id(Some(Api::Bedrock), p) {
        assert!(model.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:/".contains(&b)), "{model:?}");
        assert!(!model.contains("//") && !model.split('/').any(|s| s == ".." || s == "."));
        assert!(!model.contains('/') || model.starts_with("arn:"));
    }
});
