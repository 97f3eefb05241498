use serde_json::json;

use super::*;
use crate::config::{ProviderSet, RuleLimits};
use crate::decision::conditions::Facts;
use crate::decision::grants::{ArgumentConstraint, MethodPattern, PathGlob};
use crate::identity::spiffe::{ModelPattern, WorkloadPattern};

const TRIAGE: &str = "spiffe://ex.org/ns/agents/sa/triage";

fn rule(id: &str, effect: Effect, grants: McpGrants) -> Rule {
    Rule {
        id: id.into(),
        effect,
        workloads: vec![WorkloadPattern::parse("spiffe://ex.org/ns/agents/**").unwrap()],
        providers: ProviderSet::Named(vec!["github".into()]),
        models: Vec::new(),
        mcp: grants,
        endpoints: Vec::new(),
        limits: RuleLimits::default(),
        conditions: Default::default(),
        prompt_guard: None,
    }
}

fn names(list: &[&str]) -> Vec<ModelPattern> {
    list.iter().map(|s| ModelPattern::parse(s).unwrap()).collect()
}

fn rules() -> Vec<Rule> {
    vec![
        rule(
            "triage",
            Effect::Allow,
            McpGrants {
                tools: names(&["search_issues", "get_*"]),
                arguments: vec![ArgumentConstraint {
                    tool: ModelPattern::parse("search_issues").unwrap(),
                    argument: "repo".into(),
                    allowed: vec![PathGlob::parse("acme/*").unwrap()],
                }],
                resources: vec![PathGlob::parse("repo://acme/*").unwrap()],
                prompts: names(&["triage"]),
                methods: vec![
                    MethodPattern::parse("initialize").unwrap(),
                    MethodPattern::parse("notifications/*").unwrap(),
                ],
            },
        ),
        rule("never-delete", Effect::Deny, McpGrants { tools: names(&["delete_*"]), ..Default::default() }),
    ]
}

fn ask_tool(name: &str, arguments: serde_json::Value) -> Ask {
    Ask::Tool { name: name.into(), arguments: arguments.as_object().cloned() }
}

fn decide(ask: &Ask) -> Result<String, Denial> {
    let facts = Facts { now_secs: 0, peer: None, jwt: None, x509: None, metadata: &[] };
    let r = rules();
    decide_message(&r, &SpiffeId::parse(TRIAGE).unwrap(), "github", ask, &facts, &mut Vec::new()).map(|r| r.id.clone())
}

fn refused(ask: &Ask) -> (Reason, String) {
    let d = decide(ask).unwrap_err();
    (d.reason, d.detail.unwrap_or_default())
}

#[test]
fn a_tool_the_rule_names_is_allowed_with_arguments_that_hold() {
    assert_eq!(decide(&ask_tool("search_issues", json!({"repo": "acme/api", "query": "flaky"}))).unwrap(), "triage");
    assert_eq!(decide(&ask_tool("get_issue", json!({"repo": "anything/at-all"}))).unwrap(), "triage");
}

#[test]
fn a_tool_no_rule_names_is_refused_and_deny_rules_win_in_any_spelling() {
    assert_eq!(refused(&ask_tool("push_code", json!({}))), (Reason::ToolNotAllowed, "no_matching_rule".into()));
    for name in ["delete_repo", "DELETE_REPO", " delete_repo", "Delete_Repo\t"] {
        assert_eq!(refused(&ask_tool(name, json!({}))), (Reason::ToolNotAllowed, "deny_rule".into()), "{name:?}");
    }
}

#[test]
fn argument_constraints_name_the_argument_that_does_not_hold() {
    for (args, detail) in [
        (json!({"repo": "other/api"}), "argument_not_allowed"),
        (json!({"repo": "acme/api/extra"}), "argument_not_allowed"),
        (json!({"repo": "acme/../other"}), "argument_unsafe"),
        (json!({"repo": "acme/x%2F..%2Fother"}), "argument_unsafe"),
        (json!({"repo": ["acme/api"]}), "argument_type"),
        (json!({"query": "x"}), "argument_missing"),
    ] {
        let d = decide(&ask_tool("search_issues", args.clone())).unwrap_err();
        assert_eq!(
            (d.reason, d.detail.as_deref(), d.rule.as_deref()),
            (Reason::ArgumentNotAllowed, Some(detail), Some("triage")),
            "{args}"
        );
        assert!(d.message.contains("\"repo\""), "{}", d.message);
    }
    let no_args = Ask::Tool { name: "search_issues".into(), arguments: None };
    assert_eq!(refused(&no_args).0, Reason::ArgumentNotAllowed);
}

#[test]
fn listings_show_a_constrained_tool_without_its_arguments() {
    let facts = Facts { now_secs: 0, peer: None, jwt: None, x509: None, metadata: &[] };
    let who = SpiffeId::parse(TRIAGE).unwrap();
    let r = rules();
    let listed = |name: &str| may_list(&r, &who, "github", &Ask::Tool { name: name.into(), arguments: None }, &facts);
    assert!(listed("search_issues") && listed("get_issue"));
    assert!(!listed("delete_repo") && !listed("push_code"));
}

#[test]
fn resources_prompts_and_methods_are_decided_by_their_own_members() {
    assert!(decide(&Ask::Resource("repo://acme/api".into())).is_ok());
    assert_eq!(refused(&Ask::Resource("repo://other/secret".into())).0, Reason::ResourceNotAllowed);
    assert!(decide(&Ask::Prompt("triage".into())).is_ok());
    assert_eq!(refused(&Ask::Prompt("admin".into())).0, Reason::PromptNotAllowed);
    assert!(decide(&Ask::Method("initialize".into())).is_ok());
    assert!(decide(&Ask::Method("notifications/initialized".into())).is_ok());
    assert_eq!(refused(&Ask::Method("anything/else".into())).0, Reason::MethodNotAllowed);
    assert_eq!(refused(&Ask::Method("completion/complete".into())).0, Reason::MethodNotAllowed);
    assert_eq!(refused(&Ask::Method("resources/templates/list".into())).0, Reason::MethodNotAllowed);
    assert!(decide(&Ask::Answer).is_ok(), "a workload a rule lets reach the server may answer it");
}

#[test]
fn the_lifecycle_and_listings_are_open_to_a_named_workload_unless_denied() {
    // The triage rule names no `mcp` method for these: SPEC §8 opens them
    // to any workload some rule names for the server.
    let mut r = rules();
    r[0].mcp.methods.clear();
    let facts = Facts { now_secs: 0, peer: None, jwt: None, x509: None, metadata: &[] };
    let who = SpiffeId::parse(TRIAGE).unwrap();
    for m in [
        "initialize",
        "ping",
        "server/discover",
        "tools/list",
        "resources/list",
        "prompts/list",
        "notifications/cancelled",
    ] {
        assert!(decide_message(&r, &who, "github", &Ask::Method(m.into()), &facts, &mut Vec::new()).is_ok(), "{m}");
    }
    r.push(rule(
        "no-prompts",
        Effect::Deny,
        McpGrants { methods: vec![MethodPattern::parse("prompts/list").unwrap()], ..Default::default() },
    ));
    let d = decide_message(&r, &who, "github", &Ask::Method("PROMPTS/LIST".into()), &facts, &mut Vec::new());
    assert_eq!(d.unwrap_err().rule.as_deref(), Some("no-prompts"));
}

#[test]
fn another_workload_or_provider_gets_nothing() {
    let facts = Facts { now_secs: 0, peer: None, jwt: None, x509: None, metadata: &[] };
    let r = rules();
    let outsider = SpiffeId::parse("spiffe://ex.org/ns/web/sa/frontend").unwrap();
    let ask = ask_tool("get_issue", json!({}));
    assert!(decide_message(&r, &outsider, "github", &ask, &facts, &mut Vec::new()).is_err());
    let triage = SpiffeId::parse(TRIAGE).unwrap();
    assert!(decide_message(&r, &triage, "jira", &ask, &facts, &mut Vec::new()).is_err());
    assert!(decide_message(&r, &outsider, "github", &Ask::Answer, &facts, &mut Vec::new()).is_err());
}

#[test]
fn a_resource_uri_a_server_could_read_as_another_path_is_refused() {
    for uri in
        ["repo://acme/..", "repo://acme/%2e%2e", "repo://acme/..%2fother", "repo://acme/api\\..\\x", "repo://acme/a\n"]
    {
        assert_eq!(
            refused(&Ask::Resource(uri.into())),
            (Reason::ResourceNotAllowed, "resource_unsafe".into()),
            "{uri:?}"
        );
    }
    assert!(decide(&Ask::Resource("repo://acme/{name}".into())).is_ok(), "a template of allowed resources");
}
