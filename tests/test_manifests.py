"""The deployment files users run where no engine or cluster runs here: the
compose file and the Istio manifests, validated with validators installed
from a package registry (tests/requirements.txt), and the Istio EnvoyFilter's
wasm filter run in the real Envoy. Nothing outside the repository is read.
"""

import copy
import json
import subprocess
from pathlib import Path

import compose_spec
import pytest
import requests
import yaml
from cloudcoil.models.istio.networking.v1alpha3 import EnvoyFilter
from cloudcoil.models.istio.networking.v1 import DestinationRule, Gateway, ServiceEntry, VirtualService
from cloudcoil.models.istio.security.v1 import PeerAuthentication
from cloudcoil.models.istio.telemetry.v1 import Telemetry

import svid
from conftest import running_gateway
from harness import ROOT, WASM

ISTIO = ROOT / "envoy" / "istio"
MODELS = {"EnvoyFilter": EnvoyFilter, "Telemetry": Telemetry, "ServiceEntry": ServiceEntry, "Gateway": Gateway,
          "VirtualService": VirtualService, "DestinationRule": DestinationRule, "PeerAuthentication": PeerAuthentication}


def unknown_fields(doc, back, path=""):
    """Keys of `doc` that the model dropped: fields Istio does not know."""
    if isinstance(doc, dict):
        out = []
        for key, value in doc.items():
            if not isinstance(back, dict) or key not in back:
                out.append(f"{path}/{key}")
            elif not (path.endswith("/patch") and key == "value"):  # Envoy config: a free-form Struct
                out += unknown_fields(value, back[key], f"{path}/{key}")
        return out
    if isinstance(doc, list) and isinstance(back, list):
        return [p for i, (a, b) in enumerate(zip(doc, back)) for p in unknown_fields(a, b, f"{path}/{i}")]
    return []


def validate_istio(doc: dict) -> None:
    """Istio's own schema (cloudcoil-models-istio, generated from Istio's
    CRDs): wrong types and enum values are refused by the model, fields it
    does not know by the round trip."""
    model = MODELS[doc["kind"]].model_validate(doc)
    back = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    unknown = unknown_fields(doc, back)
    if unknown:
        raise ValueError(f"unknown fields: {unknown}")


def istio_docs():
    return [(path.name, doc) for path in sorted(ISTIO.rglob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]


@pytest.mark.parametrize("name,doc", istio_docs(), ids=lambda v: v if isinstance(v, str) else "")
def test_istio_manifests_are_valid(name, doc):
    validate_istio(doc)


def envoyfilter():
    return yaml.safe_load((ISTIO / "envoyfilter-modelgate.yaml").read_text())


def wasm_patch(doc):
    return next(p for p in doc["spec"]["configPatches"] if p["applyTo"] == "HTTP_FILTER")


@pytest.mark.parametrize("mutate", [
    lambda d: wasm_patch(d)["patch"].update(operation="INSERT_SOMEWHERE"),
    lambda d: wasm_patch(d).update(applyTo="HTTP_FILTERS"),
    lambda d: d["spec"].update(workloadSelectr={"labels": {}}),
    lambda d: wasm_patch(d)["match"].update(context="EVERYWHERE"),
])
def test_the_validator_refuses_a_broken_manifest(mutate):
    """The validation above can fail: each of these is refused."""
    doc = envoyfilter()
    mutate(doc)
    with pytest.raises(ValueError):
        validate_istio(doc)


def test_the_envoyfilter_holds_requests_and_fails_closed():
    config = wasm_patch(envoyfilter())["patch"]["value"]["typed_config"]
    assert config["@type"] == "type.googleapis.com/udpa.type.v1.TypedStruct"
    wasm = config["value"]["config"]
    assert wasm["allow_on_headers_stop_iteration"] is True
    assert wasm["failure_policy"] == "FAIL_CLOSED"
    assert wasm["vm_config"]["environment_variables"]["host_env_keys"] == ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"]


def with_the_envoyfilters_wasm_filter(config, _ports):
    """The demo Envoy with its wasm filter replaced by the EnvoyFilter's, as
    written — only the code source changed to the built file."""
    value = copy.deepcopy(wasm_patch(envoyfilter())["patch"]["value"])
    value["typed_config"]["value"]["config"]["vm_config"]["code"] = {"local": {"filename": str(WASM)}}
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = [value if f["name"] == "envoy.filters.http.wasm" else f for f in hcm["http_filters"]]
    # The egress gateway routes api.openai.com to the provider.
    hcm["route_config"]["virtual_hosts"][0]["routes"] = [{"match": {"prefix": "/"}, "route": {"cluster": "llm_upstream"}}]


def test_the_envoyfilters_wasm_filter_runs_and_decides_in_the_real_envoy():
    with running_gateway(mutate=with_the_envoyfilters_wasm_filter) as gw:
        token = svid.mint("spiffe://example.org/ns/support/sa/bot")
        for model, status in (("gpt-4o-mini", 200), ("gpt-4o", 403)):
            gw.reset()
            r = requests.post(f"{gw.url}/v1/chat/completions", json={"model": model, "messages": []}, timeout=10,
                              headers={"host": "api.openai.com", "authorization": f"Bearer {token}"})
            assert r.status_code == status
            record = gw.audit_for(r.headers["x-request-id"])
            assert (record["provider"], record["decision"]) == ("openai", "allow" if status == 200 else "deny")
            assert len(gw.requests_seen()) == (1 if status == 200 else 0)


def test_docker_compose_is_valid_and_runs_the_same_envoy_config():
    text = (ROOT / "envoy" / "docker-compose.yaml").read_text()
    compose_spec.PyCompose.from_yaml(text)
    compose = yaml.safe_load(text)
    envoy = compose["services"]["envoy"]
    assert "./envoy.yaml:/modelgate/envoy/envoy.yaml:ro" in envoy["volumes"]
    assert envoy["image"] == "envoyproxy/envoy:v1.40-latest"
    # The provider shares Envoy's network, so envoy.yaml's 127.0.0.1:18080 reaches it.
    assert compose["services"]["upstream"]["network_mode"] == "service:envoy"
    broken = copy.deepcopy(compose)
    broken["services"]["envoy"]["restart"] = "sometimes"
    with pytest.raises(Exception):
        compose_spec.PyCompose.from_yaml(yaml.safe_dump(broken))
    broken = copy.deepcopy(compose)
    broken["services"]["envoy"]["volume"] = []
    with pytest.raises(Exception):
        compose_spec.PyCompose.from_yaml(yaml.safe_dump(broken))


def test_envoy_yaml_holds_requests_itself():
    """No buffer filter: modelgate holds the request (the flag), and Envoy's
    path normalization stays on (the filter does not depend on it)."""
    config = yaml.safe_load((ROOT / "envoy" / "envoy.yaml").read_text())
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    names = [f["name"] for f in hcm["http_filters"]]
    assert names == ["envoy.filters.http.wasm", "modelgate.released", "envoy.filters.http.aws_request_signing",
                     "envoy.filters.http.router"]
    # SigV4 signing runs after modelgate, on the Bedrock route only.
    assert hcm["http_filters"][2]["disabled"] is True
    wasm = hcm["http_filters"][0]["typed_config"]["config"]
    assert wasm["allow_on_headers_stop_iteration"] is True and wasm["fail_open"] is False
    assert hcm["normalize_path"] and hcm["merge_slashes"]
    # Bedrock ARNs arrive with %2F; modelgate refuses escapes elsewhere.
    assert hcm["path_with_escaped_slashes_action"] == "KEEP_UNCHANGED"


def envoyfilter_policy() -> str:
    config = wasm_patch(envoyfilter())["patch"]["value"]["typed_config"]["value"]["config"]["configuration"]
    return config["value"] if isinstance(config, dict) and "value" in config else config


def test_the_egress_recipe_sends_mesh_mtls_to_the_gateway_and_tls_to_the_providers():
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all((ISTIO / "egress-gateway.yaml").read_text())}
    assert docs[("PeerAuthentication", "egressgateway-strict")]["spec"]["mtls"]["mode"] == "STRICT"
    assert docs[("Gateway", "llm-egress")]["spec"]["servers"][0]["tls"]["mode"] == "ISTIO_MUTUAL"
    hosts = set(docs[("ServiceEntry", "llm-providers")]["spec"]["hosts"])
    policy = json.loads(envoyfilter_policy())
    authorities = {a for p in policy["providers"] for a in p["match"].get("authorities", [])}
    assert hosts <= authorities, "every provider the mesh sends to the gateway has a modelgate provider"


def test_the_envoyfilters_policy_passes_modelgate_check(tmp_path):
    value = envoyfilter_policy()
    (tmp_path / "policy.json").write_text(value)
    r = subprocess.run(["cargo", "run", "-q", "-p", "modelgate-cli", "--bin", "modelgate", "--", "check",
                        str(tmp_path / "policy.json")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr


def test_the_sidecar_variant_is_the_gateway_envoyfilter_with_three_changes():
    gateway = envoyfilter()
    sidecar = yaml.safe_load((ISTIO / "sidecar" / "envoyfilter-modelgate-sidecar.yaml").read_text())
    assert sidecar["metadata"] == {"name": "modelgate-sidecar", "namespace": "agents"}
    assert sidecar["spec"]["workloadSelector"] == {"labels": {"app": "llm-agent"}}
    assert {p["match"]["context"] for p in sidecar["spec"]["configPatches"]} == {"SIDECAR_OUTBOUND"}
    for p in gateway["spec"]["configPatches"]:
        p["match"]["context"] = "SIDECAR_OUTBOUND"
    gateway["spec"]["workloadSelector"] = sidecar["spec"]["workloadSelector"]
    gateway["metadata"] = sidecar["metadata"]
    assert sidecar == gateway


def test_the_envoyfilter_puts_envoy_yamls_backstop_after_modelgate():
    """The RBAC backstop that refuses what modelgate did not release is the
    same filter in the Istio patch as in envoy/envoy.yaml (where
    test_hot_reload.py proves it), inserted before the router after the
    wasm filter's own patch, so it runs after modelgate."""
    config = yaml.safe_load((ROOT / "envoy" / "envoy.yaml").read_text())
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    [shipped] = [f for f in hcm["http_filters"] if f["name"] == "modelgate.released"]
    patches = [p for p in envoyfilter()["spec"]["configPatches"] if p["applyTo"] == "HTTP_FILTER"]
    assert [p["patch"]["value"]["name"] for p in patches] == ["envoy.filters.http.wasm", "modelgate.released"]
    assert {p["patch"]["operation"] for p in patches} == {"INSERT_BEFORE"}
    assert patches[1]["patch"]["value"] == shipped
    assert patches[1]["match"] == patches[0]["match"]
