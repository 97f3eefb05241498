"""modelgate's promise, proved through a real Envoy with the official SDKs as
clients: the workload's SVID is its API key, only allowed models get
through, the provider key never leaves the gateway, and every request
leaves exactly one audit record.
"""

import gzip
import json
import time

import anthropic
import openai
import pytest
import requests

import svid

BOT = "spiffe://example.org/ns/support/sa/bot"
BATCH = "spiffe://example.org/ns/batch/sa/summarizer"
RESEARCH = "spiffe://example.org/ns/research/sa/agent"
HI = [{"role": "user", "content": "Say hello"}]
CLAUDE = "claude-haiku-4-5"


def oa(gateway, token):
    return openai.OpenAI(api_key=token, base_url=gateway.openai_base, max_retries=0)


def an(gateway, token):
    return anthropic.Anthropic(api_key=token, base_url=gateway.anthropic_base, max_retries=0)


def header_values(recorded, name):
    return [v for k, v in recorded["headers"] if k == name]


def assert_no_caller_credential(recorded, token):
    """The SVID appears nowhere in what the provider received."""
    assert token not in json.dumps(recorded)
    for name in ("proxy-authorization", "api-key", "x-goog-api-key"):
        assert header_values(recorded, name) == []


def post(gateway, path, body, headers=None, raw=None):
    h = {"content-type": "application/json", **(headers or {})}
    data = raw if raw is not None else json.dumps(body)
    return requests.post(f"{gateway.url}{path}", data=data, headers=h, timeout=10)


# --- the allowed path -------------------------------------------------------


def test_openai_sdk_allowed_call_reaches_provider_with_the_gateway_key(gateway):
    gateway.reset()
    token = svid.mint(BOT)
    raw = oa(gateway, token).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI, max_completion_tokens=50)
    completion = raw.parse()
    assert completion.choices[0].message.content
    [recorded] = gateway.requests_seen()
    assert recorded["path"] == "/v1/chat/completions"
    assert header_values(recorded, "authorization") == [f"Bearer {gateway.openai_key}"]
    assert_no_caller_credential(recorded, token)
    record = gateway.audit_for(raw.headers["x-request-id"])
    assert record["decision"] == "allow" and record["reason"] == "ok" and record["rule"] == "support-bot"
    assert record["workload"]["spiffe_id"] == BOT and record["workload"]["svid"] == "jwt"
    assert (record["provider"], record["api"], record["endpoint"], record["model"]) == ("openai", "openai", "/v1/chat/completions", "gpt-4o-mini")
    assert record["upstream"]["status"] == 200 and record["status"] == 200
    assert record["usage"] == {"input_tokens": completion.usage.prompt_tokens, "output_tokens": completion.usage.completion_tokens,
                               "total_tokens": completion.usage.total_tokens}
    assert record["credential"] == {"type": "api_key", "name": "openai"}


def test_anthropic_sdk_allowed_call_reaches_provider_with_the_gateway_key(gateway):
    gateway.reset()
    token = svid.mint(BOT)
    raw = an(gateway, token).messages.with_raw_response.create(model=CLAUDE, max_tokens=64, messages=HI)
    message = raw.parse()
    assert message.content[0].text
    [recorded] = gateway.requests_seen()
    assert recorded["path"] == "/v1/messages"
    assert header_values(recorded, "x-api-key") == [gateway.anthropic_key]
    assert header_values(recorded, "anthropic-version")
    assert header_values(recorded, "authorization") == []
    assert_no_caller_credential(recorded, token)
    record = gateway.audit_for(raw.headers["x-request-id"])
    assert (record["decision"], record["provider"], record["model"]) == ("allow", "anthropic", CLAUDE)
    # Anthropic reports its prompt cache's reads and writes apart: the record
    # keeps them (here 0), inside the input.
    assert record["usage"] == {"input_tokens": message.usage.input_tokens, "output_tokens": message.usage.output_tokens,
                               "total_tokens": message.usage.input_tokens + message.usage.output_tokens,
                               "cached_input_tokens": message.usage.cache_read_input_tokens,
                               "cache_write_tokens": message.usage.cache_creation_input_tokens}


def test_rsa_signed_svids_are_accepted(gateway):
    token = svid.mint(RESEARCH, key=svid.load_key(svid.DEMO_RSA_KEY))
    assert oa(gateway, token).chat.completions.create(model="gpt-4o", messages=HI).choices


def test_embeddings_and_responses_endpoints_work(gateway):
    client = oa(gateway, svid.mint(RESEARCH))
    assert client.embeddings.create(model="text-embedding-3-small", input="hi").data
    assert client.responses.create(model="gpt-4.1-mini", input="hi").output_text


# --- model policy -----------------------------------------------------------


@pytest.mark.parametrize("workload,model,rule", [
    (BOT, "gpt-4o", None),                 # not on the bot's allow-list
    (RESEARCH, "gpt-3.5-turbo", "no-legacy"),  # a deny rule beats research's allow-all
    (RESEARCH, "GPT-3.5-Turbo", "no-legacy"),  # ... however a lenient provider would spell it
])
def test_disallowed_model_raises_permission_denied(gateway, workload, model, rule):
    gateway.reset()
    with pytest.raises(openai.PermissionDeniedError) as err:
        oa(gateway, svid.mint(workload)).chat.completions.create(model=model, messages=HI)
    assert err.value.status_code == 403
    assert err.value.code == "model_not_allowed"
    assert err.value.response.headers["x-modelgate-reason"] == "model_not_allowed"
    assert gateway.requests_seen() == []
    record = gateway.audit_for(err.value.response.headers["x-request-id"])
    assert (record["decision"], record["reason"], record["rule"], record["model"]) == ("deny", "model_not_allowed", rule, model)
    assert record["workload"]["spiffe_id"] == workload
    assert record["upstream"] is None and record["credential"] is None


def test_disallowed_model_raises_anthropic_permission_denied(gateway):
    with pytest.raises(anthropic.PermissionDeniedError) as err:
        an(gateway, svid.mint(BOT)).messages.create(model="claude-opus-4-1", max_tokens=10, messages=HI)
    assert err.value.status_code == 403
    assert err.value.body["error"]["type"] == "permission_error"
    assert "model_not_allowed" in err.value.body["error"]["message"]


def test_model_listings_show_only_what_the_workload_may_call(gateway):
    # The stand-in lists every model on both routes; the bot's rule allows
    # gpt-4o-mini, gpt-4.1-* and claude-haiku-4-5* at both providers.
    assert [m.id for m in oa(gateway, svid.mint(BOT)).models.list()] == ["gpt-4o-mini", "gpt-4.1-mini", "claude-haiku-4-5"]
    assert [m.id for m in an(gateway, svid.mint(BOT)).models.list()] == ["gpt-4o-mini", "gpt-4.1-mini", "claude-haiku-4-5"]
    # research may call anything but the legacy models a deny rule names.
    assert "gpt-3.5-turbo" not in [m.id for m in oa(gateway, svid.mint(RESEARCH)).models.list()]
    with pytest.raises(anthropic.PermissionDeniedError):
        an(gateway, svid.mint(BATCH)).models.list()


# --- identity ---------------------------------------------------------------


def expired():
    return svid.mint(BOT, iat=int(time.time()) - 7200, ttl=3600)


def wrong_audience():
    return svid.mint(BOT, aud="spiffe://example.org/some-other-service")


def wrong_trust_domain():
    return svid.mint("spiffe://other.org/ns/support/sa/bot", key=svid.new_ec_key("demo-k1"))


def forged():
    return svid.mint(BOT, key=svid.new_ec_key("demo-k1"))


def alg_none():
    return svid.mint(BOT, alg="none")


def hs256():
    return svid.mint(BOT, alg="HS256")


def unknown_kid():
    return svid.mint(BOT, kid="not-in-bundle")


def jku_header():
    return svid.mint(BOT, header_extra={"jku": "https://attacker.example/jwks.json"})


@pytest.mark.parametrize("make,reason,detail", [
    (expired, "invalid_svid", "expired"),
    (wrong_audience, "invalid_svid", "audience_mismatch"),
    (wrong_trust_domain, "untrusted_domain", "unknown_trust_domain"),
    (forged, "invalid_svid", "bad_signature"),
    (alg_none, "invalid_svid", "alg_not_allowed"),
    (hs256, "invalid_svid", "alg_not_allowed"),
    (unknown_kid, "invalid_svid", "unknown_kid"),
    (jku_header, "invalid_svid", "unknown_header"),
], ids=lambda v: getattr(v, "__name__", None))
def test_bad_svid_raises_authentication_error(gateway, make, reason, detail):
    gateway.reset()
    with pytest.raises(openai.AuthenticationError) as err:
        oa(gateway, make()).chat.completions.create(model="gpt-4o-mini", messages=HI)
    response = err.value.response
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.headers["x-modelgate-reason"] == reason
    assert gateway.requests_seen() == []
    record = gateway.audit_for(response.headers["x-request-id"])
    assert (record["decision"], record["reason"], record["detail"]) == ("deny", reason, detail)
    assert record["workload"] is None


def test_bad_svid_raises_anthropic_authentication_error(gateway):
    with pytest.raises(anthropic.AuthenticationError) as err:
        an(gateway, forged()).messages.create(model=CLAUDE, max_tokens=10, messages=HI)
    assert err.value.body["error"]["type"] == "authentication_error"


def test_missing_svid_is_401_missing_identity(gateway):
    r = post(gateway, "/openai/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HI})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "missing_identity"
    record = gateway.audit_for(r.headers["x-request-id"])
    assert (record["reason"], record["detail"]) == ("missing_identity", "no_credential")
    r = post(gateway, "/openai/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HI}, {"authorization": "Bearer "})
    assert r.status_code == 401 and r.headers["x-modelgate-reason"] == "missing_identity"


def test_two_credential_carriers_are_ambiguous(gateway):
    token = svid.mint(BOT)
    r = post(gateway, "/anthropic/v1/messages", {"model": CLAUDE, "max_tokens": 5, "messages": HI},
             {"authorization": f"Bearer {svid.mint(RESEARCH)}", "x-api-key": token})
    assert r.status_code == 401
    assert gateway.audit_for(r.headers["x-request-id"])["detail"] == "ambiguous_credentials"


def raw_post(gateway, headers):
    """POST a chat completion with header lines exactly as given (repeats and
    raw bytes included), which requests would fold or refuse."""
    import http.client
    host, port = gateway.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    body = json.dumps({"model": "gpt-4o-mini", "messages": HI}).encode()
    conn.putrequest("POST", "/openai/v1/chat/completions")
    for name, value in [*headers, ("content-type", "application/json"), ("content-length", str(len(body)))]:
        conn.putheader(name, value)
    conn.endheaders(body)
    return conn.getresponse()


def test_a_repeated_authorization_header_is_ambiguous(gateway):
    # Envoy folds the two lines into one comma-joined value, which modelgate refuses.
    response = raw_post(gateway, [("authorization", f"Bearer {svid.mint(BOT)}"), ("authorization", f"Bearer {svid.mint(RESEARCH)}")])
    assert response.status == 401
    assert gateway.audit_for(response.getheader("x-request-id"))["detail"] == "ambiguous_credentials"


def test_a_non_utf8_header_byte_does_not_break_the_filter(gateway):
    """The SDK's string header map would trap the VM on byte 0xff."""
    response = raw_post(gateway, [("authorization", f"Bearer {svid.mint(BOT)}"), ("x-note", b"caf\xe9\xff")])
    assert response.status == 200
    # The VM is still alive for the next request.
    assert oa(gateway, svid.mint(BOT)).chat.completions.create(model="gpt-4o-mini", messages=HI).choices


# --- limits -----------------------------------------------------------------


def test_max_tokens_cap_is_written_into_the_request(gateway):
    gateway.reset()
    oa(gateway, svid.mint(BOT)).chat.completions.create(model="gpt-4o-mini", messages=HI)
    [recorded] = gateway.requests_seen()
    body = json.loads(recorded["body"])
    assert body["max_completion_tokens"] == 1024 and "max_tokens" not in body
    assert header_values(recorded, "content-length") == [str(len(recorded["body"].encode()))]


def test_max_tokens_above_the_cap_is_refused(gateway):
    with pytest.raises(openai.PermissionDeniedError) as err:
        oa(gateway, svid.mint(BOT)).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=4096)
    assert err.value.code == "max_tokens_exceeded"
    record = gateway.audit_for(err.value.response.headers["x-request-id"])
    assert (record["reason"], record["rule"]) == ("max_tokens_exceeded", "support-bot")


def test_streaming_is_refused_where_the_rule_says_so(gateway):
    with pytest.raises(openai.PermissionDeniedError) as err:
        oa(gateway, svid.mint(BATCH)).chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    assert err.value.code == "stream_not_allowed"


# --- streaming --------------------------------------------------------------


def test_openai_streaming_works_through_the_filter(gateway):
    stream = oa(gateway, svid.mint(BOT)).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, stream=True, stream_options={"include_usage": True})
    chunks = list(stream.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the stand-in provider."
    assert chunks[-1].usage.total_tokens > 0
    record = gateway.audit_for(stream.headers["x-request-id"])
    assert (record["decision"], record["stream"], record["model"]) == ("allow", True, "gpt-4o-mini")
    assert record["upstream"]["status"] == 200


def test_anthropic_streaming_works_through_the_filter(gateway):
    with an(gateway, svid.mint(BOT)).messages.stream(model=CLAUDE, max_tokens=64, messages=HI) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "Hello from the stand-in provider."


# --- request smuggling ------------------------------------------------------


@pytest.mark.parametrize("raw,reason", [
    (b'{"model":"gpt-4o-mini","model":"gpt-4o","messages":[]}', "ambiguous_model"),
    (b'{"model":"gpt-4o-mini","\\u006dodel":"gpt-4o","messages":[]}', "ambiguous_model"),
    (b'{"model":"gpt-4o-mini","stream":false,"stream":true}', "invalid_body"),
    (b'{"model":"gpt-4o-mini","models":["gpt-4o-mini","gpt-4o"],"messages":[]}', "ambiguous_model"),
    (b"model=gpt-4o", "invalid_body"),
    (b'["gpt-4o-mini"]', "invalid_body"),
    (b'{"messages":[]}', "model_missing"),
    (b'{"model":["gpt-4o-mini"]}', "model_missing"),
])
def test_bodies_that_could_smuggle_a_model_are_refused(gateway, raw, reason):
    gateway.reset()
    r = post(gateway, "/openai/v1/chat/completions", None, {"authorization": f"Bearer {svid.mint(BOT)}"}, raw=raw)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == reason
    assert gateway.requests_seen() == []
    assert gateway.audit_for(r.headers["x-request-id"])["reason"] == reason


def test_compressed_bodies_are_refused(gateway):
    raw = gzip.compress(json.dumps({"model": "gpt-4o", "messages": HI}).encode())
    r = post(gateway, "/openai/v1/chat/completions", None,
             {"authorization": f"Bearer {svid.mint(BOT)}", "content-encoding": "gzip"}, raw=raw)
    assert r.status_code == 415
    assert gateway.audit_for(r.headers["x-request-id"])["reason"] == "unsupported_encoding"


def test_bodies_over_the_limit_are_refused(gateway):
    gateway.reset()
    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * (1024 * 1024 + 1)}]}
    r = post(gateway, "/openai/v1/chat/completions", big, {"authorization": f"Bearer {svid.mint(BOT)}"})
    assert r.status_code == 413
    assert gateway.audit_for(r.headers["x-request-id"])["reason"] == "body_too_large"
    assert gateway.requests_seen() == []


@pytest.mark.parametrize("path,reason", [
    ("/openai/v1/files", "endpoint_not_allowed"),
    ("/openai/v1/chat/completions/x", "endpoint_not_allowed"),
    ("/openai/v1/../v1/files", "endpoint_not_allowed"),
    ("/anthropic/v1/messages/batches", "endpoint_not_allowed"),
    ("/nope/v1/chat/completions", "no_provider"),
])
def test_unknown_endpoints_and_providers_are_refused(gateway, path, reason):
    r = post(gateway, path, {"model": "gpt-4o-mini"}, {"authorization": f"Bearer {svid.mint(RESEARCH)}"})
    assert r.status_code == 403
    assert r.headers["x-modelgate-reason"] == reason
    assert gateway.audit_for(r.headers["x-request-id"])["reason"] == reason


def test_other_credentials_and_key_parameters_are_stripped(gateway):
    gateway.reset()
    token = svid.mint(BOT)
    r = post(gateway, "/openai/v1/chat/completions?key=sk-caller-query&x=1", {"model": "gpt-4o-mini", "messages": HI},
             {"authorization": f"Bearer {token}", "proxy-authorization": "Basic c2VjcmV0", "api-key": "sk-caller-azure",
              "x-goog-api-key": "sk-caller-google", "x-api-key": "sk-caller-anthropic"})
    assert r.status_code == 200
    [recorded] = gateway.requests_seen()
    text = json.dumps(recorded)
    for secret in ("sk-caller-query", "c2VjcmV0", "sk-caller-azure", "sk-caller-google", "sk-caller-anthropic", token):
        assert secret not in text
    # Only parameters the endpoint takes go on (chat completions takes none).
    assert recorded["path"] == "/v1/chat/completions"


def test_every_copy_of_a_repeated_credential_header_is_stripped(gateway):
    gateway.reset()
    response = raw_post(gateway, [("authorization", f"Bearer {svid.mint(BOT)}"), ("api-key", "sk-copy-1"), ("api-key", "sk-copy-2"),
                                  ("x-goog-api-key", "sk-copy-3"), ("x-goog-api-key", "sk-copy-4")])
    assert response.status == 200
    [recorded] = gateway.requests_seen()
    for secret in ("sk-copy-1", "sk-copy-2", "sk-copy-3", "sk-copy-4"):
        assert secret not in json.dumps(recorded)


def test_requests_envoy_refuses_first_still_leave_a_record(gateway):
    """An encoded NUL is refused by Envoy's path normalization before
    modelgate sees the headers."""
    r = post(gateway, "/openai/v1/chat/completions%00", {"model": "gpt-4o-mini"}, {"authorization": f"Bearer {svid.mint(BOT)}"})
    assert r.status_code == 400
    time.sleep(0.3)
    refused = [rec for rec in gateway.audit_records() if rec["detail"] == "path_normalization_failed"]
    assert len(refused) == 1
    assert (refused[0]["decision"], refused[0]["reason"], refused[0]["status"], refused[0]["mode"]) == ("deny", "incomplete", 400, "enforce")
    assert refused[0]["time"].endswith("Z") and refused[0]["client"]["address"]


def test_a_workload_cannot_choose_its_request_id(gateway):
    """Two records with one id would blur the audit trail."""
    r = post(gateway, "/openai/v1/chat/completions", {"model": "gpt-4o-mini", "messages": HI},
             {"authorization": f"Bearer {svid.mint(BOT)}", "x-request-id": "chosen-by-the-workload"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] != "chosen-by-the-workload"
    gateway.audit_for(r.headers["x-request-id"])


# --- the audit log ----------------------------------------------------------


def test_every_request_left_exactly_one_wellformed_record_and_no_secret(gateway):
    """Runs last in this file: checks the whole log the other tests wrote."""
    time.sleep(0.3)
    lines = gateway.access_log.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) >= 20
    ids = [r["request_id"] for r in records if r["request_id"]]
    assert len(ids) == len(set(ids)), "a request has more than one record"
    for r in records:
        assert r["decision"] in ("allow", "deny")
        assert r["reason"] and r["time"].endswith("Z")
    text = gateway.access_log.read_text()
    assert gateway.openai_key not in text and gateway.anthropic_key not in text
    assert "eyJ" not in text, "a JWT reached the audit log"

