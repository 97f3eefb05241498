"""Budgets of `scope: gateway`, through a real Envoy with two workers: a
call reserves its upper bound before anything leaves, is refused 429
budget_exhausted (in its api's own error shape) when there is no room,
and is settled to the usage the provider reported — or to its whole
reservation when that usage never came whole. The stand-in provider
reports the usage a test names (`x-test-usage: INPUT,OUTPUT[,CACHED]`).

One gateway serves every test but the refused configurations: each test
has its own workloads and budgets, so no test spends another's room.
"""

import json
import math
import re
import secrets
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import anthropic
import openai
import pytest
import requests
import yaml

import svid
from conftest import running_gateway
from harness import ENVOY_YAML, envoy_binary, envoy_config, free_port, plugin_configuration, policy_text, provider_keys


def sa(name: str) -> str:
    return f"spiffe://example.org/ns/budget/sa/{name}"


# The demo's `research` rule: every model, no max_tokens cap.
UNCAPPED = "spiffe://example.org/ns/research/sa/budget-uncapped"
HI = [{"role": "user", "content": "Say hello"}]
CLAUDE = "claude-haiku-4-5"
OVERHEAD = 1024  # input tokens a call reserves beyond its forwarded body's bytes
RULE_CAP = 1024  # the budget-tests rule's limits.max_tokens
# Prices, nano-dollars per token (USD per million × 1000).
IN, OUT, CACHED = 150, 600, 75

# The herd (test 2): 64 calls with one body; the budget has room for
# exactly ten of their worst cases.
HERD_BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one of the herd"}],
                        "max_tokens": 100}, separators=(",", ":"))
HERD_RESERVATION = len(HERD_BODY) + OVERHEAD + 100
HERD_CAP = 10 * HERD_RESERVATION
HERD_SIZE = 64


def budget(id_, workloads, window="day", **more):
    return {"id": id_, "workloads": workloads, "window": window, **more}


BUDGETS = [
    budget("drain-daily", [sa("drain")], tokens=5000),
    budget("herd", [sa("herd")], tokens=HERD_CAP),
    budget("usd-daily", [sa("usd")], providers=["openai"], usd=0.001),
    budget("uncapped", [UNCAPPED], tokens=1_000_000),
    budget("capped", [sa("capped")], tokens=1_000_000),
    budget("vanish", [sa("vanish"), sa("cut")], tokens=1_000_000),
    budget("solo", [sa("solo-a"), sa("solo-b")], per="workload", tokens=2000),
    budget("team", [sa("team-a"), sa("team-b")], per="group", tokens=2000),
    budget("per-minute", [sa("minute")], window="minute", tokens=2000),
    budget("meter", [sa("meter")], tokens=1_000_000, usd=100),
    budget("failing", [sa("failing")], tokens=1_000_000),
    budget("stat-usd", [sa("stat-usd")], providers=["openai"], usd=1),
    budget("one-slot", [sa("slot-a"), sa("slot-b")], max_workloads=1, tokens=1_000_000),
    budget("wide", [sa("both"), sa("peer")], per="group", tokens=10_000),
    budget("narrow", [sa("both")], tokens=100),
    budget("anthropic-shape", [sa("claude-shape")], providers=["anthropic"], tokens=100),
]
PRICES = [{"provider": "openai", "models": ["gpt-4o-mini*"], "input": 0.15, "output": 0.60, "cached_input": 0.075}]


def demo_rules() -> list:
    return json.loads(policy_text(yaml.safe_load(ENVOY_YAML.read_text())))["rules"]


RULES = [{"id": "budget-tests", "effect": "allow", "workloads": ["spiffe://example.org/ns/budget/**"],
          "providers": ["openai", "anthropic"], "models": ["gpt-4o-mini", "gpt-4.1-*", "claude-haiku-4-5*"],
          "limits": {"max_tokens": RULE_CAP, "stream": True}}, *demo_rules()]

# A second access log: what the filter published for Envoy's rate-limit filter.
METER_FORMAT = "%REQ(X-REQUEST-ID)% %FILTER_STATE(wasm.modelgate_tokens:PLAIN)% %FILTER_STATE(wasm.modelgate_cost_micro_usd:PLAIN)%\n"


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    """The demo gateway with every budget of this file, two workers, and a
    second access log of the published filter state."""
    meter = tmp_path_factory.mktemp("budgets") / "meter.log"

    def mutate(config, ports):
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["access_log"].append({"name": "envoy.access_loggers.file", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(meter), "log_format": {"text_format_source": {"inline_string": METER_FORMAT}}}})

    with running_gateway({"budgets": BUDGETS, "prices": PRICES, "rules": RULES}, mutate=mutate,
                         extra_args=("--concurrency", "2")) as gateway:
        gateway.meter = meter
        yield gateway


# --- helpers ----------------------------------------------------------------


def oa(gw, who):
    return openai.OpenAI(api_key=svid.mint(who), base_url=gw.openai_base, max_retries=0)


def an(gw, who):
    return anthropic.Anthropic(api_key=svid.mint(who), base_url=gw.anthropic_base, max_retries=0)


def usage(inp, out, cached=None):
    return {"x-test-usage": f"{inp},{out}" + (f",{cached}" if cached is not None else "")}


def chat(gw, who, max_tokens=200, told=None, model="gpt-4o-mini", **kw):
    """One OpenAI SDK chat call; its request id."""
    raw = oa(gw, who).chat.completions.with_raw_response.create(
        model=model, messages=HI, max_completion_tokens=max_tokens, extra_headers=told or {}, **kw)
    raw.parse()
    return raw.headers["x-request-id"]


def forwarded(gw, request_id) -> bytes:
    """The body the stand-in received for `request_id`."""
    found = [r for r in gw.requests_seen() if [request_id] == [v for k, v in r["headers"] if k == "x-request-id"]]
    assert len(found) == 1, f"the stand-in saw {len(found)} requests with id {request_id}"
    return found[0]["body"].encode()


def reached(gw, request_id) -> bool:
    return any(["x-request-id", request_id] in r["headers"] for r in gw.requests_seen())


def drawn(record, id_):
    [b] = [b for b in record.get("budgets") or [] if b["id"] == id_]
    return b


COUNTERS = ("admitted", "charged_tokens", "charged_micro_usd", "exhausted", "unavailable")


def stats(gw, id_) -> dict:
    """The counters of budget `id_` (`/stats`), by their last name."""
    text = requests.get(f"{gw.admin_url}/stats", params={"filter": rf"modelgate\.budget\.{re.escape(id_)}\."}, timeout=5).text
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if name.rsplit(".", 1)[-1] in COUNTERS:
            out[name.rsplit(".", 1)[-1]] = int(value)
    return out


def per_worker_connections(gw) -> list:
    """Connections each Envoy worker accepted so far."""
    text = requests.get(f"{gw.admin_url}/stats", params={"filter": r"^listener\..*\.worker_\d+\.downstream_cx_total$"},
                        timeout=5).text
    return [int(line.rsplit(": ", 1)[1]) for line in sorted(text.splitlines())]


def away_from_window_end(period_s: int, margin_s: float) -> None:
    """Waits out the last `margin_s` of a window, so a test's calls share one."""
    left = period_s - time.time() % period_s
    if left < margin_s:
        time.sleep(left + 0.2)


def seconds_to_end(period_s: int) -> float:
    return period_s - time.time() % period_s


def assert_refused_exhausted(gw, response, budget_id, window_s):
    """The 429's headers, and its one record."""
    h = response.headers
    retry = int(h["retry-after"])
    assert abs(retry - seconds_to_end(window_s)) <= 3, (retry, seconds_to_end(window_s))
    assert h.get("x-should-retry") == ("false" if retry > 60 else None)
    assert h["x-modelgate-reason"] == "budget_exhausted"
    rid = h["x-request-id"]
    assert not reached(gw, rid)
    record = gw.audit_for(rid)
    assert (record["decision"], record["reason"], record["status"], record["detail"]) == \
        ("deny", "budget_exhausted", 429, budget_id)
    assert "budgets" not in record and record["upstream"] is None  # nothing held, nothing sent
    return retry, record


# --- 1. draining a daily budget with the official SDKs ----------------------


def test_sdk_calls_drain_a_daily_budget_and_the_next_is_a_rate_limit_error(gw):
    """OpenAI JSON, OpenAI stream and Anthropic calls spend one daily budget; the next is the SDK's own 429."""
    away_from_window_end(86400, 30)
    who, cap, spent = sa("drain"), 5000, 0
    # OpenAI, JSON.
    rid = chat(gw, who, max_tokens=200, told=usage(1200, 300))
    record, body = gw.audit_for(rid), forwarded(gw, rid)
    spent += 1500
    b = drawn(record, "drain-daily")
    assert b["scope"] == "gateway"
    assert b["reserved"] == {"tokens": len(body) + OVERHEAD + 200, "usd": None}
    assert b["charged"] == {"tokens": 1500, "usd": None} and b["remaining"] == {"tokens": cap - spent, "usd": None}
    midnight = (int(time.time()) // 86400 + 1) * 86400
    assert b["window_end"] == time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(midnight))
    # OpenAI, a stream: the gateway asks for its usage (include_usage), and
    # reserves what it forwards.
    raw = oa(gw, who).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, max_completion_tokens=300, stream=True, extra_headers=usage(1000, 200))
    chunks = list(raw.parse())
    assert chunks[-1].usage.total_tokens == 1200
    rid = raw.headers["x-request-id"]
    record, body = gw.audit_for(rid), forwarded(gw, rid)
    assert b"include_usage" in body
    spent += 1200
    b = drawn(record, "drain-daily")
    assert b["reserved"]["tokens"] == len(body) + OVERHEAD + 300
    assert b["charged"]["tokens"] == 1200 and b["remaining"]["tokens"] == cap - spent
    # Anthropic.
    raw = an(gw, who).messages.with_raw_response.create(model=CLAUDE, max_tokens=250, messages=HI,
                                                         extra_headers=usage(1400, 100))
    assert raw.parse().usage.input_tokens == 1400
    rid = raw.headers["x-request-id"]
    record, body = gw.audit_for(rid), forwarded(gw, rid)
    spent += 1500
    b = drawn(record, "drain-daily")
    assert b["reserved"]["tokens"] == len(body) + OVERHEAD + 250
    assert b["charged"]["tokens"] == 1500 and b["remaining"]["tokens"] == cap - spent == 800
    # 800 left: no room for another call's worst case.
    seen = len(gw.requests_seen())
    with pytest.raises(openai.RateLimitError) as refused:
        chat(gw, who, max_tokens=16)
    assert refused.value.code == "budget_exhausted"
    retry, _ = assert_refused_exhausted(gw, refused.value.response, "drain-daily", 86400)
    assert retry > 60 or seconds_to_end(86400) < 63
    with pytest.raises(anthropic.RateLimitError) as refused:
        an(gw, who).messages.create(model=CLAUDE, max_tokens=16, messages=HI)
    assert refused.value.body["type"] == "error"
    assert_refused_exhausted(gw, refused.value.response, "drain-daily", 86400)
    assert len(gw.requests_seen()) == seen, "a refused call reached the provider"
    assert stats(gw, "drain-daily") == {"admitted": 3, "charged_tokens": 4200, "exhausted": 2}


# --- 2. concurrency: exact across two workers ---------------------------------


def test_sixty_four_concurrent_calls_admit_exactly_the_ten_that_fit(gw):
    """64 calls in flight at once on two workers: exactly the 10 worst cases that fit go, and the spend is exact."""
    token = svid.mint(sa("herd"))
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}", "x-test-delay": "2"}
    start = threading.Barrier(HERD_SIZE)

    def call(_):
        with requests.Session() as s:
            start.wait()
            r = s.post(f"{gw.url}/openai/v1/chat/completions", data=HERD_BODY, headers=headers, timeout=30)
            return r.status_code, r.headers.get("x-request-id"), r.headers.get("x-modelgate-reason")

    away_from_window_end(86400, 30)
    before = per_worker_connections(gw)
    began = time.monotonic()
    with ThreadPoolExecutor(HERD_SIZE) as pool:
        results = list(pool.map(call, range(HERD_SIZE)))
    took = time.monotonic() - began
    per_worker = [after - was for after, was in zip(per_worker_connections(gw), before)]
    admitted = [rid for status, rid, _ in results if status == 200]
    refused = [(rid, why) for status, rid, why in results if status == 429]
    records = [gw.audit_for(rid) for rid in admitted]
    charged = sum(drawn(r, "herd")["charged"]["tokens"] for r in records)
    # After every call settled: one more, alone, sees exactly what is left.
    follow = requests.post(f"{gw.url}/openai/v1/chat/completions", data=HERD_BODY, timeout=10,
                           headers={k: v for k, v in headers.items() if k != "x-test-delay"})
    assert follow.status_code == 200, follow.text
    last = drawn(gw.audit_for(follow.headers["x-request-id"]), "herd")
    remaining = last["remaining"]["tokens"]
    print(f"\nherd: admitted {len(admitted)}, refused {len(refused)}, sum charged {charged} tokens, "
          f"cap {HERD_CAP} tokens (reservation {HERD_RESERVATION} each), "
          f"remaining after the follow-up {remaining} (= cap - {charged} - {last['charged']['tokens']}), took {took:.1f} s, "
          f"connections per worker {per_worker}")
    assert len(admitted) == 10 and len(refused) == HERD_SIZE - 10, [s for s, _, _ in results]
    assert took < 6, "the calls were not all in flight at once"
    assert len(per_worker) == 2 and all(n > 0 for n in per_worker), per_worker
    assert all(why == "budget_exhausted" for _, why in refused)
    for r in records:
        b = drawn(r, "herd")
        assert b["reserved"]["tokens"] == HERD_RESERVATION
        assert b["charged"]["tokens"] == r["usage"]["total_tokens"] > 0
    assert all(forwarded(gw, rid) == HERD_BODY.encode() for rid in admitted)
    assert charged <= HERD_CAP
    assert remaining == HERD_CAP - charged - last["charged"]["tokens"]
    for rid, _ in refused[:5]:
        assert gw.audit_for(rid)["reason"] == "budget_exhausted" and not reached(gw, rid)
    assert stats(gw, "herd") == {"admitted": 11, "charged_tokens": charged + last["charged"]["tokens"],
                                 "exhausted": HERD_SIZE - 10}


# --- 3. dollars ----------------------------------------------------------------


def test_a_usd_budget_charges_usage_at_the_listed_prices_and_refuses_an_unpriced_model(gw):
    """cost_usd is the usage at the listed prices (cached input at its own); dollars run out; an unpriced model is 403 price_unknown."""
    away_from_window_end(86400, 30)
    who, cap_nano, spent = sa("usd"), 1_000_000, 0
    for _ in range(2):
        rid = chat(gw, who, max_tokens=100, told=usage(1000, 500, 400))
        record, body = gw.audit_for(rid), forwarded(gw, rid)
        cost = (1000 - 400) * IN + 400 * CACHED + 500 * OUT  # 420,000 nano-dollars
        spent += cost
        assert record["cost_usd"] == pytest.approx(cost / 1e9, abs=1e-12)
        b = drawn(record, "usd-daily")
        assert b["reserved"]["tokens"] is None  # the budget counts dollars only
        assert b["reserved"]["usd"] == pytest.approx(((len(body) + OVERHEAD) * max(IN, CACHED) + 100 * OUT) / 1e9, abs=1e-12)
        assert b["charged"]["usd"] == pytest.approx(cost / 1e9, abs=1e-12)
        assert b["remaining"]["usd"] == pytest.approx((cap_nano - spent) / 1e9, abs=1e-12)
    # $0.00016 left, and the next call's bound is about $0.00022.
    with pytest.raises(openai.RateLimitError) as refused:
        chat(gw, who, max_tokens=100)
    assert refused.value.code == "budget_exhausted"
    assert_refused_exhausted(gw, refused.value.response, "usd-daily", 86400)
    # A model the price table does not list: a dollar budget cannot count it.
    seen = len(gw.requests_seen())
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(gw, who, model="gpt-4.1-mini", max_tokens=10)
    assert refused.value.code == "price_unknown"
    assert refused.value.response.headers["x-modelgate-reason"] == "price_unknown"
    record = gw.audit_for(refused.value.response.headers["x-request-id"])
    assert (record["decision"], record["reason"], record["status"], record["detail"]) == ("deny", "price_unknown", 403, "price_unknown")
    assert len(gw.requests_seen()) == seen


# --- 4. an unbounded output ---------------------------------------------------


def test_a_budgeted_call_must_bound_its_output_or_have_the_rule_cap_it(gw):
    """No max_tokens and no rule cap (or an images endpoint) → 403 max_tokens_missing, nothing sent; a rule cap is injected and reserved."""
    seen = len(gw.requests_seen())
    client = oa(gw, UNCAPPED)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert refused.value.code == "max_tokens_missing"
    record = gw.audit_for(refused.value.response.headers["x-request-id"])
    assert (record["reason"], record["status"], record["rule"]) == ("max_tokens_missing", 403, "research")
    # Images: nothing in the request bounds what comes back.
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.images.generate(model="dall-e-3", prompt="a lighthouse", n=1)
    assert refused.value.code == "max_tokens_missing"
    assert gw.audit_for(refused.value.response.headers["x-request-id"])["reason"] == "max_tokens_missing"
    assert len(gw.requests_seen()) == seen, "an unbounded call reached the provider"
    # Embeddings generate nothing: the input bound alone, settled to the
    # input tokens the provider reported.
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hello")
    rid = raw.headers["x-request-id"]
    record = gw.audit_for(rid)
    b = drawn(record, "uncapped")
    assert b["reserved"]["tokens"] == len(forwarded(gw, rid)) + OVERHEAD
    assert record["usage"]["input_tokens"] == raw.parse().usage.prompt_tokens
    assert b["charged"]["tokens"] == record["usage"]["input_tokens"], "an embeddings call was charged its whole bound"
    # n outputs: n times the bound.
    raw = oa(gw, sa("capped")).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI,
                                                                          max_completion_tokens=100, n=3)
    rid = raw.headers["x-request-id"]
    assert drawn(gw.audit_for(rid), "capped")["reserved"]["tokens"] == len(forwarded(gw, rid)) + OVERHEAD + 300
    # The rule caps max_tokens: the cap is written into the request and reserved.
    raw = oa(gw, sa("capped")).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    rid = raw.headers["x-request-id"]
    body = forwarded(gw, rid)
    sent = json.loads(body)
    assert sent.get("max_completion_tokens", sent.get("max_tokens")) == RULE_CAP
    assert drawn(gw.audit_for(rid), "capped")["reserved"]["tokens"] == len(body) + OVERHEAD + RULE_CAP


# --- 5. a usage that never came whole ------------------------------------------


def open_stream_and_vanish(gw, who, body) -> str:
    """Starts a slow stream on a raw socket, reads its first event, and closes the socket."""
    url = urlparse(gw.url)
    data = json.dumps(body).encode()
    head = (f"POST /openai/v1/chat/completions HTTP/1.1\r\nhost: {url.netloc}\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer {svid.mint(who)}\r\nx-test-pace: 0.5\r\ncontent-length: {len(data)}\r\n\r\n")
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        s.sendall(head.encode() + data)
        got = b""
        while b"\r\n\r\n" not in got or b"data:" not in got.split(b"\r\n\r\n", 1)[1]:
            chunk = s.recv(65536)
            assert chunk, got
            got += chunk
    status = got.split(b"\r\n", 1)[0]
    assert b" 200 " in status, got
    return re.search(rb"(?im)^x-request-id:\s*(\S+)", got)[1].decode()


def test_a_client_that_vanishes_mid_stream_is_charged_its_whole_reservation(gw):
    """A stream whose client closes the socket after one event (or whose provider cuts it) is charged all it reserved."""
    body = {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 120, "stream": True}
    rid = open_stream_and_vanish(gw, sa("vanish"), body)
    record = gw.audit_for(rid, timeout=10)
    b = drawn(record, "vanish")
    assert record.get("usage_complete") is False
    assert b["reserved"]["tokens"] == len(forwarded(gw, rid)) + OVERHEAD + 120
    assert b["charged"] == b["reserved"]
    assert record["cost_usd"] == pytest.approx(((len(forwarded(gw, rid)) + OVERHEAD) * IN + 120 * OUT) / 1e9, abs=1e-12)
    # The provider cuts the stream after three events.
    r = requests.post(f"{gw.url}/openai/v1/chat/completions", json=body, stream=True, timeout=10,
                      headers={"authorization": f"Bearer {svid.mint(sa('cut'))}", "x-test-cut": "3"})
    try:
        for _ in r.iter_content(None):
            pass
    except requests.RequestException:
        pass
    record = gw.audit_for(r.headers["x-request-id"])
    b = drawn(record, "vanish")
    assert record.get("usage_complete") is False
    assert b["charged"] == b["reserved"] and b["charged"]["tokens"] > OVERHEAD + 120


def test_a_provider_refusal_is_charged_nothing_and_a_5xx_in_full(gw):
    """A provider's 4xx answer (not a stream) bills nothing; a 5xx, maybe Envoy's own timeout, is charged its reservation."""
    with pytest.raises(openai.BadRequestError) as failed:
        chat(gw, sa("failing"), max_tokens=50, told={"x-test-status": "400"})
    record = gw.audit_for(failed.value.response.headers["x-request-id"])
    b = drawn(record, "failing")
    assert record["upstream"]["status"] == 400
    assert b["charged"] == {"tokens": 0, "usd": None} and b["remaining"]["tokens"] == 1_000_000
    assert record["cost_usd"] == 0
    # A stream asked for, a JSON error answered (not a stream): nothing either.
    with pytest.raises(openai.BadRequestError) as failed:
        oa(gw, sa("failing")).chat.completions.create(model="gpt-4o-mini", messages=HI, max_completion_tokens=50,
                                                      stream=True, extra_headers={"x-test-status": "400"})
    b = drawn(gw.audit_for(failed.value.response.headers["x-request-id"]), "failing")
    assert b["charged"]["tokens"] == 0 and b["remaining"]["tokens"] == 1_000_000
    # A 5xx: whether the provider ran the call is not known.
    with pytest.raises(openai.InternalServerError) as failed:
        chat(gw, sa("failing"), max_tokens=50, told={"x-test-status": "500"})
    record = gw.audit_for(failed.value.response.headers["x-request-id"])
    b = drawn(record, "failing")
    assert record["upstream"]["status"] == 500
    assert b["charged"] == b["reserved"] and b["remaining"]["tokens"] == 1_000_000 - b["reserved"]["tokens"]


def test_a_workload_that_finds_no_slot_is_refused_never_let_through_uncounted(gw):
    """max_workloads: 1 and a second workload in the same window → 503 budget_unavailable, nothing forwarded."""
    away_from_window_end(86400, 30)
    chat(gw, sa("slot-a"), max_tokens=10)
    seen = len(gw.requests_seen())
    with pytest.raises(openai.InternalServerError) as refused:
        chat(gw, sa("slot-b"), max_tokens=10)
    response = refused.value.response
    assert (response.status_code, response.headers["x-modelgate-reason"]) == (503, "budget_unavailable")
    record = gw.audit_for(response.headers["x-request-id"])
    assert (record["reason"], record["detail"]) == ("budget_unavailable", "one-slot")
    assert len(gw.requests_seen()) == seen
    s = stats(gw, "one-slot")
    assert (s["admitted"], s["unavailable"]) == (1, 1)


# --- 6. per workload, per group ------------------------------------------------


def test_per_workload_budgets_count_apart_and_group_budgets_share(gw):
    """per: workload gives each workload its own counter; per: group, one for all."""
    away_from_window_end(86400, 30)
    rid = chat(gw, sa("solo-a"), told=usage(1400, 100))
    assert drawn(gw.audit_for(rid), "solo")["remaining"]["tokens"] == 500
    with pytest.raises(openai.RateLimitError) as refused:
        chat(gw, sa("solo-a"))
    assert_refused_exhausted(gw, refused.value.response, "solo", 86400)
    rid = chat(gw, sa("solo-b"), told=usage(1400, 100))  # its own 2000
    assert drawn(gw.audit_for(rid), "solo")["remaining"]["tokens"] == 500

    rid = chat(gw, sa("team-a"), told=usage(1400, 100))
    assert drawn(gw.audit_for(rid), "team")["remaining"]["tokens"] == 500
    with pytest.raises(openai.RateLimitError) as refused:
        chat(gw, sa("team-b"))  # the team's 2000, already spent by team-a
    assert_refused_exhausted(gw, refused.value.response, "team", 86400)


def test_a_refusal_on_one_budget_lets_go_of_what_the_others_held(gw):
    """A call under two budgets, refused by the second: the first one's reservation is released, nothing held."""
    away_from_window_end(86400, 30)
    with pytest.raises(openai.RateLimitError) as refused:
        chat(gw, sa("both"), max_tokens=10)
    assert_refused_exhausted(gw, refused.value.response, "narrow", 86400)
    rid = chat(gw, sa("peer"), max_tokens=10, told=usage(30, 20))
    b = drawn(gw.audit_for(rid), "wide")
    assert b["remaining"]["tokens"] == 10_000 - 50, "the refused call's hold on the wide budget was kept"


# --- 7. the window --------------------------------------------------------------


def test_a_minute_budget_says_retry_within_the_minute(gw):
    """A minute window exhausted: Retry-After is the seconds left in the minute (≤ 60), and the SDKs may retry."""
    away_from_window_end(60, 5)
    rid = chat(gw, sa("minute"), told=usage(1400, 100))
    b = drawn(gw.audit_for(rid), "per-minute")
    assert b["window_end"] == time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime((int(time.time()) // 60 + 1) * 60))
    with pytest.raises(openai.RateLimitError) as refused:
        chat(gw, sa("minute"))
    retry, _ = assert_refused_exhausted(gw, refused.value.response, "per-minute", 60)
    assert 1 <= retry <= 60
    assert "x-should-retry" not in refused.value.response.headers


# --- 8. filter state for Envoy's rate-limit filter --------------------------------


def meter_line(gw, request_id, timeout=5.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = gw.meter.read_text() if gw.meter.exists() else ""
        lines = [line.split(" ") for line in text[: text.rfind("\n") + 1].splitlines() if line.startswith(request_id + " ")]
        if lines:
            assert len(lines) == 1
            return lines[0]
        time.sleep(0.05)
    raise AssertionError(f"no meter line for {request_id}")


def test_the_charge_is_published_as_filter_state_for_envoy(gw):
    """wasm.modelgate_tokens and wasm.modelgate_cost_micro_usd, read by Envoy's own formatter, are the record's charge."""
    rid = chat(gw, sa("meter"), told=usage(1000, 234))
    record = gw.audit_for(rid)
    b = drawn(record, "meter")
    assert b["charged"]["tokens"] == 1234
    nano = 1000 * IN + 234 * OUT  # 290,400
    assert record["cost_usd"] == pytest.approx(nano / 1e9, abs=1e-12)
    _, tokens, micro_usd = meter_line(gw, rid)
    assert int(tokens) == b["charged"]["tokens"]
    assert int(micro_usd) == math.ceil(nano / 1000) == 291
    # A stream cut by its client: the whole reservation, there too.
    rid = open_stream_and_vanish(gw, sa("meter"), {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 64, "stream": True})
    b = drawn(gw.audit_for(rid, timeout=10), "meter")
    assert b["charged"] == b["reserved"]
    _, tokens, micro_usd = meter_line(gw, rid)
    assert int(tokens) == b["reserved"]["tokens"]
    assert int(micro_usd) == math.ceil(round(b["reserved"]["usd"] * 1e9) / 1000)


# --- 9. configurations Envoy refuses ------------------------------------------------


BAD = {
    "budgets[0].window": {"budgets": [budget("b", [sa("x")], window="week", tokens=10)]},
    "budgets[0].tokens": {"budgets": [budget("b", [sa("x")], tokens=0)]},
    "budgets[0].providers[0]": {"budgets": [budget("b", [sa("x")], providers=["openia"], tokens=10)]},
    "budgets[0].scope": {"budgets": [budget("b", [sa("x")], scope="global", tokens=10)]},
}


def test_envoy_refuses_a_bad_budget_configuration(tmp_path):
    """A bad window, a zero cap, an unknown provider, a global budget with no ledger: Envoy refuses, naming the field."""
    procs = {}
    for i, (path, patch) in enumerate(BAD.items()):
        config = envoy_config(free_port(), free_port(), free_port(), tmp_path / f"audit{i}.log")
        value = plugin_configuration(config)
        value["value"] = json.dumps({**json.loads(value["value"]), **patch})
        (tmp_path / f"envoy{i}.yaml").write_text(yaml.safe_dump(config))
        procs[path] = subprocess.Popen(
            [str(envoy_binary()), "-c", str(tmp_path / f"envoy{i}.yaml"), "--base-id", str(secrets.randbelow(1 << 20) + 2000)],
            env={**provider_keys(), "PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for path, proc in procs.items():
        try:
            log, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            log, _ = proc.communicate()
        assert proc.returncode != 0, (path, log[-3000:])
        assert f"modelgate config: {path}" in log, (path, log[-3000:])


# --- the stats -------------------------------------------------------------------


def test_budget_stats_count_the_charged_micro_dollars_exactly(gw):
    """modelgate.budget.<id>.charged_micro_usd adds each call's charge in whole micro-dollars, as the filter state says."""
    # 20 input and 200 output tokens: 3,000 + 120,000 nano = exactly 123 micro-dollars.
    rids = [chat(gw, sa("stat-usd"), max_tokens=10, told=usage(20, 200)) for _ in range(2)]
    for rid in rids:
        assert gw.audit_for(rid)["cost_usd"] == pytest.approx(123e-6, abs=1e-12)
        assert int(meter_line(gw, rid)[2]) == 123
    assert stats(gw, "stat-usd") == {"admitted": 2, "charged_micro_usd": 246}


def test_an_anthropic_refusal_is_a_rate_limit_error_in_anthropic_shape(gw):
    """Anthropic's 429 body says error.type rate_limit_error, as Anthropic's own does."""
    with pytest.raises(anthropic.RateLimitError) as refused:
        an(gw, sa("claude-shape")).messages.create(model=CLAUDE, max_tokens=16, messages=HI)
    assert refused.value.response.headers["x-modelgate-reason"] == "budget_exhausted"
    assert refused.value.body["error"]["type"] == "rate_limit_error"
