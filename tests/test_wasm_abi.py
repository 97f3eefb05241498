"""The workspace builds a loadable modelgate.wasm however it is invoked: the
bare `cargo build --release --target wasm32-wasip1` at the workspace root
(no `-p`), like `make wasm`, writes a module that exports the proxy-wasm ABI.

Once it wrote the policies CLI (a WASI command, also named `modelgate`)
over the filter: three exports (`_start`, `__main_void`, `memory`) and a
module Envoy cannot load. The export section is read here, with no
dependency; the build reuses the workspace's target directory, so it is
quick when `make wasm` has run."""

import subprocess

from harness import ROOT

ARTIFACT = ROOT / "target" / "wasm32-wasip1" / "release" / "modelgate.wasm"

# What Envoy calls: the ABI version, the contexts, the HTTP callbacks, the
# call-out answers, the timer, and the host's allocator.
PROXY_WASM_ABI = {
    "proxy_abi_version_0_2_1",
    "proxy_on_memory_allocate",
    "proxy_on_context_create",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_tick",
    "proxy_on_done",
    "proxy_on_delete",
    "proxy_on_log",
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_http_call_response",
    "memory",
}


def leb128(data: bytes, at: int) -> tuple:
    """An unsigned LEB128 number at `at`, and the offset after it."""
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def exports(module: bytes) -> set:
    """The names in a wasm module's export section (section 7)."""
    assert module[:4] == b"\0asm", "not a wasm module"
    assert module[4:8] == b"\x01\0\0\0", "not wasm version 1"
    names, at = set(), 8
    while at < len(module):
        section = module[at]
        size, at = leb128(module, at + 1)
        end = at + size
        if section == 7:
            count, i = leb128(module, at)
            for _ in range(count):
                length, i = leb128(module, i)
                names.add(module[i:i + length].decode())
                i += length + 1  # the name, then the export's kind byte
                _, i = leb128(module, i)  # and its index
        at = end
    return names


def test_the_export_reader_reads_a_known_module():
    # (module (memory 1) (func) (export "memory" (memory 0)) (export "f" (func 0)))
    module = bytes.fromhex(
        "0061736d01000000"  # magic, version
        "010401600000"  # type section: one () -> ()
        "03020100"  # function section: one function of type 0
        "0503010001"  # memory section: one memory, min 1
        "070e02066d656d6f7279020001660000"  # exports: "memory" (memory 0), "f" (func 0)
        "0a040102000b"  # code section: an empty body
    )
    assert exports(module) == {"memory", "f"}


def test_the_bare_workspace_build_writes_the_filter():
    build = subprocess.run(["cargo", "build", "--release", "--target", "wasm32-wasip1"], cwd=ROOT,
                           capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stderr
    assert "output filename collision" not in build.stderr, build.stderr
    names = exports(ARTIFACT.read_bytes())
    assert PROXY_WASM_ABI <= names, f"missing {sorted(PROXY_WASM_ABI - names)}; exports: {sorted(names)}"
    assert "_start" not in names, "a WASI command, not the filter"
