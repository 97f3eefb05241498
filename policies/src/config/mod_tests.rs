//! Config errors: each names the JSON path of the bad field.

use serde_json::{json, Value};

use super::*;
use crate::testing::{config, env};

fn error(c: Value) -> ConfigError {
    Policy::from_json(c.to_string().as_bytes(), &env).unwrap_err()
}

/// The test config with the member at `path` set (created if absent).
fn patched(path: &str, value: Value) -> Value {
    let mut c = config(json!({}));
    let (parent, key) = path.rsplit_once('/').unwrap();
    match c.pointer_mut(parent).unwrap() {
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        object => object[key] = value,
    }
    c
}

#[test]
fn the_example_config_compiles() {
    let p = Policy::from_json(config(json!({})).to_string().as_bytes(), &env).unwrap();
    assert_eq!(p.mode, Mode::Enforce);
    assert_eq!(p.jwt_svid.leeway_seconds, 30);
    assert_eq!(p.jwt_svid.max_lifetime_seconds, 86_400);
    assert_eq!(p.prompt_audit, PromptAudit::Sha256);
    assert_eq!(p.rules.len(), 4);
    assert!(format!("{p:?}").contains("Secret(…)"));
    assert!(!format!("{p:?}").contains("sk-openai-upstream"));
}

#[test]
fn errors_name_the_json_path() {
    let cases: Vec<(Value, &str)> = vec![
        (config(json!({"version": 2})), "version"),
        (config(json!({"mode": "permissive"})), "mode"),
        (config(json!({"extra": 1})), ""),
        (patched("/trust_domains/0/name", json!("Example.org")), "trust_domains[0].name"),
        (patched("/trust_domains/0/jwt_bundle/keys/0/kid", json!("")), "trust_domains[0].jwt_bundle.keys[0].kid"),
        (patched("/identity/jwt_svid/audiences", json!([])), "identity.jwt_svid.audiences"),
        (patched("/identity/jwt_svid/leeway_seconds", json!(-1)), "identity.jwt_svid.leeway_seconds"),
        (patched("/identity/jwt_svid/leeway_seconds", json!("30")), "identity.jwt_svid.leeway_seconds"),
        (patched("/identity/jwt_svid/header", json!("bad header")), "identity.jwt_svid.header"),
        (patched("/providers/0/api", json!("cohere")), "providers[0].api"),
        (patched("/providers/0/api", json!("OpenAI")), "providers[0].api"),
        (patched("/providers/1/match/authorities/0", json!("api.openai.com.")), "providers[1].match.authorities[0]"),
        (
            patched("/providers/1/match/authorities/0", json!("api.openai.com:https")),
            "providers[1].match.authorities[0]",
        ),
        (patched("/providers/1/name", json!("anthropic")), "providers[1].name"),
        (patched("/providers/0/credential/env", json!("NOT_SET")), "providers[0].credential.env"),
        (patched("/providers/0/credential/type", json!("password")), "providers[0].credential"),
        (patched("/providers/0/match", json!({})), "providers[0].match"),
        (patched("/providers/0/headers", json!({"authorization": "x"})), "providers[0].headers.authorization"),
        (patched("/providers/0/headers", json!({"openai-project": 5})), "providers[0].headers.openai-project"),
        (patched("/providers/0/headers", json!({"bad header": "x"})), "providers[0].headers.bad header"),
        (patched("/providers/0/match/path_prefix", json!("anthropic")), "providers[0].match.path_prefix"),
        (patched("/providers/0/match/typo", json!(1)), "providers[0].match"),
        (patched("/rules/0/id", json!("bad id")), "rules[0].id"),
        (patched("/rules/1/id", json!("support-bot")), "rules[1].id"),
        (patched("/rules/0/effect", json!("maybe")), "rules[0].effect"),
        (patched("/rules/0/providers", json!(["openai", "gemini"])), "rules[0].providers[1]"),
        (patched("/rules/0/providers", json!(["*", "openai"])), "rules[0].providers"),
        (patched("/rules/0/workloads/0", json!("spiffe://example.org/ns/*/sa")), "rules[0].workloads[0]"),
        (patched("/rules/0/workloads/0", json!("spiffe://other.org/ns/a")), "rules[0].workloads[0]"),
        (patched("/rules/0/models/0", json!("")), "rules[0].models[0]"),
        (patched("/rules/0/limits/max_tokens", json!(0)), "rules[0].limits.max_tokens"),
        (patched("/rules/0/effect", json!("deny")), "rules[0].limits"),
        (patched("/limits/max_body_bytes", json!(0)), "limits.max_body_bytes"),
        (patched("/providers/0/deployments", json!({"d": "gpt-4o"})), "providers[0].deployments"),
        (patched("/providers/0/project", json!("p")), "providers[0].project"),
        (patched("/providers/0/locations", json!(["us-east5"])), "providers[0].locations"),
        (patched("/providers/0/api", json!("azure_openai")), "providers[0].deployments"),
        (patched("/providers/0/api", json!("vertex")), "providers[0].project"),
        (patched("/rules/0/endpoints", json!(["v1/files"])), "rules[0].endpoints[0]"),
        (patched("/rules/0/endpoints", json!(["/v1/**/x"])), "rules[0].endpoints[0]"),
        (patched("/rules/0/endpoints", json!(["/v1//files"])), "rules[0].endpoints[0]"),
        (patched("/rules/0/endpoints", json!(["/v1/../files"])), "rules[0].endpoints[0]"),
        (patched("/rules/0/endpoints", json!(["/v1/fi*"])), "rules[0].endpoints[0]"),
        (patched("/rules/0/endpoints", json!(["CONNECT /v1/files"])), "rules[0].endpoints[0]"),
        (patched("/rules/0/endpoints", json!(["/v1/files?x=1"])), "rules[0].endpoints[0]"),
        (config(json!({"prompt_guard": {"detectors": ["pii"]}})), "prompt_guard.detectors[0]"),
        (config(json!({"prompt_guard": {"detectors": []}})), "prompt_guard.detectors"),
        (
            config(json!({"prompt_guard": {"custom": [{"name": "x", "pattern": "("}]}})),
            "prompt_guard.custom[0].pattern",
        ),
        (
            config(json!({"prompt_guard": {"custom": [{"name": "email", "pattern": "x"}]}})),
            "prompt_guard.custom[0].name",
        ),
        (config(json!({"prompt_guard": {"action": "warn"}})), "prompt_guard.action"),
        (patched("/rules/3/prompt_guard", json!("off")), "rules[3].prompt_guard"),
        (patched("/providers/0/include_usage", json!(true)), "providers[0].include_usage"),
        (patched("/providers/0/identity_to_provider", json!("email")), "providers[0].identity_to_provider"),
    ];
    for (c, path) in cases {
        let e = error(c);
        assert!(e.path.starts_with(path), "want {path:?}, got {e:?}");
        assert!(e.to_string().starts_with("modelgate config: "), "{e}");
    }
}

#[test]
fn a_deny_rule_cannot_carry_limits() {
    let mut c = config(json!({}));
    c["rules"][3]["limits"] = json!({"max_tokens": 5});
    assert_eq!(error(c).path, "rules[3].limits");
}

#[test]
fn conditions_compile_and_errors_name_their_path() {
    let mut c = config(json!({}));
    c["rules"][0]["when"] = json!({"time": {"days": ["mon"], "hours_utc": "07:00-19:00"}, "source_cidrs": ["10.0.0.0/8"],
                                   "metadata": [{"namespace": "posture", "key": "ok", "equals": true}]});
    c["rules"][3]["when"] = json!({"metadata": [{"namespace": "posture", "key": "ok", "equals": false}]});
    let p = Policy::from_json(c.to_string().as_bytes(), &env).unwrap();
    assert!(p.rules[0].conditions.time.is_some());
    assert_eq!(p.metadata_keys(), [("posture".to_string(), "ok".to_string())]);
    let mut c = config(json!({}));
    c["rules"][2]["when"] = json!({"source_cidrs": ["10.0.0.0/40"]});
    assert_eq!(error(c).path, "rules[2].when.source_cidrs[0]");
}

#[test]
fn extra_endpoints_match_whole_segments() {
    let mut c = config(json!({}));
    c["rules"][0]["endpoints"] = json!(["/v1/files", "GET /v1/files/*", "/v1/batches/**"]);
    let p = Policy::from_json(c.to_string().as_bytes(), &env).unwrap();
    let e = &p.rules[0].endpoints;
    let allowed = |method: &str, path: &str| e.iter().any(|e| e.matches(method, path));
    assert!(
        allowed("POST", "/v1/files") && allowed("GET", "/v1/files/file-1") && allowed("POST", "/v1/batches/b/cancel")
    );
    for (method, path) in [
        ("DELETE", "/v1/files/file-1"),
        ("GET", "/v1/files/file-1/content"),
        ("GET", "/v1/files/"),
        ("GET", "/v1/batches"),
        ("GET", "/v1/batches/"),
        ("GET", "/v1/files2"),
    ] {
        assert!(!allowed(method, path), "{method} {path}");
    }
    let mut c = config(json!({}));
    c["rules"][3]["endpoints"] = json!(["/v1/files"]);
    assert_eq!(error(c).path, "rules[3].endpoints");
}

#[test]
fn deployments_and_vertex_scope() {
    let mut c = config(json!({}));
    c["providers"][0]["api"] = json!("azure_openai");
    c["providers"][0]["deployments"] = json!({"prod-gpt": "gpt-4o", "bad/name": "x"});
    assert_eq!(error(c.clone()).path, "providers[0].deployments.bad/name");
    c["providers"][0]["deployments"] = json!({"prod-gpt": "gpt-4o"});
    let p = Policy::from_json(c.to_string().as_bytes(), &env).unwrap();
    assert_eq!(p.providers[0].deployments, [("prod-gpt".to_string(), "gpt-4o".to_string())]);
    let mut c = config(json!({}));
    c["providers"][0]["api"] = json!("vertex");
    c["providers"][0]["project"] = json!("acme-prod");
    c["providers"][0]["locations"] = json!(["us-east5", "bad location"]);
    assert_eq!(error(c.clone()).path, "providers[0].locations[1]");
    c["providers"][0]["locations"] = json!(["us-east5"]);
    let p = Policy::from_json(c.to_string().as_bytes(), &env).unwrap();
    assert_eq!((p.providers[0].project.as_deref(), p.providers[0].locations.len()), (Some("acme-prod"), 1));
}

#[test]
fn duplicate_json_members_are_refused() {
    let text = config(json!({})).to_string().replacen("\"version\":1", "\"version\":1,\"version\":1", 1);
    assert!(Policy::from_json(text.as_bytes(), &env).is_err());
    // Also inside free-form values, where serde_json would keep the last.
    let text = config(json!({})).to_string().replacen("\"kid\":\"k1\"", "\"kid\":\"k1\",\"kid\":\"k2\"", 1);
    assert!(Policy::from_json(text.as_bytes(), &env).unwrap_err().message.contains("\"kid\""));
}

#[test]
fn the_api_key_comes_from_the_environment_once() {
    let p = Policy::from_json(config(json!({})).to_string().as_bytes(), &env).unwrap();
    let Credential::ApiKey { key, header, prefix } = &p.provider("openai").unwrap().credential else { panic!() };
    assert_eq!((key.expose(), header.as_str(), prefix.as_str()), ("sk-openai-upstream", "authorization", "Bearer "));
    let empty = |_: &str| Some("  ".to_string());
    assert_eq!(
        Policy::from_json(config(json!({})).to_string().as_bytes(), &empty).unwrap_err().path,
        "providers[0].credential.env"
    );
}

#[test]
fn the_revision_is_a_short_printable_label_and_the_digest_is_the_texts() {
    let text = config(json!({"revision": "release-42 (a1b2c3)"})).to_string();
    let p = Policy::from_json(text.as_bytes(), &env).unwrap();
    assert_eq!(p.revision.as_deref(), Some("release-42 (a1b2c3)"));
    assert_eq!(p.generation, crate::util::digest::sha256_hex(text.as_bytes()));
    let record = crate::audit::recorder::Recorder::new(Some(&p), 0).record().to_json();
    let record: Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["policy"], json!({"revision": "release-42 (a1b2c3)", "digest": p.generation}));
    for bad in [json!(""), json!("x".repeat(65)), json!("line\nbreak"), json!("caf\u{e9}"), json!(7)] {
        assert_eq!(error(config(json!({ "revision": bad }))).path, "revision", "{bad}");
    }
    assert_eq!(Policy::from_json(config(json!({})).to_string().as_bytes(), &env).unwrap().revision, None);
}

#[test]
fn audit_mode_and_prompt_none_are_read() {
    let p = Policy::from_json(config(json!({"mode":"audit","audit":{"prompt":"none"}})).to_string().as_bytes(), &env)
        .unwrap();
    assert_eq!((p.mode, p.prompt_audit), (Mode::Audit, PromptAudit::None));
}

#[test]
fn providers_may_set_their_account_headers() {
    let c = patched("/providers/1/headers", json!({"OpenAI-Organization": "org-gw", "openai-project": "proj_gw"}));
    let p = Policy::from_json(c.to_string().as_bytes(), &env).unwrap();
    assert_eq!(
        p.provider("openai").unwrap().headers,
        vec![
            ("openai-organization".to_string(), "org-gw".to_string()),
            ("openai-project".to_string(), "proj_gw".to_string())
        ]
    );
}

#[test]
fn identity_sources_and_requirements_are_checked() {
    let cases = [
        (json!({"require": "any"}), "identity.require"),
        (json!({"jwt_svid": {"audiences": ["a"]}, "require": "x509"}), "identity.require"),
        (json!({"x509_svid": {"source": "connection"}, "require": "jwt"}), "identity.require"),
        (
            json!({"x509_svid": {"source": "off"}, "jwt_svid": {"audiences": ["a"]}, "require": "both"}),
            "identity.require",
        ),
        (json!({"x509_svid": {"source": "xfcc"}}), "identity.x509_svid.trusted_hop"),
        (
            json!({"x509_svid": {"source": "connection", "trusted_hop": "spiffe://example.org/p"}}),
            "identity.x509_svid.trusted_hop",
        ),
        (
            json!({"x509_svid": {"source": "xfcc", "trusted_hop": "spiffe://EXAMPLE.org/p"}}),
            "identity.x509_svid.trusted_hop",
        ),
        (json!({"x509_svid": {"source": "tls"}}), "identity.x509_svid.source"),
    ];
    for (identity, path) in cases {
        assert_eq!(error(config(json!({"identity": identity}))).path, path, "{identity}");
    }
    let p = Policy::from_json(
        config(json!({"identity": {"x509_svid": {"source": "connection"}, "require": "x509"}})).to_string().as_bytes(),
        &env,
    )
    .unwrap();
    assert!(!p.jwt_svid.enabled);
    assert_eq!((p.identity.x509.clone(), p.identity.require), (X509Source::Connection, Require::X509));
}

#[test]
fn a_bundle_endpoint_takes_the_place_of_an_inline_bundle() {
    let mut c = config(json!({}));
    c["trust_domains"][0].as_object_mut().unwrap().remove("jwt_bundle");
    c["trust_domains"][0]["bundle_endpoint"] =
        json!({"cluster": "spire_bundle", "path": "/keys", "refresh_seconds": 60});
    let p = Policy::from_json(&serde_json::to_vec(&c).unwrap(), &env).unwrap();
    let e = p.trust_domains[0].endpoint.as_ref().unwrap();
    assert_eq!(
        (e.authority.as_str(), e.path.as_str(), e.refresh_seconds, e.timeout_ms),
        ("spire_bundle", "/keys", 60, 5000)
    );
    assert!(p.trust_domains[0].keys.is_empty());

    let bad = [
        (json!({"cluster": ""}), "trust_domains[0].bundle_endpoint.cluster"),
        (json!({"cluster": "c", "authority": "a/b"}), "trust_domains[0].bundle_endpoint.authority"),
        (json!({"cluster": "c", "path": "keys"}), "trust_domains[0].bundle_endpoint.path"),
        (json!({"cluster": "c", "refresh_seconds": 0}), "trust_domains[0].bundle_endpoint.refresh_seconds"),
        (json!({"cluster": "c", "timeout_ms": 600000}), "trust_domains[0].bundle_endpoint.timeout_ms"),
        (json!({"cluster": "c", "url": "https://x"}), "trust_domains[0].bundle_endpoint"),
    ];
    for (endpoint, path) in bad {
        let mut c = config(json!({}));
        c["trust_domains"][0]["bundle_endpoint"] = endpoint;
        assert!(error(c).path.starts_with(path), "{path}");
    }
    // Neither inline keys nor an endpoint: nothing to trust.
    let mut c = config(json!({}));
    c["trust_domains"][0].as_object_mut().unwrap().remove("jwt_bundle");
    assert_eq!(error(c).path, "trust_domains[0].jwt_bundle");
}

#[test]
fn an_x509_only_gateway_needs_no_jwt_authorities() {
    let mut c = config(json!({}));
    c["trust_domains"] = json!([{"name": "cluster.local"}]);
    c["identity"] = json!({"x509_svid": {"source": "connection"}, "require": "x509"});
    c["rules"] = json!([{"id": "a", "effect": "allow", "workloads": ["spiffe://cluster.local/ns/a/sa/*"],
                         "providers": ["*"], "models": ["*"]}]);
    let p = Policy::from_json(c.to_string().as_bytes(), &env).unwrap();
    assert!(p.trust_domains[0].keys.is_empty() && !p.jwt_svid.enabled);
}

fn with_mcp(provider_patch: Value, rule: Value) -> Value {
    let mut c = config(json!({}));
    let mut provider = crate::testing::mcp_provider();
    for (k, v) in provider_patch.as_object().unwrap() {
        if v.is_null() {
            provider.as_object_mut().unwrap().remove(k);
        } else {
            provider[k] = v.clone();
        }
    }
    c["providers"].as_array_mut().unwrap().push(provider);
    c["rules"].as_array_mut().unwrap().push(rule);
    c
}

fn tools_rule(patch: Value) -> Value {
    let mut r = json!({"id": "tools", "effect": "allow", "workloads": ["spiffe://example.org/ns/agents/**"],
        "providers": ["github"], "tools": ["search_issues"]});
    for (k, v) in patch.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

#[test]
fn an_mcp_provider_and_its_rules_compile() {
    let c = with_mcp(
        json!({}),
        tools_rule(json!({"arguments": {"search_issues": {"repo": ["acme/*"]}},
        "resources": ["repo://acme/*"], "prompts": ["triage"], "mcp": ["completion/complete", "notifications/*"]})),
    );
    let p = Policy::from_json(c.to_string().as_bytes(), &env).unwrap();
    let rule = p.rules.iter().find(|r| r.id == "tools").unwrap();
    assert!(rule.models.is_empty());
    assert_eq!((rule.mcp.tools.len(), rule.mcp.arguments.len(), rule.mcp.methods.len()), (1, 1, 2));
    assert!(!format!("{p:?}").contains("session-key-0123456789"), "the session key never prints");
}

#[test]
fn mcp_config_errors_name_their_path() {
    let cases = [
        (with_mcp(json!({"session_key": null}), tools_rule(json!({}))), "providers[2].session_key"),
        (
            with_mcp(json!({"session_key": {"env": "OPENAI_API_KEY"}}), tools_rule(json!({}))),
            "providers[2].session_key.env",
        ),
        (with_mcp(json!({"session_key": {"env": "UNSET"}}), tools_rule(json!({}))), "providers[2].session_key.env"),
        (with_mcp(json!({}), tools_rule(json!({"providers": ["openai"]}))), "rules[4].providers"),
        (with_mcp(json!({}), tools_rule(json!({"mcp": ["tools/call"]}))), "rules[4].mcp[0]"),
        (with_mcp(json!({}), tools_rule(json!({"mcp": ["tools/"]}))), "rules[4].mcp[0]"),
        (with_mcp(json!({}), tools_rule(json!({"resources": ["a***"]}))), "rules[4].resources[0]"),
        (
            with_mcp(json!({}), tools_rule(json!({"arguments": {"delete_repo": {"repo": ["x"]}}}))),
            "rules[4].arguments.delete_repo",
        ),
        (
            with_mcp(json!({}), tools_rule(json!({"arguments": {"search_issues": {"repo": []}}}))),
            "rules[4].arguments.search_issues.repo",
        ),
        (
            with_mcp(json!({}), tools_rule(json!({"arguments": {"search_issues": {}}}))),
            "rules[4].arguments.search_issues",
        ),
        (
            with_mcp(json!({}), tools_rule(json!({"effect": "deny", "arguments": {"search_issues": {"repo": ["x"]}}}))),
            "rules[4].arguments.search_issues",
        ),
        (with_mcp(json!({}), tools_rule(json!({"tolls": ["x"]}))), "rules[4].tolls"),
    ];
    for (c, want) in cases {
        let e = error(c);
        assert_eq!(e.path, want, "{e}");
    }
    // Only MCP providers have sessions.
    let mut c = config(json!({}));
    c["providers"][0]["session_key"] = json!({"env": "MCP_SESSION_KEY"});
    assert_eq!(error(c).path, "providers[0].session_key");
}
