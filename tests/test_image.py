"""`make image`: the Wasm OCI image layout (Istio's compat variant) built
without Docker. Every descriptor's digest and size is checked against its
blob, the one layer holds exactly plugin.wasm = build/modelgate.wasm, and
two builds give the same digests."""

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile

from harness import ROOT, WASM


def build(out, tag="0.1.0"):
    subprocess.run([sys.executable, str(ROOT / "envoy" / "image" / "oci.py"), "--wasm", str(WASM), "--out", str(out),
                    "--tag", tag], check=True, capture_output=True, timeout=120)


def blob(out, descriptor) -> bytes:
    algorithm, hexdigest = descriptor["digest"].split(":")
    data = (out / "blobs" / algorithm / hexdigest).read_bytes()
    assert algorithm == "sha256" and hashlib.sha256(data).hexdigest() == hexdigest, descriptor
    assert len(data) == descriptor["size"], descriptor
    return data


def test_the_layout_is_well_formed_and_every_digest_holds(tmp_path):
    out = tmp_path / "oci"
    build(out)
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((out / "index.json").read_text())
    assert index["schemaVersion"] == 2
    [ref] = index["manifests"]
    assert ref["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert ref["annotations"]["org.opencontainers.image.ref.name"] == "0.1.0"
    manifest = json.loads(blob(out, ref))
    assert manifest["mediaType"] == ref["mediaType"] and manifest["schemaVersion"] == 2
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    config = json.loads(blob(out, manifest["config"]))
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    tar_bytes = gzip.decompress(blob(out, layer))
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        [member] = tar.getmembers()
        assert member.name == "plugin.wasm" and member.isfile()
        assert tar.extractfile(member).read() == WASM.read_bytes()
    blobs = {p.name for p in (out / "blobs" / "sha256").iterdir()}
    assert len(blobs) == 3, "the layer, the config and the manifest, nothing else"


def test_builds_are_reproducible(tmp_path):
    build(tmp_path / "a")
    build(tmp_path / "b")
    assert (tmp_path / "a" / "index.json").read_text() == (tmp_path / "b" / "index.json").read_text()


def test_the_dockerfile_builds_the_same_single_layer():
    lines = [line for line in (ROOT / "envoy" / "image" / "Dockerfile").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines == ["FROM scratch", "COPY build/modelgate.wasm ./plugin.wasm"]
