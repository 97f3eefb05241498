//! What the rules' and the budgets' compilers both read: names, host
//! authorities, and the workload, provider and model patterns they select by.

use super::*;
use crate::identity::spiffe::{ModelPattern, WorkloadPattern};

type Result<T> = std::result::Result<T, ConfigError>;

pub(super) fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A `:authority` as Envoy routes on it: a host name, and a port when the
/// clients send one. Compared exactly (in lower case) with the request's:
/// modelgate never picks a provider, and injects its key, for an authority
/// that Envoy's route table might send elsewhere.
pub(super) fn authority(a: &str) -> Option<String> {
    let (host, port) = match a.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (a, None),
    };
    let host_ok = !host.is_empty()
        && !host.starts_with(['.', '-'])
        && !host.ends_with(['.', '-'])
        && !host.contains("..")
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    (host_ok && port_ok).then(|| a.to_ascii_lowercase())
}

/// A rule's or a budget's `workloads`, each in a listed trust domain.
pub(super) fn workload_patterns(
    raw: &[String],
    at: &str,
    domains: &[TrustDomainConfig],
) -> Result<Vec<WorkloadPattern>> {
    let mut workloads = Vec::with_capacity(raw.len());
    for (j, w) in raw.iter().enumerate() {
        let path = format!("{at}.workloads[{j}]");
        let pattern = WorkloadPattern::parse(w).map_err(|e| ConfigError::new(&path, format!("{w:?}: {e}")))?;
        if !domains.iter().any(|d| d.name.as_str() == pattern.trust_domain()) {
            return Err(ConfigError::new(
                path,
                format!("trust domain {:?} is not in trust_domains", pattern.trust_domain()),
            ));
        }
        workloads.push(pattern);
    }
    Ok(workloads)
}

/// A rule's or a budget's `providers`: `["*"]`, or names of providers.
pub(super) fn provider_set(raw: Vec<String>, at: &str, providers: &[Provider]) -> Result<ProviderSet> {
    if raw.iter().any(|p| p == "*") {
        if raw.len() != 1 {
            return Err(ConfigError::new(format!("{at}.providers"), "\"*\" stands alone"));
        }
        return Ok(ProviderSet::All);
    }
    for (j, name) in raw.iter().enumerate() {
        if !providers.iter().any(|p| &p.name == name) {
            return Err(ConfigError::new(format!("{at}.providers[{j}]"), format!("no provider is named {name:?}")));
        }
    }
    Ok(ProviderSet::Named(raw))
}

/// Model patterns, each checked with its path.
pub(super) fn model_patterns(raw: &[String], at: &str) -> Result<Vec<ModelPattern>> {
    raw.iter()
        .enumerate()
        .map(|(j, m)| {
            ModelPattern::parse(m).map_err(|e| ConfigError::new(format!("{at}.models[{j}]"), format!("{m:?}: {e}")))
        })
        .collect()
}
