"""Exchanged tokens are cached under everything that determines them, and
every store on the way is bounded — through the real Envoy:

- two listeners whose plugin configs share one VM (one `vm_id`, so one
  Envoy shared data) but name different token endpoints and accounts never
  hand one tenant's token to the other; with equal configs they share it;
- a live policy update (LDS from a watched file) that moves the workload to
  another account makes the next call exchange again, for the new account;
- a flood of model names on a credential bound to the model stays within
  `limits.token_cache_size`, as the gauges show, and every call still gets
  the token of its own model."""

import copy
import json
import os
import time

import pytest
import requests
from jwcrypto import jwk

import svid
from conftest import running_gateway
from harness import free_port, wait_until
from token_server import TokenServer

HI = [{"role": "user", "content": "hi"}]
AGENT = "spiffe://example.org/ns/research/sa/agent"
RULES = [{"id": "research", "effect": "allow", "workloads": ["spiffe://example.org/ns/research/**"],
          "providers": ["*"], "models": ["*"]}]
SIGNING_KEY = jwk.JWK.generate(kty="EC", crv="P-256", kid="gw-keys-test")
ISSUER = "https://modelgate.test"


def provider(cluster: str, account: str | None = None, **credential) -> dict:
    """The one provider of these tests: a generic RFC 8693 exchange of the
    caller's JWT-SVID at `cluster`, for `account`."""
    exchange = {"type": "token_exchange", "cluster": cluster, "authority": "sts.internal", "path": "/token",
                "timeout_ms": 1000, "grant": "token_exchange", "encoding": "form", "subject": "svid", **credential}
    if account:
        exchange["accounts"] = [{"workloads": ["spiffe://example.org/ns/research/**"],
                                 "params": {"service_account_id": account}}]
    return {"name": "sts", "api": "openai_compatible", "match": {"path_prefix": "/sts/"}, "credential": exchange}


def svid_route(server: TokenServer, account: str | None):
    """`server` exchanges the demo trust domain's JWT-SVIDs (for `account`,
    or any account when None)."""
    bundle = {k["kid"]: jwk.JWK(**k) for k in [svid.load_key().export_public(as_dict=True)]}
    server.route("/token", grant="token_exchange", encoding="form", keys=bundle, audience=svid.AUDIENCE,
                 required={"service_account_id": account})


def hcm(listener: dict) -> dict:
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def add_clusters(config: dict, servers: dict):
    for name, server in servers.items():
        config["static_resources"]["clusters"].append({
            "name": name, "type": "STATIC", "connect_timeout": "0.5s", "load_assignment": {
                "cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                    "address": "127.0.0.1", "port_value": server.port}}}}]}]}})


def sts_route(config: dict):
    routes = hcm(config["static_resources"]["listeners"][0])["route_config"]["virtual_hosts"][0]["routes"]
    routes.insert(0, {"match": {"prefix": "/sts/"},
                      "route": {"cluster": "llm_upstream", "prefix_rewrite": "/", "timeout": "120s"}})


def listener_like(config: dict, name: str, port: int, policy: dict, log) -> dict:
    """A copy of the first listener (the same filter, the same `vm_id`) on
    `port` with `policy`; its audit log apart (another policy decided it)."""
    listener = copy.deepcopy(config["static_resources"]["listeners"][0])
    listener["name"] = name
    listener["address"]["socket_address"]["port_value"] = port
    manager = hcm(listener)
    manager["stat_prefix"] = name
    for entry in manager["access_log"]:
        entry["typed_config"]["path"] = str(log)
    wasm = next(f for f in manager["http_filters"] if f["name"] == "envoy.filters.http.wasm")
    value = wasm["typed_config"]["config"]["configuration"]
    value["value"] = json.dumps({**json.loads(value["value"]), **policy})
    return listener


def token_of(seen: dict) -> str:
    [value] = [v for k, v in seen["headers"] if k == "authorization"]
    assert value.startswith("Bearer ")
    return value[len("Bearer "):]


def chat(url: str, model: str = "llama-3", sub: str = AGENT) -> requests.Response:
    return requests.post(f"{url}/sts/v1/chat/completions", json={"model": model, "messages": HI},
                         headers={"authorization": f"Bearer {svid.mint(sub)}"}, timeout=15)


def gauges(gw) -> dict:
    text = requests.get(f"{gw.admin_url}/stats", params={"filter": "modelgate"}, timeout=5).text
    return {k.removeprefix("wasmcustom."): int(v) for k, v in
            (line.split(": ") for line in text.splitlines() if ": " in line and v_is_int(line))}


def v_is_int(line: str) -> bool:
    return line.rsplit(": ", 1)[1].strip().lstrip("-").isdigit()


@pytest.fixture
def servers():
    made = {"token_a": TokenServer(), "token_b": TokenServer()}
    yield made
    for s in made.values():
        s.close()


def two_tenants(servers, tmp_path, policy_b: dict):
    """A gateway whose first listener exchanges at token_a for sa_a and
    whose second (same VM, same shared data) has `policy_b`."""
    port_b = free_port()

    def mutate(config, _ports):
        add_clusters(config, servers)
        sts_route(config)
        config["static_resources"]["listeners"].append(
            listener_like(config, "tenant_b", port_b, policy_b, tmp_path / "tenant_b.log"))

    return running_gateway({"providers": [provider("token_a", "sa_a")], "rules": RULES}, mutate=mutate), \
        f"http://127.0.0.1:{port_b}"


def test_a_tenant_never_gets_the_token_another_tenants_config_obtained(servers, tmp_path):
    a, b = servers["token_a"], servers["token_b"]
    svid_route(a, "sa_a")
    svid_route(b, "sa_b")
    gateway, url_b = two_tenants(servers, tmp_path, {"providers": [provider("token_b", "sa_b")], "rules": RULES})
    with gateway as gw:
        assert chat(gw.url).status_code == 200
        token_a = token_of(gw.requests_seen()[-1])
        assert a.verify_issued(token_a)["account"] == "sa_a"

        r = chat(url_b)
        assert r.status_code == 200, r.text
        assert (a.count("/token"), b.count("/token")) == (1, 1), "tenant B's own endpoint was asked"
        token_b = token_of(gw.requests_seen()[-1])
        assert token_b != token_a
        assert b.verify_issued(token_b)["account"] == "sa_b"
        with pytest.raises(Exception):
            a.verify_issued(token_b)

        # Each keeps its own: no more exchanges, no crossing either way.
        assert chat(gw.url).status_code == 200 and token_of(gw.requests_seen()[-1]) == token_a
        assert chat(url_b).status_code == 200 and token_of(gw.requests_seen()[-1]) == token_b
        assert (a.count("/token"), b.count("/token")) == (1, 1)


def test_two_listeners_with_equal_configs_share_one_token(servers, tmp_path):
    a = servers["token_a"]
    svid_route(a, "sa_a")
    gateway, url_b = two_tenants(servers, tmp_path, {"providers": [provider("token_a", "sa_a")], "rules": RULES})
    with gateway as gw:
        assert chat(gw.url).status_code == 200
        first = token_of(gw.requests_seen()[-1])
        assert chat(url_b).status_code == 200
        assert token_of(gw.requests_seen()[-1]) == first, "taken from shared data"
        assert a.count("/token") == 1


def test_a_live_policy_update_that_moves_the_workload_to_another_account_exchanges_again(servers, tmp_path):
    server = servers["token_a"]
    svid_route(server, None)
    port = free_port()
    lds = tmp_path / "lds.json"

    def publish(config, account: str):
        listener = listener_like(config, "lds_listener", port, {"providers": [provider("token_a", account)],
                                                                "rules": RULES}, tmp_path / "lds.log")
        listener["@type"] = "type.googleapis.com/envoy.config.listener.v3.Listener"
        staged = tmp_path / "lds.json.new"
        staged.write_text(json.dumps({"version_info": account, "resources": [listener]}))
        os.replace(staged, lds)  # a rename: what Envoy's file watch sees

    state = {}

    def mutate(config, _ports):
        add_clusters(config, servers)
        sts_route(config)
        publish(config, "sa_a")
        state["config"] = config
        config["node"] = {"id": "modelgate-test", "cluster": "modelgate-test"}
        config["dynamic_resources"] = {"lds_config": {"path_config_source": {"path": str(lds)},
                                                      "resource_api_version": "V3"}}

    url = f"http://127.0.0.1:{port}"
    with running_gateway(mutate=mutate) as gw:
        wait_until(lambda: requests.get(f"{url}/", timeout=1) is not None, 20, "the LDS listener")
        assert chat(url).status_code == 200
        assert server.verify_issued(token_of(gw.requests_seen()[-1]))["account"] == "sa_a"
        assert chat(url).status_code == 200
        assert server.count("/token") == 1

        def stat(name: str) -> int:
            text = requests.get(f"{gw.admin_url}/stats", params={"filter": f"^{name}$"}, timeout=5).text
            return int(text.split(": ")[1]) if ": " in text else 0

        publish(state["config"], "sa_b")
        wait_until(lambda: stat("listener_manager.lds.update_success") >= 2
                   and stat("listener_manager.total_listeners_warming") == 0
                   and stat("listener_manager.listener_in_place_updated") + stat("listener_manager.listener_modified") >= 1,
                   20, "the policy update")
        time.sleep(0.5)
        r = chat(url)
        assert r.status_code == 200, r.text
        assert server.verify_issued(token_of(gw.requests_seen()[-1]))["account"] == "sa_b"
        assert server.count("/token") == 2, "the new policy exchanged again"


def test_a_flood_of_model_names_stays_within_the_bound_and_every_call_gets_its_own_models_token(servers):
    server = servers["token_a"]
    server.route("/token", grant="jwt_bearer", encoding="form", issuer=ISSUER, audience="https://sts.internal",
                 keys={SIGNING_KEY["kid"]: jwk.JWK(**SIGNING_KEY.export_public(as_dict=True))})
    size = 16
    minted = provider("token_a", grant="jwt_bearer", subject="minted",
                      mint={"env": "MODELGATE_SIGNING_KEY", "issuer": ISSUER, "audience": "https://sts.internal"})

    def mutate(config, _ports):
        add_clusters(config, servers)
        sts_route(config)

    # One worker: the gauges are then one VM's stores.
    with running_gateway({"providers": [minted], "rules": RULES, "limits": {"token_cache_size": size}},
                         mutate=mutate, env={"MODELGATE_SIGNING_KEY": SIGNING_KEY.export_private()},
                         extra_args=("--concurrency", "1")) as gw:
        models = [f"made-up-{i}" for i in range(300)]
        for model in models:
            r = chat(gw.url, model)
            assert r.status_code == 200, r.text
            claims = server.verify_issued(token_of(gw.requests_seen()[-1]))
            assert (claims["sub"], claims["model"]) == (AGENT, model)
        # The token is bound to the model: one exchange each.
        assert server.count("/token") == len(models)

        expected = {"token.cached": size, "token.shared_slots_used": size, "token.flights": 0,
                    "token.failures_kept": 0}

        def settled():
            g = gauges(gw)
            return all(g.get(f"modelgate.{k}") == v for k, v in expected.items())

        wait_until(settled, 5, f"gauges {expected}")
        # Evicted models come back with their own tokens, never a token of
        # another model that took their slot.
        before = server.count("/token")
        for model in models[:20]:
            assert chat(gw.url, model).status_code == 200
            assert server.verify_issued(token_of(gw.requests_seen()[-1]))["model"] == model
        assert 0 < server.count("/token") - before <= 20
        wait_until(settled, 5, f"gauges {expected}")
        assert gauges(gw)["modelgate.svid.cached"] >= 1
