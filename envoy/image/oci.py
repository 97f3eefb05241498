"""Builds the Wasm OCI image of build/modelgate.wasm without Docker: the
"compat" variant Istio's WasmPlugin pulls (one gzip layer holding
`plugin.wasm`), written as an OCI image layout that oras, crane and
skopeo push as it is.

    python envoy/image/oci.py [--wasm build/modelgate.wasm] [--out build/oci] [--tag 0.1.0]

Reproducible: the same wasm gives the same digests (tar and gzip carry no
time, owner or host)."""

import argparse
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def layer_tar(wasm: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("plugin.wasm")
        info.size, info.mode, info.mtime, info.uid, info.gid = len(wasm), 0o444, 0, 0, 0
        tar.addfile(info, io.BytesIO(wasm))
    return out.getvalue()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build(wasm_path: Path, out: Path, tag: str) -> dict:
    wasm = wasm_path.read_bytes()
    tar = layer_tar(wasm)
    layer = gzip.compress(tar, mtime=0)
    config = json.dumps({
        "architecture": "wasm", "os": "wasip1",
        "config": {"Labels": {"org.opencontainers.image.title": "modelgate"}},
        "rootfs": {"type": "layers", "diff_ids": [digest(tar)]},
    }, sort_keys=True, separators=(",", ":")).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": LAYER, "digest": digest(layer), "size": len(layer),
                    "annotations": {"org.opencontainers.image.title": "plugin.wasm"}}],
        "annotations": {"org.opencontainers.image.title": "modelgate",
                        "org.opencontainers.image.description": "modelgate proxy-wasm filter (wasm32-wasip1)",
                        "org.opencontainers.image.version": tag},
    }, sort_keys=True, separators=(",", ":")).encode()
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for blob in (layer, config, manifest):
        (blobs / digest(blob).removeprefix("sha256:")).write_bytes(blob)
    (out / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": MANIFEST, "digest": digest(manifest), "size": len(manifest),
                            "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    (out / "index.json").write_text(json.dumps(index, indent=2))
    return index


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wasm", default=str(ROOT / "build" / "modelgate.wasm"))
    parser.add_argument("--out", default=str(ROOT / "build" / "oci"))
    parser.add_argument("--tag", default="0.1.0")
    args = parser.parse_args()
    index = build(Path(args.wasm), Path(args.out), args.tag)
    ref = index["manifests"][0]
    print(f"OCI image layout in {args.out}: {args.tag} → {ref['digest']}")
    print(f"push it:  oras cp --from-oci-layout {args.out}:{args.tag} REGISTRY/modelgate:{args.tag}")
    print(f"     or:  skopeo copy oci:{args.out}:{args.tag} docker://REGISTRY/modelgate:{args.tag}")


if __name__ == "__main__":
    main()
