"""Every way around the policy a review found, and the variants found while
closing them: each refused with its documented status and reason, an audit
record, and nothing upstream — or, where the request is legitimate,
forwarded with the offending part removed, as the stand-in provider proves.
"""

import io
import json
import time

import openai
import pytest
import requests

import svid
from test_e2e import BATCH, BOT, HI, RESEARCH, header_values, oa

CHAT = "/openai/v1/chat/completions"
TRANSCRIBE = "/openai/v1/audio/transcriptions"
WAV = b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x00\x00\x80>\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00"


def auth(workload=BOT, **headers):
    return {"authorization": f"Bearer {svid.mint(workload)}", **headers}


def refused(gateway, r, status, reason, detail=None):
    assert (r.status_code, r.headers.get("x-modelgate-reason")) == (status, reason), r.text[:300]
    time.sleep(0.1)
    assert gateway.requests_seen() == [], "a refused request reached the provider"
    record = gateway.audit_for(r.headers["x-request-id"])
    assert (record["decision"], record["reason"]) == ("deny", reason)
    if detail:
        assert record["detail"] == detail, record
    return record


# --- multipart: one form, two readings -----------------------------------------


def form(parts, boundary="XyZ"):
    out = b""
    for headers, value in parts:
        out += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


FILE = ('Content-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav', WAV)


def post_form(gateway, body, content_type="multipart/form-data; boundary=XyZ", workload=BOT):
    return requests.post(f"{gateway.url}{TRANSCRIBE}", data=body, timeout=10,
                         headers=auth(workload, **{"content-type": content_type}))


def test_the_openai_sdk_transcription_form_is_read_and_forwarded(gateway):
    gateway.reset()
    client = oa(gateway, svid.mint(RESEARCH))
    result = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", io.BytesIO(WAV)),
                                                timestamp_granularities=["word", "segment"], response_format="verbose_json")
    assert result.text
    [seen] = gateway.requests_seen()
    assert seen["path"] == "/v1/audio/transcriptions"


@pytest.mark.parametrize("name,body,content_type,status,reason,detail", [
    ("repeated_name_parameter", form([FILE, ('Content-Disposition: form-data; name="model"; name="file"', b"gpt-4o-transcribe")]),
     None, 400, "invalid_body", "multipart_repeated_parameter"),
    # A lenient reader splits at the quoted ';' and reads name=model.
    ("semicolon_in_quoted_name", form([FILE, ('Content-Disposition: form-data; name="x;name=model"', b"gpt-4o-transcribe")]),
     None, 400, "model_missing", "missing"),
    ("repeated_boundary", form([FILE, ('Content-Disposition: form-data; name="model"', b"whisper-1")]),
     "multipart/form-data; boundary=XyZ; boundary=Other", 400, "invalid_body", "multipart_repeated_parameter"),
    ("escaped_quoted_boundary", form([FILE, ('Content-Disposition: form-data; name="model"', b"whisper-1")], 'Xy"Z'),
     'multipart/form-data; boundary="Xy\\"Z"', 400, "invalid_body", "multipart_quoted_string"),
    ("transfer_encoded_part", form([FILE, ('Content-Disposition: form-data; name="model"\r\nContent-Transfer-Encoding: base64', b"Z3B0LTRv")]),
     None, 400, "invalid_body", "multipart_part_header_not_allowed"),
    ("repeated_model_field", form([FILE, ('Content-Disposition: form-data; name="model"', b"whisper-1"),
                                   ('Content-Disposition: form-data; name="model"', b"gpt-4o-transcribe")]),
     None, 400, "ambiguous_model", "multipart_repeated_field"),
    ("model_sent_as_a_file", form([FILE, ('Content-Disposition: form-data; name="model"; filename="m.txt"', b"whisper-1")]),
     None, 400, "invalid_body", "multipart_model"),
    ("extended_name_parameter", form([FILE, ("Content-Disposition: form-data; name*=UTF-8''model", b"gpt-4o-transcribe"),
                                      ('Content-Disposition: form-data; name="model"', b"whisper-1")]),
     None, 400, "invalid_body", "multipart_parameter"),
    ("preamble", b"ignored by some\r\n" + form([FILE, ('Content-Disposition: form-data; name="model"', b"whisper-1")]),
     None, 400, "invalid_body", "multipart_preamble"),
    ("text_after_a_delimiter", b"--XyZ-not-a-delimiter\r\n" + form([FILE, ('Content-Disposition: form-data; name="model"', b"whisper-1")]),
     None, 400, "invalid_body", "multipart_delimiter"),
    ("boundary_inside_a_part", form([FILE, ('Content-Disposition: form-data; name="model"', b"whisper-1 --XyZ gpt-4o")]),
     None, 400, "invalid_body", "multipart_boundary_in_content"),
    ("charset_on_the_form", form([FILE, ('Content-Disposition: form-data; name="model"', b"whisper-1")]),
     "multipart/form-data; boundary=XyZ; charset=utf-7", 400, "invalid_body", "multipart_content_type_parameters"),
])
def test_multipart_forms_two_servers_could_read_differently_are_refused(gateway, name, body, content_type, status, reason, detail):
    gateway.reset()
    r = post_form(gateway, body, content_type or "multipart/form-data; boundary=XyZ", workload=RESEARCH)
    refused(gateway, r, status, reason, detail)


# --- charsets ------------------------------------------------------------------


def test_json_in_another_charset_is_refused(gateway):
    """In UTF-7, "+AGc-pt-4o" is "gpt-4o" to a server honouring the charset."""
    gateway.reset()
    r = requests.post(f"{gateway.url}{CHAT}", data=b'{"model":"+AGc-pt-4o-mini","messages":[]}', timeout=10,
                      headers=auth(**{"content-type": "application/json; charset=utf-7"}))
    refused(gateway, r, 415, "unsupported_encoding", "charset")


# --- a second model outside "model" ------------------------------------------


def test_a_model_in_the_query_is_refused(gateway):
    gateway.reset()
    r = requests.post(f"{gateway.url}{CHAT}?model=gpt-4o", json={"model": "gpt-4o-mini", "messages": HI}, headers=auth(), timeout=10)
    refused(gateway, r, 400, "ambiguous_model", "query_model")


def test_a_tool_model_the_workload_may_not_use_is_refused(gateway):
    """The Responses api's image tool names its own model."""
    gateway.reset()
    body = {"model": "gpt-4o-mini", "input": "draw a cat", "tools": [{"type": "image_generation", "model": "gpt-image-1"}]}
    r = requests.post(f"{gateway.url}/openai/v1/responses", json=body, headers=auth(), timeout=10)
    record = refused(gateway, r, 403, "model_not_allowed", "nested_model")
    assert record["model"] == "gpt-4o-mini"


def test_a_tool_model_the_workload_may_use_goes_on(gateway):
    gateway.reset()
    client = oa(gateway, svid.mint(RESEARCH))
    assert client.responses.create(model="gpt-4.1-mini", input="draw", tools=[{"type": "image_generation", "model": "gpt-image-1"}]).output_text
    [seen] = gateway.requests_seen()
    assert json.loads(seen["body"])["tools"][0]["model"] == "gpt-image-1"


def test_a_stored_prompt_that_could_choose_its_own_model_is_refused(gateway):
    gateway.reset()
    r = requests.post(f"{gateway.url}/openai/v1/responses", json={"model": "gpt-4o-mini", "prompt": {"id": "pmpt_1"}},
                      headers=auth(), timeout=10)
    refused(gateway, r, 400, "ambiguous_model", "stored_prompt")


def test_a_nested_model_that_is_not_a_name_is_refused(gateway):
    gateway.reset()
    r = requests.post(f"{gateway.url}/openai/v1/responses", json={"model": "gpt-4o-mini", "tools": [{"model": ["gpt-4o"]}]},
                      headers=auth(), timeout=10)
    refused(gateway, r, 400, "ambiguous_model", "nested_model_not_string")


# --- request context the provider reads with the gateway's key -------------------


def test_account_selectors_cookies_and_overrides_are_the_gateways(gateway):
    gateway.reset()
    r = requests.post(f"{gateway.url}{CHAT}?api-key=caller-q1&api_key=caller-q2&access_token=caller-q3&Key=caller-q4",
                      json={"model": "gpt-4o-mini", "messages": HI}, timeout=10,
                      headers=auth(**{"openai-organization": "org-caller", "openai-project": "proj_caller",
                                      "cookie": "session=caller-cookie", "x-http-method-override": "DELETE",
                                      "x-method-override": "DELETE"}))
    assert r.status_code == 200
    [seen] = gateway.requests_seen()
    text = json.dumps(seen)
    for value in ("caller-q", "org-caller", "proj_caller", "caller-cookie", "DELETE"):
        assert value not in text, value
    assert seen["path"] == "/v1/chat/completions"
    # The organization the gateway's key acts for is the provider config's.
    assert header_values(seen, "openai-organization") == ["org-modelgate-demo"]


def test_anthropic_workspace_selectors_are_removed(gateway):
    gateway.reset()
    r = requests.post(f"{gateway.url}/anthropic/v1/messages?beta=true&extra=1", timeout=10,
                      json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": HI},
                      headers=auth(**{"anthropic-workspace-id": "wrkspc_caller", "anthropic-organization-id": "org_caller"}))
    assert r.status_code == 200
    [seen] = gateway.requests_seen()
    assert "caller" not in json.dumps(seen)
    assert seen["path"] == "/v1/messages?beta=true"


# --- token multipliers and streaming switches ---------------------------------------


def test_n_times_the_cap_is_refused(gateway):
    gateway.reset()
    with pytest.raises(openai.PermissionDeniedError) as err:
        oa(gateway, svid.mint(BOT)).chat.completions.create(model="gpt-4o-mini", messages=HI, n=4)
    assert err.value.code == "max_tokens_exceeded"
    assert gateway.audit_for(err.value.response.headers["x-request-id"])["detail"] == "n*max_tokens>1024"
    # Four outputs of 256 tokens fit a cap of 1024.
    assert len(oa(gateway, svid.mint(BOT)).chat.completions.create(model="gpt-4o-mini", messages=HI, n=4, max_tokens=256).choices) >= 1


def test_best_of_times_the_cap_is_refused(gateway):
    gateway.reset()
    r = requests.post(f"{gateway.url}/openai/v1/completions", json={"model": "gpt-4o-mini", "prompt": "hi", "best_of": 3, "max_tokens": 500},
                      headers=auth(), timeout=10)
    refused(gateway, r, 403, "max_tokens_exceeded")


def test_speech_streamed_as_events_is_gated_like_stream(gateway):
    gateway.reset()
    r = requests.post(f"{gateway.url}/openai/v1/audio/speech", timeout=10, headers=auth(BATCH),
                      json={"model": "gpt-4o-mini", "input": "hi", "voice": "alloy", "stream_format": "sse"})
    refused(gateway, r, 403, "stream_not_allowed")


# --- spellings a provider accepts for a denied model -----------------------------------


@pytest.mark.parametrize("model", ["ft:gpt-3.5-turbo-0125:acme::9xYz", "openai/gpt-3.5-turbo", "gpt-3.5-turbo:ft-acme-2023"])
def test_a_denied_model_under_another_spelling_is_refused(gateway, model):
    gateway.reset()
    r = requests.post(f"{gateway.url}{CHAT}", json={"model": model, "messages": HI}, headers=auth(RESEARCH), timeout=10)
    record = refused(gateway, r, 403, "model_not_allowed", "deny_rule")
    assert record["rule"] == "no-legacy"
