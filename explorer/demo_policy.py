"""Prints the demo policy (envoy/envoy.yaml's) for the explorer page to start with."""

from pathlib import Path

import yaml

config = yaml.safe_load((Path(__file__).resolve().parent.parent / "envoy" / "envoy.yaml").read_text())
hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
wasm = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.wasm")
print(wasm["typed_config"]["config"]["configuration"]["value"])
