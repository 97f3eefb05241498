"""The deployment files users run where no engine or cluster runs here:
validated against the Compose Specification schema and Istio's CRDs from
../shared, and the Istio policy run in the real filter."""

import json
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml

import svid
from conftest import running_gateway

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def test_docker_compose_is_valid_and_runs_the_same_envoy_config():
    schema = json.loads((SHARED / "compose" / "compose-spec.json").read_text())
    compose = yaml.safe_load((ROOT / "envoy" / "docker-compose.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(compose)  # the schema says draft-07 (without the #)
    envoy = compose["services"]["envoy"]
    assert "./envoy.yaml:/modelgate/envoy/envoy.yaml:ro" in envoy["volumes"]
    assert envoy["image"] == "envoyproxy/envoy:v1.40-latest"
    # The provider shares Envoy's network, so envoy.yaml's 127.0.0.1:18080 reaches it.
    assert compose["services"]["upstream"]["network_mode"] == "service:envoy"


def test_envoy_yaml_keeps_the_buffer_filter_right_after_modelgate():
    """Without it the provider would see the headers of requests modelgate then refuses."""
    config = yaml.safe_load((ROOT / "envoy" / "envoy.yaml").read_text())
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    names = [f["name"] for f in hcm["http_filters"]]
    assert names == ["envoy.filters.http.wasm", "envoy.filters.http.buffer", "envoy.filters.http.router"]
    assert hcm["normalize_path"] and hcm["merge_slashes"]
    assert hcm["path_with_escaped_slashes_action"] == "REJECT_REQUEST"
    wasm = hcm["http_filters"][0]["typed_config"]["config"]
    assert wasm["fail_open"] is False


def crd_schema(kind: str) -> dict:
    """The openAPIV3Schema of an Istio CRD's served version."""
    for doc in yaml.safe_load_all((SHARED / "istio" / "crds.gen.yaml").read_text()):
        if doc and doc["spec"]["names"]["kind"] == kind:
            version = next(v for v in doc["spec"]["versions"] if v.get("served") and v.get("storage"))
            return version["schema"]["openAPIV3Schema"]
    raise AssertionError(f"no CRD for {kind}")


def test_istio_manifests_are_valid_against_istios_crds():
    for name in ("wasmplugin.yaml", "envoyfilter-buffer.yaml", "telemetry.yaml"):
        doc = yaml.safe_load((ROOT / "envoy" / "istio" / name).read_text())
        jsonschema.Draft7Validator(crd_schema(doc["kind"])).validate(doc)


def test_the_wasmplugin_fails_closed_and_reads_keys_from_the_gateway():
    spec = yaml.safe_load((ROOT / "envoy" / "istio" / "wasmplugin.yaml").read_text())["spec"]
    assert spec["failStrategy"] == "FAIL_CLOSE"
    assert all(env["valueFrom"] == "HOST" and "value" not in env for env in spec["vmConfig"]["env"])
    invalid = {**spec, "failStrategy": "FAIL_SOMETIMES"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(crd_schema("WasmPlugin")).validate({"apiVersion": "x", "kind": "WasmPlugin", "spec": invalid})


def test_the_wasmplugin_policy_runs_in_the_real_filter():
    """Istio hands pluginConfig to the filter as JSON: it must be a policy
    the filter accepts, and decide as the demo's does."""
    policy = yaml.safe_load((ROOT / "envoy" / "istio" / "wasmplugin.yaml").read_text())["spec"]["pluginConfig"]
    with running_gateway(policy) as gw:
        for model, decision in (("gpt-4o-mini", "allow"), ("gpt-4o", "deny")):
            r = requests.post(f"{gw.url}/v1/chat/completions", json={"model": model, "messages": []}, timeout=10,
                              headers={"host": "api.openai.com", "authorization": f"Bearer {svid.mint('spiffe://example.org/ns/support/sa/bot')}"})
            record = gw.audit_for(r.headers["x-request-id"])
            assert (record["provider"], record["decision"]) == ("openai", decision)
