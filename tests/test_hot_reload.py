"""Policy changes under a running Envoy, the way Istio pushes a changed
EnvoyFilter: the wasm filter's configuration comes through ECDS from a
watched file and is swapped while requests flow (docs/reliability.md).
A request is decided by the policy it started under and its record names
that policy; a policy Envoy rejects never decides anything; nothing a
policy built (a fetched bundle, an exchanged token) is lost or served
across the swap; and a request modelgate did not release is refused by
the backstop after it, not forwarded.
"""

import hashlib
import json
import socket
import time

import pytest
import requests
import yaml

import svid
from bundle_server import BundleServer
from bundle_server import cluster as static_cluster
from conftest import running_gateway
from harness import ENVOY_YAML, answer_head, chat_head, ecds_stat, policy_text
from test_budgets_global import ledger_key, ledger_reachable, settled, stack, with_ledger  # noqa: F401 - a fixture
from token_server import TokenServer

BOT = "spiffe://example.org/ns/support/sa/bot"
ROTATING = "spiffe://rotating.example/ns/app/sa/agent"
ROTATING_KEY = svid.new_ec_key("reload-rot-1")
HI = [{"role": "user", "content": "hi"}]


def policy(gw, revision: str, *, deny_41: bool = False, **more) -> str:
    """The gateway's starting policy under `revision`; `deny_41` adds a rule
    refusing the bot gpt-4.1-mini (which the demo allows)."""
    doc = {**json.loads(gw.policy), "revision": revision, **more}
    if deny_41:
        doc["rules"] = [{"id": "no-41", "effect": "deny", "workloads": [BOT], "providers": ["*"],
                         "models": ["gpt-4.1-mini"]}] + doc["rules"]
    return json.dumps(doc)


def chat(gw, model: str, token: str | None = None, prefix: str = "/openai") -> requests.Response:
    return requests.post(f"{gw.url}{prefix}/v1/chat/completions", json={"model": model, "messages": HI},
                         headers={"authorization": f"Bearer {token or svid.mint(BOT)}"}, timeout=10)


@pytest.fixture(scope="module")
def gw():
    with running_gateway(ecds=True) as g:
        g.extra["start"] = g.policy
        yield g


@pytest.fixture(autouse=True)
def back_to_the_start(request):
    yield
    if "gw" in request.fixturenames:
        g = request.getfixturevalue("gw")
        if g.policy != g.extra["start"]:
            assert g.push_policy(g.extra["start"])


def test_a_swap_changes_decisions_and_each_record_names_its_policy(gw):
    a, b = policy(gw, "A"), policy(gw, "B", deny_41=True)
    assert gw.push_policy(a)
    r = chat(gw, "gpt-4.1-mini")
    assert r.status_code == 200
    record = gw.audit_for(r.headers["x-request-id"])
    assert record["policy"] == {"revision": "A", "digest": hashlib.sha256(a.encode()).hexdigest()}
    assert gw.push_policy(b)
    r = chat(gw, "gpt-4.1-mini")
    assert r.status_code == 403
    record = gw.audit_for(r.headers["x-request-id"])
    assert (record["reason"], record["rule"]) == ("model_not_allowed", "no-41")
    assert record["policy"] == {"revision": "B", "digest": hashlib.sha256(b.encode()).hexdigest()}


def held_request(gw, model: str, **more) -> tuple[socket.socket, bytes]:
    """A request whose headers are sent now and whose body is sent later."""
    body = json.dumps({"model": model, "messages": HI, **more}).encode()
    s = socket.create_connection(gw.url.removeprefix("http://").split(":"), timeout=10)
    s.sendall(chat_head(svid.mint(BOT), len(body)))
    return s, body


def finish(s: socket.socket, body: bytes) -> tuple[int, str]:
    """Sends the held request's body: the answer's status and request id."""
    s.sendall(body)
    status, request_id = answer_head(s)
    s.close()
    return status, request_id


@pytest.mark.parametrize("first,then,status", [("A", "B", 200), ("B", "A", 403)])
def test_a_request_in_flight_is_decided_by_the_policy_it_started_under(gw, first, then, status):
    """Headers under one policy, the swap, then the body: the policy the
    request started under decides it (Envoy keeps the filter instance a
    stream was created with), and the record says which."""
    texts = {"A": policy(gw, "A"), "B": policy(gw, "B", deny_41=True)}
    assert gw.push_policy(texts[first])
    s, body = held_request(gw, "gpt-4.1-mini")
    time.sleep(0.2)  # the headers are in, and held
    assert gw.push_policy(texts[then])
    got, request_id = finish(s, body)
    assert got == status
    assert gw.audit_for(request_id)["policy"]["revision"] == first
    # The next request is the new policy's.
    r = chat(gw, "gpt-4.1-mini")
    assert r.status_code == (403 if then == "B" else 200)
    assert gw.audit_for(r.headers["x-request-id"])["policy"]["revision"] == then


def test_a_policy_envoy_rejects_never_decides(gw):
    """A policy modelgate refuses (an unknown mode) is rejected by Envoy: the
    last good one keeps deciding, and no record names the bad one."""
    assert gw.push_policy(policy(gw, "B", deny_41=True))
    rejected = ecds_stat(gw.admin_url, "update_rejected")
    assert not gw.push_policy(policy(gw, "broken", mode="permissive"))
    assert ecds_stat(gw.admin_url, "update_rejected") == rejected + 1
    r = chat(gw, "gpt-4.1-mini")
    assert r.status_code == 403
    assert gw.audit_for(r.headers["x-request-id"])["policy"]["revision"] == "B"
    assert not any((rec.get("policy") or {}).get("revision") == "broken" for rec in gw.audit_records())


@pytest.fixture(scope="module")
def bundles():
    server = BundleServer()
    server.serve("/rotating", {"keys": [{**ROTATING_KEY.export_public(as_dict=True), "use": "jwt-svid"}]})
    yield server
    server.close()


def test_bundles_fetched_before_a_reload_keep_serving_after_it(bundles):
    """A domain whose bundle comes from an endpoint keeps working across a
    swap: the new configuration installs the bundle already fetched when it
    is applied. (It used to refuse with 503 bundle_unavailable until its
    first tick, up to half a second after each swap.)"""
    def mutate(config, _ports):
        config["static_resources"]["clusters"].append(static_cluster("bundles", bundles.port))

    with running_gateway(mutate=mutate, ecds=True) as g:
        doc = json.loads(g.policy)
        doc["trust_domains"].append({"name": "rotating.example", "bundle_endpoint": {
            "cluster": "bundles", "path": "/rotating", "refresh_seconds": 300, "timeout_ms": 500}})
        doc["rules"].append({"id": "rotating", "effect": "allow", "workloads": ["spiffe://rotating.example/**"],
                             "providers": ["openai"], "models": ["gpt-4o-mini"]})
        token = svid.mint(ROTATING, key=ROTATING_KEY)
        assert g.push_policy(json.dumps({**doc, "revision": "with-endpoint"}))
        deadline = time.monotonic() + 10
        while chat(g, "gpt-4o-mini", token).status_code != 200:
            assert time.monotonic() < deadline, "the bundle was never fetched"
            time.sleep(0.1)
        for i in range(6):
            assert g.push_policy(json.dumps({**doc, "revision": f"swap-{i}"}))
            statuses = []
            until = time.monotonic() + 0.8
            while time.monotonic() < until:
                r = chat(g, "gpt-4o-mini", token)
                statuses.append((r.status_code, r.headers.get("x-modelgate-reason")))
            assert set(statuses) == {(200, None)}, statuses
        assert len(bundles.fetches_of("/rotating")) == 1


def test_a_token_exchanged_under_one_policy_is_never_served_under_the_next():
    """The token exchange asks for another service account after the swap:
    the provider sees a token for the account of the policy that decided."""
    tokens = TokenServer()
    tokens.route("/oauth/token", grant="token_exchange", encoding="json",
                 keys={svid.load_key()["kid"]: svid.load_key()}, audience=svid.AUDIENCE,
                 required={"identity_provider_id": "idp", "service_account_id": None})

    def provider(account: str) -> dict:
        return {"name": "openai", "api": "openai", "match": {"path_prefix": "/openai/"},
                "credential": {"type": "token_exchange", "cluster": "token_server", "path": "/oauth/token",
                               "timeout_ms": 1000, "profile": "openai", "subject": "svid",
                               "params": {"identity_provider_id": "idp"},
                               "accounts": [{"workloads": ["spiffe://example.org/**"],
                                             "params": {"service_account_id": account}}]}}

    def mutate(config, _ports):
        config["static_resources"]["clusters"].append(static_cluster("token_server", tokens.port))

    demo = [p for p in json.loads(policy_text(yaml.safe_load(ENVOY_YAML.read_text())))["providers"] if p["name"] != "openai"]
    try:
        with running_gateway({"providers": [provider("sa_one"), *demo], "revision": "one"}, mutate=mutate,
                             ecds=True) as g:
            def account_seen() -> str:
                g.reset()
                assert chat(g, "gpt-4o-mini").status_code == 200
                [seen] = g.requests_seen()
                [auth] = [v for k, v in seen["headers"] if k == "authorization"]
                return tokens.verify_issued(auth.removeprefix("Bearer "))["account"]

            assert account_seen() == "sa_one"
            doc = json.loads(g.policy)
            assert g.push_policy(json.dumps({**doc, "revision": "two", "providers": [provider("sa_two"), *demo]}))
            assert account_seen() == "sa_two"
            assert g.push_policy(json.dumps({**doc, "revision": "three"}))
            assert account_seen() == "sa_one"
    finally:
        tokens.close()


def skipped_on(prefix: str):
    """`mutate`: a route on which modelgate is switched off — what Envoy does
    on a worker whose plugin failed to configure (it skips the filter,
    whatever fail_open says)."""
    def mutate(config, _ports):
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["route_config"]["virtual_hosts"][0]["routes"].insert(0, {
            "match": {"prefix": prefix}, "route": {"cluster": "llm_upstream", "prefix_rewrite": "/"},
            "typed_per_filter_config": {"envoy.filters.http.wasm": {
                "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}}})
    return mutate


def test_a_request_modelgate_did_not_release_is_refused_by_the_backstop():
    with running_gateway(mutate=skipped_on("/skipped/")) as g:
        r = requests.post(f"{g.url}/skipped/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI},
                          headers={"authorization": "Bearer not-even-a-token"}, timeout=10)
        assert r.status_code == 403
        assert g.requests_seen() == []
        record = g.audit_for(r.headers["x-request-id"])
        assert (record["reason"], record["status"]) == ("rejected_by_envoy", 403)
        assert record["detail"].startswith("rbac_access_denied")
        # The marker is filter state: no header sets it.
        r = requests.post(f"{g.url}/skipped/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI},
                          headers={"x-modelgate-released": "yes", "modelgate_released": "yes",
                                   "x-envoy-modelgate-released": "yes"}, timeout=10)
        assert r.status_code == 403 and g.requests_seen() == []
        # What modelgate released goes on as before.
        assert chat(g, "gpt-4o-mini").status_code == 200


def test_without_the_backstop_the_skipped_filter_would_have_forwarded():
    """The control for the test above: the same route with the backstop
    removed forwards the unauthenticated request — the fail-open the
    backstop closes."""
    def mutate(config, ports):
        skipped_on("/skipped/")(config, ports)
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "modelgate.released"]

    with running_gateway(mutate=mutate) as g:
        r = requests.post(f"{g.url}/skipped/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI},
                          timeout=10)
        assert r.status_code == 200
        assert len(g.requests_seen()) == 1


# --- found by the attack review of the reload work ---------------------------


def test_a_ledger_settle_of_a_request_admitted_before_a_swap_is_not_lost(stack):
    """A request reserves on the ledger under policy A; B is pushed while it
    is in flight; it ends. Its settle is queued on A's root context, which
    Envoy tears down when A's last request ends: the root now stays until
    its ledger calls are sent. (They were dropped, and the ledger charged
    the whole reservation at `hold_ms`, ten minutes later.)"""
    patch = {"revision": "A",
             "budgets": [{"id": "reload-global", "workloads": [BOT], "models": ["gpt-4o-mini"], "per": "group",
                          "window": "day", "tokens": 1_000_000, "scope": "global"}],
             "ledger": {"cluster": "modelgate_ledger", "timeout_ms": 500, "key": {"env": "MODELGATE_LEDGER_KEY"}}}
    with running_gateway(patch, mutate=with_ledger(stack.ledger.port), env={"MODELGATE_LEDGER_KEY": stack.key},
                         ecds=True) as g:
        ledger_reachable(g)
        r = requests.post(f"{g.openai_base}/chat/completions", timeout=10,
                          json={"model": "gpt-4o-mini", "messages": HI, "max_tokens": 100},
                          headers={"authorization": f"Bearer {svid.mint(BOT)}"})
        assert r.status_code == 200
        key = ledger_key("reload-global", g.audit_for(r.headers["x-request-id"]))
        before = int(settled(stack.redis, key)["used_tokens"])
        streams = [held_request(g, "gpt-4o-mini", max_tokens=100) for _ in range(4)]
        time.sleep(0.3)
        assert g.push_policy(json.dumps({**json.loads(g.policy), "revision": "B"}))
        charged = 0
        for s, body in streams:
            status, request_id = finish(s, body)
            assert status == 200
            record = g.audit_for(request_id)
            assert record["policy"]["revision"] == "A"
            [drawn] = record["budgets"]
            charged += drawn["charged"]["tokens"]
        counters = settled(stack.redis, key, used=before + charged, timeout=10)
        assert int(counters["held_tokens"]) == 0


def test_a_policy_refreshes_a_bundle_on_its_own_interval_not_the_one_another_left(bundles):
    """Policy A refreshes a bundle endpoint hourly; the endpoint rotates to
    a new key; policy C, with the same endpoint and `refresh_seconds: 2`,
    must fetch within its own interval: the new key is accepted and the
    rotated-out key refused, not an hour later. (The lease kept A's
    schedule.) Until then C trusts the bundle A fetched, as if it had
    fetched it itself; with the endpoint down, that last good bundle stays,
    as it does for any policy."""
    old, new = svid.new_ec_key("own-old"), svid.new_ec_key("own-new")
    path = "/own-interval"
    bundles.serve(path, {"keys": [{**old.export_public(as_dict=True), "use": "jwt-svid"}]})

    def mutate(config, _ports):
        config["static_resources"]["clusters"].append(static_cluster("bundles", bundles.port))

    with running_gateway(mutate=mutate, ecds=True) as g:
        doc = json.loads(g.policy)
        doc["rules"].append({"id": "rotating", "effect": "allow", "workloads": ["spiffe://rotating.example/**"],
                             "providers": ["openai"], "models": ["gpt-4o-mini"]})

        def with_refresh(seconds: int, revision: str) -> str:
            domains = doc["trust_domains"] + [{"name": "rotating.example", "bundle_endpoint": {
                "cluster": "bundles", "path": path, "refresh_seconds": seconds, "timeout_ms": 500}}]
            return json.dumps({**doc, "trust_domains": domains, "revision": revision})

        old_token, new_token = svid.mint(ROTATING, key=old), svid.mint(ROTATING, key=new)
        assert g.push_policy(with_refresh(3600, "A"))
        deadline = time.monotonic() + 10
        while chat(g, "gpt-4o-mini", old_token).status_code != 200:
            assert time.monotonic() < deadline, "A never fetched the bundle"
            time.sleep(0.1)
        bundles.serve(path, {"keys": [{**new.export_public(as_dict=True), "use": "jwt-svid"}]})
        assert g.push_policy(with_refresh(2, "C"))
        g.reset()
        deadline = time.monotonic() + 6  # C's interval, less up to a tenth, plus a tick
        while chat(g, "gpt-4o-mini", new_token).status_code != 200:
            assert time.monotonic() < deadline, "C kept A's hourly schedule: the new key is still refused"
            time.sleep(0.1)
        for _ in range(5):
            r = chat(g, "gpt-4o-mini", old_token)
            assert (r.status_code, r.headers.get("x-modelgate-reason")) == (401, "invalid_svid")
        assert len(bundles.fetches_of(path)) >= 2
        assert len(g.requests_seen()) == 1
