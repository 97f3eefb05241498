"""Runs last (pytest takes files in name order): every decision a gateway
of this session made on a model — allowed, denied by a rule, refused by a
condition — is asked again of `modelgate explain`, with the same policy,
workload, provider, model, time and peer. They must agree: the CLI is the
same engine and the same decision as the filter."""

import json
import subprocess
from datetime import datetime, timezone

from conftest import SCENARIOS, UNKNOWN_POLICY
from harness import ROOT

DECIDED = {"ok", "model_not_allowed", "condition_not_met"}
# Denials made before or beside the model decision: no rule was asked.
NOT_RULE_DETAILS = {"nested_model", "unknown_deployment", "no_matching_rule_at_provider"}
# Facts an audit record does not hold (claims, metadata, an SVID's age).
UNRECORDED = ("claims.", "metadata.", "svid.")


# An MCP message's decision, asked again as a tool, resource, prompt or
# method question. A tool call's arguments are not in the record (their
# digest is), so only what arguments cannot change is compared: allowed
# methods, resources and prompts, and every tool refusal made on the name.
MCP_DECIDED = {"ok", "tool_not_allowed", "method_not_allowed", "resource_not_allowed", "prompt_not_allowed"}


def mcp_question(record: dict) -> dict | None:
    m = record.get("mcp") or {}
    if record.get("mode") != "enforce" or record.get("reason") not in MCP_DECIDED or not record.get("workload"):
        return None
    if m.get("kind") not in ("request", "notification"):
        return None
    # What a message names besides its own ask (a completion's prompt, a
    # subscription's resources) is not a question explain takes alone.
    if (m.get("resource") and m.get("method") not in ("resources/read", "resources/subscribe", "resources/unsubscribe")) \
            or (m.get("prompt") and m.get("method") != "prompts/get") or m.get("method") == "completion/complete":
        return None
    t = int(datetime.strptime(record["time"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp())
    q = {"spiffe_id": record["workload"]["spiffe_id"], "provider": record["provider"], "svid": record["workload"]["svid"],
         "peer": record["client"]["address"], "time": t}
    if m.get("tool"):
        if record["reason"] == "ok":
            return None  # its arguments decided too, and they are not recorded
        q["tool"] = m["tool"]
    elif m.get("resource"):
        q["resource"] = m["resource"]
        q["method"] = m["method"]
    elif m.get("prompt"):
        q["prompt"] = m["prompt"]
    elif m.get("method"):
        q["method"] = m["method"]
    else:
        return None
    return q


def question(record: dict) -> dict | None:
    if record.get("api") == "mcp":
        return mcp_question(record)
    if record.get("mode") != "enforce" or record.get("reason") not in DECIDED:
        return None
    if not (record.get("workload") and record.get("provider") and record.get("model")):
        return None
    # Under a budget the answer also depends on the request's output bound
    # and the spend so far, which the record does not hold as asked.
    if record.get("budgets"):
        return None
    if record.get("detail") in NOT_RULE_DETAILS or (record["reason"] == "ok" and not record.get("rule")):
        return None
    if any(c["condition"].startswith(UNRECORDED) for c in record.get("conditions") or []):
        return None
    if record["workload"]["spiffe_id"] and record.get("endpoint", "").startswith("/v1/models"):
        return None
    t = int(datetime.strptime(record["time"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp())
    return {"spiffe_id": record["workload"]["spiffe_id"], "provider": record["provider"], "model": record["model"],
            "time": t, "peer": record["client"]["address"], "svid": record["workload"]["svid"]}


def test_explain_decides_as_the_filter_did(tmp_path, gateway):
    # Every record names the digest of a policy the tests gave Envoy.
    assert UNKNOWN_POLICY == [], UNKNOWN_POLICY[:3]
    compared = mcp_compared = 0
    # The session's own gateway is still running: its records so far too.
    for i, (policy, records) in enumerate([*SCENARIOS, (gateway.policy, gateway.audit_records())]):
        pairs = [(r, q) for r in records if (q := question(r))]
        if not pairs:
            continue
        (tmp_path / f"p{i}.json").write_text(policy)
        (tmp_path / f"q{i}.jsonl").write_text("".join(json.dumps(q) + "\n" for _, q in pairs))
        out = subprocess.run(["cargo", "run", "-q", "-p", "modelgate-cli", "--bin", "modelgate", "--", "explain",
                              str(tmp_path / f"p{i}.json"), "--batch", str(tmp_path / f"q{i}.jsonl")],
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        answers = [json.loads(line) for line in out.stdout.splitlines()]
        assert len(answers) == len(pairs)
        for (record, q), a in zip(pairs, answers):
            filter_said = ("allow" if record["reason"] == "ok" else "deny", record["reason"], record["rule"])
            assert (a["decision"], a["reason"], a["rule"]) == filter_said, (q, record, a)
            compared += 1
            mcp_compared += record.get("api") == "mcp"
    assert compared >= 50, f"only {compared} decisions compared: run the whole suite"
    assert mcp_compared >= 20 or not any(r.get("api") == "mcp" for _, rs in SCENARIOS for r in rs), mcp_compared
