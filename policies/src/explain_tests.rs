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
    let a = ask(&p, json!({"spiffe_id": batch, "provider": "openai", "model": "gpt-4o-mini", "peer": "192.0.2.1:1"}));
    assert_eq!((a.reason, a.detail.as_deref()), ("condition_not_met", Some("source_cidrs")));
    assert_eq!(a.conditions.len(), 1);
    let a = ask(&p, json!({"spiffe_id": batch, "provider": "openai", "model": "gpt-4o-mini", "peer": "10.1.1.1:1"}));
    assert_eq!(a.decision, "allow");
    let a = ask(&p, json!({"spiffe_id": bot, "provider": "openai", "endpoint": "GET /v1/models"}));
    assert_eq!(a.decision, "allow");
    let a = ask(&p, json!({"spiffe_id": bot, "provider": "openai", "endpoint": "/v1/files"}));
    assert_eq!(a.reason, "endpoint_not_allowed");
    let a = ask(&p, json!({"spiffe_id": "spiffe://other.org/x", "provider": "openai", "model": "m"}));
    assert_eq!(a.reason, "untrusted_domain");
}

#[test]
fn drives_every_api_through_the_flow() {
    let mut c = config(json!({}));
    c["providers"] = json!([
        {"name": "openai", "api": "openai", "match": {"path_prefix": "/openai/"}, "credential": {"type": "none"}},
        {"name": "anthropic", "api": "anthropic", "match": {"path_prefix": "/anthropic/"}, "credential": {"type": "none"}},
        {"name": "gemini", "api": "gemini", "match": {"path_prefix": "/gemini/"}, "credential": {"type": "none"}},
        {"name": "azure", "api": "azure_openai", "match": {"path_prefix": "/azure/"}, "credential": {"type": "none"},
         "deployments": {"prod-gpt": "gpt-4o-mini", "legacy": "gpt-3.5-turbo"}},
        {"name": "bedrock", "api": "bedrock", "match": {"path_prefix": "/bedrock/"}, "credential": {"type": "none"}},
        {"name": "vertex", "api": "vertex", "match": {"path_prefix": "/vertex/"}, "credential": {"type": "none"},
         "project": "acme", "locations": ["us-east5"]}
    ]);
    c["rules"] = json!([
        {"id": "bot", "effect": "allow", "workloads": [crate::testing::BOT], "providers": ["*"],
         "models": ["gpt-4o-mini", "claude-haiku-*", "gemini-2.5-flash", "anthropic.claude-haiku-*",
                    "google/gemini-2.5-flash", "anthropic/claude-haiku-*"],
         "limits": {"max_tokens": 1024}},
        {"id": "no-legacy", "effect": "deny", "workloads": ["spiffe://example.org/**"], "providers": ["*"], "models": ["gpt-3.5-*"]}
    ]);
    let p = Policy::from_json(c.to_string().as_bytes(), &env).unwrap();
    let bot = crate::testing::BOT;
    for (provider, model, decision) in [
        ("openai", "gpt-4o-mini", "allow"),
        ("openai", "gpt-4o", "deny"),
        ("anthropic", "claude-haiku-4-5", "allow"),
        ("gemini", "gemini-2.5-flash", "allow"),
        ("gemini", "gemini-pro", "deny"),
        // Rules see the model a deployment runs: asked by model, the
        // described request names the deployment that selects it.
        ("azure", "gpt-4o-mini", "allow"),
        ("azure", "gpt-3.5-turbo", "deny"),
        ("bedrock", "anthropic.claude-haiku-4-5-v1:0", "allow"),
        ("vertex", "google/gemini-2.5-flash", "allow"),
        ("vertex", "anthropic/claude-haiku-4-5", "allow"),
        ("vertex", "google/gemini-pro", "deny"),
    ] {
        let a = ask(&p, json!({"spiffe_id": bot, "provider": provider, "model": model}));
        assert_eq!(a.decision, decision, "{provider} {model}: {a:?}");
        if decision == "allow" {
            assert_eq!(a.rule.as_deref(), Some("bot"), "{provider} {model}");
        }
    }
    let a = ask(&p, json!({"spiffe_id": bot, "provider": "azure", "model": "gpt-3.5-turbo"}));
    assert_eq!((a.reason, a.rule.as_deref()), ("model_not_allowed", Some("no-legacy")));
}

#[test]
fn an_x509_svid_is_described_to_the_identity_step_as_the_policy_reads_it() {
    let bot = crate::testing::BOT;
    let hop = "spiffe://example.org/ns/mesh/sa/gateway";
    for (identity, svid, decision) in [
        (json!({"x509_svid": {"source": "connection"}, "require": "x509"}), "x509", "allow"),
        (json!({"x509_svid": {"source": "connection"}, "require": "x509"}), "jwt", "deny"),
        (json!({"x509_svid": {"source": "xfcc", "trusted_hop": hop}, "require": "x509"}), "x509", "allow"),
        (json!({"x509_svid": {"source": "connection"}, "require": "both"}), "jwt+x509", "allow"),
        (json!({"x509_svid": {"source": "connection"}, "require": "both"}), "x509", "deny"),
    ] {
        let mut c = config(json!({}));
        c["identity"] = identity.clone();
        if identity["require"] == "both" {
            c["identity"]["jwt_svid"] = json!({"audiences": [crate::testing::AUD]});
        }
        let p = Policy::from_json(c.to_string().as_bytes(), &env).unwrap();
        let a = ask(&p, json!({"spiffe_id": bot, "provider": "openai", "model": "gpt-4o-mini", "svid": svid}));
        assert_eq!(a.decision, decision, "{identity} {svid}: {a:?}");
    }
}
