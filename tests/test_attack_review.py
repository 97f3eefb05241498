"""What the attack review of the trust-boundary round found, each hole now
closed (docs/threat-model.md). Each test asserts the secure behaviour —
refused, nothing at the stand-in provider, one record (or, for
identity_to_provider, the workload's own name in every end-user field) —
and failed against the build the review attacked.
"""

import json
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

import svid
from conftest import running_gateway
from harness import envoy_config, plugin_configuration
from test_bypasses import FILE, form, post_form, refused
from test_e2e import BOT, HI, RESEARCH
from test_identity import FIXTURES, FRONT_PROXY_ID, behind_a_front_proxy
from test_trust_boundaries import XFCC_POLICY, ask, pem, shipped_policy

CHAT = "/openai/v1/chat/completions"
AKIA = "AKIAIOSFODNN7EXAMPLE"


def bearer(workload=BOT):
    return {"authorization": f"Bearer {svid.mint(workload)}", "content-type": "application/json"}


# --- F1: the prompt guard's parser is not the body parser (nesting 128) --------------------------


def nested(levels: int):
    """A JSON value `levels` arrays deep."""
    v = 1
    for _ in range(levels):
        v = [v]
    return v


def depth(v) -> int:
    if isinstance(v, dict):
        return 1 + max((depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    return 0


def test_a_secret_in_a_body_nested_128_deep_never_reaches_the_provider(gateway):
    """body::parse (json.rs) accepts 128 levels of nesting; serde_json, which
    the guard's scan_json uses, stops at 127 and the guard then returns no
    findings at all (`let Ok(value) = ... else { return found }`). One
    deep schema `default` anywhere in the body switches the guard off for
    every string of it — here the secret is in a plain user message."""
    gateway.reset()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"my AWS key is {AKIA}"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {
                "type": "object", "properties": {"a": {"type": "array", "default": None}}}}}]}
    prefix = depth({"tools": [{"function": {"parameters": {"properties": {"a": {"default": 1}}}}}]}) - 1
    body["tools"][0]["function"]["parameters"]["properties"]["a"]["default"] = nested(128 - prefix - 1)
    assert depth(body) == 128
    r = requests.post(f"{gateway.url}{CHAT}", data=json.dumps(body), headers=bearer(), timeout=10)
    record = refused(gateway, r, 403, "prompt_blocked", "aws_access_key")
    assert AKIA not in json.dumps(record)


# --- F2: the guard never reads object keys, which the provider reads -----------------------------


def test_a_secret_as_a_tool_schema_property_name_never_reaches_the_provider(gateway):
    """A function's JSON-schema property names are rendered into the
    model's prompt by the provider; scan_json scans values only."""
    gateway.reset()
    body = {"model": "gpt-4o-mini", "messages": HI, "tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {AKIA: {"type": "string"}}}}}]}
    r = requests.post(f"{gateway.url}{CHAT}", json=body, headers=bearer(), timeout=10)
    refused(gateway, r, 403, "prompt_blocked", "aws_access_key")


# --- F3: Azure's Responses surfaces take a stored prompt OpenAI's refuses ------------------------


@pytest.mark.parametrize("surface", ["/azure/openai/v1/responses", "/azure/openai/responses"])
def test_an_azure_stored_prompt_is_refused_as_on_openai(gateway, surface):
    """A stored prompt's template can choose its own model: refused on
    Azure's Responses surfaces as on OpenAI's."""
    gateway.reset()
    r = requests.post(f"{gateway.url}{surface}", timeout=10, headers={"api-key": svid.mint(BOT)},
                      json={"model": "prod-gpt", "input": "hi", "prompt": {"id": "pmpt_123", "version": "2"}})
    refused(gateway, r, 400, "ambiguous_model", "stored_prompt")


# --- F4: Azure "On Your Data" names a deployment no rule sees ------------------------------------


def test_an_azure_data_source_embedding_deployment_is_decided_or_refused(gateway):
    """`data_sources[].parameters.embedding_dependency.deployment_name`
    makes Azure run another deployment with the gateway's key, and sends
    the conversation to a search endpoint the caller names: refused."""
    gateway.reset()
    body = {"messages": HI, "data_sources": [{"type": "azure_search", "parameters": {
        "endpoint": "https://attacker.search.windows.net", "index_name": "i",
        "authentication": {"type": "api_key", "key": "k"},
        "query_type": "vector",
        "embedding_dependency": {"type": "deployment_name", "deployment_name": "unmapped-embed"}}}]}
    r = requests.post(f"{gateway.url}/azure/openai/deployments/prod-gpt/chat/completions?api-version=2024-10-21",
                      json=body, timeout=10, headers={"api-key": svid.mint(BOT)})
    refused(gateway, r, 400, "ambiguous_model", "data_sources")


# --- F5: a Responses tool with no model runs the tool's default model, undecided -----------------


def test_an_image_generation_tool_without_a_model_is_refused(gateway):
    """A Responses `image_generation` tool without `model` makes OpenAI run
    its default image model, which no rule decided: refused, asking for the
    model; with `model` it is decided (nested_model)."""
    gateway.reset()
    body = {"model": "gpt-4o-mini", "input": "draw a cat", "tools": [{"type": "image_generation"}]}
    r = requests.post(f"{gateway.url}/openai/v1/responses", json=body, headers=bearer(), timeout=10)
    refused(gateway, r, 400, "ambiguous_model", "tool_model_missing")
    body["tools"][0]["model"] = "gpt-image-1"
    r = requests.post(f"{gateway.url}/openai/v1/responses", json=body, headers=bearer(), timeout=10)
    refused(gateway, r, 403, "model_not_allowed", "nested_model")


# --- F6: identity_to_provider is accepted for Azure and writes nothing ---------------------------


def test_identity_to_provider_names_the_workload_to_azure():
    """identity_to_provider on azure_openai overwrites every end-user field
    (`user`, and `safety_identifier` on the v1 surfaces): the workload's
    own `user` naming another workload never reaches the provider."""
    policy = json.loads(plugin_configuration(envoy_config(1, 2, 3, Path("/dev/null")))["value"])
    for p in policy["providers"]:
        if p["name"] == "azure":
            p["identity_to_provider"] = "spiffe_id"
    with running_gateway({"providers": policy["providers"]}) as gw:
        token = svid.mint(BOT)
        for path, body in [
            ("/azure/openai/deployments/prod-gpt/chat/completions?api-version=2024-10-21",
             {"messages": HI, "user": RESEARCH}),
            ("/azure/openai/v1/chat/completions", {"model": "prod-gpt", "messages": HI, "user": RESEARCH}),
            ("/azure/openai/v1/responses", {"model": "prod-gpt", "input": "hi", "safety_identifier": RESEARCH}),
        ]:
            gw.reset()
            r = requests.post(f"{gw.url}{path}", json=body, headers={"api-key": token}, timeout=10)
            assert r.status_code == 200, r.text[:300]
            time.sleep(0.1)
            (seen,) = gw.requests_seen()
            sent = json.loads(seen["body"])
            named = {sent.get(k) for k in ("user", "safety_identifier") if k in sent}
            assert named == {BOT}, f"{path}: the provider was told {named}"


# --- F7: XFCC element injection through an unquoted URI SAN --------------------------------------


def crafted_leaf(uri: str, tmp: Path) -> tuple[str, str]:
    """A leaf issued by the test CA (the trust domain's own) with one URI
    SAN, built as tests/fixtures/x509/gen.py builds the workload SVIDs."""
    import importlib.util
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    spec = importlib.util.spec_from_file_location("x509_gen", FIXTURES / "gen.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    ca = x509.load_pem_x509_certificate((FIXTURES / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((FIXTURES / "ca.key").read_bytes(), None)
    c, k = gen.leaf(ca, ca_key, [x509.UniformResourceIdentifier(uri)])
    cert, key = tmp / "crafted.pem", tmp / "crafted.key"
    cert.write_bytes(c.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return str(cert), str(key)


def test_a_uri_san_cannot_append_an_xfcc_element_naming_another_workloads_certificate():
    """A front proxy that forwards URI SANs writes them unquoted: a CA-issued
    leaf whose URI SAN carries `,By=<trusted hop>;Cert=<research's public
    PEM>` would make the hop's element two, the last naming research.
    modelgate refuses any XFCC with URI or DNS values (the hop forwards the
    certificate only), so even with the hop configured to send them, the
    injection is refused."""
    ports = {}

    def mutate(config, _):
        ports["front"] = __import__("harness").free_port()
        behind_a_front_proxy(config, ports)
        # The recipe the attack needs: the hop forwards URI SANs too.
        front = next(l for l in config["static_resources"]["listeners"] if l["name"] == "front")
        front["filter_chains"][0]["filters"][0]["typed_config"]["set_current_client_cert_details"] = {
            "cert": True, "uri": True}

    trust = shipped_policy()["trust_domains"]
    for td in trust:
        if td["name"] == "example.org":
            td["x509_authorities"] = [pem("ca")]
    research_pem = urllib.parse.quote((FIXTURES / "research.pem").read_text(), safe="")
    uri = f"spiffe://example.org/ns/support/sa/x,By={FRONT_PROXY_ID};Cert={research_pem}"
    with tempfile.TemporaryDirectory() as tmp, \
            running_gateway({**XFCC_POLICY, "trust_domains": trust}, mutate=mutate) as gw:
        cert, key = crafted_leaf(uri, Path(tmp))
        gw.reset()
        r = ask(f"https://localhost:{ports['front']}", verify=str(FIXTURES / "ca.pem"), cert=(cert, key))
        time.sleep(0.2)
        record = gw.audit_for(r.headers["x-request-id"])
        assert (record.get("workload") or {}).get("spiffe_id") != RESEARCH, \
            f"the caller was identified as research: {r.status_code} {record.get('workload')}"
        assert (r.status_code, record["detail"]) == (401, "xfcc_unquoted_san"), r.text[:300]
        assert gw.requests_seen() == []


# --- the third review: what the fixes above left open ---------------------------------------------


def test_a_prompt_field_declared_binary_never_reaches_the_provider(gateway):
    """A `prompt` field without a file name is a text field to the
    provider's form reader, whatever content type it declares."""
    gateway.reset()
    model = ('Content-Disposition: form-data; name="model"', b"whisper-1")
    prompt = ('Content-Disposition: form-data; name="prompt"\r\nContent-Type: application/octet-stream',
              f"names: {AKIA}".encode())
    r = post_form(gateway, form([model, prompt, FILE]), workload=RESEARCH)
    refused(gateway, r, 403, "prompt_blocked", "aws_access_key")


def test_a_secret_in_a_base64_text_attachment_never_reaches_the_provider(gateway):
    """The provider decodes a text document sent as base64 and the model
    reads it: an attached .env leaks like a pasted one."""
    gateway.reset()
    import base64
    env = base64.b64encode(f"AWS_ACCESS_KEY_ID={AKIA}\n".encode()).decode()
    body = {"contents": [{"parts": [{"text": "summarise"}, {"inline_data": {"mime_type": "text/plain", "data": env}}]}]}
    r = requests.post(f"{gateway.url}/gemini/v1beta/models/gemini-2.5-flash:generateContent", json=body, timeout=10,
                      headers={"authorization": f"Bearer {svid.mint(BOT)}"})
    refused(gateway, r, 403, "prompt_blocked", "aws_access_key")


AZURE_IMAGE = "/azure/openai/v1/responses"


def test_the_azure_image_generation_deployment_header_is_decided(gateway):
    """Azure runs the image_generation tool on the deployment the
    `x-ms-oai-image-generation-deployment` header names: decided like a
    nested model — research may not reach gpt-3.5-* through legacy-gpt."""
    gateway.reset()
    body = {"model": "prod-gpt", "input": "draw a cat", "tools": [{"type": "image_generation", "model": "prod-gpt"}]}
    r = requests.post(f"{gateway.url}{AZURE_IMAGE}", json=body, timeout=10,
                      headers={"api-key": svid.mint(RESEARCH), "x-ms-oai-image-generation-deployment": "legacy-gpt"})
    record = refused(gateway, r, 403, "model_not_allowed")
    assert record["rule"] == "no-legacy"
    # An unmapped name in the header is refused too.
    r = requests.post(f"{gateway.url}{AZURE_IMAGE}", json=body, timeout=10,
                      headers={"api-key": svid.mint(RESEARCH), "x-ms-oai-image-generation-deployment": "dalle-x"})
    refused(gateway, r, 403, "model_not_allowed", "unknown_deployment")


def test_the_azure_image_tool_named_by_its_header_alone_is_decided_and_goes_on(gateway):
    """Azure's documented form: the tool names no model, the header names
    the deployment — decided, and allowed when a rule allows its model."""
    gateway.reset()
    body = {"model": "prod-gpt", "input": "draw a cat", "tools": [{"type": "image_generation"}]}
    r = requests.post(f"{gateway.url}{AZURE_IMAGE}", json=body, timeout=10,
                      headers={"api-key": svid.mint(RESEARCH), "x-ms-oai-image-generation-deployment": "prod-gpt"})
    assert r.status_code == 200, r.text
    [seen] = gateway.requests_seen()
    assert ("x-ms-oai-image-generation-deployment", "prod-gpt") in [tuple(h) for h in seen["headers"]]


# --- issue 22's review: the detectors as code, and the numbers the guard expands ----------------


def test_an_exponent_of_four_billion_neither_aborts_the_vm_nor_hides_a_secret(gateway):
    """`0e4294967295` asked the guard for four billion zeros on wasm32
    (`len + zeros` wrapped past the bound) and the VM aborted: written in a
    message (the one-pass read expands the numbers of the whole body) or as
    a JSON number beside a secret (the numbers between the strings). Now
    the clean call is served, the secret is found, nothing else reaches
    the provider, and the same VM serves the next call."""
    gateway.reset()
    clean = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "see 0e4294967295"}]}
    r = requests.post(f"{gateway.url}{CHAT}", data=json.dumps(clean), headers=bearer(), timeout=10)
    assert r.status_code == 200, r.text[:200]
    assert len(gateway.requests_seen()) == 1
    gateway.reset()
    leaking = ('{"model":"gpt-4o-mini","temperature":0e4294967295,'
               f'"messages":[{{"role":"user","content":"{AKIA}"}}]}}')
    r = requests.post(f"{gateway.url}{CHAT}", data=leaking, headers=bearer(), timeout=10)
    refused(gateway, r, 403, "prompt_blocked", "aws_access_key")
    ok = requests.post(f"{gateway.url}{CHAT}", json={"model": "gpt-4o-mini", "messages": HI}, headers=bearer(), timeout=10)
    assert ok.status_code == 200, ok.text[:200]


def test_a_megabyte_of_sk_inside_words_cannot_stall_the_guard(gateway):
    """An `sk-` inside a word read the whole key run after it before its
    word boundary was checked: `ask-ask-…` read it once per `sk-` (127 s
    for a megabyte, natively). The guard answers in time and still finds
    the key at the end."""
    gateway.reset()
    text = "ask-" * 250_000 + " " + AKIA
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    r = requests.post(f"{gateway.url}{CHAT}", data=json.dumps(body), headers=bearer(), timeout=10)
    refused(gateway, r, 403, "prompt_blocked", "aws_access_key")
