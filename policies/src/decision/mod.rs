//! Rules → a decision (SPEC §2 "Decision order"): any matching deny rule
//! denies; otherwise the first matching allow rule allows; otherwise deny.
//! A rule matches when the workload, the provider and the model each match
//! one of its entries; an empty list matches nothing. Allow rules match the
//! model exactly; deny rules also match every other spelling a provider or
//! router accepts for the same model — other case, surrounding white space,
//! a fine-tune of it (`ft:gpt-3.5-turbo:org::id`), a router's
//! `provider/model`, a version suffix (`model@2024…`), a Bedrock vendor
//! prefix — so no spelling slips past a deny (deny wins, and wins wide).

pub mod conditions;

use crate::config::{Effect, Rule};
use crate::decision::conditions::{Evaluated, Facts, Truth};
use crate::identity::spiffe::SpiffeId;
use crate::reason::{Denial, Reason};

/// [`decide_for`] with no facts: for rules without conditions.
#[cfg(test)]
pub fn decide<'p>(rules: &'p [Rule], workload: &SpiffeId, provider: &str, model: &str) -> Result<&'p Rule, Denial> {
    let facts = Facts { now_secs: 0, peer: None, jwt: None, x509: None, metadata: &[] };
    decide_for(rules, workload, provider, model, &facts, &mut Vec::new())
}

/// The allow rule that decided, or the denial. A rule matches when the
/// workload, the provider and the model each match one of its entries and
/// every condition of its `when` holds for `facts`; each condition
/// evaluated is added to `seen`. An allow rule that would have matched but
/// for a condition makes the refusal `condition_not_met`, naming it.
pub fn decide_for<'p>(
    rules: &'p [Rule],
    workload: &SpiffeId,
    provider: &str,
    model: &str,
    facts: &Facts<'_>,
    seen: &mut Vec<Evaluated>,
) -> Result<&'p Rule, Denial> {
    let names = |r: &&Rule| r.workloads.iter().any(|w| w.matches(workload)) && r.providers.contains(provider);
    let matches = |r: &&Rule| names(r) && r.models.iter().any(|m| m.matches(model));
    let spellings = deny_spellings(model);
    let denies =
        |r: &&Rule| names(r) && r.models.iter().any(|m| spellings.iter().any(|s| m.matches(s) || m.matches_loosely(s)));
    for deny in rules.iter().filter(|r| r.effect == Effect::Deny).filter(denies) {
        if holds(deny, facts, seen).is_ok() {
            return Err(Denial::new(
                Reason::ModelNotAllowed,
                format!("rule {:?} denies {workload} the model {model:?} at provider {provider:?}", deny.id),
            )
            .with_detail("deny_rule")
            .with_rule(deny.id.clone()));
        }
    }
    let mut unmet: Option<(&Rule, String)> = None;
    for allow in rules.iter().filter(|r| r.effect == Effect::Allow).filter(matches) {
        match holds(allow, facts, seen) {
            Ok(()) => return Ok(allow),
            Err(condition) => {
                unmet.get_or_insert((allow, condition));
            }
        }
    }
    Err(match unmet {
        Some((rule, condition)) => Denial::new(
            Reason::ConditionNotMet,
            format!(
                "rule {:?} allows {workload} the model {model:?} at provider {provider:?}, but its condition {condition} does not hold",
                rule.id
            ),
        )
        .with_detail(condition)
        .with_rule(rule.id.clone()),
        None => Denial::new(
            Reason::ModelNotAllowed,
            format!("no rule allows {workload} the model {model:?} at provider {provider:?}"),
        )
        .with_detail("no_matching_rule"),
    })
}

/// Whether every condition of `rule` holds; the first that does not.
fn holds(rule: &Rule, facts: &Facts<'_>, seen: &mut Vec<Evaluated>) -> Result<(), String> {
    if rule.conditions.is_empty() {
        return Ok(());
    }
    let mut failed = None;
    for (condition, truth) in rule.conditions.evaluate(facts) {
        // What cannot be read with certainty fails closed: an allow rule
        // does not apply, a deny rule does.
        let ok = match truth {
            Truth::Holds => true,
            Truth::Fails => false,
            Truth::Unknown => rule.effect == Effect::Deny,
        };
        if !ok && failed.is_none() {
            failed = Some(condition.clone());
        }
        let e = Evaluated { rule: rule.id.clone(), condition, ok, unknown: truth == Truth::Unknown };
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Whether `rule`'s conditions all hold (rules without any do).
pub fn conditions_hold(rule: &Rule, facts: &Facts<'_>) -> bool {
    holds(rule, facts, &mut Vec::new()).is_ok()
}

/// The model, and the base model each spelling providers and routers
/// accept for it stands for.
fn deny_spellings(model: &str) -> Vec<String> {
    let mut out = vec![model.to_string()];
    // Deny rules match case-insensitively (matches_loosely): so do the
    // prefixes read here (`FT:…`, `US.anthropic…`).
    let lower = model.trim().to_ascii_lowercase();
    let mut base = lower.as_str();
    // A router's `provider/model` (OpenRouter, LiteLLM) or `models/…`.
    if let Some((_, rest)) = base.rsplit_once('/') {
        base = rest;
    }
    // Each api's own spellings: a fine-tune, a version, a region and vendor.
    let base = crate::api::base_model(base);
    if base != model {
        out.push(base.to_string());
    }
    out
}

/// The first allow rule that names `workload` for `provider` with some
/// model: such a workload may list the provider's models (filtered).
pub fn rule_naming<'p>(rules: &'p [Rule], workload: &SpiffeId, provider: &str) -> Option<&'p Rule> {
    rules.iter().find(|r| {
        r.effect == Effect::Allow
            && !r.models.is_empty()
            && r.providers.contains(provider)
            && r.workloads.iter().any(|w| w.matches(workload))
    })
}

/// The first allow rule that names `workload` for `provider` and lists
/// `method path` in its `endpoints` (SPEC §2): an endpoint outside the
/// api's table that this workload may call. Deny rules name models, and
/// such a request names none.
pub fn endpoint_rule<'p>(
    rules: &'p [Rule],
    workload: &SpiffeId,
    provider: &str,
    method: &str,
    path: &str,
    facts: &Facts<'_>,
) -> Option<&'p Rule> {
    rules.iter().find(|r| {
        r.effect == Effect::Allow
            && r.providers.contains(provider)
            && r.workloads.iter().any(|w| w.matches(workload))
            && r.endpoints.iter().any(|e| e.matches(method, path))
            && conditions_hold(r, facts)
    })
}

#[cfg(test)]
mod tests {
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
        assert_eq!(
            decide(&r, &id("spiffe://ex.org/ns/support/sa/bot"), "openai", "gpt-4.1-mini").unwrap().id,
            "support"
        );
        assert_eq!(
            decide(&r, &id("spiffe://ex.org/ns/research/sa/a/b"), "anthropic", "claude-x").unwrap().id,
            "research"
        );
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
            assert_eq!(
                decide(&r, &research, "openai", model).unwrap_err().rule.as_deref(),
                Some("no-legacy"),
                "{model:?}"
            );
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
            assert_eq!(
                decide(&r, &research, "openai", model).unwrap_err().rule.as_deref(),
                Some("no-legacy"),
                "{model}"
            );
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
}
