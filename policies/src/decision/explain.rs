//! Why a call would be allowed or denied: the rules of a policy applied to
//! a described request (workload, provider, endpoint, model, and the facts
//! conditions read), with the same functions the filter decides with. What
//! `modelgate explain` prints.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::ModelAt;
use crate::config::Policy;
use crate::decision;
use crate::decision::conditions::{Evaluated, Facts, MetadataValue};
use crate::identity::spiffe::SpiffeId;
use crate::identity::svid::jwt::JwtSvid;
use crate::identity::svid::x509::X509Svid;
use crate::reason::Reason;

/// A request as `explain` is told it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub spiffe_id: String,
    pub provider: String,
    /// `"POST /v1/chat/completions"` or a path (POST); the provider's path
    /// prefix already removed. Absent: a model endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// Unix seconds (default: now).
    #[serde(default)]
    pub time: Option<u64>,
    /// The downstream peer, `ip:port` or an address.
    #[serde(default)]
    pub peer: Option<String>,
    /// `jwt` (default), `x509` or `jwt+x509`.
    #[serde(default)]
    pub svid: Option<String>,
    /// The SVIDs' age in seconds (`iat`, `notBefore`): default 0.
    #[serde(default)]
    pub svid_age_seconds: Option<u64>,
    /// JWT-SVID claims: a string or a list of strings each.
    #[serde(default)]
    pub claims: serde_json::Map<String, Value>,
    /// Dynamic metadata: `{"namespace": {"key": value}}`.
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub decision: &'static str,
    pub reason: &'static str,
    pub detail: Option<String>,
    pub rule: Option<String>,
    pub conditions: Vec<Evaluated>,
    pub message: String,
}

impl Answer {
    fn allow(rule: &str, message: String) -> Answer {
        Answer {
            decision: "allow",
            reason: "ok",
            detail: None,
            rule: Some(rule.to_string()),
            conditions: Vec::new(),
            message,
        }
    }

    fn deny(reason: Reason, detail: &str, message: String) -> Answer {
        Answer {
            decision: "deny",
            reason: reason.code(),
            detail: Some(detail.to_string()),
            rule: None,
            conditions: Vec::new(),
            message,
        }
    }
}

/// The decision for `q` under `policy`.
pub fn explain(policy: &Policy, q: &Question, now_secs: u64) -> Answer {
    let Ok(workload) = SpiffeId::parse(&q.spiffe_id) else {
        return Answer::deny(Reason::InvalidSvid, "spiffe_id", format!("{:?} is not a SPIFFE ID", q.spiffe_id));
    };
    if !policy.trust_domains.iter().any(|d| d.name.as_str() == workload.trust_domain()) {
        return Answer::deny(
            Reason::UntrustedDomain,
            "untrusted_domain",
            format!("trust domain {:?} is not in trust_domains", workload.trust_domain()),
        );
    }
    let Some(provider) = policy.provider(&q.provider) else {
        return Answer::deny(Reason::NoProvider, "no_provider", format!("no provider is named {:?}", q.provider));
    };
    let now = q.time.unwrap_or(now_secs);
    let kinds = q.svid.as_deref().unwrap_or("jwt");
    let issued = now.saturating_sub(q.svid_age_seconds.unwrap_or(0));
    let jwt = kinds.contains("jwt").then(|| {
        // The claims as a verified SVID would keep them.
        let (claims, unread_claims) = crate::identity::svid::jwt::kept_claims(&q.claims);
        Rc::new(JwtSvid {
            spiffe_id: workload.clone(),
            kid: "explain".into(),
            exp: now + 3600,
            nbf: None,
            iat: Some(issued),
            jti: None,
            claims,
            unread_claims,
        })
    });
    let x509 = kinds.contains("x509").then(|| X509Svid {
        spiffe_id: workload.clone(),
        serial: "explain".into(),
        not_before: issued,
        not_after: now + 3600,
    });
    let metadata: Vec<MetadataValue> = policy
        .metadata_keys()
        .into_iter()
        .map(|(ns, key)| {
            let value = q.metadata.get(&ns).and_then(|m| m.get(&key)).and_then(serialized);
            ((ns, key), value)
        })
        .collect();
    // A bare address is the connection's own peer (as Envoy reports one,
    // with its port); `ip:0` is one Envoy took from a header.
    let peer = q.peer.as_deref().map(|p| match p.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:1"),
        Ok(v4) => format!("{v4}:1"),
        Err(_) => p.to_string(),
    });
    let facts =
        Facts { now_secs: now, peer: peer.as_deref(), jwt: jwt.as_deref(), x509: x509.as_ref(), metadata: &metadata };

    let (method, path) = match q.endpoint.as_deref() {
        Some(e) => e.split_once(' ').unwrap_or(("POST", e)),
        None => ("POST", ""),
    };
    let endpoint = if path.is_empty() { None } else { provider.api.classify(method, path).map(|(e, _)| e) };
    if !path.is_empty() && endpoint.is_none() {
        return match decision::endpoint_rule(&policy.rules, &workload, &provider.name, method, path, &facts) {
            Some(rule) => Answer::allow(&rule.id, format!("rule {:?} opens {method} {path} to {workload}", rule.id)),
            None => Answer::deny(
                Reason::EndpointNotAllowed,
                "endpoint_not_allowed",
                format!("{method} {path} is not an endpoint of {} and no rule opens it", provider.api.name()),
            ),
        };
    }
    if endpoint.is_some_and(|e| e.model == ModelAt::Listing) {
        return match decision::rule_naming(&policy.rules, &workload, &provider.name) {
            Some(rule) => Answer {
                decision: "allow",
                reason: "ok",
                detail: None,
                rule: Some(rule.id.clone()),
                conditions: Vec::new(),
                message: format!(
                    "{workload} may list the models of {:?} (filtered to what it may call)",
                    provider.name
                ),
            },
            None => Answer::deny(
                Reason::ModelNotAllowed,
                "no_matching_rule",
                format!("no rule names {workload} at provider {:?}", provider.name),
            ),
        };
    }
    let Some(model) = q.model.as_deref() else {
        return Answer::deny(Reason::ModelMissing, "model_missing", "give the model".into());
    };
    let mut seen = Vec::new();
    match decision::decide_for(&policy.rules, &workload, &provider.name, model, &facts, &mut seen) {
        Ok(rule) => Answer {
            decision: "allow",
            reason: "ok",
            detail: None,
            rule: Some(rule.id.clone()),
            conditions: seen,
            message: format!(
                "rule {:?} allows {workload} the model {model:?} at provider {:?}",
                rule.id, provider.name
            ),
        },
        Err(d) => Answer {
            decision: "deny",
            reason: d.reason.code(),
            detail: d.detail.clone(),
            rule: d.rule.clone(),
            conditions: seen,
            message: d.message.clone(),
        },
    }
}

/// A metadata value as the host serializes it (string bytes, one byte for
/// a boolean, an 8-byte little-endian double).
fn serialized(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Bool(b) => Some(vec![u8::from(*b)]),
        Value::Number(n) => n.as_f64().map(|f| f.to_le_bytes().to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{config, env};

    fn ask(policy: &Policy, q: Value) -> Answer {
        explain(policy, &serde_json::from_value(q).unwrap(), 1_795_435_200)
    }

    #[test]
    fn answers_as_the_filter_decides() {
        let mut c = config(json!({}));
        c["rules"][1]["when"] = json!({"source_cidrs": ["10.0.0.0/8"]});
        let p = Policy::from_json(c.to_string().as_bytes(), &env).unwrap();
        let bot = "spiffe://example.org/ns/support/sa/bot";
        let a = ask(&p, json!({"spiffe_id": bot, "provider": "openai", "model": "gpt-4o-mini"}));
        assert_eq!((a.decision, a.rule.as_deref()), ("allow", Some("support-bot")));
        let a = ask(&p, json!({"spiffe_id": bot, "provider": "openai", "model": "gpt-3.5-turbo"}));
        assert_eq!((a.reason, a.rule.as_deref()), ("model_not_allowed", Some("no-legacy")));
        let batch = "spiffe://example.org/ns/batch/x";
        let a =
            ask(&p, json!({"spiffe_id": batch, "provider": "openai", "model": "gpt-4o-mini", "peer": "192.0.2.1:1"}));
        assert_eq!((a.reason, a.detail.as_deref()), ("condition_not_met", Some("source_cidrs")));
        assert_eq!(a.conditions.len(), 1);
        let a =
            ask(&p, json!({"spiffe_id": batch, "provider": "openai", "model": "gpt-4o-mini", "peer": "10.1.1.1:1"}));
        assert_eq!(a.decision, "allow");
        let a = ask(&p, json!({"spiffe_id": bot, "provider": "openai", "endpoint": "GET /v1/models"}));
        assert_eq!(a.decision, "allow");
        let a = ask(&p, json!({"spiffe_id": bot, "provider": "openai", "endpoint": "/v1/files"}));
        assert_eq!(a.reason, "endpoint_not_allowed");
        let a = ask(&p, json!({"spiffe_id": "spiffe://other.org/x", "provider": "openai", "model": "m"}));
        assert_eq!(a.reason, "untrusted_domain");
    }
}
