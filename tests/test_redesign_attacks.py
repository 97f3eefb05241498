"""Findings of the attack review of the redesign (exchange.rs split into
flow/, provider knowledge into api/<provider>.rs, one carry_out, one key
scheme, RustCrypto 0.13). Each failed on the reviewed build and passed on
the one before it; each is fixed (usage must never be under-reported: a
call that looks free is a hole in the audit trail and, later, in budgets).
"""

import json
import time

import requests

import svid
from conftest import running_gateway
from test_e2e import RESEARCH

VERTEX_RAW = "/vertex/v1/projects/acme-prod/locations/us-east5/publishers/mistralai/models/mistral-large-2411"


def bearer(workload=RESEARCH):
    return {"authorization": f"Bearer {svid.mint(workload)}", "content-type": "application/json"}


# --- R1: a Vertex partner model's stream usage is no longer read ---------------------------------


def test_redesign_vertex_partner_model_stream_usage_is_recorded(gateway):
    """Vertex `streamRawPredict` serves every publisher in its own format;
    a partner model's (Mistral's, AI21's) is OpenAI-shaped chunks ending
    with `usage`. Before the redesign one shape-driven stream reader
    (usage.rs `event`, its `_ =>` branch) read any api's events, so this
    usage was recorded. The redesign gave each api its own reader, and
    Vertex's first read only Anthropic's and Gemini's events: the call was
    forwarded, answered, billed — and recorded with no usage at all. Vertex
    now reads its partners' OpenAI-shaped chunks too."""
    gateway.reset()
    body = {"model": "mistral-large-2411", "messages": [{"role": "user", "content": "Say hello"}], "stream": True}
    r = requests.post(f"{gateway.url}{VERTEX_RAW}:streamRawPredict", data=json.dumps(body), headers=bearer(),
                      timeout=10, stream=True)
    assert r.status_code == 200, r.text[:300]
    text = r.content.decode()
    assert '"usage"' in text and "[DONE]" in text, text[:300]
    time.sleep(0.1)
    assert len(gateway.requests_seen()) == 1
    record = gateway.audit_for(r.headers["x-request-id"])
    assert (record["decision"], record["reason"]) == ("allow", "ok"), record
    assert record.get("usage") is not None, f"the stream's usage was not recorded: {record}"
    assert record["usage"]["total_tokens"] > 0, record
    assert record.get("usage_complete") is True, record


# --- R2: audit mode, no provider matched: its stream usage is read as OpenAI's only ----------------


def test_redesign_audit_mode_unmatched_request_stream_usage_is_recorded():
    """Audit mode forwards a request no provider matched (`no_provider`,
    would_deny) with no credential; its response is still read for the
    record. Before the redesign the stream reader recognised every api's
    events by their shape; now the reader is the matched api's, and with
    no api flow/response.rs picks OpenAI's (`req.api.unwrap_or(Api::OpenAi)`):
    an Anthropic-shaped stream's `message_start` (input tokens, model) is
    not read — the record says input_tokens null, total = output only,
    no response_model. Passed before the redesign, failed on it; a stream of no
    known api is now read by its shape."""
    def unmatched_route(config, _ports):
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["route_config"]["virtual_hosts"][0]["routes"].insert(0, {
            "match": {"prefix": "/elsewhere/"},
            "route": {"cluster": "llm_upstream", "prefix_rewrite": "/", "timeout": "120s"}})
    with running_gateway({"mode": "audit"}, mutate=unmatched_route) as gw:
        body = {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": "Say hello"}],
                "stream": True}
        r = requests.post(f"{gw.url}/elsewhere/v1/messages", data=json.dumps(body), timeout=10, stream=True,
                          headers={**bearer(), "anthropic-version": "2023-06-01"})
        assert r.status_code == 200, r.text[:300]
        assert "message_delta" in r.content.decode()
        record = gw.audit_for(r.headers["x-request-id"])
        assert (record["decision"], record["reason"], record["would_deny"]) == ("allow", "no_provider", True), record
        assert record.get("usage") is not None, f"the stream's usage was not recorded: {record}"
        assert record["usage"]["output_tokens"] > 0, record
        assert (record["usage"]["input_tokens"] or 0) > 0, f"the input tokens were lost: {record['usage']}"
        assert record.get("response_model") is not None, record
