use super::*;
use crate::config::budget::{nano_per_token, nano_usd, Window};
use crate::config::ProviderSet;
use crate::identity::spiffe::{ModelPattern, WorkloadPattern};

fn budgets(tokens: Option<u64>, usd: Option<u64>, price: bool) -> Budgets {
    let pattern = |s: &str| WorkloadPattern::parse(s).unwrap();
    Budgets {
        list: vec![Budget {
            id: "daily".into(),
            workloads: vec![pattern("spiffe://example.org/ns/a/**")],
            per: Per::Workload,
            providers: ProviderSet::All,
            models: Vec::new(),
            window: Window::Day,
            limit: Limit { tokens, nano_usd: usd },
            scope: Scope::Gateway,
            on_unavailable: OnUnavailable::Deny,
            max_workloads: 16,
        }],
        prices: if price {
            vec![Price {
                provider: None,
                models: vec![ModelPattern::parse("gpt-4o-mini*").unwrap()],
                input: 150,
                output: 600,
                cached_input: 75,
                cache_write: 150,
            }]
        } else {
            Vec::new()
        },
        ledger: None,
    }
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

/// What a `{}` body of `bytes` forwarded bytes, to openai's `model`, by
/// `who`, would reserve at time 0.
fn planned(b: &Budgets, who: &str, model: &str, bytes: u64, output: Option<u64>) -> Result<Option<Plan>, Denial> {
    plan(b, &Call { identity: &id(who), provider: "openai", model, body: b"{}", forwarded_bytes: bytes, output }, 0)
}

#[test]
fn the_reservation_is_the_body_bound_plus_the_output_bound() {
    let b = budgets(Some(1_000_000), None, false);
    let plan = planned(&b, "spiffe://example.org/ns/a/sa/x", "gpt-4o", 500, Some(64)).unwrap().unwrap();
    assert_eq!(plan.draws.len(), 1);
    assert_eq!(plan.draws[0].reserved, Amount { tokens: 500 + INPUT_OVERHEAD_TOKENS + 64, nano_usd: 0 });
    assert!(plan.draws[0].key.starts_with("daily/"));
    let other = plan_for(&b, "spiffe://example.org/ns/a/sa/y");
    assert_ne!(plan.draws[0].subject, other, "per workload: one counter each");
}

fn plan_for(b: &Budgets, who: &str) -> String {
    planned(b, who, "gpt-4o", 1, Some(1)).unwrap().unwrap().draws[0].subject.clone()
}

#[test]
fn no_budget_no_plan_and_unbounded_output_is_refused() {
    let b = budgets(Some(10), None, false);
    assert!(planned(&b, "spiffe://example.org/ns/b/sa/x", "gpt-4o", 1, None).unwrap().is_none());
    let d = planned(&b, "spiffe://example.org/ns/a/sa/x", "gpt-4o", 1, None).unwrap_err();
    assert_eq!(d.reason, Reason::MaxTokensMissing);
}

#[test]
fn a_dollar_budget_needs_a_price_and_reserves_at_the_dearer_input() {
    let b = budgets(None, Some(1_000_000_000), false);
    let d = planned(&b, "spiffe://example.org/ns/a/sa/x", "gpt-4o-mini", 1, Some(1)).unwrap_err();
    assert_eq!(d.reason, Reason::PriceUnknown);
    let b = budgets(None, Some(1_000_000_000), true);
    let p = planned(&b, "spiffe://example.org/ns/a/sa/x", "gpt-4o-mini", 976, Some(100)).unwrap().unwrap();
    assert_eq!(p.draws[0].reserved.nano_usd, 2000 * 150 + 100 * 600);
}

#[test]
fn settling_charges_the_reported_usage_or_the_whole_reservation() {
    let b = budgets(None, Some(1_000_000_000), true);
    let p = planned(&b, "spiffe://example.org/ns/a/sa/x", "gpt-4o-mini", 976, Some(100)).unwrap().unwrap();
    let usage = Usage {
        input_tokens: Some(40),
        output_tokens: Some(10),
        total_tokens: Some(50),
        cached_input_tokens: Some(20),
        cache_write_tokens: None,
    };
    assert_eq!(p.charge(Some(&usage), true), Amount { tokens: 50, nano_usd: 20 * 150 + 20 * 75 + 10 * 600 });
    assert_eq!(p.charge(Some(&usage), false), p.draws[0].reserved, "incomplete: the whole reservation");
    assert_eq!(p.charge(None, true), p.draws[0].reserved, "no usage: the whole reservation");
    let partial = Usage { output_tokens: None, ..usage };
    assert_eq!(p.charge(Some(&partial), true), p.draws[0].reserved);
}

#[test]
fn prices_and_caps_convert_exactly() {
    assert_eq!(nano_per_token(0.15), Some(150));
    assert_eq!(nano_per_token(0.075), Some(75));
    assert_eq!(nano_per_token(2.5), Some(2500));
    assert_eq!(nano_per_token(0.0001), Some(1), "a sliver of a nano-dollar rounds up");
    assert_eq!(nano_per_token(-1.0), None);
    assert_eq!(nano_usd(50.0), Some(50_000_000_000));
    assert_eq!(nano_usd(0.1), Some(100_000_000));
    assert_eq!(nano_usd(0.0), None);
}

#[test]
fn limits_fit_exactly_and_never_wrap() {
    let l = Limit { tokens: Some(100), nano_usd: Some(10) };
    assert!(l.fits(Amount { tokens: 60, nano_usd: 5 }, Amount { tokens: 40, nano_usd: 5 }));
    assert!(!l.fits(Amount { tokens: 60, nano_usd: 5 }, Amount { tokens: 41, nano_usd: 0 }));
    assert!(!l.fits(Amount { tokens: 1, nano_usd: 0 }, Amount { tokens: u64::MAX, nano_usd: 0 }));
    assert_eq!(l.share(100), Limit { tokens: Some(10), nano_usd: Some(1) });
}

#[test]
fn an_endpoint_that_generates_nothing_settles_to_its_input() {
    let b = budgets(Some(1_000_000), None, false);
    let p = planned(&b, "spiffe://example.org/ns/a/sa/x", "text-embedding-3-small", 40, Some(0)).unwrap().unwrap();
    let usage = Usage {
        input_tokens: Some(8),
        output_tokens: None,
        total_tokens: Some(8),
        cached_input_tokens: None,
        cache_write_tokens: None,
    };
    assert_eq!(p.charge(Some(&usage), true).tokens, 8, "embeddings report no output: none was generated");
}

#[test]
fn a_total_above_input_and_output_is_charged_at_the_dearer_price() {
    let b = budgets(None, Some(1_000_000_000), true);
    let p = planned(&b, "spiffe://example.org/ns/a/sa/x", "gpt-4o-mini", 10, Some(100)).unwrap().unwrap();
    let usage = Usage {
        input_tokens: Some(60),
        output_tokens: Some(5),
        total_tokens: Some(80),
        cached_input_tokens: None,
        cache_write_tokens: None,
    };
    assert_eq!(p.charge(Some(&usage), true), Amount { tokens: 80, nano_usd: 60 * 150 + 5 * 600 + 15 * 600 });
}

#[test]
fn a_budget_is_not_escaped_by_a_spelling_of_its_models() {
    let mut b = budgets(Some(1_000_000), None, false);
    b.list[0].models = vec![ModelPattern::parse("gpt-4o-mini").unwrap()];
    let who = id("spiffe://example.org/ns/a/sa/x");
    for spelling in ["gpt-4o-mini", "GPT-4o-mini", "ft:gpt-4o-mini:acme::abc"] {
        assert_eq!(b.matching(&who, "openai", spelling).count(), 1, "{spelling}");
    }
}

/// The output bound of a body sent to `path` of `api`, with a rule cap.
fn output(api: crate::api::Api, path: &str, body: serde_json::Value, cap: Option<u64>) -> Option<u64> {
    let (endpoint, _) = api.classify("POST", path).unwrap();
    let parsed = crate::body::parse(endpoint, Some("application/json"), body.to_string().as_bytes()).unwrap();
    output_of(endpoint, &parsed, cap)
}

#[test]
fn every_field_that_multiplies_the_output_is_read() {
    use crate::api::Api;
    let gemini = serde_json::json!({"generationConfig": {"maxOutputTokens": 2000, "candidateCount": 8}});
    assert_eq!(output(Api::Gemini, "/v1beta/models/gemini-2.5-flash:generateContent", gemini, None), Some(16_000));
    let jamba = serde_json::json!({"max_tokens": 100, "n": 4});
    assert_eq!(output(Api::Bedrock, "/model/ai21.jamba-1-5-mini-v1:0/invoke", jamba, None), Some(400));
    let cohere = serde_json::json!({"max_tokens": 100, "num_generations": 5});
    assert_eq!(output(Api::Bedrock, "/model/cohere.command-text-v14/invoke", cohere, None), Some(500));
    let chat = serde_json::json!({"model": "gpt-4o", "messages": [], "n": 3});
    assert_eq!(
        output(Api::OpenAi, "/v1/chat/completions", chat.clone(), Some(50)),
        Some(150),
        "the rule's cap, per output"
    );
    assert_eq!(output(Api::OpenAi, "/v1/chat/completions", chat, None), None, "nothing bounds it");
    let embed = serde_json::json!({"model": "text-embedding-3-small", "input": "x"});
    assert_eq!(output(Api::OpenAi, "/v1/embeddings", embed, None), Some(0));
    let image = serde_json::json!({"model": "gpt-image-1", "prompt": "x"});
    assert_eq!(output(Api::OpenAi, "/v1/images/generations", image, Some(10)), None, "images: no field bounds them");
}
