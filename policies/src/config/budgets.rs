//! `budgets`, `prices` and `ledger` (SPEC §9, docs/budgets.md), compiled
//! with their JSON paths.

use super::budget::{
    nano_per_token, nano_usd, Budget, Budgets, LedgerConfig, Limit, OnUnavailable, Per, Price, Scope, Window,
};
use super::patterns::{authority, is_name, model_patterns, provider_set, workload_patterns};
use super::raw::{RawBudget, RawBudgetPer, RawBudgetScope, RawLedger, RawOnUnavailable, RawPrice, RawWindow};
use super::{ConfigError, Provider, ProviderSet, TrustDomainConfig};

type Result<T> = std::result::Result<T, ConfigError>;

/// Workloads one gateway tracks per `per: workload` budget and window,
/// unless the budget says.
const DEFAULT_MAX_WORKLOADS: u64 = 1_024;
const MAX_MAX_WORKLOADS: u64 = 65_536;
const DEFAULT_LOCAL_SHARE: f64 = 0.1;
const DEFAULT_LEDGER_TIMEOUT_MS: u64 = 200;
const DEFAULT_HOLD_MS: u64 = 600_000;
/// The ledger's bearer key, at least this long.
pub const MIN_LEDGER_KEY_BYTES: usize = 32;

pub(super) fn compile(
    budgets: Option<Vec<RawBudget>>,
    prices: Option<Vec<RawPrice>>,
    ledger: Option<RawLedger>,
    domains: &[TrustDomainConfig],
    providers: &[Provider],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Budgets> {
    let mut list: Vec<Budget> = Vec::new();
    for (i, raw) in budgets.unwrap_or_default().into_iter().enumerate() {
        let budget = budget(raw, &format!("budgets[{i}]"), domains, providers)?;
        if list.iter().any(|b| b.id == budget.id) {
            return Err(ConfigError::new(format!("budgets[{i}].id"), format!("duplicate budget id {:?}", budget.id)));
        }
        list.push(budget);
    }
    let prices = prices
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, p)| price(p, &format!("prices[{i}]"), providers))
        .collect::<Result<Vec<_>>>()?;
    let global = list.iter().position(|b| b.scope == Scope::Global);
    let ledger = match (ledger, global) {
        (Some(raw), _) => Some(ledger_config(raw, env)?),
        (None, Some(i)) => {
            return Err(ConfigError::new(
                format!("budgets[{i}].scope"),
                "a global budget is kept by the ledger service: configure \"ledger\" ({\"cluster\", \"key\"})",
            ))
        }
        (None, None) => None,
    };
    Ok(Budgets { list, prices, ledger })
}

fn budget(raw: RawBudget, at: &str, domains: &[TrustDomainConfig], providers: &[Provider]) -> Result<Budget> {
    if !is_name(&raw.id) || raw.id.len() > 64 {
        return Err(ConfigError::new(
            format!("{at}.id"),
            format!("{:?} is not an id (letters, digits, - and _, at most 64)", raw.id),
        ));
    }
    if raw.workloads.is_empty() {
        return Err(ConfigError::new(format!("{at}.workloads"), "at least one workload pattern"));
    }
    let workloads = workload_patterns(&raw.workloads, at, domains)?;
    let providers_set = provider_set(raw.providers.unwrap_or_else(|| vec!["*".into()]), at, providers)?;
    // An MCP server is not paid by the token.
    if let ProviderSet::Named(names) = &providers_set {
        if let Some((j, name)) = names
            .iter()
            .enumerate()
            .find(|(_, n)| providers.iter().any(|p| &p.name == *n && p.api.spec().speaks_jsonrpc()))
        {
            return Err(ConfigError::new(
                format!("{at}.providers[{j}]"),
                format!("{name:?} is an MCP server: budgets count model tokens and dollars"),
            ));
        }
    }
    let models = match raw.models {
        Some(m) if m.iter().any(|m| m == "*") => {
            if m.len() != 1 {
                return Err(ConfigError::new(format!("{at}.models"), "\"*\" stands alone"));
            }
            Vec::new()
        }
        Some(m) if m.is_empty() => {
            return Err(ConfigError::new(format!("{at}.models"), "at least one model pattern (or \"*\")"))
        }
        Some(m) => model_patterns(&m, at)?,
        None => Vec::new(),
    };
    if raw.tokens == Some(0) {
        return Err(ConfigError::new(format!("{at}.tokens"), "must be at least 1"));
    }
    let usd = match raw.usd {
        None => None,
        Some(usd) => Some(nano_usd(usd).ok_or_else(|| {
            ConfigError::new(format!("{at}.usd"), format!("{usd} is not a positive amount of dollars (at most 1e9)"))
        })?),
    };
    if raw.tokens.is_none() && usd.is_none() {
        return Err(ConfigError::new(at, "a budget sets tokens, usd, or both"));
    }
    let scope = match raw.scope {
        None | Some(RawBudgetScope::Gateway) => Scope::Gateway,
        Some(RawBudgetScope::Global) => Scope::Global,
    };
    let on_unavailable = match (raw.on_unavailable, raw.local_share, scope) {
        (Some(_), _, Scope::Gateway) => {
            return Err(ConfigError::new(
                format!("{at}.on_unavailable"),
                "only a global budget can find its ledger unavailable",
            ))
        }
        (None | Some(RawOnUnavailable::Deny), Some(_), _) => {
            return Err(ConfigError::new(format!("{at}.local_share"), "only with \"on_unavailable\": \"local_share\""))
        }
        (None | Some(RawOnUnavailable::Deny), None, _) => OnUnavailable::Deny,
        (Some(RawOnUnavailable::LocalShare), share, _) => {
            let share = share.unwrap_or(DEFAULT_LOCAL_SHARE);
            // Counted in per-mille: a share below one is no share at all.
            if !(0.001..=1.0).contains(&share) {
                return Err(ConfigError::new(
                    format!("{at}.local_share"),
                    format!("{share} is not a fraction of the cap from 0.001 to 1"),
                ));
            }
            OnUnavailable::LocalShare((share * 1000.0).floor() as u32)
        }
    };
    let per = match raw.per {
        None | Some(RawBudgetPer::Workload) => Per::Workload,
        Some(RawBudgetPer::Group) => Per::Group,
    };
    let max_workloads = match (per, raw.max_workloads) {
        (Per::Group, Some(_)) => {
            return Err(ConfigError::new(format!("{at}.max_workloads"), "a group budget has one counter"))
        }
        (Per::Group, None) => 1,
        (Per::Workload, n) => {
            let n = n.unwrap_or(DEFAULT_MAX_WORKLOADS);
            if !(1..=MAX_MAX_WORKLOADS).contains(&n) {
                return Err(ConfigError::new(
                    format!("{at}.max_workloads"),
                    format!("{n} is out of range: 1 to {MAX_MAX_WORKLOADS}"),
                ));
            }
            u32::try_from(n).unwrap_or(1)
        }
    };
    Ok(Budget {
        id: raw.id,
        workloads,
        per,
        providers: providers_set,
        models,
        window: match raw.window {
            RawWindow::Minute => Window::Minute,
            RawWindow::Hour => Window::Hour,
            RawWindow::Day => Window::Day,
            RawWindow::Month => Window::Month,
        },
        limit: Limit { tokens: raw.tokens, nano_usd: usd },
        scope,
        on_unavailable,
        max_workloads,
    })
}

fn price(raw: RawPrice, at: &str, providers: &[Provider]) -> Result<Price> {
    let provider = if raw.provider == "*" {
        None
    } else if providers.iter().any(|p| p.name == raw.provider) {
        Some(raw.provider)
    } else {
        return Err(ConfigError::new(format!("{at}.provider"), format!("no provider is named {:?}", raw.provider)));
    };
    if raw.models.is_empty() {
        return Err(ConfigError::new(format!("{at}.models"), "at least one model pattern"));
    }
    let models = model_patterns(&raw.models, at)?;
    let per_token = |usd: f64, field: &str| {
        nano_per_token(usd).ok_or_else(|| {
            ConfigError::new(
                format!("{at}.{field}"),
                format!("{usd} is not a price (USD per million tokens, 0 or more)"),
            )
        })
    };
    let input = per_token(raw.input, "input")?;
    let output = per_token(raw.output, "output")?;
    let cached_input = match raw.cached_input {
        None => input,
        Some(c) => per_token(c, "cached_input")?,
    };
    let cache_write = match raw.cache_write {
        None => input,
        Some(c) => per_token(c, "cache_write")?,
    };
    Ok(Price { provider, models, input, output, cached_input, cache_write })
}

fn ledger_config(raw: RawLedger, env: &dyn Fn(&str) -> Option<String>) -> Result<LedgerConfig> {
    if raw.cluster.is_empty() || raw.cluster.len() > 200 || raw.cluster.chars().any(|c| c.is_control() || c == ' ') {
        return Err(ConfigError::new("ledger.cluster", format!("{:?} is not a cluster name", raw.cluster)));
    }
    let authority = match raw.authority {
        None => authority(&raw.cluster).unwrap_or_else(|| "modelgate-ledger".to_string()),
        Some(a) => {
            authority(&a).ok_or_else(|| ConfigError::new("ledger.authority", format!("{a:?} is not a host[:port]")))?
        }
    };
    let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_LEDGER_TIMEOUT_MS);
    if !(1..=10_000).contains(&timeout_ms) {
        return Err(ConfigError::new("ledger.timeout_ms", format!("{timeout_ms} is out of range: 1 to 10000")));
    }
    let hold_ms = raw.hold_ms.unwrap_or(DEFAULT_HOLD_MS);
    if !(1_000..=86_400_000).contains(&hold_ms) {
        return Err(ConfigError::new("ledger.hold_ms", format!("{hold_ms} is out of range: 1000 to 86400000")));
    }
    let key = env(&raw.key.env).unwrap_or_default();
    if key.len() < MIN_LEDGER_KEY_BYTES || key.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err(ConfigError::new(
            "ledger.key.env",
            format!(
                "environment variable {:?} must hold the ledger's key: at least {MIN_LEDGER_KEY_BYTES} printable bytes, no spaces",
                raw.key.env
            ),
        ));
    }
    Ok(LedgerConfig { cluster: raw.cluster, authority, timeout_ms, hold_ms, key })
}
