use super::*;
use crate::api::Usage;
use crate::reason::{Reason, Verdict};
use crate::testing::{config, env};

#[test]
fn names_stay_within_bounded_sets() {
    let policy = Policy::from_json(config(serde_json::json!({})).to_string().as_bytes(), &env).unwrap();
    let usage = Some(Usage {
        input_tokens: Some(3),
        output_tokens: Some(4),
        total_tokens: Some(7),
        cached_input_tokens: None,
        cache_write_tokens: None,
    });
    let mut r =
        Record { decision: "allow", reason: Verdict::Ok, provider: Some("openai".into()), usage, ..Default::default() };
    r.model = Some("gpt-4o-mini".into());
    assert_eq!(
        of(&r, &policy),
        [
            ("modelgate.requests.allow.ok".to_string(), 1),
            ("modelgate.tokens.openai.gpt-4o-mini.input".to_string(), 3),
            ("modelgate.tokens.openai.gpt-4o-mini.output".to_string(), 4)
        ]
    );
    // A model only a glob allows (the research rule's `*`) is `other`.
    r.model = Some("spiffe://example.org/ns/x.made-up-model".into());
    assert_eq!(of(&r, &policy)[1].0, "modelgate.tokens.openai.other.input");
    let denied = Record { decision: "deny", reason: Verdict::Denied(Reason::ModelNotAllowed), ..Default::default() };
    assert_eq!(of(&denied, &policy), [("modelgate.requests.deny.model_not_allowed".to_string(), 1)]);
}
