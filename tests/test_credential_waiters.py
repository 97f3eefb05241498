"""Requests that wait for a token another request of theirs is fetching
(from the second attack review of the credential path): a short-lived
token serves every waiter, and requests that go away mid-fetch are each
audited exactly once while the one that stayed is served.
"""

import concurrent.futures
import time

import pytest
import requests
from jwcrypto import jwk

import svid
from conftest import running_gateway
from token_server import TokenServer

HI = [{"role": "user", "content": "hi"}]
RESEARCH = "spiffe://example.org/ns/research/sa"
RULES = [{"id": "research", "effect": "allow", "workloads": ["spiffe://example.org/ns/research/**"],
          "providers": ["*"], "models": ["*"]}]


def exchange(path: str, timeout_ms: int = 1000, **extra) -> dict:
    return {"type": "token_exchange", "cluster": "token_server", "authority": "sts.internal", "path": path,
            "timeout_ms": timeout_ms, "grant": "token_exchange", "encoding": "form", "subject": "svid", **extra}


def provider(name: str, **credential) -> dict:
    return {"name": name, "api": "openai_compatible", "match": {"path_prefix": f"/{name}/"},
            "credential": exchange(f"/{name}/token", **credential)}


def svid_route(server: TokenServer, path: str, **settings):
    key = svid.load_key().export_public(as_dict=True)
    server.route(path, grant="token_exchange", encoding="form", keys={key["kid"]: jwk.JWK(**key)},
                 audience=svid.AUDIENCE, **settings)


def hcm(listener: dict) -> dict:
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def add_token_cluster(config: dict, port: int):
    config["static_resources"]["clusters"].append({
        "name": "token_server", "type": "STATIC", "connect_timeout": "0.5s", "load_assignment": {
            "cluster_name": "token_server", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}})


def add_routes(config: dict, prefixes):
    routes = hcm(config["static_resources"]["listeners"][0])["route_config"]["virtual_hosts"][0]["routes"]
    for prefix in prefixes:
        routes.insert(0, {"match": {"prefix": f"/{prefix}/"},
                          "route": {"cluster": "llm_upstream", "prefix_rewrite": "/", "timeout": "30s"}})


def chat(url: str, prefix: str, sub: str, model: str = "llama-3", timeout: float = 15) -> requests.Response:
    return requests.post(f"{url}/{prefix}/v1/chat/completions", json={"model": model, "messages": HI},
                         headers={"authorization": f"Bearer {svid.mint(sub)}"}, timeout=timeout)


@pytest.fixture
def tokens():
    server = TokenServer()
    yield server
    server.close()


# A token whose lifetime is within refresh_margin_seconds (20 s against the
# default 30 s): it was stored already due, so every request that waited on
# the fetch was refused. The margin is now at most half the token's life.

def test_the_waiters_of_a_short_lived_token_get_the_token_too(tokens):
    svid_route(tokens, "/short/token", mode="slow", delay=0.5, expires_in=20)  # default margin is 30 s

    def mutate(config, _ports):
        add_token_cluster(config, tokens.port)
        add_routes(config, ["short"])

    with running_gateway({"providers": [provider("short")], "rules": RULES}, mutate=mutate,
                         extra_args=("--concurrency", "1")) as gw:
        agent = f"{RESEARCH}/short-lived"
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            first = pool.submit(chat, gw.url, "short", agent)
            time.sleep(0.15)
            rest = [pool.submit(chat, gw.url, "short", agent) for _ in range(3)]
            answers = [first.result()] + [f.result() for f in rest]
        statuses = [(r.status_code, r.headers.get("x-modelgate-reason")) for r in answers]
        details = [gw.audit_for(r.headers["x-request-id"]).get("detail") for r in answers]
        # One exchange served the four (they waited on it), and all four go on.
        assert tokens.count("/short/token") == 1
        assert statuses == [(200, None)] * 4, (statuses, details)


# Requests that go away while their token is fetched: the fetcher's client
# resets (its call's answer has no one to go to), a waiter's client resets;
# every request is audited exactly once, the one that stayed is served,
# nothing gone is forwarded.

def records_of(gw, sub: str, n: int, timeout: float = 10.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in gw.audit_records() if (r.get("workload") or {}).get("spiffe_id") == sub]
        if len(found) >= n or time.monotonic() > deadline:
            time.sleep(0.5)
            return [r for r in gw.audit_records() if (r.get("workload") or {}).get("spiffe_id") == sub]
        time.sleep(0.05)


def test_requests_that_go_away_while_their_token_is_fetched_are_audited_once(tokens):
    svid_route(tokens, "/gone/token", mode="slow", delay=0.8)

    def mutate(config, _ports):
        add_token_cluster(config, tokens.port)
        add_routes(config, ["gone"])

    with running_gateway({"providers": [provider("gone", timeout_ms=1500)], "rules": RULES}, mutate=mutate,
                         extra_args=("--concurrency", "1")) as gw:
        for who, gone_first in (("fetcher-gone", True), ("waiter-gone", False)):
            gw.reset()
            sub = f"{RESEARCH}/{who}"

            def goes_away():
                with pytest.raises(requests.exceptions.ReadTimeout):
                    chat(gw.url, "gone", sub, timeout=0.3)

            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                if gone_first:
                    away = pool.submit(goes_away)
                    time.sleep(0.1)
                    stays = pool.submit(chat, gw.url, "gone", sub)
                else:
                    stays = pool.submit(chat, gw.url, "gone", sub)
                    time.sleep(0.1)
                    away = pool.submit(goes_away)
                away.result()
                r = stays.result()
            assert r.status_code == 200, r.text
            records = records_of(gw, sub, 2)
            assert sorted(x["decision"] for x in records) == ["allow", "deny"], records
            [gone] = [x for x in records if x["decision"] == "deny"]
            assert gone["reason"] == "incomplete" and gone.get("credential") is None, gone
            assert len(gw.requests_seen()) == 1
