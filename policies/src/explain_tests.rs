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

// ---- MCP servers: tools, resources, prompts, methods ----

const TRIAGE: &str = "spiffe://example.org/ns/agents/sa/triage";

/// docs/mcp.md's worked example beside the demo's model providers.
fn mcp_policy(mode: &str) -> Policy {
    let rules = [
        json!({"id": "triage-tools", "effect": "allow", "workloads": [TRIAGE], "providers": ["github"],
               "mcp": ["initialize", "notifications/*", "ping", "tools/list", "resources/list", "prompts/list"],
               "tools": ["search_issues", "get_issue", "delete_*"],
               "arguments": {"search_issues": {"repo": ["acme/*"]}},
               "resources": ["repo://acme/*"], "prompts": ["triage"]}),
        json!({"id": "never-delete", "effect": "deny", "workloads": ["spiffe://example.org/**"],
               "providers": ["github"], "tools": ["delete_*"]}),
    ];
    Policy::from_json(crate::testing::mcp_config(mode, &rules).to_string().as_bytes(), &env).unwrap()
}

fn mcp(q: Value) -> Value {
    let mut base = json!({"spiffe_id": TRIAGE, "provider": "github"});
    for (k, v) in q.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

#[test]
fn an_allowed_tool_call_is_driven_as_a_json_rpc_message() {
    let p = mcp_policy("enforce");
    let a = ask(&p, mcp(json!({"tool": "get_issue", "arguments": {"repo": "acme/api", "number": 3}})));
    assert_eq!((a.decision, a.reason, a.rule.as_deref()), ("allow", "ok", Some("triage-tools")), "{a:?}");
    assert!(a.message.contains("the tool \"get_issue\"") && a.message.contains("\"github\""), "{}", a.message);
    let a = ask(&p, mcp(json!({"tool": "search_issues", "arguments": {"repo": "acme/api", "query": "flaky"}})));
    assert_eq!((a.decision, a.rule.as_deref()), ("allow", Some("triage-tools")), "{a:?}");
    // Another workload: no rule names it for the server (refused on the headers).
    let a = ask(&p, mcp(json!({"spiffe_id": crate::testing::BOT, "tool": "get_issue"})));
    assert_eq!((a.decision, a.detail.as_deref(), a.rule.as_deref()), ("deny", Some("no_matching_rule"), None), "{a:?}");
    // A tool no rule names.
    let a = ask(&p, mcp(json!({"tool": "push_code"})));
    assert_eq!((a.reason, a.detail.as_deref(), a.rule), ("tool_not_allowed", Some("no_matching_rule"), None));
}

#[test]
fn a_deny_rule_denies_a_tool_the_allow_rule_names() {
    let p = mcp_policy("enforce");
    // As a lenient server reads names: any case, surrounding white space.
    for tool in ["delete_repo", "Delete_Repo", " delete_repo"] {
        let a = ask(&p, mcp(json!({"tool": tool, "arguments": {"repo": "acme/api"}})));
        assert_eq!(
            (a.decision, a.reason, a.detail.as_deref(), a.rule.as_deref()),
            ("deny", "tool_not_allowed", Some("deny_rule"), Some("never-delete")),
            "{tool:?}: {a:?}"
        );
        assert!(a.message.contains("never-delete"), "{}", a.message);
    }
    // Audit mode answers what enforce mode would decide.
    let a = ask(&mcp_policy("audit"), mcp(json!({"tool": "delete_repo"})));
    assert_eq!((a.decision, a.rule.as_deref()), ("deny", Some("never-delete")));
}

#[test]
fn an_argument_the_rule_constrains_is_refused_when_it_does_not_hold() {
    let p = mcp_policy("enforce");
    for (arguments, detail) in [
        (json!({"repo": "other/secret"}), "argument_not_allowed"),
        (json!({"repo": "acme/../other"}), "argument_unsafe"),
        (json!({"repo": 7}), "argument_type"),
        (json!({"query": "flaky"}), "argument_missing"),
    ] {
        let a = ask(&p, mcp(json!({"tool": "search_issues", "arguments": arguments})));
        assert_eq!(
            (a.decision, a.reason, a.detail.as_deref(), a.rule.as_deref()),
            ("deny", "argument_not_allowed", Some(detail), Some("triage-tools")),
            "{arguments}: {a:?}"
        );
        assert!(a.message.contains("\"repo\""), "{}", a.message);
    }
    // Without arguments: the constrained one is missing.
    let a = ask(&p, mcp(json!({"tool": "search_issues"})));
    assert_eq!((a.reason, a.detail.as_deref()), ("argument_not_allowed", Some("argument_missing")));
}

#[test]
fn resources_are_decided_on_their_uri() {
    let p = mcp_policy("enforce");
    let a = ask(&p, mcp(json!({"resource": "repo://acme/api"})));
    assert_eq!((a.decision, a.rule.as_deref()), ("allow", Some("triage-tools")), "{a:?}");
    assert!(a.message.contains("the resource \"repo://acme/api\""), "{}", a.message);
    let a = ask(&p, mcp(json!({"resource": "repo://acme/api", "method": "resources/subscribe"})));
    assert_eq!(a.decision, "allow", "{a:?}");
    // `*` is one segment: a deeper URI, or another organisation's, is not named.
    for uri in ["repo://other/api", "repo://acme/api/secrets"] {
        let a = ask(&p, mcp(json!({"resource": uri})));
        assert_eq!((a.decision, a.reason), ("deny", "resource_not_allowed"), "{uri}: {a:?}");
    }
}

#[test]
fn prompts_are_decided_on_their_name() {
    let p = mcp_policy("enforce");
    let a = ask(&p, mcp(json!({"prompt": "triage"})));
    assert_eq!((a.decision, a.rule.as_deref()), ("allow", Some("triage-tools")), "{a:?}");
    let a = ask(&p, mcp(json!({"prompt": "exfiltrate"})));
    assert_eq!((a.decision, a.reason), ("deny", "prompt_not_allowed"), "{a:?}");
}

#[test]
fn methods_are_decided_by_the_rules_mcp_list() {
    let p = mcp_policy("enforce");
    for method in ["initialize", "tools/list", "notifications/initialized", "ping"] {
        let a = ask(&p, mcp(json!({"method": method})));
        assert_eq!((a.decision, a.rule.as_deref()), ("allow", Some("triage-tools")), "{method}: {a:?}");
    }
    let a = ask(&p, mcp(json!({"method": "tools/list"})));
    assert!(a.message.contains("cut to what it may use"), "{}", a.message);
    for method in ["logging/setLevel", "resources/templates/list", "vendor/exec"] {
        let a = ask(&p, mcp(json!({"method": method})));
        assert_eq!((a.decision, a.reason), ("deny", "method_not_allowed"), "{method}: {a:?}");
    }
    // What the reader refuses is answered as the gateway answers it.
    let a = ask(&p, mcp(json!({"method": "Tools/List"})));
    assert_eq!((a.decision, a.detail.as_deref()), ("deny", Some("method_case")), "{a:?}");
    // An endpoint of the MCP server described bare: the old transport.
    let a = ask(&p, mcp(json!({"endpoint": "GET /sse"})));
    assert_eq!((a.reason, a.detail.as_deref()), ("endpoint_not_allowed", Some("http_sse_transport")), "{a:?}");
}

#[test]
fn a_question_that_does_not_fit_the_providers_api_is_answered_with_what_is_wrong() {
    let p = mcp_policy("enforce");
    for q in [
        json!({"provider": "openai", "tool": "get_issue"}),
        json!({"provider": "anthropic", "method": "tools/list"}),
        json!({"provider": "openai", "resource": "repo://acme/api"}),
        json!({"provider": "openai", "prompt": "triage", "model": "gpt-4o-mini"}),
        json!({"provider": "openai", "model": "gpt-4o-mini", "arguments": {}}),
    ] {
        let a = ask(&p, mcp(q.clone()));
        assert_eq!((a.decision, a.detail.as_deref()), ("deny", Some("not_mcp_provider")), "{q}: {a:?}");
        assert!(a.message.contains("is not an MCP server"), "{}", a.message);
    }
    let a = ask(&p, mcp(json!({"model": "gpt-4o-mini"})));
    assert_eq!((a.decision, a.detail.as_deref()), ("deny", Some("mcp_provider")), "{a:?}");
    assert!(a.message.contains("runs no model"), "{}", a.message);
    for (q, says) in [
        (json!({}), "ask about a tool"),
        (json!({"tool": "get_issue", "prompt": "triage"}), "one of"),
        (json!({"arguments": {"repo": "acme/api"}}), "give the tool"),
        (json!({"method": "tools/call"}), "give the tool"),
        (json!({"method": "resources/read"}), "give the resource"),
        (json!({"tool": "get_issue", "method": "tools/list"}), "tools/call"),
        (json!({"prompt": "triage", "method": "resources/read"}), "prompts/get"),
    ] {
        let a = ask(&p, mcp(q.clone()));
        assert_eq!((a.decision, a.detail.as_deref()), ("deny", Some("question")), "{q}: {a:?}");
        assert!(a.message.contains(says), "{q}: {}", a.message);
    }
    // Arguments are an object.
    let q = serde_json::from_value::<Question>(mcp(json!({"tool": "get_issue", "arguments": [1]})));
    assert!(q.is_err());
}
