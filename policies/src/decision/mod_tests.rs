use super::*;
use crate::config::{ProviderSet, RuleLimits};
use crate::identity::spiffe::{ModelPattern, WorkloadPattern};

fn rule(id: &str, effect: Effect, workloads: &[&str], providers: &[&str], models: &[&str]) -> Rule {
    Rule {
        id: id.into(),
        effect,
        workloads: workloads.iter().map(|w| WorkloadPattern::parse(w).unwrap()).collect(),
        providers: if providers == ["*"] {
            ProviderSet::All
        } else {
            ProviderSet::Named(providers.iter().map(|p| p.to_string()).collect())
        },
        models: models.iter().map(|m| ModelPattern::parse(m).unwrap()).collect(),
        mcp: Default::default(),
        endpoints: Vec::new(),
        limits: RuleLimits::default(),
        conditions: Default::default(),
        prompt_guard: None,
    }
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn rules() -> Vec<Rule> {
    vec![
        rule(
            "support",
            Effect::Allow,
            &["spiffe://ex.org/ns/support/sa/bot"],
            &["openai"],
            &["gpt-4o-mini", "gpt-4.1-*"],
        ),
        rule("research", Effect::Allow, &["spiffe://ex.org/ns/research/**"], &["*"], &["*"]),
        rule("no-legacy", Effect::Deny, &["spiffe://ex.org/**"], &["*"], &["gpt-3.5-*"]),
        rule("nothing", Effect::Allow, &["spiffe://ex.org/ns/empty/sa/x"], &["*"], &[]),
    ]
}

#[test]
fn first_matching_allow_rule_decides() {
    let r = rules();
    assert_eq!(decide(&r, &id("spiffe://ex.org/ns/support/sa/bot"), "openai", "gpt-4.1-mini").unwrap().id, "support");
    assert_eq!(decide(&r, &id("spiffe://ex.org/ns/research/sa/a/b"), "anthropic", "claude-x").unwrap().id, "research");
}

#[test]
fn deny_wins_over_an_earlier_allow() {
    let r = rules();
    let d = decide(&r, &id("spiffe://ex.org/ns/research/sa/a"), "openai", "gpt-3.5-turbo").unwrap_err();
    assert_eq!((d.reason, d.rule.as_deref()), (Reason::ModelNotAllowed, Some("no-legacy")));
}

#[test]
fn deny_rules_catch_other_spellings_of_a_denied_model() {
    let r = rules();
    let research = id("spiffe://ex.org/ns/research/sa/a");
    for model in ["GPT-3.5-turbo", "gpt-3.5-TURBO", " gpt-3.5-turbo", "gpt-3.5-turbo\n"] {
        assert_eq!(decide(&r, &research, "openai", model).unwrap_err().rule.as_deref(), Some("no-legacy"), "{model:?}");
    }
}

/// Spellings providers and routers accept for a denied base model.
#[test]
fn deny_rules_see_through_fine_tunes_and_router_forms() {
    let r = rules();
    let research = id("spiffe://ex.org/ns/research/sa/a");
    for model in [
        "ft:gpt-3.5-turbo-0125:my-org::9abc",
        "ft:gpt-3.5-turbo:org:custom:id",
        "FT:gpt-3.5-turbo-0125:org::abc",
        "Ft:GPT-3.5-turbo:org:custom:id",
        "gpt-3.5-turbo:ft-acme-2023-01-01",
        "openai/gpt-3.5-turbo",
        "azure/openai/gpt-3.5-turbo-16k",
        "OpenAI/GPT-3.5-Turbo",
        "gpt-3.5-turbo@001",
        "us.openai.gpt-3.5-turbo:0",
        // Every geography of Bedrock's cross-region profiles, not a
        // subset: `jp.`, `au.` and `ca.` once slipped past deny rules.
        "jp.openai.gpt-3.5-turbo:0",
        "au.openai.gpt-3.5-turbo:0",
        "ca.openai.gpt-3.5-turbo:0",
        "us-gov.openai.gpt-3.5-turbo:0",
    ] {
        assert_eq!(decide(&r, &research, "openai", model).unwrap_err().rule.as_deref(), Some("no-legacy"), "{model}");
    }
    // Allow rules stay exact: a fine-tune of an allowed model is not
    // allowed by that name.
    let bot = id("spiffe://ex.org/ns/support/sa/bot");
    assert!(decide(&r, &bot, "openai", "ft:gpt-4o-mini:org::x").is_err());
    assert!(decide(&r, &bot, "openai", "openai/gpt-4o-mini").is_err());
    assert_eq!(decide(&r, &research, "openai", "ft:gpt-4o:org::x").unwrap().id, "research");
}

#[test]
fn default_is_deny_without_a_rule() {
    let r = rules();
    for (w, p, m) in [
        ("spiffe://ex.org/ns/support/sa/bot", "openai", "gpt-4o"),
        ("spiffe://ex.org/ns/support/sa/bot", "anthropic", "gpt-4o-mini"),
        ("spiffe://ex.org/ns/support/sa/bot2", "openai", "gpt-4o-mini"),
        ("spiffe://ex.org/ns/empty/sa/x", "openai", "anything"),
        ("spiffe://other.org/ns/research/sa/a", "openai", "gpt-4o"),
    ] {
        let d = decide(&r, &id(w), p, m).unwrap_err();
        assert_eq!((d.reason, d.rule), (Reason::ModelNotAllowed, None), "{w} {p} {m}");
    }
}

#[test]
fn no_rules_allow_nothing() {
    assert!(decide(&[], &id("spiffe://ex.org/a"), "openai", "m").is_err());
}

#[test]
fn a_workload_named_for_a_provider_may_list_its_models() {
    let r = rules();
    assert_eq!(rule_naming(&r, &id("spiffe://ex.org/ns/support/sa/bot"), "openai").unwrap().id, "support");
    assert!(rule_naming(&r, &id("spiffe://ex.org/ns/support/sa/bot"), "anthropic").is_none());
    assert!(rule_naming(&r, &id("spiffe://ex.org/ns/empty/sa/x"), "openai").is_none());
}

#[test]
fn model_match_is_exact_and_case_sensitive() {
    let r = rules();
    let bot = id("spiffe://ex.org/ns/support/sa/bot");
    assert!(decide(&r, &bot, "openai", "GPT-4o-mini").is_err());
    assert!(decide(&r, &bot, "openai", "gpt-4o-mini ").is_err());
    assert!(decide(&r, &bot, "openai", "gpt-4o-mini-2024").is_err());
}
