"""The verified-SVID cache, end to end: a token verified once is served
from the cache — and still re-checked against the clock on every use."""

import time

import requests

import svid
from conftest import running_gateway
from test_e2e import BOT, HI


def call(gw, token):
    return requests.post(f"{gw.url}/openai/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI},
                         headers={"authorization": f"Bearer {token}"}, timeout=10)


def test_the_same_token_twice_is_allowed_and_audited_twice(gateway):
    token = svid.mint(BOT)
    ids = []
    for _ in range(2):
        r = call(gateway, token)
        assert r.status_code == 200
        ids.append(r.headers["x-request-id"])
    for request_id in ids:
        record = gateway.audit_for(request_id)
        assert (record["decision"], record["workload"]["spiffe_id"]) == ("allow", BOT)


def test_a_cached_token_is_refused_once_it_expires():
    identity = {"identity": {"jwt_svid": {"audiences": [svid.AUDIENCE], "leeway_seconds": 0}, "require": "jwt"}}
    with running_gateway(identity) as gw:
        token = svid.mint(BOT, ttl=2)
        assert call(gw, token).status_code == 200
        assert call(gw, token).status_code == 200  # from the cache
        time.sleep(2.5)
        r = call(gw, token)
        assert (r.status_code, r.headers["x-modelgate-reason"]) == (401, "invalid_svid")
        assert gw.audit_for(r.headers["x-request-id"])["detail"] == "expired"
