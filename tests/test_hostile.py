"""The hostile-request table: requests a workload could craft to get a model
past the allow-list, one named case each, across every api, sent through
the real Envoy exactly as written (paths byte for byte, HTTP/1.1 chunked
bodies and trailers by hand, HTTP/2 frame by frame). Every case must be
refused with its documented status, reason and detail, leave exactly one
audit record saying so, and reach nothing: the stand-in provider proves it.
The catalogue with each answer is in docs/providers.md."""

import gzip
import http.client
import json
import time
from dataclasses import dataclass, field

import pytest

import h2client
import svid

BOT = "spiffe://example.org/ns/support/sa/bot"
HI = [{"role": "user", "content": "hi"}]
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
CLAUDE = "anthropic.claude-haiku-4-5-20251001-v1:0"
VERTEX = "/vertex/v1/projects/acme-prod/locations/us-east5/publishers"
CHAT = "/openai/v1/chat/completions"


@dataclass
class Case:
    path: str
    body: object = None
    status: int = 403
    reason: str = "model_not_allowed"
    detail: str | None = None
    method: str = "POST"
    headers: dict = field(default_factory=dict)
    parts: list | None = None
    trailers: list = field(default_factory=list)
    http2: bool = False
    bearer: bool = True

    def raw_parts(self) -> list:
        if self.parts is not None:
            return self.parts
        if self.body is None:
            return []
        return [self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()]


def chat(model="gpt-4o-mini", **extra):
    return {"model": model, "messages": HI, **extra}


def anthropic_body(**extra):
    return {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": HI, **extra}


BIG = 1024 * 1024 + 1
WEBSOCKET = {"connection": "upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
             "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="}

CASES = {
    # --- paths ---------------------------------------------------------------
    "encoded_slash_in_an_openai_path": Case("/openai/v1/chat%2Fcompletions", chat(), 400, "invalid_path", "percent_encoded"),
    "encoded_colon_in_an_anthropic_path": Case("/anthropic/v1/messages%3Acount_tokens", {"model": "claude-opus-4-1"}, 400,
                                               "invalid_path", "percent_encoded"),
    "encoded_colon_before_a_gemini_method": Case("/gemini/v1beta/models/gemini-2.5-pro%3AgenerateContent", GEMINI_BODY, 400,
                                                 "invalid_path", "percent_encoded"),
    "second_method_in_a_gemini_path": Case("/gemini/v1beta/models/gemini-2.5-pro:x:generateContent", GEMINI_BODY, 400,
                                           "invalid_path", "second_method"),
    "matrix_parameter_in_a_gemini_path": Case("/gemini/v1beta/models/gemini-2.5-flash;v=gemini-2.5-pro:generateContent",
                                              GEMINI_BODY, 400, "invalid_path", "path_parameters"),
    "case_trick_on_an_openai_endpoint": Case("/openai/v1/Chat/Completions", chat("gpt-4o"), 400, "invalid_path", "path_case"),
    "case_trick_on_a_gemini_method": Case("/gemini/v1beta/models/gemini-2.5-pro:GenerateContent", GEMINI_BODY, 400,
                                          "invalid_path", "path_case"),
    "double_encoded_bedrock_model": Case(f"/bedrock/model/arn%253Aaws%253Abedrock/invoke", anthropic_body(), 400,
                                         "invalid_path", "percent_encoded"),
    "dot_segments_inside_a_bedrock_arn": Case("/bedrock/model/arn%3Aaws%3Abedrock%2F..%2F..%2Fmeta.llama3/invoke",
                                              anthropic_body(), 400, "invalid_path", "model_id"),
    "encoded_slash_in_a_bedrock_model_that_is_no_arn": Case("/bedrock/model/anthropic.claude%2Fmeta.llama3/converse",
                                                            {"messages": []}, 400, "invalid_path", "model_id"),
    "encoded_space_in_a_bedrock_model": Case("/bedrock/model/anthropic.claude%20x/converse", {"messages": []}, 400,
                                             "invalid_path", "percent_encoded"),
    "encoded_slash_outside_the_bedrock_model": Case(f"/bedrock/model/{CLAUDE}/invoke%2Fx", anthropic_body(), 400,
                                                    "invalid_path", "percent_encoded"),
    "vertex_project_of_someone_else": Case("/vertex/v1/projects/other/locations/us-east5/publishers/google/models/"
                                           "gemini-2.5-flash:generateContent", GEMINI_BODY, 403, "endpoint_not_allowed",
                                           "vertex_project"),
    "vertex_express_path_without_a_project": Case("/vertex/v1beta1/publishers/google/models/gemini-2.5-flash:generateContent",
                                                  GEMINI_BODY, 403, "endpoint_not_allowed"),
    "vertex_publisher_in_other_case": Case(f"{VERTEX}/Anthropic/models/claude-haiku-4-5@20251001:rawPredict",
                                           {"anthropic_version": "vertex-2023-10-16", "max_tokens": 8, "messages": HI}),
    # --- endpoints outside the tables ------------------------------------------
    "openai_files": Case("/openai/v1/files", b"x", 403, "endpoint_not_allowed", headers={"content-type": "text/plain"}),
    "openai_batches": Case("/openai/v1/batches", {"input_file_id": "f", "endpoint": CHAT}, 403, "endpoint_not_allowed"),
    "openai_fine_tuning": Case("/openai/v1/fine_tuning/jobs", {"model": "gpt-4o-mini"}, 403, "endpoint_not_allowed"),
    # Envoy as shipped has no upgrade_configs: it refuses the upgrade before
    # modelgate decides, and modelgate's record says so (Envoy's detail);
    # test_upgrades_are_refused_where_envoy_allows_them covers a listener that
    # allows websockets, as Istio's do.
    "openai_realtime_websocket_upgrade": Case("/openai/v1/realtime?model=gpt-4o-realtime", None, 403,
                                              "incomplete", "upgrade_failed", method="GET", headers=WEBSOCKET),
    "anthropic_message_batches": Case("/anthropic/v1/messages/batches", {"requests": []}, 403, "endpoint_not_allowed"),
    "gemini_files": Case("/gemini/v1beta/files", {"file": {}}, 403, "endpoint_not_allowed"),
    "gemini_cached_contents": Case("/gemini/v1beta/cachedContents", {"model": "models/gemini-2.5-pro"}, 403,
                                   "endpoint_not_allowed"),
    "gemini_tuned_model": Case("/gemini/v1beta/tunedModels/mine:generateContent", GEMINI_BODY, 403, "endpoint_not_allowed"),
    "gemini_batch_generate": Case("/gemini/v1beta/models/gemini-2.5-flash:batchGenerateContent", {"batch": {}}, 403,
                                  "endpoint_not_allowed"),
    "azure_assistants": Case("/azure/openai/assistants?api-version=2024-10-21", {"model": "prod-gpt"}, 403,
                             "endpoint_not_allowed"),
    "azure_files": Case("/azure/openai/files?api-version=2024-10-21", b"x", 403, "endpoint_not_allowed",
                        headers={"content-type": "text/plain"}),
    "bedrock_async_invoke": Case("/bedrock/async-invoke", {"modelId": "meta.llama3"}, 403, "endpoint_not_allowed"),
    "vertex_batch_prediction": Case("/vertex/v1/projects/acme-prod/locations/us-east5/batchPredictionJobs",
                                    {"model": "publishers/google/models/gemini-2.5-pro"}, 403, "endpoint_not_allowed"),
    "no_provider_for_the_path": Case("/elsewhere/v1/chat/completions", chat(), 403, "no_provider"),
    # --- bodies ----------------------------------------------------------------
    "duplicate_model_key": Case(CHAT, b'{"model":"gpt-4o-mini","messages":[],"model":"gpt-4o"}', 400, "ambiguous_model"),
    "duplicate_model_key_spelled_with_escapes": Case(CHAT, b'{"model":"gpt-4o-mini","messages":[],"mod\\u0065l":"gpt-4o"}',
                                                     400, "ambiguous_model"),
    "model_in_the_body_and_the_query": Case(f"{CHAT}?model=gpt-4o", chat(), 400, "ambiguous_model"),
    "nested_model_that_is_no_name": Case("/openai/v1/responses",
                                         {"model": "gpt-4o-mini", "input": "hi", "tools": [{"type": "x", "model": 5}]},
                                         400, "ambiguous_model", "nested_model_not_string"),
    "model_that_is_not_a_string": Case(CHAT, {"model": ["gpt-4o-mini"], "messages": HI}, 400, "model_missing"),
    "json_with_a_byte_order_mark": Case(CHAT, b"\xef\xbb\xbf" + json.dumps(chat()).encode(), 400, "invalid_body", "encoding"),
    "json_with_trailing_garbage": Case(CHAT, json.dumps(chat()).encode() + b"}{", 400, "invalid_body", "not_json"),
    "json_in_utf16": Case(CHAT, json.dumps(chat()).encode("utf-16"), 400, "invalid_body", "encoding"),
    "gzip_body": Case(CHAT, gzip.compress(json.dumps(chat("gpt-4o")).encode()), 415, "unsupported_encoding",
                      headers={"content-encoding": "gzip"}),
    "huge_body_with_content_length": Case(CHAT, b" " * BIG, 413, "body_too_large"),
    "chunked_body_over_the_limit": Case(CHAT, parts=[b" " * (512 * 1024)] * 3, status=413, reason="body_too_large"),
    "gemini_output_cap_raised": Case("/gemini/v1/models/gemini-2.5-flash:generateContent",
                                     {**GEMINI_BODY, "generationConfig": {"maxOutputTokens": 100000}}, 403,
                                     "max_tokens_exceeded"),
    "gemini_generation_config_not_an_object": Case("/gemini/v1/models/gemini-2.5-flash:generateContent",
                                                   {**GEMINI_BODY, "generationConfig": [1]}, 400, "invalid_body",
                                                   "not_object"),
    "bedrock_converse_cap_raised": Case(f"/bedrock/model/{CLAUDE}/converse",
                                        {"messages": [], "inferenceConfig": {"maxTokens": 5000}}, 403,
                                        "max_tokens_exceeded"),
    "azure_n_times_the_cap": Case("/azure/openai/deployments/prod-gpt/chat/completions?api-version=2024-10-21",
                                  chat("prod-gpt", n=4, max_completion_tokens=1024), 403, "max_tokens_exceeded"),
    "gemini_batch_embedding_of_another_model": Case(
        "/gemini/v1beta/models/text-embedding-004:batchEmbedContents",
        {"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}}]}),
    "anthropic_on_vertex_count_tokens_for_another_model": Case(
        f"{VERTEX}/anthropic/models/count-tokens:rawPredict", {"model": "claude-opus-4-1@20250805", "messages": HI}),
    # --- framing ----------------------------------------------------------------
    "denied_model_in_a_body_ending_in_http1_trailers": Case(CHAT, parts=[b'{"model":', b'"gpt-4o","messages":[]}'],
                                                            trailers=[("x-model", "gpt-4o-mini")]),
    "denied_model_over_http2": Case("/gemini/v1beta/models/gemini-2.5-pro:generateContent", GEMINI_BODY, http2=True),
    "denied_model_over_http2_with_trailers": Case(f"/bedrock/model/meta.llama3-70b-instruct-v1:0/invoke",
                                                  {"prompt": "hi", "max_gen_len": 16}, http2=True,
                                                  trailers=[("x-amz-content-sha256", "UNSIGNED-PAYLOAD")]),
    # --- credentials ------------------------------------------------------------
    "svid_only_in_the_key_query_parameter": Case("/gemini/v1beta/models/gemini-2.5-flash:generateContent?key={svid}",
                                                 GEMINI_BODY, 401, "missing_identity", bearer=False),
    "svid_in_two_carriers": Case("/gemini/v1beta/models/gemini-2.5-flash:generateContent", GEMINI_BODY, 401,
                                 "invalid_svid", "ambiguous_credentials", headers={"x-goog-api-key": "{svid}"}),
    "bedrock_caller_sigv4_without_an_svid": Case(
        f"/bedrock/model/{CLAUDE}/invoke", anthropic_body(), 401, "missing_identity", bearer=False,
        headers={"authorization": "AWS4-HMAC-SHA256 Credential=AKIACALLER/20261124/us-east-1/bedrock/aws4_request, "
                                  "SignedHeaders=host;x-amz-date, Signature=00", "x-amz-date": "20261124T000000Z"}),
}


def send(gateway, case: Case):
    token = svid.mint(BOT)
    headers = {k: v.replace("{svid}", token) for k, v in {"content-type": "application/json", **case.headers}.items()}
    if case.method == "GET" or case.body is None and case.parts is None:
        headers.pop("content-type")
    if case.bearer:
        headers["authorization"] = f"Bearer {token}"
    path = case.path.replace("{svid}", token)
    parts = case.raw_parts()
    if case.http2:
        r = h2client.request(gateway.url, path, list(headers.items()), parts, case.trailers or None, method=case.method)
        return r.status, r.headers
    host, port = gateway.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    conn.putrequest(case.method, path, skip_accept_encoding=True)
    chunked = len(parts) > 1 or bool(case.trailers)
    for k, v in headers.items():
        conn.putheader(k, v)
    if chunked:
        conn.putheader("transfer-encoding", "chunked")
    elif parts or case.method != "GET":
        conn.putheader("content-length", str(sum(len(p) for p in parts)))
    conn.endheaders()
    try:
        if chunked:
            for part in parts:
                conn.send(b"%x\r\n%s\r\n" % (len(part), part))
            conn.send(b"0\r\n" + b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in case.trailers) + b"\r\n")
        else:
            conn.send(b"".join(parts))
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused before the whole body was read: the reply is waiting
    response = conn.getresponse()
    response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_request_is_refused_audited_and_reaches_nothing(gateway, name):
    case = CASES[name]
    gateway.reset()
    status, headers = send(gateway, case)
    assert status == case.status, (name, status, headers)
    by_envoy = case.reason == "incomplete"
    assert headers.get("x-modelgate-reason") == (None if by_envoy else case.reason)
    record = gateway.audit_for(headers["x-request-id"])
    assert (record["decision"], record["reason"]) == ("deny", case.reason), record
    if case.detail:
        assert record["detail"] == case.detail, record
    time.sleep(0.1)
    assert gateway.requests_seen() == [], f"{name} reached the provider"


@pytest.fixture(scope="module")
def upgrading_gateway():
    """The demo gateway on a listener that lets websockets through, as an
    Istio sidecar's does: modelgate itself must refuse the upgrade."""
    from conftest import running_gateway

    def allow_upgrades(config, _ports):
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["upgrade_configs"] = [{"upgrade_type": "websocket"}]
    with running_gateway(mutate=allow_upgrades) as gw:
        yield gw


@pytest.mark.parametrize("path", ["/openai/v1/realtime?model=gpt-4o-realtime", "/openai/v1/chat/completions",
                                  "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"])
def test_upgrades_are_refused_where_envoy_allows_them(upgrading_gateway, path):
    gw = upgrading_gateway
    gw.reset()
    status, headers = send(gw, Case(path, None, method="GET", headers=WEBSOCKET))
    assert (status, headers.get("x-modelgate-reason")) == (403, "endpoint_not_allowed")
    record = gw.audit_for(headers["x-request-id"])
    assert (record["decision"], record["reason"], record["detail"]) == ("deny", "endpoint_not_allowed", "upgrade")
    time.sleep(0.1)
    assert gw.requests_seen() == []


def test_the_table_covers_every_api():
    prefixes = {case.path.split("/")[1] for case in CASES.values()}
    assert {"openai", "anthropic", "gemini", "azure", "bedrock", "vertex"} <= prefixes
    assert len(CASES) >= 40
