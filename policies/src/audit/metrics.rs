//! The filter's Envoy stats (SPEC §7), from a request's finished record.
//! Every name is built from bounded sets only: decisions and reasons,
//! configured provider names, models that an allow rule names literally
//! (any other model counts as `other`), detector names. No SPIFFE ID ever.
//!
//! - `modelgate.requests.<decision>.<reason>`
//! - `modelgate.tokens.<provider>.<model>.input` / `.output`
//! - `modelgate.prompt_guard.<detector>` (findings)
//! - `modelgate.mcp.<method>.<decision>` (MCP messages; a method no revision
//!   knows counts as `other`, a client's answer as `response`)
//! - `modelgate.budget.<id>.charged_tokens` / `.charged_micro_usd` /
//!   `.admitted`, and `.exhausted` / `.unavailable` for a refusal (budget
//!   ids from the configuration; never a SPIFFE ID)

use crate::api::mcp::message::KNOWN_METHODS;
use crate::audit::record::Record;
use crate::config::{Effect, Policy};
use crate::reason::{Reason, Verdict};

/// The counters a finished record adds to, and by how much.
pub fn of(record: &Record, policy: &Policy) -> Vec<(String, u64)> {
    let mut out = vec![(format!("modelgate.requests.{}.{}", record.decision, record.reason.code()), 1)];
    if let (Some(usage), Some(provider)) = (&record.usage, &record.provider) {
        if policy.provider(provider).is_some() {
            let model = record.model.as_deref().filter(|m| named_literally(policy, m)).map_or("other", |m| m);
            let base = format!("modelgate.tokens.{}.{}", stat_safe(provider), stat_safe(model));
            for (kind, n) in [("input", usage.input_tokens), ("output", usage.output_tokens)] {
                if let Some(n) = n.filter(|n| *n > 0) {
                    out.push((format!("{base}.{kind}"), n));
                }
            }
        }
    }
    if let Some(mcp) = &record.mcp {
        let method = match (mcp.method.as_deref(), mcp.kind) {
            (Some(m), _) if KNOWN_METHODS.contains(&m) => stat_safe(m),
            (Some(_), _) => "other".to_string(),
            (None, Some(kind)) => kind.to_string(),
            (None, None) => "unread".to_string(),
        };
        out.push((format!("modelgate.mcp.{method}.{}", record.decision), 1));
    }
    for drawn in &record.budgets {
        let base = format!("modelgate.budget.{}", stat_safe(&drawn.id));
        out.push((format!("{base}.admitted"), 1));
        if let Some(n) = drawn.charged.tokens {
            out.push((format!("{base}.charged_tokens"), n));
        }
        if let Some(usd) = drawn.charged.usd {
            // Whole nano-dollars first (the float is exact to them), then
            // micro-dollars rounded up, as the filter state says.
            out.push((format!("{base}.charged_micro_usd"), ((usd * 1e9).round() as u64).div_ceil(1000)));
        }
    }
    let refused = match record.reason {
        Verdict::Denied(Reason::BudgetExhausted) => Some("exhausted"),
        Verdict::Denied(Reason::BudgetUnavailable) => Some("unavailable"),
        _ => None,
    };
    if let (Some(kind), Some(id)) = (refused, record.detail.as_deref()) {
        if policy.budgets.list.iter().any(|b| b.id == id) {
            out.push((format!("modelgate.budget.{}.{kind}", stat_safe(id)), 1));
        }
    }
    if let Some(guard) = &record.prompt_guard {
        for (detector, n) in &guard.findings {
            out.push((format!("modelgate.prompt_guard.{}", stat_safe(detector)), *n as u64));
        }
    }
    out
}

/// Whether an allow rule lists `model` itself (not through a glob).
fn named_literally(policy: &Policy, model: &str) -> bool {
    policy.rules.iter().any(|r| r.effect == Effect::Allow && r.models.iter().any(|m| m.as_str() == model))
}

/// Envoy splits stat names at `.`: every other character but letters,
/// digits, `-` and `_` becomes `_` (`gpt-4.1-mini` → `gpt-4_1-mini`).
fn stat_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
