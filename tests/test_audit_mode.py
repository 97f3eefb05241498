"""mode: audit — for rolling a policy out: decide and record everything, but
forward what would be denied, with `would_deny: true`. Credentials are
still swapped: the provider never sees the workload's token. A caller
without a valid SVID is refused in audit mode too (test_hold.py)."""

import json

import svid
from test_e2e import BOT, HI, header_values, oa


def test_a_would_be_denial_is_forwarded_and_recorded(audit_gateway):
    gw = audit_gateway
    gw.reset()
    token = svid.mint(BOT)
    raw = oa(gw, token).chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.parse().choices
    [recorded] = gw.requests_seen()
    assert header_values(recorded, "authorization") == [f"Bearer {gw.openai_key}"]
    assert token not in json.dumps(recorded)
    # Audit mode changes nothing else: no token cap written in.
    assert "max_completion_tokens" not in json.loads(recorded["body"])
    record = gw.audit_for(raw.headers["x-request-id"])
    assert (record["decision"], record["would_deny"], record["reason"], record["mode"]) == ("allow", True, "model_not_allowed", "audit")


def test_an_allowed_call_is_not_marked(audit_gateway):
    raw = oa(audit_gateway, svid.mint(BOT)).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    record = audit_gateway.audit_for(raw.headers["x-request-id"])
    assert (record["reason"], record["would_deny"]) == ("ok", False)


def test_a_deny_rule_only_marks_the_call(audit_gateway):
    """gpt-3.5-turbo is denied by rule no-legacy in enforce mode."""
    raw = oa(audit_gateway, svid.mint(BOT)).chat.completions.with_raw_response.create(model="gpt-3.5-turbo", messages=HI)
    assert raw.parse().choices
    record = audit_gateway.audit_for(raw.headers["x-request-id"])
    assert (record["would_deny"], record["rule"]) == (True, "no-legacy")
