"""The budget attacks of the two attacker reviews, through a real Envoy.

Each attack was a way to make the provider bill more than the call
reserved, and so to overspend a budget: an output multiplier the bound did
not read, images billed by their size rather than their bytes, input the
body only names, a body too deep for the bound's scan, an option priced
above the table, a timeout settled at nothing, a model's other spelling.
The engine's fixes have unit tests (policies/src/budget/); these prove the
same refusals end to end: the attack is refused before anything leaves the
gateway (the stand-in provider saw no request), and its one audit record
carries the reason and detail docs/budgets.md gives.

One gateway serves the whole file; each test has its own workloads and
budgets, so no test spends another's room. Bodies the SDKs cannot send
(or would reshape) are posted raw with `requests`.
"""

import copy
import json

import pytest
import requests
import yaml

import svid
from conftest import running_gateway
from harness import ENVOY_YAML, policy_text

OVERHEAD = 1024  # input tokens a call reserves beyond its forwarded body's bytes
MEDIA_TOKENS = 49_152  # what each image reserves beyond its bytes
MAX_DEPTH = 128  # the strict body reader's deepest nesting (policies/src/body/json.rs)
CLAUDE = "claude-haiku-4-5"
HI = [{"role": "user", "content": "Say hello"}]


def who(name: str) -> str:
    return f"spiffe://example.org/ns/attack/sa/{name}"


def budget(id_, workloads, **more):
    return {"id": id_, "workloads": workloads, "window": "day", **more}


BUDGETS = [
    budget("gemini-candidates", [who("gemini-candidates")], tokens=4000),
    budget("images", [who("images")], tokens=60_000),
    budget("named-input", [who("named-input")], tokens=1_000_000),
    budget("too-deep", [who("too-deep")], tokens=1_000_000),
    budget("dollars", [who("dollars")], usd=100),
    budget("tokens-only", [who("tokens-only")], tokens=1_000_000),
    budget("timeout", [who("timeout")], tokens=1_000_000),
    budget("mini-only", [who("spelling")], models=["gpt-4o-mini"], tokens=5000),
]
# who("no-budget") draws on none of them.
PRICES = [{"provider": "openai", "models": ["gpt-4o-mini*"], "input": 0.15, "output": 0.60, "cached_input": 0.075},
          {"provider": "anthropic", "models": ["claude-haiku-4-5*"], "input": 1.00, "output": 5.00, "cached_input": 0.10}]


def demo_rules() -> list:
    return json.loads(policy_text(yaml.safe_load(ENVOY_YAML.read_text())))["rules"]


# Every provider and every model, in any spelling: these tests are about
# what a budget lets through, so no rule refuses first (the demo's
# support-bot rule allows the model exactly, and would refuse `GPT-4o-mini`).
RULES = [{"id": "attack-tests", "effect": "allow", "workloads": ["spiffe://example.org/ns/attack/**"],
          "providers": ["*"], "models": ["*"]}, *demo_rules()]

SHORT_TIMEOUT_S = 1
DELAY_S = 2


@pytest.fixture(scope="module")
def gw():
    """The demo gateway with this file's budgets, prices and rules, and an
    OpenAI route that times out after 1 s for requests that ask the
    stand-in to be slow (`x-test-delay`); every other request keeps the
    demo's 120 s."""

    def mutate(config, ports):
        routes = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
            "route_config"]["virtual_hosts"][0]["routes"]
        [i] = [i for i, r in enumerate(routes) if r["match"].get("prefix") == "/openai/"]
        slow = copy.deepcopy(routes[i])
        slow["match"]["headers"] = [{"name": "x-test-delay", "present_match": True}]
        slow["route"]["timeout"] = f"{SHORT_TIMEOUT_S}s"
        routes.insert(i, slow)

    with running_gateway({"budgets": BUDGETS, "prices": PRICES, "rules": RULES}, mutate=mutate) as gateway:
        yield gateway


# --- helpers ----------------------------------------------------------------


def post(gw, api: str, workload: str, body, model: str = "", headers: dict | None = None) -> requests.Response:
    """One raw call to `api` as `workload`, its SVID where that api's SDK puts its key."""
    token = svid.mint(workload)
    if api == "chat":
        url, auth = f"{gw.openai_base}/chat/completions", {"authorization": f"Bearer {token}"}
    elif api == "responses":
        url, auth = f"{gw.openai_base}/responses", {"authorization": f"Bearer {token}"}
    elif api == "anthropic":
        url, auth = f"{gw.anthropic_base}/v1/messages", {"x-api-key": token, "anthropic-version": "2023-06-01"}
    elif api == "gemini":
        url, auth = f"{gw.url}/gemini/v1beta/models/{model}:generateContent", {"x-goog-api-key": token}
    else:
        raise ValueError(api)
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(url, data=data, timeout=15,
                         headers={"content-type": "application/json", **auth, **(headers or {})})


def forwarded(gw, request_id) -> bytes:
    """The body the stand-in received for `request_id`."""
    found = [r for r in gw.requests_seen() if [request_id] == [v for k, v in r["headers"] if k == "x-request-id"]]
    assert len(found) == 1, f"the stand-in saw {len(found)} requests with id {request_id}"
    return found[0]["body"].encode()


def drawn(record, id_):
    [b] = [b for b in record.get("budgets") or [] if b["id"] == id_]
    return b


def admitted(gw, r) -> tuple:
    """A call the gateway let through: its record and the body forwarded."""
    assert r.status_code == 200, (r.status_code, r.headers.get("x-modelgate-reason"), r.text[:500])
    rid = r.headers["x-request-id"]
    return gw.audit_for(rid), forwarded(gw, rid)


def assert_refused(gw, r, status: int, reason: str, detail: str) -> dict:
    """Refused with `status` and `reason`, nothing reached the stand-in
    (reset by the caller), and one record says why, holding nothing."""
    assert (r.status_code, r.headers.get("x-modelgate-reason")) == (status, reason), (r.status_code, r.text[:500])
    assert gw.requests_seen() == [], "a refused call reached the provider"
    record = gw.audit_for(r.headers["x-request-id"])
    assert (record["decision"], record["reason"], record["status"], record["detail"]) == ("deny", reason, status, detail)
    assert record["upstream"] is None and not record.get("budgets"), "a refused call was sent or held room"
    return record


# --- 1. an output multiplier ---------------------------------------------------


def gemini_body(candidates: int) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
            "generationConfig": {"maxOutputTokens": 2000, "candidateCount": candidates}}


def test_gemini_candidate_count_multiplies_the_reservation(gw):
    """Attack: Gemini's candidateCount asks for 8 answers of maxOutputTokens each; a bound that read
    maxOutputTokens alone reserved 2,000 of the 16,000 the provider may bill."""
    gw.reset()
    r = post(gw, "gemini", who("gemini-candidates"), gemini_body(8), model="gemini-2.5-flash")
    assert_refused(gw, r, 429, "budget_exhausted", "gemini-candidates")
    # One candidate fits the same budget: the multiplier is what refused.
    record, body = admitted(gw, post(gw, "gemini", who("gemini-candidates"), gemini_body(1), model="gemini-2.5-flash"))
    assert json.loads(body)["generationConfig"]["candidateCount"] == 1
    assert drawn(record, "gemini-candidates")["reserved"]["tokens"] == len(body) + OVERHEAD + 2000


# --- 2. images -------------------------------------------------------------------


def image_chat(images: int) -> dict:
    parts = [{"type": "text", "text": "What is in these pictures?"}]
    parts += [{"type": "image_url", "image_url": {"url": f"https://example.com/{i}.png", "detail": "high"}}
              for i in range(images)]
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": parts}], "max_tokens": 100}


def test_images_reserve_their_largest_count(gw):
    """Attack: an image URL is a few dozen bytes but billed up to 48,169 tokens (gpt-4o-mini, 2048x768,
    high detail); a bound of the body's bytes let many images through a small budget."""
    gw.reset()
    r = post(gw, "chat", who("images"), image_chat(2))
    assert_refused(gw, r, 429, "budget_exhausted", "images")
    # One image fits the 60,000 tokens, and reserves its 49,152.
    record, body = admitted(gw, post(gw, "chat", who("images"), image_chat(1)))
    reserved = drawn(record, "images")["reserved"]["tokens"]
    assert reserved == len(body) + OVERHEAD + MEDIA_TOKENS + 100
    assert reserved >= MEDIA_TOKENS


# --- 3. input the body only names ----------------------------------------------------


NAMED_INPUT = {
    "responses-previous-response-id": ("responses", {"model": "gpt-4o-mini", "input": "go on",
                                                      "previous_response_id": "resp_1", "max_output_tokens": 100}),
    "responses-item-reference": ("responses", {"model": "gpt-4o-mini", "max_output_tokens": 100,
                                               "input": [{"type": "item_reference", "id": "msg_1"}]}),
    "chat-file-part": ("chat", {"model": "gpt-4o-mini", "max_tokens": 100, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Summarize this file"},
                                     {"type": "file", "file": {"file_id": "file-abc123"}}]}]}),
    "anthropic-document-url": ("anthropic", {"model": CLAUDE, "max_tokens": 100, "messages": [
        {"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
                                     {"type": "text", "text": "Summarize this document"}]}]}),
    "gemini-inline-pdf": ("gemini", {"contents": [{"role": "user", "parts": [
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0xLjQK"}}, {"text": "Summarize this"}]}],
        "generationConfig": {"maxOutputTokens": 100}}),
    "responses-web-search-tool": ("responses", {"model": "gpt-4o-mini", "input": "today's news", "max_output_tokens": 100,
                                                "tools": [{"type": "web_search"}]}),
    "responses-image-generation-tool": ("responses", {"model": "gpt-4o-mini", "input": "draw a lighthouse",
                                                      "max_output_tokens": 100,
                                                      "tools": [{"type": "image_generation", "model": "gpt-image-1"}]}),
    "chat-web-search-options": ("chat", {"model": "gpt-4o-mini", "max_tokens": 100, "messages": HI,
                                         "web_search_options": {}}),
    "anthropic-mcp-servers": ("anthropic", {"model": CLAUDE, "max_tokens": 100, "messages": HI, "mcp_servers": [
        {"type": "url", "url": "https://mcp.example.com/sse", "name": "example"}]}),
}


@pytest.mark.parametrize("case", list(NAMED_INPUT))
def test_inputs_the_body_only_names_are_refused(gw, case):
    """Attack: the provider reads (and bills) input the body only names — an earlier response, a stored
    item or file, a document URL, a PDF's pages, a web search, a generated image, an MCP server's
    answers — which the body's bytes do not bound."""
    api, body = NAMED_INPUT[case]
    gw.reset()
    r = post(gw, api, who("named-input"), body, model="gemini-2.5-flash")
    assert_refused(gw, r, 403, "max_tokens_missing", "input_unbounded")


def test_an_image_generation_tool_that_names_no_model_is_refused_before_the_budget(gw):
    """Attack (the bare shape of the review): `tools: [{"type": "image_generation"}]` names no model, so the
    decision refuses it (400 ambiguous_model) before any budget is read; nothing is forwarded either way.
    The case above names the tool's model, so the budget is what refuses it."""
    gw.reset()
    r = post(gw, "responses", who("named-input"), {"model": "gpt-4o-mini", "input": "draw a lighthouse",
                                                   "max_output_tokens": 100, "tools": [{"type": "image_generation"}]})
    assert_refused(gw, r, 400, "ambiguous_model", "tool_model_missing")


# --- 4. a body too deep to scan ----------------------------------------------------------


def depth(value) -> int:
    """How deep `value` nests arrays and objects (the document itself is 1)."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def deep_body() -> dict:
    arrays = "leaf"
    for _ in range(122):
        arrays = [arrays]
    return {"model": CLAUDE, "max_tokens": 100, "messages": [
        {"role": "user", "content": "Call the tool, then read the document"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": arrays}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"},
            {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
            {"type": "text", "text": "Summarize the document"}]}]}


def test_a_body_too_deep_to_scan_is_refused(gw):
    """Attack: nest a tool call's arguments as deep as the strict reader takes (128 levels), one past what
    the budget's scan could parse; a scan that gave up counted nothing, and the document URL beside them
    went through unbounded."""
    body = deep_body()
    assert depth(body) == MAX_DEPTH
    gw.reset()
    r = post(gw, "anthropic", who("too-deep"), body)
    assert_refused(gw, r, 403, "max_tokens_missing", "input_unbounded")
    # Refused because the scan could not read it, not (only) for the document part it hides.
    assert "(unreadable)" in r.json()["error"]["message"], r.text
    # The same body, no budget: the gateway's strict reader takes it, and forwards it.
    record, sent = admitted(gw, post(gw, "anthropic", who("no-budget"), body))
    assert depth(json.loads(sent)) == MAX_DEPTH and not record.get("budgets")


# --- 5. a price the table does not hold ---------------------------------------------------------


UNPRICED = {
    # (api, the body with the option, the same body without it)
    "openai-service-tier-priority": (
        "chat", {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 50, "service_tier": "priority"},
        {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 50}),
    "anthropic-speed-fast": (
        "anthropic", {"model": CLAUDE, "max_tokens": 50, "messages": HI, "speed": "fast"},
        {"model": CLAUDE, "max_tokens": 50, "messages": HI}),
    "chat-audio-modalities": (
        "chat", {"model": "gpt-4o-mini-audio-preview", "messages": HI, "max_tokens": 50,
                 "modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}},
        {"model": "gpt-4o-mini-audio-preview", "messages": HI, "max_tokens": 50}),
    "chat-input-audio-part": (
        "chat", {"model": "gpt-4o-mini-audio-preview", "max_tokens": 50, "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is said here?"},
                {"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}}]}]},
        {"model": "gpt-4o-mini-audio-preview", "max_tokens": 50, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is said here?"}]}]}),
}


@pytest.mark.parametrize("case", list(UNPRICED))
def test_unpriced_options_refuse_a_dollar_budget(gw, case):
    """Attack: switch a priced model to a dearer price the table does not hold (priority tier, fast mode,
    audio in or out); a dollar budget that reserved at the listed price was overspent."""
    api, body, plain = UNPRICED[case]
    gw.reset()
    r = post(gw, api, who("dollars"), body)
    assert_refused(gw, r, 403, "price_unknown", "unpriced_option")
    # The model is priced: without the option, the dollar budget admits it.
    record, _ = admitted(gw, post(gw, api, who("dollars"), plain))
    assert drawn(record, "dollars")["reserved"]["usd"] > 0
    # A tokens-only budget counts no dollars: the tokens bound holds, and the call goes.
    record, sent = admitted(gw, post(gw, api, who("tokens-only"), body))
    assert all(json.loads(sent).get(k) == v for k, v in body.items()), "the option was not sent as asked"
    assert drawn(record, "tokens-only")["reserved"] == {"tokens": len(sent) + OVERHEAD + 50, "usd": None}


# --- 6. a timeout ------------------------------------------------------------------------------


def test_an_upstream_timeout_is_charged_in_full(gw):
    """Attack: make the call outlast the route's timeout; the provider still runs (and bills) it, but a
    settle of the usage it never reported charged nothing."""
    gw.reset()
    r = post(gw, "chat", who("timeout"), {"model": "gpt-4o-mini", "messages": HI, "max_tokens": 100},
             headers={"x-test-delay": str(DELAY_S)})
    assert r.status_code == 504, (r.status_code, r.text[:300])
    rid = r.headers["x-request-id"]
    body = forwarded(gw, rid)  # it did reach the provider, which ran it
    record = gw.audit_for(rid)
    assert (record["detail"], record["upstream"]["status"], record["usage"]) == ("response_timeout", 504, None)
    b = drawn(record, "timeout")
    assert b["reserved"]["tokens"] == len(body) + OVERHEAD + 100
    assert b["charged"] == b["reserved"] and b["charged"]["tokens"] > 0, "a timed-out call was not charged its reservation"
    assert b["remaining"]["tokens"] == 1_000_000 - b["reserved"]["tokens"]


# --- 7. a model's other spelling -----------------------------------------------------------------


def test_a_budget_is_not_escaped_by_a_models_spelling(gw):
    """Attack: call `GPT-4o-mini` where the budget names `gpt-4o-mini`; the provider runs (and bills) the
    same model, and a budget matched exactly was not drawn on at all."""
    gw.reset()
    # The demo's support-bot rule allows the model exactly: it refuses this spelling first.
    r = post(gw, "chat", "spiffe://example.org/ns/support/sa/bot",
             {"model": "GPT-4o-mini", "messages": HI, "max_tokens": 10})
    assert (r.status_code, r.headers.get("x-modelgate-reason")) == (403, "model_not_allowed")
    # The attack-tests rule allows every model: the budget must still apply.
    r = post(gw, "chat", who("spelling"), {"model": "GPT-4o-mini", "messages": HI, "max_tokens": 10})
    record, body = admitted(gw, r)
    assert json.loads(body)["model"] == "GPT-4o-mini"
    assert [b["id"] for b in record["budgets"]] == ["mini-only"]
    assert drawn(record, "mini-only")["reserved"]["tokens"] == len(body) + OVERHEAD + 10
    # Another spelling, more than the rest of the budget: refused, naming it.
    gw.reset()
    r = post(gw, "chat", who("spelling"), {"model": "GPT-4O-MINI", "messages": HI, "max_tokens": 4500})
    assert_refused(gw, r, 429, "budget_exhausted", "mini-only")
