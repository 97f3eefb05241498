"""The deployment files users run where no engine runs here: validated
against the Compose Specification schema from ../shared."""

import json
from pathlib import Path

import jsonschema
import yaml

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
