"""The audit trail end to end: every record validates against
docs/audit.schema.json, each worker VM chains its records, and
`modelgate audit verify` passes a real two-worker log and finds a deleted,
an edited and a swapped record."""

import concurrent.futures
import copy
import hashlib
import json
import socket
import subprocess
import time
from pathlib import Path

import anthropic
import openai
import pytest
import requests

import svid
from conftest import AUDIT_SCHEMA, running_gateway
from harness import ROOT, envoy_config, free_port, plugin_configuration

BOT = "spiffe://example.org/ns/support/sa/bot"
HI = [{"role": "user", "content": "hi"}]


def verify(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["cargo", "run", "-q", "-p", "modelgate-cli", "--bin", "modelgate", "--", "audit", "verify",
                           str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def chat(gw, model="gpt-4o-mini"):
    # A fresh connection each: the kernel spreads them over both workers.
    return requests.post(f"{gw.url}/openai/v1/chat/completions", json={"model": model, "messages": HI},
                         headers={"authorization": f"Bearer {svid.mint(BOT)}", "connection": "close"}, timeout=10)


@pytest.fixture(scope="module")
def chained_log(tmp_path_factory):
    """A log from a two-worker Envoy: 80 calls, allowed and denied."""
    with running_gateway(extra_args=["--concurrency", "2"]) as gw:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda i: chat(gw, "gpt-4o-mini" if i % 4 else "gpt-4o").status_code, range(80)))
        assert sorted(set(statuses)) == [200, 403]
        gw.audit_for(chat(gw).headers["x-request-id"])  # flushed
        lines = [line for line in gw.access_log.read_text().splitlines() if line.strip()]
    path = tmp_path_factory.mktemp("audit") / "audit.log"
    path.write_text("\n".join(lines) + "\n")
    return path, lines


def test_a_two_worker_log_verifies(chained_log):
    path, lines = chained_log
    chains = {json.loads(line)["chain"] for line in lines}
    assert len(chains) == 2, "both workers wrote records"
    result = verify(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: every chain is continuous" in result.stdout


def tampered(tmp_path, lines, change) -> subprocess.CompletedProcess:
    lines = list(lines)
    change(lines)
    path = tmp_path / "tampered.log"
    path.write_text("\n".join(lines) + "\n")
    return verify(path)


def index_of(lines, chain, seq):
    return next(i for i, line in enumerate(lines) if (json.loads(line)["chain"], json.loads(line)["seq"]) == (chain, seq))


def test_a_deleted_record_is_a_gap(chained_log, tmp_path):
    _, lines = chained_log
    chain = json.loads(lines[0])["chain"]
    result = tampered(tmp_path, lines, lambda ls: ls.pop(index_of(ls, chain, 5)))
    assert result.returncode == 1
    assert f"chain {chain}: record 5 is missing" in result.stdout


def test_an_edited_record_breaks_the_next_link(chained_log, tmp_path):
    _, lines = chained_log
    chain = json.loads(lines[0])["chain"]

    def edit(ls):
        i = index_of(ls, chain, 7)
        ls[i] = ls[i].replace('"mode":"enforce"', '"mode":"audit"', 1)
    result = tampered(tmp_path, lines, edit)
    assert result.returncode == 1
    assert f"chain {chain}: record 7" in result.stdout and "altered" in result.stdout


def test_swapped_records_are_out_of_order(chained_log, tmp_path):
    _, lines = chained_log
    chain = json.loads(lines[0])["chain"]

    def swap(ls):
        i, j = index_of(ls, chain, 3), index_of(ls, chain, 4)
        ls[i], ls[j] = ls[j], ls[i]
    result = tampered(tmp_path, lines, swap)
    assert result.returncode == 1
    assert f"chain {chain}: record 3" in result.stdout and "after a later record" in result.stdout


# --- usage from streams ---------------------------------------------------------

RESEARCH = "spiffe://example.org/ns/research/sa/agent"
REPLY_TOKENS = 7  # tests/upstream.py: six words and the end


def prompt_tokens(seen) -> int:
    """What the stand-in counts for a request body it received."""
    return len(seen["body"].encode()) // 10 + 1


def stream(gw, path, body, headers=None, who=BOT):
    r = requests.post(f"{gw.url}{path}", json=body, timeout=15, stream=True,
                      headers={"authorization": f"Bearer {svid.mint(who)}", **(headers or {})})
    try:
        data = b"".join(r.iter_content(None))
    except requests.exceptions.ChunkedEncodingError:
        data = None  # cut short
    return r, data


STREAMS = {
    "openai_chat_include_usage_from_the_client": (
        "/openai/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HI, "stream": True,
                                        "stream_options": {"include_usage": True}}),
    "openai_chat_include_usage_from_the_provider": (
        "/openai/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HI, "stream": True}),
    "openai_responses": ("/openai/v1/responses", {"model": "gpt-4o-mini", "input": "hi", "stream": True}),
    "anthropic_messages": ("/anthropic/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": HI,
                                                      "stream": True}),
    "gemini_sse": ("/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                   {"contents": [{"parts": [{"text": "hi"}]}]}),
    "bedrock_eventstream": ("/bedrock/model/anthropic.claude-haiku-4-5-20251001-v1:0/invoke-with-response-stream",
                            {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": HI}),
    "bedrock_converse_eventstream": ("/bedrock/model/anthropic.claude-haiku-4-5-20251001-v1:0/converse-stream",
                                     {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
}


@pytest.mark.parametrize("split", [None, "bytes"])
@pytest.mark.parametrize("name", list(STREAMS))
def test_streamed_usage_is_what_the_provider_sent(gateway, name, split):
    gateway.reset()
    path, body = STREAMS[name]
    r, data = stream(gateway, path, body, {"x-test-split": split} if split else None)
    assert r.status_code == 200 and data, r.text
    [seen] = gateway.requests_seen()
    record = gateway.audit_for(r.headers["x-request-id"])
    p = prompt_tokens(seen)
    assert record["usage"] == {"input_tokens": p, "output_tokens": REPLY_TOKENS, "total_tokens": p + REPLY_TOKENS}, record
    assert record["usage_complete"] is True and record["stream"] is True
    if name == "openai_chat_include_usage_from_the_provider":
        assert json.loads(seen["body"])["stream_options"] == {"include_usage": True}
        assert b'"usage"' in data  # the client receives the usage chunk too


def test_a_stream_without_usage_is_not_complete(gateway):
    gateway.reset()
    r, data = stream(gateway, "/private/v1/chat/completions", {"model": "llama-3", "messages": HI, "stream": True},
                     who=RESEARCH)
    assert r.status_code == 200 and b"[DONE]" in data
    record = gateway.audit_for(r.headers["x-request-id"])
    assert (record["usage"], record["usage_complete"]) == (None, False)


@pytest.mark.parametrize("name", ["anthropic_messages", "gemini_sse", "bedrock_eventstream"])
def test_a_stream_cut_short_keeps_what_was_counted(gateway, name):
    gateway.reset()
    path, body = STREAMS[name]
    r, data = stream(gateway, path, body, {"x-test-cut": "3"})
    record = gateway.audit_for(r.headers["x-request-id"])
    assert record["usage_complete"] is False, record
    if name == "anthropic_messages":  # message_start came: the input is known
        assert record["usage"]["input_tokens"] == prompt_tokens(gateway.requests_seen()[0])


# --- the prompt-leak guard ---------------------------------------------------------

LEAKS = {
    "aws_access_key": "deploy with AKIAIOSFODNN7EXAMPLE please",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "card_number": "charge 4111 1111 1111 1111 now",
    "us_ssn": "my ssn is 078-05-1120",
    "anthropic_key": "key sk-ant-api03-" + "x" * 90,
}


@pytest.mark.parametrize("detector", list(LEAKS))
def test_a_leaking_prompt_never_reaches_the_provider(gateway, detector):
    gateway.reset()
    secret = LEAKS[detector]
    for path, body in [
        ("/openai/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": secret}]}),
        ("/gemini/v1beta/models/gemini-2.5-flash:generateContent", {"contents": [{"parts": [{"text": secret}]}]}),
    ]:
        r = requests.post(f"{gateway.url}{path}", json=body, headers={"authorization": f"Bearer {svid.mint(BOT)}"},
                          timeout=10)
        assert (r.status_code, r.headers["x-modelgate-reason"]) == (403, "prompt_blocked"), r.text
        record = gateway.audit_for(r.headers["x-request-id"])
        assert record["prompt_guard"] == {"action": "block", "findings": {detector: 1}}
        assert record["detail"] == detector
        assert secret not in json.dumps(record) and secret.split()[-1] not in json.dumps(record)
    assert gateway.requests_seen() == []


def test_a_clean_prompt_records_no_findings(gateway):
    r = chat(gateway)
    assert r.status_code == 200
    assert gateway.audit_for(r.headers["x-request-id"])["prompt_guard"] == {"action": "block", "findings": {}}


# --- metrics --------------------------------------------------------------------------


def prometheus(gw) -> dict:
    text = requests.get(f"{gw.admin_url}/stats/prometheus", timeout=5).text
    return {line.split("{")[0]: int(float(line.split()[-1])) for line in text.splitlines()
            if line.startswith("modelgate_")}


def test_metrics_after_a_scripted_sequence():
    with running_gateway() as gw:
        allowed = [chat(gw) for _ in range(3)]
        denied = [chat(gw, "gpt-4o") for _ in range(2)]
        leak = requests.post(f"{gw.url}/openai/v1/chat/completions", timeout=10,
                             json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": LEAKS["us_ssn"]}]},
                             headers={"authorization": f"Bearer {svid.mint(BOT)}"})
        research = requests.post(f"{gw.url}/openai/v1/chat/completions", timeout=10,
                                 json={"model": "some-unlisted-model", "messages": HI},
                                 headers={"authorization": f"Bearer {svid.mint(RESEARCH)}"})
        assert [r.status_code for r in allowed + denied + [leak, research]] == [200] * 3 + [403] * 3 + [200]
        records = [gw.audit_for(r.headers["x-request-id"]) for r in allowed + [research]]
        stats = prometheus(gw)
        assert stats["modelgate_requests_allow_ok"] == 4
        assert stats["modelgate_requests_deny_model_not_allowed"] == 2
        assert stats["modelgate_requests_deny_prompt_blocked"] == 1
        assert stats["modelgate_prompt_guard_us_ssn"] == 1
        assert stats["modelgate_audit_records"] == 7
        assert stats["modelgate_tokens_openai_gpt_4o_mini_input"] == sum(r["usage"]["input_tokens"] for r in records[:3])
        assert stats["modelgate_tokens_openai_gpt_4o_mini_output"] == 3 * REPLY_TOKENS
        # A model only a glob allows never becomes a name: it is `other`.
        assert stats["modelgate_tokens_openai_other_output"] == REPLY_TOKENS
        assert not any("unlisted" in name or "spiffe" in name for name in stats)


# --- one record on every way a request can end --------------------------------------


def records_for(gw, request_id=None, before=0, timeout=5.0):
    """The records written after the first `before`, waiting for one."""
    deadline = time.monotonic() + timeout
    while True:
        new = gw.audit_records()[before:]
        if new or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(0.3)  # anything else would have been flushed too
    new = gw.audit_records()[before:]
    for record in new:
        AUDIT_SCHEMA.validate(record)
    return new


def raw_exchange(gw, data: bytes, read: int = 65536, close_after: float = 0.0) -> bytes:
    host, port = gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(data)
        if close_after:
            time.sleep(close_after)
            return b""
        try:
            return s.recv(read)
        except TimeoutError:
            return b""


def test_an_upstream_connect_failure_leaves_one_record():
    with running_gateway(mutate=lambda c, p: set_cluster_port(c, free_port())) as gw:
        r = chat(gw)
        assert r.status_code == 503
        [record] = records_for(gw)
        assert (record["decision"], record["reason"], record["status"]) == ("allow", "ok", 503)
        assert record["detail"].startswith("upstream_reset_before_response_started{"), record["detail"]
        assert record["upstream"]["status"] == 503


def set_cluster_port(config, port):
    cluster = config["static_resources"]["clusters"][0]
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] = port


def test_an_upstream_timeout_leaves_one_record():
    def short_timeout(config, _ports):
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        for route in hcm["route_config"]["virtual_hosts"][0]["routes"]:
            if "route" in route:
                route["route"]["timeout"] = "0.5s"
    with running_gateway(mutate=short_timeout) as gw:
        r = requests.post(f"{gw.url}/openai/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI},
                          headers={"authorization": f"Bearer {svid.mint(BOT)}", "x-test-delay": "2"}, timeout=10)
        assert r.status_code == 504
        [record] = records_for(gw)
        assert (record["decision"], record["status"], record["detail"]) == ("allow", 504, "response_timeout")


def test_a_client_gone_mid_body_or_mid_stream_leaves_one_record(gateway):
    before = len(gateway.audit_records())
    head = (f"POST /openai/v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {svid.mint(BOT)}\r\n"
            "content-type: application/json\r\ncontent-length: 500\r\n\r\n{\"model\":\"gpt-4o-mini\"").encode()
    raw_exchange(gateway, head, close_after=0.3)
    [record] = records_for(gateway, before=before)
    assert (record["decision"], record["reason"]) == ("deny", "incomplete")
    before = len(gateway.audit_records())
    body = json.dumps({"model": "claude-haiku-4-5", "max_tokens": 64, "messages": HI, "stream": True})
    streaming = (f"POST /anthropic/v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {svid.mint(BOT)}\r\n"
                 f"x-test-pace: 0.3\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n{body}").encode()
    raw_exchange(gateway, streaming, close_after=0.8)
    [record] = records_for(gateway, before=before, timeout=8)
    assert (record["decision"], record["reason"], record["usage_complete"]) == ("allow", "ok", False)
    assert record["detail"] == "downstream_remote_disconnect"
    assert record["usage"]["input_tokens"] > 0, "what was counted before the client left"


def test_a_request_envoy_refuses_at_the_codec_has_one_record(gateway):
    before = len(gateway.audit_records())
    reply = raw_exchange(gateway, b"POST /openai/v1/chat/completions HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400")
    [record] = records_for(gateway, before=before)
    assert (record["decision"], record["reason"], record["detail"]) == ("deny", "incomplete", "http1.codec_error")


def test_a_request_no_vm_recorded_has_the_fallback_record():
    """Where modelgate left no record (its VM failed, or it never ran),
    Envoy's second access log writes one: shown on a route that skips the
    filter, where the backstop after modelgate refuses the request
    (test_hot_reload.py)."""
    def unfiltered_route(config, _ports):
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["route_config"]["virtual_hosts"][0]["routes"].insert(0, {
            "match": {"prefix": "/unfiltered/"}, "direct_response": {"status": 204},
            "typed_per_filter_config": {"envoy.filters.http.wasm": {
                "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}}})
    with running_gateway(mutate=unfiltered_route) as gw:
        r = requests.get(f"{gw.url}/unfiltered/x", timeout=5)
        assert r.status_code == 403
        [record] = records_for(gw)
        assert (record["decision"], record["reason"], record["request_id"]) == ("deny", "rejected_by_envoy", r.headers["x-request-id"])
        assert record["detail"].startswith("rbac_access_denied")
        assert "chain" not in record


# --- the workload's identity where the provider records end users ----------------------


def test_identity_to_provider_names_the_workload_to_openai_and_anthropic():
    def with_identity(policy):
        for p in policy["providers"]:
            if p["name"] in ("openai", "anthropic"):
                p["identity_to_provider"] = "hash"
        return policy
    policy = json.loads(plugin_configuration(envoy_config(1, 2, 3, Path("/dev/null")))["value"])
    with running_gateway({"providers": with_identity(policy)["providers"]}) as gw:
        token = svid.mint(BOT)
        oa = openai.OpenAI(api_key=token, base_url=f"{gw.url}/openai/v1", max_retries=0)
        # A workload naming another one to the provider, in either field.
        oa.chat.completions.create(model="gpt-4o-mini", messages=HI, safety_identifier="pretending-to-be-someone",
                                   user="spiffe://example.org/ns/research/sa/agent")
        an = anthropic.Anthropic(api_key=token, base_url=f"{gw.url}/anthropic", max_retries=0)
        an.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=HI, metadata={"user_id": "spoofed"})
        chat, messages = gw.requests_seen()
        expected = "sha256:" + hashlib.sha256(BOT.encode()).hexdigest()[:32]
        sent = json.loads(chat["body"])
        assert (sent["safety_identifier"], sent["user"]) == (expected, expected)
        assert json.loads(messages["body"])["metadata"] == {"user_id": expected}


def test_log_lines_name_their_context_and_hold_no_secret(gateway):
    token = svid.mint(BOT)
    requests.post(f"{gateway.url}/openai/v1/chat/completions", json={"model": "gpt-4o", "messages": HI}, timeout=10,
                  headers={"authorization": f"Bearer {token}"})
    time.sleep(0.3)
    text = gateway.envoy_log.read_text()
    lines = [line.split("wasm log modelgate modelgate: ", 1)[1] for line in text.splitlines()
             if "wasm log modelgate modelgate: " in line]
    assert lines and all(line.startswith("[") for line in lines), [l for l in lines if not l.startswith("[")][:3]
    for secret in [token, *gateway.keys.values()]:
        assert secret not in text
