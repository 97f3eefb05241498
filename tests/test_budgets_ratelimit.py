"""docs/budgets.md, "The alternative: Envoy's own rate-limit service", end to
end: Envoy's `envoy.filters.http.ratelimit` filter, configured as the docs
show, charges a rate-limit service (tests/rls_server.py) the tokens modelgate
published as filter state (`wasm.modelgate_tokens`) once the stream is done.

modelgate sets that filter state when the request ends; Envoy's rate-limit
filter reads it (`hits_addend`) when it is destroyed. This file checks the
value is there by then, on a real Envoy 1.40 with the built filter.
"""

import json
import secrets

import openai
import yaml

import svid
from conftest import running_gateway
from harness import ENVOY_YAML, policy_text
from rls_server import RateLimitService

DOMAIN = "modelgate"
BUDGETED = "spiffe://example.org/ns/ratelimit/sa/budgeted"  # draws on a token budget
UNBUDGETED = "spiffe://example.org/ns/ratelimit/sa/unbudgeted"  # draws on none
RULES = [{"id": "ratelimit-tests", "effect": "allow", "workloads": ["spiffe://example.org/ns/ratelimit/**"],
          "providers": ["openai"], "models": ["gpt-4o-mini"]},
         *json.loads(policy_text(yaml.safe_load(ENVOY_YAML.read_text())))["rules"]]
BUDGETS = [{"id": "rl-tokens", "workloads": [BUDGETED], "window": "day", "tokens": 1_000_000}]

# docs/budgets.md's snippet, as written there (plus failure_mode_deny: false,
# so the stand-in can never refuse a call). Its `timeout` matters here: with
# Envoy's 20 ms default a check the busy CI host answered late was dropped,
# and the test saw only the charge.
TENANT = [{"request_headers": {"header_name": "x-tenant", "descriptor_key": "tenant"}}]


def ratelimit_filter(rls_cluster: str) -> dict:
    return {"name": "envoy.filters.http.ratelimit", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
        "domain": DOMAIN,
        "failure_mode_deny": False,
        "timeout": "0.5s",
        "rate_limit_service": {"transport_api_version": "V3", "grpc_service": {"envoy_grpc": {"cluster_name": rls_cluster}}},
        "rate_limits": [
            {"actions": TENANT},  # the check, before
            {"apply_on_stream_done": True,  # the charge, after
             "hits_addend": {"format": "%FILTER_STATE(wasm.modelgate_tokens:PLAIN)%"},
             "actions": TENANT},
        ]}}


def with_rate_limit_service(rls_port: int):
    """An Envoy config mutation: an HTTP/2 `rls` cluster, and the rate-limit
    filter after modelgate and before the router."""

    def mutate(config, ports):
        config["static_resources"]["clusters"].append({
            "name": "rls", "type": "STATIC", "connect_timeout": "1s",
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}},
            "load_assignment": {"cluster_name": "rls", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": rls_port}}}}]}]}})
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        filters = hcm["http_filters"]
        names = [f["name"] for f in filters]
        router = names.index("envoy.filters.http.router")
        assert names.index("envoy.filters.http.wasm") < router
        filters.insert(router, ratelimit_filter("rls"))

    return mutate


def chat(gw, who: str, tenant: str, inp: int, out: int) -> str:
    """One allowed OpenAI SDK chat call, the provider reporting `inp`/`out`
    tokens; its request id."""
    client = openai.OpenAI(api_key=svid.mint(who), base_url=gw.openai_base, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}], max_completion_tokens=100,
        extra_headers={"x-tenant": tenant, "x-test-usage": f"{inp},{out}"})
    completion = raw.parse()
    assert completion.usage.prompt_tokens == inp and completion.usage.completion_tokens == out
    return raw.headers["x-request-id"]


def test_envoy_ratelimit_charges_the_tokens_modelgate_publishes_on_stream_done():
    """Guards docs/budgets.md's rate-limit recipe: for an allowed call, with a
    token budget and without one, Envoy's ratelimit filter sends the RLS a
    check before the call and, on stream done, a charge whose hits_addend is
    `wasm.modelgate_tokens` — the audit record's charged tokens (the reported
    usage without a budget). If modelgate published that filter state after
    the ratelimit filter read it, the charge would be missing."""
    with RateLimitService() as rls, running_gateway(
            {"budgets": BUDGETS, "rules": RULES}, mutate=with_rate_limit_service(rls.port)) as gw:
        for who, inp, out in ((BUDGETED, 1000, 234), (UNBUDGETED, 700, 55)):
            tenant = f"t-{secrets.token_hex(6)}"
            rid = chat(gw, who, tenant, inp, out)
            record = gw.audit_for(rid)
            assert (record["decision"], record["status"]) == ("allow", 200)
            if who == BUDGETED:
                [drawn] = [b for b in record["budgets"] if b["id"] == "rl-tokens"]
                expected = drawn["charged"]["tokens"]
            else:
                assert not record.get("budgets")
                expected = record["usage"]["input_tokens"] + record["usage"]["output_tokens"]
            assert expected == inp + out

            # The check and the charge carry the same descriptor; only the
            # charge has a hits_addend. Wait for both (or 5 s).
            seen = rls.wait_for(lambda r: any(("tenant", tenant) in d.entries for d in r.descriptors), count=2)
            summary = [r.as_json() for r in rls.received()]
            assert all(r.domain == DOMAIN for r in seen), summary
            checks = [r for r in seen if all(d.hits_addend is None for d in r.descriptors)]
            charges = [r for r in seen if any(d.hits_addend is not None for d in r.descriptors)]
            assert len(checks) == 1, f"{who}: expected the check before the call; the RLS received {summary}"
            assert charges, (f"{who}: no stream-done charge reached the RLS: Envoy's ratelimit filter found no "
                             f"wasm.modelgate_tokens when the stream was done (set too late?); it received {summary}")
            [charge] = charges
            assert [(d.entries, d.hits_addend) for d in charge.descriptors] == [([("tenant", tenant)], expected)], summary
            assert charge.received_at >= checks[0].received_at
