"""`scope: global` budgets end to end: real Envoy gateways running
modelgate.wasm, the real modelgate-ledger service, a real redis-server.
Several gateways share one exact budget; when Redis or the ledger is gone
the budget's `on_unavailable` decides (refuse, or spend a bounded local
share), and a gateway without the ledger's key is never admitted.
"""

import contextlib
import json
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx
import openai
import pytest
import requests
import yaml

import svid
from conftest import AUDIT_SCHEMA, running_gateway
from harness import ROOT
from ledger_stack import Ledger, Redis, Stack, binaries

BOT = "spiffe://example.org/ns/support/sa/bot"
CLUSTER_YAML = ROOT / "envoy" / "ledger" / "cluster.yaml"
# The filter's own bound on a call's input beyond its body's bytes
# (policies/src/budget/mod.rs INPUT_OVERHEAD_TOKENS).
OVERHEAD = 1024
MAX_TOKENS = 1000
REPLY_TOKENS = 7  # tests/upstream.py: len(REPLY_WORDS) + 1 completion tokens
# The support bot may use each of these (envoy/envoy.yaml's rule
# support-bot); each budget below counts one, so the tests sharing the
# gateways draw on separate budgets.
FLEET_MODEL, REDIS_MODEL, DRAIN_MODEL = "gpt-4o-mini", "gpt-4.1-nano", "gpt-4.1-mini"
SDK_MESSAGES = [{"role": "user", "content": "Say hello"}]


# --- Redis and the ledger ------------------------------------------------------


@pytest.fixture(scope="module")
def stack():
    """One redis-server and one modelgate-ledger, killed at the end."""
    server, cli = binaries()
    key = secrets.token_hex(24)
    redis = Redis(server, cli)
    ledger = None
    try:
        redis.start()
        ledger = Ledger(key, redis.port).start()
        yield Stack(redis, ledger, key)
    finally:
        if ledger is not None:
            ledger.kill()
        redis.stop()
        shutil.rmtree(redis.dir, ignore_errors=True)


# --- gateways ------------------------------------------------------------------


def with_ledger(port: int):
    """`mutate` for running_gateway: envoy/ledger/cluster.yaml as shipped,
    pointed at the test's ledger."""
    def mutate(config, _ports):
        cluster = yaml.safe_load(CLUSTER_YAML.read_text())
        address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        address["socket_address"].update(address="127.0.0.1", port_value=port)
        config["static_resources"]["clusters"].append(cluster)
    return mutate


def budget(budget_id: str, tokens: int, model: str, **more) -> dict:
    return {"id": budget_id, "workloads": [BOT], "models": [model], "per": "group", "window": "day",
            "tokens": tokens, "scope": "global", **more}


def policy(*budgets: dict) -> dict:
    return {"budgets": list(budgets),
            "ledger": {"cluster": "modelgate_ledger", "timeout_ms": 200, "key": {"env": "MODELGATE_LEDGER_KEY"}}}


def gateway(patch: dict, ledger: "Ledger", key: str | None = None):
    return running_gateway(patch, mutate=with_ledger(ledger.port), env={"MODELGATE_LEDGER_KEY": key or ledger.key})


@contextlib.contextmanager
def started(*contexts):
    """Enters several running_gateway contexts at once (an Envoy start is
    mostly its wasm loading) and exits them all. Each is entered and exited
    on a thread that lives as long as its gateway: Envoy is sent SIGTERM
    when the thread that started it ends."""
    results: list = [None] * len(contexts)
    failures: list = []
    ready = threading.Barrier(len(contexts) + 1)
    done = threading.Event()

    def hold(i, cm):
        try:
            with cm as gw:
                results[i] = gw
                ready.wait()
                done.wait()
        except BaseException as e:  # pytest.fail too
            failures.append(e)
            ready.abort()

    threads = [threading.Thread(target=hold, args=(i, cm), daemon=True) for i, cm in enumerate(contexts)]
    for t in threads:
        t.start()
    try:
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            pass
        if failures:
            raise failures[0]
        yield results
    finally:
        done.set()
        for t in threads:
            t.join(30)


def ledger_health(gw) -> str:
    """Envoy's health flags for the host of `gw`'s modelgate_ledger cluster."""
    text = requests.get(f"{gw.admin_url}/clusters", timeout=5).text
    return ",".join(line.rsplit("::", 1)[1] for line in text.splitlines()
                    if line.startswith("modelgate_ledger::") and "::health_flags::" in line)


def ledger_reachable(*gws, timeout: float = 20.0) -> None:
    """Waits until Envoy's health checks let each gateway reach its ledger
    (how soon after start is test_a_ready_gateway_reaches_its_ledger_at_once's question)."""
    deadline = time.monotonic() + timeout
    while not all(ledger_health(gw) == "healthy" for gw in gws):
        if time.monotonic() > deadline:
            pytest.fail(f"the ledger host is not healthy in Envoy after {timeout} s: {[ledger_health(gw) for gw in gws]}")
        time.sleep(0.05)


def chat_body(model: str = FLEET_MODEL) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}],
                       "max_tokens": MAX_TOKENS}).encode()


def reservation(body: bytes, max_tokens: int = MAX_TOKENS) -> int:
    """What one call reserves: its body's bytes, the overhead, its output bound."""
    return len(body) + OVERHEAD + max_tokens


def usage_tokens(body: bytes) -> int:
    """What the stand-in reports for a chat call (tests/upstream.py usage_for)."""
    return len(body) // 10 + 1 + REPLY_TOKENS


def sdk_body() -> bytes:
    """The body the OpenAI SDK sends for the drain's call, caught without a network."""
    seen = {}

    def capture(request: httpx.Request) -> httpx.Response:
        seen["body"] = request.content
        return httpx.Response(418)

    dry = openai.OpenAI(api_key="x", base_url="http://capture.invalid/v1", max_retries=0,
                        http_client=httpx.Client(transport=httpx.MockTransport(capture)))
    with pytest.raises(openai.APIStatusError):
        dry.chat.completions.create(model=DRAIN_MODEL, messages=SDK_MESSAGES, max_completion_tokens=MAX_TOKENS)
    return seen["body"]


@dataclass
class Gateways:
    a: object
    b: object
    share: object  # its own ledger, killed by its test
    wrong: object  # holds the wrong ledger key
    share_ledger: Ledger
    drain_cap: int


@pytest.fixture(scope="module")
def gws(stack):
    """Gateways A and B sharing the module's ledger (three budgets, one per
    model), one on a ledger of its own with a local_share budget, one with
    the wrong ledger key; started together."""
    per_call = reservation(chat_body())
    drain_body = sdk_body()
    # Room for one reservation beside three calls' reported usage: four
    # calls are admitted, then less than a reservation is left.
    drain_cap = reservation(drain_body) + 3 * usage_tokens(drain_body)
    shared = policy(budget("fleet", 10 * per_call, FLEET_MODEL),
                    budget("redis-deny", 100 * per_call, REDIS_MODEL, on_unavailable="deny"),
                    budget("drain", drain_cap, DRAIN_MODEL))
    share_ledger = Ledger(stack.key, stack.redis.port).start()
    try:
        with started(gateway(shared, stack.ledger), gateway(shared, stack.ledger),
                     # a 10% share is room for exactly 3 calls
                     gateway(policy(budget("share", 30 * per_call, FLEET_MODEL, on_unavailable="local_share",
                                           local_share=0.1)), share_ledger),
                     gateway(policy(budget("wrong-key", 100 * per_call, FLEET_MODEL)), stack.ledger,
                             key=secrets.token_hex(24))) as (a, b, share, wrong):
            ledger_reachable(a, b, share, wrong)
            yield Gateways(a, b, share, wrong, share_ledger, drain_cap)
    finally:
        share_ledger.kill()


def call(gw, body: bytes, token: str, delay: float | None = None) -> requests.Response:
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    if delay:
        headers["x-test-delay"] = str(delay)
    return requests.post(f"{gw.openai_base}/chat/completions", data=body, headers=headers, timeout=30)


def together(jobs: list) -> list:
    """Runs every `job()` on its own thread, released at once; their results in order."""
    results: list = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def run(i, job):
        barrier.wait()
        try:
            results[i] = job()
        except Exception as e:  # reported by the caller
            results[i] = e

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    errors = [r for r in results if isinstance(r, Exception) or r is None]
    assert not errors, f"{len(errors)} calls failed on the client: {errors[:3]}"
    return results


def outcomes(responses) -> list:
    return sorted({(r.status_code, r.headers.get("x-modelgate-reason")) for r in responses})


def records_of(gws, ids: list, timeout: float = 5.0) -> dict:
    """The audit records of `ids` across gateways, waiting for Envoy to flush them."""
    deadline = time.monotonic() + timeout
    while True:
        found = {r["request_id"]: r for gw in gws for r in gw.audit_records() if r.get("request_id") in ids}
        if len(found) == len(set(ids)) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert set(found) == set(ids), f"missing audit records: {sorted(set(ids) - set(found))}"
    for r in found.values():
        AUDIT_SCHEMA.validate(r)
    return found


def drawn(record: dict, budget_id: str) -> dict:
    [b] = [b for b in record.get("budgets") or [] if b["id"] == budget_id]
    return b


def ledger_key(budget_id: str, record: dict | None = None) -> str:
    """The Redis hash of a group budget's counters this window
    (`mg:{<id>/group/<window start, unix s>}:b`, ledger/src/store.rs)."""
    if record is not None:
        end = datetime.strptime(drawn(record, budget_id)["window_end"], "%Y-%m-%dT%H:%M:%S.%fZ")
        start = int(end.replace(tzinfo=timezone.utc).timestamp()) - 86_400
    else:
        start = int(time.time()) // 86_400 * 86_400
    return f"mg:{{{budget_id}/group/{start}}}:b"


def settled(redis: Redis, key: str, used: int | None = None, timeout: float = 5.0) -> dict:
    """The counters once nothing is held (and `used` is reached, if given)."""
    deadline = time.monotonic() + timeout
    while True:
        counters = redis.hgetall(key)
        held, now_used = int(counters.get("held_tokens", 0)), int(counters.get("used_tokens", 0))
        if held == 0 and (used is None or now_used == used):
            return counters
        if time.monotonic() > deadline:
            pytest.fail(f"the ledger did not settle within {timeout} s: {key} = {counters} (want used {used}, held 0)")
        time.sleep(0.05)


def error_message(resp: requests.Response) -> str:
    return resp.json()["error"]["message"]


# Why the ledger did not answer, in words: its own error status, no answer
# at all, or Envoy with no ledger host to send the call to.
LEDGER_SILENT = re.compile(r'budget "(?P<id>[\w-]+)" cannot be counted now: the ledger did not answer '
                           r'\((the ledger answered (?P<status>\d{3})|no response \(.+\)'
                           r'|Envoy has no ledger host to send it to: none is healthy, or too many calls are in flight)\)'
                           r' \(budget_unavailable\)$')


def assert_unavailable(resp: requests.Response, budget_id: str, status: int | None = None) -> None:
    assert resp.status_code == 503, (resp.status_code, resp.text)
    assert resp.headers.get("x-modelgate-reason") == "budget_unavailable", dict(resp.headers)
    message = error_message(resp)
    m = LEDGER_SILENT.search(message)
    assert m and m["id"] == budget_id, f"not a clear budget_unavailable message: {message!r}"
    if status is not None:
        assert m["status"] == str(status), message


# --- the tests -----------------------------------------------------------------


def test_two_envoys_sharing_one_ledger_admit_exactly_the_room_for_ten(stack, gws):
    """Two gateways, 64 calls in flight at once: exactly the 10 that fit are admitted, and the ledger's total is exact."""
    a, b = gws.a, gws.b
    ledger_reachable(a, b)
    a.reset()
    b.reset()
    body = chat_body()
    per_call = reservation(body)
    cap = 10 * per_call
    token = svid.mint(BOT)
    started_at = time.monotonic()
    results = together([(lambda gw=(a if i % 2 else b): call(gw, body, token, delay=2)) for i in range(64)])
    elapsed = time.monotonic() - started_at
    admitted = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code != 200]
    assert len(admitted) == 10, f"{len(admitted)} admitted of 64 against room for exactly 10; refusals: {outcomes(refused)}"
    assert outcomes(refused) == [(429, "budget_exhausted")]
    assert all(r.headers.get("retry-after") for r in refused)
    seen = len(a.requests_seen()) + len(b.requests_seen())
    assert seen == 10, f"the stand-ins received {seen} calls, 10 were admitted"

    records = records_of((a, b), [r.headers["x-request-id"] for r in results])
    for r in refused:
        rec = records[r.headers["x-request-id"]]
        assert (rec["reason"], rec["status"], rec.get("detail")) == ("budget_exhausted", 429, "fleet"), rec
    ok = [records[r.headers["x-request-id"]] for r in admitted]
    for rec in ok:
        assert rec["reason"] == "ok", rec
        d = drawn(rec, "fleet")
        assert d["scope"] == "global" and d.get("counted") is None, d
        assert d["reserved"]["tokens"] == per_call, (d, per_call)
        assert d["charged"]["tokens"] == rec["usage"]["total_tokens"] == usage_tokens(body), (d, rec["usage"])
    on_a = sum(1 for r in admitted if r.url.startswith(a.url))

    charged = sum(drawn(rec, "fleet")["charged"]["tokens"] for rec in ok)
    key = ledger_key("fleet", ok[0])
    assert key == ledger_key("fleet"), "the window rolled over during the test"
    counters = settled(stack.redis, key, used=charged)
    used, held = int(counters["used_tokens"]), int(counters["held_tokens"])
    print(f"\n[two envoys] 64 calls (32 per gateway) in {elapsed:.2f} s against cap {cap} tokens = 10 x {per_call}: "
          f"admitted {len(admitted)} (A {on_a}, B {len(admitted) - on_a}), refused {len(refused)} 429 budget_exhausted; "
          f"ledger {key}: used {used} = records' charged {charged}, held {held}")
    assert used == charged and used <= cap and held == 0


def test_redis_stopped_refuses_with_deny_and_recovers_without_restarts(stack, gws):
    """Redis gone: a deny budget refuses 503 budget_unavailable, nothing reaches the provider; Redis back: admitted again."""
    gw = gws.a
    ledger_reachable(gw)
    # A second ledger replica that nobody asks while Redis is down.
    idle = Ledger(stack.key, stack.redis.port).start()
    body = chat_body(REDIS_MODEL)
    token = svid.mint(BOT)
    first = call(gw, body, token)
    assert first.status_code == 200, first.text
    gw.reset()
    stack.redis.stop()
    try:
        refused = [call(gw, body, token) for _ in range(4)]
        for r in refused:
            assert_unavailable(r, "redis-deny")
        assert gw.requests_seen() == [], "a call went upstream while its budget could not be counted"
        for rec in records_of([gw], [r.headers["x-request-id"] for r in refused]).values():
            assert (rec["decision"], rec["reason"], rec["status"], rec.get("detail")) == \
                ("deny", "budget_unavailable", 503, "redis-deny"), rec
    finally:
        stack.redis.stop()
        stack.redis.start()
    try:
        # Its first question after Redis came back is answered, not 503.
        asked = requests.post(f"{idle.url}/v1/reserve", headers={"authorization": f"Bearer {stack.key}"}, timeout=5,
                              json={"reservation": secrets.token_hex(16), "hold_ms": 60_000,
                                    "draws": [{"key": "idle-replica/group/0", "window_end_ms": 4_102_444_800_000,
                                               "limit": {"tokens": 1000, "nano_usd": None},
                                               "amount": {"tokens": 1, "nano_usd": 0}}]})
        assert (asked.status_code, asked.json().get("admitted")) == (200, True), \
            f"a ledger replica idle while Redis restarted answered its first reserve {asked.status_code} {asked.text}"
    finally:
        idle.kill()
    # Nothing is restarted but Redis: the ledger reconnects, Envoy's health
    # checks and outlier detection let its host back in.
    restarted, tries = time.monotonic(), []
    while time.monotonic() < restarted + 20:
        r = call(gw, body, token)
        tries.append((r.status_code, r.headers.get("x-modelgate-reason")))
        if r.status_code == 200:
            break
        assert_unavailable(r, "redis-deny")
        time.sleep(0.2)
    assert tries[-1] == (200, None), f"not admitted again 20 s after Redis restarted: {tries[-5:]}"
    assert len(gw.requests_seen()) == 1
    rec = gw.audit_for(r.headers["x-request-id"])
    assert rec["reason"] == "ok" and drawn(rec, "redis-deny").get("counted") is None
    print(f"\n[redis restarted] admitted again {time.monotonic() - restarted:.1f} s later, after {len(tries) - 1} refusals")
    # A ledger replica no call reached while Redis was down (the local_share
    # gateway's) answers the first one after: it is counted by the ledger,
    # not in the gateway's local share.
    other = gws.share
    ledger_reachable(other)
    r = call(other, chat_body(), token)
    assert r.status_code == 200, r.text
    d = drawn(other.audit_for(r.headers["x-request-id"]), "share")
    assert d.get("counted") is None, (
        f"the first call after Redis came back through a ledger replica that was idle meanwhile was not counted by the "
        f"ledger: {d}; ledger metrics: {[l for l in gws.share_ledger.metrics().splitlines() if 'errors_total' in l]}")


def test_ledger_down_spends_only_the_local_share(stack, gws):
    """The ledger killed: a local_share budget admits only its 10% share, counted locally, then refuses 429."""
    gw = gws.share
    ledger_reachable(gw)
    body = chat_body()
    per_call = reservation(body)
    share = 30 * per_call // 10
    token = svid.mint(BOT)
    first = call(gw, body, token)
    assert first.status_code == 200, first.text
    assert drawn(gw.audit_for(first.headers["x-request-id"]), "share").get("counted") is None
    gws.share_ledger.kill()
    gw.reset()
    results = together([lambda: call(gw, body, token, delay=2) for _ in range(12)])
    admitted = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code != 200]
    assert len(admitted) == 3, (f"{len(admitted)} of 12 admitted with the ledger down; the local share ({share} tokens) "
                                f"has room for 3 reservations of {per_call}: {outcomes(refused)}")
    assert outcomes(refused) == [(429, "budget_exhausted")]
    assert len(gw.requests_seen()) == 3
    records = records_of([gw], [r.headers["x-request-id"] for r in results])
    charged = 0
    for r in admitted:
        d = drawn(records[r.headers["x-request-id"]], "share")
        assert d["counted"] == "local_share" and d["reserved"]["tokens"] == per_call, d
        charged += d["charged"]["tokens"]
    # One more once those settled: what the share has left is exact.
    last = call(gw, body, token)
    assert last.status_code == 200, last.text
    d = drawn(gw.audit_for(last.headers["x-request-id"]), "share")
    charged += d["charged"]["tokens"]
    assert d["counted"] == "local_share" and d["remaining"]["tokens"] == share - charged, (d, share, charged)
    # And the share does not grow: calls stacked beyond it are refused again.
    again = together([lambda: call(gw, body, token, delay=1) for _ in range(4)])
    assert sorted(r.status_code for r in again) == [200, 200, 429, 429], outcomes(again)


def test_openai_sdk_drain_on_one_gateway_is_seen_by_the_other(stack, gws):
    """Spend through one gateway is the other's: after a drain on A, B's next call is the SDK's RateLimitError."""
    a, b = gws.a, gws.b
    ledger_reachable(a, b)
    a.reset()
    b.reset()
    body = sdk_body()
    per_call, used_per_call = reservation(body), usage_tokens(body)
    token = svid.mint(BOT)
    sdk_a, sdk_b = (openai.OpenAI(api_key=token, base_url=gw.openai_base, max_retries=0) for gw in (a, b))

    def create(sdk):
        return sdk.chat.completions.with_raw_response.create(model=DRAIN_MODEL, messages=SDK_MESSAGES,
                                                              max_completion_tokens=MAX_TOKENS)

    raw = create(sdk_b)
    rec = b.audit_for(raw.headers["x-request-id"])
    assert drawn(rec, "drain")["reserved"]["tokens"] == per_call
    assert drawn(rec, "drain")["charged"]["tokens"] == used_per_call
    key = ledger_key("drain", rec)
    settled(stack.redis, key, used=used_per_call)
    drained = 0
    for _ in range(10):
        try:
            create(sdk_a)
        except openai.RateLimitError as e:
            assert e.response.headers.get("x-modelgate-reason") == "budget_exhausted"
            break
        drained += 1
        settled(stack.redis, key, used=(drained + 1) * used_per_call)
    assert drained == 3, f"gateway A admitted {drained} calls after B's one; the budget had room for 3 more"
    with pytest.raises(openai.RateLimitError) as refused:
        create(sdk_b)
    response = refused.value.response
    assert response.headers.get("x-modelgate-reason") == "budget_exhausted"
    assert 1 <= int(response.headers["retry-after"]) <= 86_400
    left = gws.drain_cap - 4 * used_per_call
    assert f"({left} tokens left)" in refused.value.message, refused.value.message
    assert len(a.requests_seen()) == 3 and len(b.requests_seen()) == 1


def test_wrong_ledger_key_is_refused_and_never_admitted(stack, gws):
    """A gateway holding the wrong ledger key gets 401 from the ledger and refuses 503 budget_unavailable."""
    gw = gws.wrong
    ledger_reachable(gw)
    gw.reset()

    def unauthorized() -> int:
        line = next((l for l in stack.ledger.metrics().splitlines() if 'kind="unauthorized"' in l), None)
        return int(float(line.split()[-1])) if line else 0

    before = unauthorized()
    token = svid.mint(BOT)
    refused = [call(gw, chat_body(), token) for _ in range(3)]
    for r in refused:
        assert_unavailable(r, "wrong-key", status=401)
    assert gw.requests_seen() == []
    for rec in records_of([gw], [r.headers["x-request-id"] for r in refused]).values():
        assert (rec["reason"], rec["status"]) == ("budget_unavailable", 503), rec
    assert unauthorized() >= before + 3
    assert not stack.redis.exists(ledger_key("wrong-key")), "a reservation with the wrong key reached Redis"


def test_a_ready_gateway_reaches_its_ledger_at_once(stack):
    """A gateway Envoy calls ready admits a global-budget call at once (the shipped ledger cluster's health check)."""
    with gateway(policy(budget("startup", 100 * reservation(chat_body()), FLEET_MODEL)), stack.ledger) as gw:
        flags = ledger_health(gw)
        r = call(gw, chat_body(), svid.mint(BOT))
        assert r.status_code == 200, (
            f"the first call after Envoy reported LIVE was refused {r.status_code} {r.headers.get('x-modelgate-reason')} "
            f"({r.text[:300]}); Envoy's health flags for the ledger host: {flags}. envoy/ledger/cluster.yaml's first "
            "health check must outlast Envoy loading the wasm: one that times out leaves every global-budget call "
            "refused until the next, no_traffic_interval later.")
