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
pub mod grants;
pub mod tools;

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
pub(crate) fn holds(rule: &Rule, facts: &Facts<'_>, seen: &mut Vec<Evaluated>) -> Result<(), String> {
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
pub(crate) fn deny_spellings(model: &str) -> Vec<String> {
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
/// model (or, at an MCP server, some tool, resource, prompt or method):
/// such a workload may list the provider's models (filtered).
pub fn rule_naming<'p>(rules: &'p [Rule], workload: &SpiffeId, provider: &str) -> Option<&'p Rule> {
    rules.iter().find(|r| {
        r.effect == Effect::Allow
            && (!r.models.is_empty() || r.mcp.any())
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
#[path = "mod_tests.rs"]
mod tests;
