"""Every api of SPEC §3 through the real Envoy, with each provider's official
client pointed at the gateway and the workload's JWT-SVID as its key:
Gemini (`google-genai`), Azure OpenAI (`openai.AzureOpenAI`), Bedrock
(`anthropic.AnthropicBedrock`, `boto3`'s `bedrock-runtime`), Vertex
(`anthropic.AnthropicVertex`, `google-genai` in Vertex mode). An allowed
model reaches the stand-in provider with the gateway's credential only; a
refused one fails in the client's own typed error and reaches nothing;
model listings hold only what the workload may call."""

import json

import anthropic
import boto3
import botocore.config
import botocore.exceptions
import google.oauth2.credentials
import openai
import pytest
import requests
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

import svid
from conftest import running_gateway
from harness import ROOT

BOT = "spiffe://example.org/ns/support/sa/bot"
RESEARCH = "spiffe://example.org/ns/research/sa/agent"
HI = [{"role": "user", "content": "hi"}]
CLAUDE_BEDROCK = "anthropic.claude-haiku-4-5-20251001-v1:0"
PROFILE_ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0"
# The same kind of ARN for a model the bot may not use.
OPUS_PROFILE_ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-1-20250805-v1:0"
X509 = ROOT / "tests" / "fixtures" / "x509"


def headers_of(recorded, name):
    return [v for k, v in recorded["headers"] if k == name]


def only_gateway_credential(recorded, token, header, value):
    """The provider saw the gateway's credential in `header`, and the
    caller's SVID nowhere."""
    assert token not in json.dumps(recorded)
    assert headers_of(recorded, header) == [value]


def audit(gw, request_id):
    return gw.audit_for(request_id)


def refusal(gw, response):
    """The audit record of a refused request, from its reply's id."""
    record = gw.audit_for(response.headers["x-request-id"])
    assert record["decision"] == "deny"
    return record


# --- Gemini -------------------------------------------------------------------


def gemini(gw, token):
    options = genai_types.HttpOptions(base_url=f"{gw.url}/gemini/", retry_options=genai_types.HttpRetryOptions(attempts=1))
    return genai.Client(api_key=token, http_options=options)


def test_gemini_generate_content_is_capped_and_keyed_by_the_gateway(gateway):
    gateway.reset()
    token = svid.mint(BOT)
    client = gemini(gateway, token)
    reply = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert reply.text and reply.usage_metadata.total_token_count
    [seen] = gateway.requests_seen()
    assert seen["path"].split("?")[0].endswith("/models/gemini-2.5-flash:generateContent")
    only_gateway_credential(seen, token, "x-goog-api-key", gateway.keys["GEMINI_API_KEY"])
    # The bot's cap of 1024 output tokens, written where Gemini reads it.
    assert json.loads(seen["body"])["generationConfig"]["maxOutputTokens"] == 1024
    record = audit(gateway, headers_of(seen, "x-request-id")[0])
    assert (record["provider"], record["model"], record["decision"]) == ("gemini", "gemini-2.5-flash", "allow")


def test_gemini_streams_count_tokens_and_embeddings(gateway):
    gateway.reset()
    client = gemini(gateway, svid.mint(BOT))
    text = "".join(chunk.text or "" for chunk in client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert text == "Hello from the stand-in provider."
    assert client.models.count_tokens(model="gemini-2.5-flash", contents="hi").total_tokens > 0
    embedded = client.models.embed_content(model="text-embedding-004", contents=["a", "b"])
    assert len(embedded.embeddings) == 2
    paths = [r["path"] for r in gateway.requests_seen()]
    assert any(":streamGenerateContent?alt=sse" in p for p in paths), paths
    assert any(p.endswith("/models/text-embedding-004:batchEmbedContents") for p in paths), paths


def test_gemini_refuses_a_model_in_googles_error_shape(gateway):
    gateway.reset()
    client = gemini(gateway, svid.mint(BOT))
    with pytest.raises(genai_errors.ClientError) as e:
        client.models.generate_content(model="gemini-2.5-pro", contents="hi")
    assert (e.value.code, e.value.status) == (403, "PERMISSION_DENIED")
    assert "model_not_allowed" in e.value.message
    assert gateway.requests_seen() == []


def test_gemini_a_batch_embedding_naming_another_model_is_refused(gateway):
    """`batchEmbedContents` names the model again per request: each is decided."""
    gateway.reset()
    body = {"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
                         {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}}]}
    r = requests.post(f"{gateway.url}/gemini/v1beta/models/text-embedding-004:batchEmbedContents", json=body,
                      headers={"x-goog-api-key": svid.mint(BOT)}, timeout=10)
    assert r.status_code == 403 and r.json()["error"]["status"] == "PERMISSION_DENIED", r.text
    assert gateway.requests_seen() == []


def test_gemini_key_query_parameter_never_reaches_the_provider(gateway):
    gateway.reset()
    r = requests.post(f"{gateway.url}/gemini/v1beta/models/gemini-2.5-flash:generateContent?key=AIza-caller-own&alt=json",
                      json={"contents": [{"parts": [{"text": "hi"}]}]}, headers={"x-goog-api-key": svid.mint(BOT)}, timeout=10)
    assert r.status_code == 200, r.text
    [seen] = gateway.requests_seen()
    assert seen["path"] == "/v1beta/models/gemini-2.5-flash:generateContent?alt=json"
    assert headers_of(seen, "x-goog-api-key") == [gateway.keys["GEMINI_API_KEY"]]


def test_gemini_model_listing_holds_only_allowed_models(gateway):
    bot, research = gemini(gateway, svid.mint(BOT)), gemini(gateway, svid.mint(RESEARCH))
    names = [m.name for m in bot.models.list()]
    assert names == ["models/gemini-2.5-flash", "models/text-embedding-004"]
    everything = [m.name for m in research.models.list()]
    assert "models/gemini-2.5-pro" in everything


# --- Azure OpenAI -------------------------------------------------------------


def azure(gw, token):
    return openai.AzureOpenAI(azure_endpoint=f"{gw.url}/azure", api_key=token, api_version="2024-10-21", max_retries=0)


def test_azure_deployment_maps_to_its_model(gateway):
    gateway.reset()
    token = svid.mint(BOT)
    reply = azure(gateway, token).chat.completions.create(model="prod-gpt", messages=HI)
    assert reply.choices[0].message.content
    [seen] = gateway.requests_seen()
    assert seen["path"] == "/openai/deployments/prod-gpt/chat/completions?api-version=2024-10-21"
    only_gateway_credential(seen, token, "api-key", gateway.keys["AZURE_OPENAI_API_KEY"])
    assert json.loads(seen["body"])["max_completion_tokens"] == 1024
    record = audit(gateway, headers_of(seen, "x-request-id")[0])
    assert (record["provider"], record["model"]) == ("azure", "gpt-4o-mini")


def test_azure_a_deployment_of_a_denied_model_is_refused(gateway):
    gateway.reset()
    with pytest.raises(openai.PermissionDeniedError) as e:
        azure(gateway, svid.mint(BOT)).chat.completions.create(model="legacy-gpt", messages=HI)
    assert "no-legacy" in str(e.value)
    with pytest.raises(openai.PermissionDeniedError) as e:
        azure(gateway, svid.mint(RESEARCH)).chat.completions.create(model="unmapped", messages=HI)
    assert refusal(gateway, e.value.response)["detail"] == "unknown_deployment"
    assert gateway.requests_seen() == []


def test_azure_embeddings_and_listing(gateway):
    gateway.reset()
    assert azure(gateway, svid.mint(RESEARCH)).embeddings.create(model="prod-embed", input="x").data
    with pytest.raises(openai.PermissionDeniedError):
        azure(gateway, svid.mint(BOT)).embeddings.create(model="prod-embed", input="x")
    ids = [m.id for m in azure(gateway, svid.mint(BOT)).models.list()]
    assert "gpt-4o-mini" in ids and "gpt-4.1-mini" in ids
    assert not {"gpt-4o", "gpt-3.5-turbo", "claude-opus-4-1"} & set(ids)


def test_azure_v1_surface_maps_the_body_deployment_to_its_model(gateway):
    """On the /openai/v1/ surface the SDK's `model` is a deployment name,
    mapped like the deployment path's; a bare model name is no deployment."""
    gateway.reset()
    client = openai.OpenAI(base_url=f"{gateway.url}/azure/openai/v1/", api_key=svid.mint(BOT), max_retries=0)
    reply = client.chat.completions.create(model="prod-gpt", messages=HI)
    assert reply.choices
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert refused.value.response.headers["x-modelgate-reason"] == "model_not_allowed"
    [seen] = gateway.requests_seen()
    assert seen["path"] == "/openai/v1/chat/completions"
    record = audit(gateway, headers_of(seen, "x-request-id")[0])
    assert (record["model"], record["requested_model"]) == ("gpt-4o-mini", "prod-gpt")
    assert audit(gateway, refused.value.response.headers["x-request-id"])["detail"] == "unknown_deployment"


# --- Bedrock ------------------------------------------------------------------


def anthropic_bedrock(gw, token):
    return anthropic.AnthropicBedrock(api_key=token, base_url=f"{gw.url}/bedrock", aws_region="us-east-1", max_retries=0)


def assert_signed_by_the_gateway(seen, token):
    """Envoy's SigV4 filter signed the request with the gateway's AWS key."""
    assert token not in json.dumps(seen)
    [authorization] = headers_of(seen, "authorization")
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIAGATEWAYTEST00000/"), authorization
    assert "/us-east-1/bedrock/aws4_request" in authorization
    assert len(headers_of(seen, "x-amz-date")) == 1


def test_bedrock_anthropic_sdk_invoke_is_resigned_by_envoy(gateway):
    gateway.reset()
    token = svid.mint(BOT)
    message = anthropic_bedrock(gateway, token).messages.create(model=CLAUDE_BEDROCK, max_tokens=64, messages=HI)
    assert message.content[0].text
    [seen] = gateway.requests_seen()
    assert seen["path"] == f"/model/{CLAUDE_BEDROCK}/invoke"
    assert_signed_by_the_gateway(seen, token)
    record = audit(gateway, headers_of(seen, "x-request-id")[0])
    assert (record["provider"], record["model"], record["decision"]) == ("bedrock", CLAUDE_BEDROCK, "allow")


def test_bedrock_anthropic_sdk_streams(gateway):
    gateway.reset()
    with anthropic_bedrock(gateway, svid.mint(BOT)).messages.stream(model=CLAUDE_BEDROCK, max_tokens=64, messages=HI) as s:
        assert s.get_final_text() == "Hello from the stand-in provider."
    [seen] = gateway.requests_seen()
    assert seen["path"].endswith("/invoke-with-response-stream")


def test_bedrock_an_inference_profile_arn_is_decoded_once(gateway):
    """The SDK sends the ARN's `/` as %2F: Envoy keeps it, modelgate decodes
    the ARN once and decides the model the profile runs, and the provider
    receives the path as sent."""
    gateway.reset()
    anthropic_bedrock(gateway, svid.mint(RESEARCH)).messages.create(model=PROFILE_ARN, max_tokens=8, messages=HI)
    [seen] = gateway.requests_seen()
    assert "inference-profile%2Fus.anthropic" in seen["path"], seen["path"]
    record = audit(gateway, headers_of(seen, "x-request-id")[0])
    assert (record["model"], record["requested_model"]) == ("anthropic.claude-haiku-4-5-20251001-v1:0", PROFILE_ARN)
    gateway.reset()
    with pytest.raises(anthropic.PermissionDeniedError):
        anthropic_bedrock(gateway, svid.mint(BOT)).messages.create(model=OPUS_PROFILE_ARN, max_tokens=8, messages=HI)
    assert gateway.requests_seen() == []


def test_bedrock_a_capped_invoke_without_a_bound_is_refused(gateway):
    gateway.reset()
    body = {"anthropic_version": "bedrock-2023-05-31", "messages": HI}
    r = requests.post(f"{gateway.url}/bedrock/model/{CLAUDE_BEDROCK}/invoke", json=body,
                      headers={"authorization": f"Bearer {svid.mint(BOT)}"}, timeout=10)
    assert r.status_code == 403 and r.headers["x-amzn-errortype"] == "AccessDeniedException", r.text
    assert refusal(gateway, r)["detail"] == "max_tokens_missing"
    assert gateway.requests_seen() == []


@pytest.fixture(scope="module")
def tls_gateway():
    """The demo gateway behind TLS: boto3 sends a bearer token over HTTPS only."""
    def with_tls(config, _ports):
        listener = config["static_resources"]["listeners"][0]
        listener["filter_chains"][0]["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {"tls_certificates": [{
                    "certificate_chain": {"filename": str(X509 / "server.pem")},
                    "private_key": {"filename": str(X509 / "server.key")}}]},
            },
        }
    with running_gateway(mutate=with_tls) as gw:
        gw.url = gw.url.replace("http://127.0.0.1", "https://localhost")
        yield gw


def bedrock_runtime(gw, token, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", token)
    return boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=f"{gw.url}/bedrock",
                        verify=str(X509 / "ca.pem"), config=botocore.config.Config(retries={"max_attempts": 1}))


def test_boto3_converse_and_invoke(tls_gateway, monkeypatch):
    gw = tls_gateway
    gw.reset()
    token = svid.mint(BOT)
    client = bedrock_runtime(gw, token, monkeypatch)
    reply = client.converse(modelId=CLAUDE_BEDROCK, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert reply["usage"]["totalTokens"] > 0
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 32, "messages": HI})
    invoked = json.loads(client.invoke_model(modelId=CLAUDE_BEDROCK, body=body)["body"].read())
    assert invoked["content"][0]["text"]
    converse, invoke = gw.requests_seen()
    # boto3 encodes the model id's ':' as %3A; it arrives as sent.
    assert converse["path"] == "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/converse"
    assert json.loads(converse["body"])["inferenceConfig"] == {"maxTokens": 1024}
    for seen in (converse, invoke):
        assert_signed_by_the_gateway(seen, token)
    record = audit(gw, headers_of(converse, "x-request-id")[0])
    assert record["model"] == CLAUDE_BEDROCK


def test_boto3_converse_stream(tls_gateway, monkeypatch):
    client = bedrock_runtime(tls_gateway, svid.mint(BOT), monkeypatch)
    events = client.converse_stream(modelId=CLAUDE_BEDROCK, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    kinds = [next(iter(e)) for e in events["stream"]]
    assert kinds[0] == "messageStart" and kinds[-1] == "metadata"


def test_boto3_a_refused_model_is_access_denied(tls_gateway, monkeypatch):
    tls_gateway.reset()
    client = bedrock_runtime(tls_gateway, svid.mint(BOT), monkeypatch)
    with pytest.raises(client.exceptions.AccessDeniedException) as e:
        client.converse(modelId="meta.llama3-70b-instruct-v1:0", messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert "model_not_allowed" in e.value.response["Error"]["Message"]
    assert tls_gateway.requests_seen() == []


def test_boto3_sigv4_alone_is_no_identity(tls_gateway, monkeypatch):
    """A caller signing with its own AWS key has no SVID: refused, and its
    signature never reaches the provider."""
    tls_gateway.reset()
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=f"{tls_gateway.url}/bedrock",
                          aws_access_key_id="AKIACALLER", aws_secret_access_key="caller-secret",
                          verify=str(X509 / "ca.pem"), config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.converse(modelId=CLAUDE_BEDROCK, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert tls_gateway.requests_seen() == []


# --- Vertex -------------------------------------------------------------------


def anthropic_vertex(gw, token, project="acme-prod", region="us-east5"):
    return anthropic.AnthropicVertex(access_token=token, base_url=f"{gw.url}/vertex/v1", project_id=project,
                                     region=region, max_retries=0)


def test_vertex_anthropic_raw_predict_and_count_tokens(gateway):
    gateway.reset()
    token = svid.mint(BOT)
    client = anthropic_vertex(gateway, token)
    assert client.messages.create(model="claude-haiku-4-5@20251001", max_tokens=64, messages=HI).content
    assert client.messages.count_tokens(model="claude-haiku-4-5@20251001", messages=HI).input_tokens > 0
    raw, count = gateway.requests_seen()
    assert raw["path"] == "/v1/projects/acme-prod/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5@20251001:rawPredict"
    assert count["path"].endswith("/publishers/anthropic/models/count-tokens:rawPredict")
    only_gateway_credential(raw, token, "authorization", f"Bearer {gateway.keys['VERTEX_ACCESS_TOKEN']}")
    record = audit(gateway, headers_of(raw, "x-request-id")[0])
    assert record["model"] == "anthropic/claude-haiku-4-5@20251001"
    assert audit(gateway, headers_of(count, "x-request-id")[0])["model"] == "anthropic/claude-haiku-4-5@20251001"


def test_vertex_streams_and_refuses_other_models(gateway):
    gateway.reset()
    client = anthropic_vertex(gateway, svid.mint(BOT))
    with client.messages.stream(model="claude-haiku-4-5@20251001", max_tokens=64, messages=HI) as s:
        assert s.get_final_text()
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(model="claude-opus-4-1@20250805", max_tokens=64, messages=HI)
    [seen] = gateway.requests_seen()
    assert seen["path"].endswith(":streamRawPredict")


def test_vertex_another_project_or_location_is_refused(gateway):
    gateway.reset()
    for project, region, detail in [("someone-else", "us-east5", "vertex_project"), ("acme-prod", "asia-east1", "vertex_location")]:
        with pytest.raises(anthropic.PermissionDeniedError) as e:
            anthropic_vertex(gateway, svid.mint(RESEARCH), project, region).messages.create(
                model="claude-haiku-4-5@20251001", max_tokens=8, messages=HI)
        assert refusal(gateway, e.value.response)["detail"] == detail
    assert gateway.requests_seen() == []


def test_vertex_gemini_through_google_genai(gateway):
    gateway.reset()
    token = svid.mint(BOT)
    client = genai.Client(
        vertexai=True, project="acme-prod", location="us-east5",
        credentials=google.oauth2.credentials.Credentials(token=token),
        http_options=genai_types.HttpOptions(base_url=f"{gateway.url}/vertex/",
                                             retry_options=genai_types.HttpRetryOptions(attempts=1)))
    assert client.models.generate_content(model="gemini-2.5-flash", contents="hi").text
    [seen] = gateway.requests_seen()
    assert "/projects/acme-prod/locations/us-east5/publishers/google/models/gemini-2.5-flash:generateContent" in seen["path"]
    only_gateway_credential(seen, token, "authorization", f"Bearer {gateway.keys['VERTEX_ACCESS_TOKEN']}")
    assert audit(gateway, headers_of(seen, "x-request-id")[0])["model"] == "google/gemini-2.5-flash"
    with pytest.raises(genai_errors.ClientError) as e:
        client.models.generate_content(model="gemini-2.5-pro", contents="hi")
    assert e.value.code == 403


# --- limits on every api, and endpoints an allow rule opens --------------------------

CUSTOM_RULES = [
    {"id": "files-reader", "effect": "allow", "workloads": [RESEARCH], "providers": ["openai"],
     "models": [], "endpoints": ["GET /v1/files", "GET /v1/files/*"]},
    {"id": "no-stream", "effect": "allow", "workloads": [BOT], "providers": ["*"],
     "models": ["gemini-2.5-flash", CLAUDE_BEDROCK, "anthropic/claude-haiku-4-5*"],
     "limits": {"stream": False, "max_tokens": 100}},
    {"id": "chat", "effect": "allow", "workloads": [BOT, RESEARCH], "providers": ["*"], "models": ["gpt-4o-mini"]},
]


@pytest.fixture(scope="module")
def custom():
    with running_gateway({"rules": CUSTOM_RULES}) as gw:
        yield gw


def test_streaming_is_gated_on_every_api(custom):
    custom.reset()
    token = svid.mint(BOT)
    client = gemini(custom, token)
    with pytest.raises(genai_errors.ClientError) as e:
        list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert refusal(custom, e.value.response)["reason"] == "stream_not_allowed"
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        with anthropic_bedrock(custom, token).messages.stream(model=CLAUDE_BEDROCK, max_tokens=64, messages=HI) as s:
            s.get_final_text()
    assert refusal(custom, e.value.response)["reason"] == "stream_not_allowed"
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        anthropic_vertex(custom, token).messages.create(model="claude-haiku-4-5@20251001", max_tokens=64, messages=HI,
                                                        stream=True)
    assert refusal(custom, e.value.response)["reason"] == "stream_not_allowed"
    # Not streaming, under the cap: each goes on with the cap written in.
    assert client.models.generate_content(model="gemini-2.5-flash", contents="hi").text
    assert anthropic_vertex(custom, token).messages.create(model="claude-haiku-4-5@20251001", max_tokens=64,
                                                           messages=HI).content
    gem, vertex = custom.requests_seen()
    assert json.loads(gem["body"])["generationConfig"]["maxOutputTokens"] == 100
    assert json.loads(vertex["body"])["max_tokens"] == 64


def test_token_caps_on_every_api(custom):
    custom.reset()
    token = svid.mint(BOT)
    client = gemini(custom, token)
    with pytest.raises(genai_errors.ClientError) as e:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi",
                                       config=genai_types.GenerateContentConfig(max_output_tokens=500))
    assert refusal(custom, e.value.response)["detail"] == "maxOutputTokens>100"
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        anthropic_bedrock(custom, token).messages.create(model=CLAUDE_BEDROCK, max_tokens=500, messages=HI)
    assert refusal(custom, e.value.response)["detail"] == "max_tokens>100"
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        anthropic_vertex(custom, token).messages.create(model="claude-haiku-4-5@20251001", max_tokens=500, messages=HI)
    assert refusal(custom, e.value.response)["reason"] == "max_tokens_exceeded"
    assert custom.requests_seen() == []


def test_an_allow_rule_opens_only_the_endpoints_it_lists(custom):
    gw = custom
    gw.reset()

    def get(path, who):
        return requests.get(f"{gw.url}/openai{path}", headers={"authorization": f"Bearer {svid.mint(who)}"}, timeout=10)
    token_free = get("/v1/files?limit=2&api-key=caller-secret", RESEARCH)
    assert token_free.status_code == 404  # the stand-in has no files; it was reached
    [seen] = gw.requests_seen()
    assert seen["path"] == "/v1/files?limit=2"
    assert headers_of(seen, "authorization") == [f"Bearer {gw.openai_key}"]
    record = gw.audit_for(token_free.headers["x-request-id"])
    assert (record["decision"], record["rule"], record["endpoint"], record["model"]) == ("allow", "files-reader", "/v1/files", None)
    gw.reset()
    for path, who in [("/v1/files", BOT), ("/v1/files/file-1/content", RESEARCH)]:
        r = get(path, who)
        assert (r.status_code, r.headers["x-modelgate-reason"]) == (403, "endpoint_not_allowed"), path
    r = requests.post(f"{gw.url}/openai/v1/files", headers={"authorization": f"Bearer {svid.mint(RESEARCH)}"}, data=b"x",
                      timeout=10)
    assert r.status_code == 403
    assert gw.requests_seen() == []
