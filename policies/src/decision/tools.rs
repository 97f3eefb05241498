//! What an MCP message asks for → a decision, as models are decided: any
//! matching deny rule denies (names compared as a lenient server might
//! read them: any case, surrounding white space), otherwise the first
//! matching allow rule whose conditions hold and, for a tool call, whose
//! argument constraints hold; otherwise deny.

use serde_json::{Map, Value};

use crate::api::mcp::message::{open_to_named_workloads, Ask};
use crate::config::{Effect, Rule};
use crate::decision::conditions::{Evaluated, Facts};
use crate::decision::grants::{plain_value, McpGrants};
use crate::decision::holds;
use crate::identity::spiffe::SpiffeId;
use crate::reason::{Denial, Reason};
use crate::util::text::bounded;

/// The allow rule that decided, or the denial.
pub fn decide_message<'p>(
    rules: &'p [Rule],
    workload: &SpiffeId,
    provider: &str,
    ask: &Ask,
    facts: &Facts<'_>,
    seen: &mut Vec<Evaluated>,
) -> Result<&'p Rule, Denial> {
    decide(rules, workload, provider, ask, facts, seen, true)
}

/// Whether a listing may show the workload this item: a tool it may call
/// (with some arguments), a resource it may read, a prompt it may get.
pub fn may_list(rules: &[Rule], workload: &SpiffeId, provider: &str, ask: &Ask, facts: &Facts<'_>) -> bool {
    decide(rules, workload, provider, ask, facts, &mut Vec::new(), false).is_ok()
}

fn decide<'p>(
    rules: &'p [Rule],
    workload: &SpiffeId,
    provider: &str,
    ask: &Ask,
    facts: &Facts<'_>,
    seen: &mut Vec<Evaluated>,
    check_arguments: bool,
) -> Result<&'p Rule, Denial> {
    let names = |r: &&Rule| r.workloads.iter().any(|w| w.matches(workload)) && r.providers.contains(provider);
    let (reason, what) = describe(ask);
    for deny in rules.iter().filter(|r| r.effect == Effect::Deny).filter(names) {
        if grants(&deny.mcp, ask, true) && holds(deny, facts, seen).is_ok() {
            return Err(Denial::new(
                reason,
                format!("rule {:?} denies {workload} {what} at provider {provider:?}", deny.id),
            )
            .with_detail("deny_rule")
            .with_rule(deny.id.clone()));
        }
    }
    // A URI a server could read as another path never matches an allow.
    if let Ask::Resource(uri) = ask {
        if !plain_value(uri) {
            return Err(Denial::new(
                reason,
                format!("{what} holds a control character, \\, % or a .. segment: a server could read it as another"),
            )
            .with_detail("resource_unsafe"));
        }
    }
    let mut unmet: Option<Denial> = None;
    for allow in rules.iter().filter(|r| r.effect == Effect::Allow).filter(names) {
        if !grants(&allow.mcp, ask, false) {
            continue;
        }
        if let Err(condition) = holds(allow, facts, seen) {
            unmet.get_or_insert_with(|| {
                Denial::new(
                    Reason::ConditionNotMet,
                    format!(
                        "rule {:?} allows {workload} {what} at provider {provider:?}, but its condition {condition} does not hold",
                        allow.id
                    ),
                )
                .with_detail(condition)
                .with_rule(allow.id.clone())
            });
            continue;
        }
        if let (true, Ask::Tool { name, arguments }) = (check_arguments, ask) {
            if let Err(d) = arguments_hold(&allow.mcp, name, arguments.as_ref()) {
                unmet.get_or_insert(d.with_rule(allow.id.clone()));
                continue;
            }
        }
        return Ok(allow);
    }
    Err(unmet.unwrap_or_else(|| {
        Denial::new(reason, format!("no rule allows {workload} {what} at provider {provider:?}"))
            .with_detail("no_matching_rule")
    }))
}

/// The reason a refusal of `ask` gives, and how messages name it.
fn describe(ask: &Ask) -> (Reason, String) {
    match ask {
        Ask::Tool { name, .. } => (Reason::ToolNotAllowed, format!("the tool {:?}", bounded(name))),
        Ask::Resource(uri) => (Reason::ResourceNotAllowed, format!("the resource {:?}", bounded(uri))),
        Ask::Prompt(name) => (Reason::PromptNotAllowed, format!("the prompt {:?}", bounded(name))),
        Ask::Method(method) => (Reason::MethodNotAllowed, format!("the method {:?}", bounded(method))),
        Ask::Answer => (Reason::MethodNotAllowed, "an answer".to_string()),
    }
}

/// Whether `grants` name what `ask` asks for (`loosely`: as deny rules read names).
fn grants(g: &McpGrants, ask: &Ask, loosely: bool) -> bool {
    match ask {
        Ask::Tool { name, .. } => {
            g.tools.iter().any(|p| if loosely { p.matches_loosely(name) } else { p.matches(name) })
        }
        Ask::Resource(uri) => g.resources.iter().any(|p| if loosely { p.matches_loosely(uri) } else { p.matches(uri) }),
        Ask::Prompt(name) => g.prompts.iter().any(|p| if loosely { p.matches_loosely(name) } else { p.matches(name) }),
        Ask::Method(method) => {
            g.methods.iter().any(|p| if loosely { p.matches_loosely(method) } else { p.matches(method) })
                || (!loosely && open_to_named_workloads(method) && g.any())
        }
        // The client answering the server: any workload a rule lets reach
        // the server may answer it (deny rules name what it asks for).
        Ask::Answer => !loosely && g.any(),
    }
}

/// Every constraint of `g` on tool `name`'s arguments holds.
fn arguments_hold(g: &McpGrants, name: &str, arguments: Option<&Map<String, Value>>) -> Result<(), Denial> {
    for c in g.arguments.iter().filter(|c| c.tool.matches(name)) {
        let refuse = |why: &str, detail: &str| {
            Err(Denial::new(
                Reason::ArgumentNotAllowed,
                format!("the tool {:?}'s argument {:?} {why}", bounded(name), c.argument),
            )
            .with_detail(detail))
        };
        let value = match arguments.and_then(|a| a.get(&c.argument)) {
            None => return refuse("is required by the rule", "argument_missing"),
            Some(Value::String(s)) => s,
            Some(_) => return refuse("must be a string", "argument_type"),
        };
        if !plain_value(value) {
            return refuse("holds a control character, \\, % or a .. segment", "argument_unsafe");
        }
        if !c.allowed.iter().any(|p| p.matches(value)) {
            let allowed: Vec<&str> = c.allowed.iter().map(|p| p.as_str()).collect();
            return refuse(
                &format!("is {:?}, which is not one of {allowed:?}", bounded(value)),
                "argument_not_allowed",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "tools_tests.rs"]
mod tests;
