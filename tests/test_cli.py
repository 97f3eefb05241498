"""The `modelgate` command-line tool: every subcommand, its exit codes, and
a development SVID it mints that the real gateway accepts. (That `explain`
decides as the filter did on every scenario of the suite is
test_zz_explain_agrees.py.)"""

import json
import os
import subprocess
import time

import pytest
import requests
import yaml

from harness import ROOT

BOT = "spiffe://example.org/ns/support/sa/bot"
DEMO_KEY = ROOT / "envoy" / "demo" / "trust-domain-key.jwk.json"


@pytest.fixture(scope="module")
def cli():
    subprocess.run(["cargo", "build", "-q", "-p", "modelgate-cli", "--bin", "modelgate"], cwd=ROOT, check=True,
                   timeout=600)
    binary = ROOT / "target" / "debug" / "modelgate"

    def run(*args, stdin=None, env=None):
        return subprocess.run([str(binary), *args], cwd=ROOT, capture_output=True, text=True, input=stdin, timeout=60,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})})
    return run


def demo_policy() -> str:
    config = yaml.safe_load((ROOT / "envoy" / "envoy.yaml").read_text())
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    wasm = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.wasm")
    return wasm["typed_config"]["config"]["configuration"]["value"]


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "policy.json"
    path.write_text(demo_policy())
    return path


def test_check_accepts_the_demo_policy_without_its_keys(cli, policy_file):
    r = cli("check", str(policy_file))  # no provider key in the environment
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok: mode enforce, 1 trust domain(s), 7 provider(s)")


def test_check_names_the_bad_field_and_exits_1(cli):
    policy = json.loads(demo_policy())
    policy["rules"][0]["when"] = {"source_cidrs": ["10.0.0.1/8"]}
    r = cli("check", "-", stdin=json.dumps(policy))
    assert r.returncode == 1
    assert "rules[0].when.source_cidrs[0]" in r.stderr
    assert cli("check", "/no/such/file").returncode == 2
    assert cli("check").returncode == 2


def test_check_a_minted_jwt_policy_without_its_signing_key(cli):
    policy = json.loads(demo_policy())
    policy["providers"][-1]["credential"] = {"type": "minted_jwt", "env": "SIGNING_KEY_NOT_SET",
                                             "issuer": "https://gw.example", "audience": "https://llm.internal"}
    r = cli("check", "-", stdin=json.dumps(policy))
    assert r.returncode == 0, r.stderr


def test_explain_in_words_and_as_json(cli, policy_file):
    r = cli("explain", str(policy_file), "--spiffe-id", BOT, "--provider", "openai", "--model", "gpt-4o-mini")
    assert r.returncode == 0 and r.stdout.startswith("allow (ok)") and "rule: support-bot" in r.stdout
    r = cli("explain", str(policy_file), "--spiffe-id", BOT, "--provider", "openai", "--model", "gpt-3.5-turbo", "--json")
    assert r.returncode == 1
    answer = json.loads(r.stdout)
    assert (answer["decision"], answer["reason"], answer["rule"]) == ("deny", "model_not_allowed", "no-legacy")
    r = cli("explain", str(policy_file), "--spiffe-id", BOT, "--provider", "gemini", "--endpoint", "GET /v1beta/models")
    assert r.returncode == 0
    r = cli("explain", str(policy_file), "--spiffe-id", BOT, "--provider", "openai", "--endpoint", "/v1/files")
    assert r.returncode == 1 and "endpoint_not_allowed" in r.stdout


def test_explain_judges_conditions_from_its_flags(cli, tmp_path):
    policy = json.loads(demo_policy())
    policy["rules"][0]["when"] = {"time": {"days": ["mon", "tue", "wed", "thu", "fri"], "hours_utc": "07:00-19:00"},
                                  "source_cidrs": ["10.0.0.0/8"], "claims": {"env": ["prod"]},
                                  "metadata": [{"namespace": "posture", "key": "ok", "equals": True}]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(policy))
    base = ["explain", str(path), "--spiffe-id", BOT, "--provider", "openai", "--model", "gpt-4o-mini", "--json"]
    good = ["--time", "2026-11-24T10:00:00Z", "--peer", "10.1.2.3:5000", "--claim", "env=prod", "--metadata", "posture/ok=true"]
    r = cli(*base, *good)
    assert r.returncode == 0, r.stdout
    assert [c["ok"] for c in json.loads(r.stdout)["conditions"]] == [True] * 4
    for i, bad in [(1, "2026-11-24T20:00:00Z"), (3, "192.0.2.1:1"), (5, "env=dev"), (7, "posture/ok=false")]:
        flags = list(good)
        flags[i] = bad
        answer = json.loads(cli(*base, *flags).stdout)
        assert (answer["reason"], answer["rule"]) == ("condition_not_met", "support-bot"), (bad, answer)


def test_explain_batch_reads_json_lines(cli, policy_file, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"spiffe_id": BOT, "provider": "openai", "model": "gpt-4o-mini"},
        {"spiffe_id": BOT, "provider": "openai", "model": "gpt-4o"},
        {"spiffe_id": "spiffe://elsewhere.org/x", "provider": "openai", "model": "gpt-4o"},
    ]))
    r = cli("explain", str(policy_file), "--batch", str(questions))
    assert [json.loads(line)["reason"] for line in r.stdout.splitlines()] == ["ok", "model_not_allowed", "untrusted_domain"]


def test_explain_answers_tool_questions_of_an_mcp_server(cli, tmp_path):
    policy = json.loads(demo_policy())
    triage = "spiffe://example.org/ns/agents/sa/triage"
    policy["providers"].append({"name": "github", "api": "mcp", "match": {"path_prefix": "/github/"},
                                "credential": {"type": "api_key", "env": "GITHUB_MCP_TOKEN"},
                                "session_key": {"env": "MCP_SESSION_KEY"}})
    policy["rules"] += [
        {"id": "triage-tools", "effect": "allow", "workloads": [triage], "providers": ["github"],
         "mcp": ["initialize", "notifications/*", "tools/list"], "tools": ["search_issues", "get_issue"],
         "arguments": {"search_issues": {"repo": ["acme/*"]}}, "resources": ["repo://acme/*"], "prompts": ["triage"]},
        {"id": "never-delete", "effect": "deny", "workloads": ["spiffe://example.org/**"], "providers": ["github"],
         "tools": ["delete_*"]},
    ]
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(policy))  # neither key is in the environment
    base = ["explain", str(path), "--spiffe-id", triage, "--provider", "github"]
    r = cli(*base, "--tool", "search_issues", "--arguments", '{"repo": "acme/api", "query": "flaky"}')
    assert r.returncode == 0 and r.stdout.startswith("allow (ok)") and "rule: triage-tools" in r.stdout, r.stdout + r.stderr
    assert 'the tool "search_issues"' in r.stdout
    for flags, reason, rule in [
        (["--tool", "delete_repo"], "tool_not_allowed", "never-delete"),
        (["--tool", "search_issues", "--arguments", '{"repo": "other/secret"}'], "argument_not_allowed", "triage-tools"),
        (["--resource", "repo://other/api"], "resource_not_allowed", None),
        (["--prompt", "exfiltrate"], "prompt_not_allowed", None),
        (["--method", "logging/setLevel"], "method_not_allowed", None),
    ]:
        r = cli(*base, *flags, "--json")
        answer = json.loads(r.stdout)
        assert r.returncode == 1 and (answer["reason"], answer["rule"]) == (reason, rule), (flags, answer)
    for flags in (["--resource", "repo://acme/api"], ["--prompt", "triage"], ["--method", "tools/list"]):
        assert cli(*base, *flags).returncode == 0, flags
    # A tool question for a model provider, a model for the MCP server: answered, not a crash.
    r = cli("explain", str(path), "--spiffe-id", triage, "--provider", "openai", "--tool", "get_issue")
    assert r.returncode == 1 and "not_mcp_provider" in r.stdout and "is not an MCP server" in r.stdout, r.stdout
    r = cli(*base, "--model", "gpt-4o-mini")
    assert r.returncode == 1 and "mcp_provider" in r.stdout, r.stdout
    r = cli(*base, "--tool", "get_issue", "--arguments", "[1]")
    assert r.returncode == 2 and "a JSON object" in r.stderr


def test_mint_svid_makes_a_token_the_gateway_accepts(cli, gateway):
    r = cli("mint-svid", "--key-file", str(DEMO_KEY), "--spiffe-id", BOT, "--audience", "spiffe://example.org/modelgate",
            "--ttl", "300", "--claim", "env=prod")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    reply = requests.post(f"{gateway.openai_base}/chat/completions", timeout=10,
                          json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                          headers={"authorization": f"Bearer {token}"})
    assert reply.status_code == 200, reply.text
    record = gateway.audit_for(reply.headers["x-request-id"])
    assert record["workload"]["jwt"]["kid"] == "demo-k1"
    assert 295 <= record["workload"]["jwt"]["exp"] - time.time() <= 301
    assert cli("mint-svid", "--key-file", str(DEMO_KEY), "--spiffe-id", "not-an-id", "--audience", "a").returncode == 2


def test_jwks_and_help_everywhere(cli):
    r = cli("jwks", "--key-file", str(DEMO_KEY))
    assert r.returncode == 0 and json.loads(r.stdout)["keys"][0]["kid"] == "demo-k1"
    for command in (["--help"], ["check", "--help"], ["explain", "--help"], ["mint-svid", "--help"], ["jwks", "--help"],
                    ["audit", "--help"]):
        r = cli(*command)
        assert r.returncode == 0 and r.stdout.startswith("usage: modelgate"), command
    assert cli("frobnicate").returncode == 2
    assert cli("audit", "verify", "/no/such/file").returncode == 2
    # A closed pipe is not an error (`modelgate … | head`).
    shell = subprocess.run(f"{ROOT}/target/debug/modelgate --help | head -1", shell=True, capture_output=True, text=True)
    assert "panicked" not in shell.stderr
