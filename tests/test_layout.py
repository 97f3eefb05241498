"""The tree is the table of contents: the import graph of both crates has no
cycle, unit tests sit in one layout everywhere, the step modules are private
behind lib.rs, and the README's flow table names every file a request
passes through."""

import re

from harness import ROOT
from layout import CRATES, cycles, graph, name


def test_no_import_cycle_in_policies_or_filter():
    found = {crate: [", ".join(name(m) for m in comp) for comp in cycles(graph(crate))] for crate in CRATES}
    assert found == {crate: [] for crate in CRATES}


def test_the_cycle_finder_finds_a_cycle(tmp_path, monkeypatch):
    # Guards the test above: two files naming each other are a cycle.
    src = tmp_path / "src"
    src.mkdir()
    (src / "lib.rs").write_text("mod a;\nmod b;\n")
    (src / "a.rs").write_text("use crate::b::B;\npub struct A;\n")
    (src / "b.rs").write_text("use crate::a::A;\npub struct B;\n")
    monkeypatch.setitem(CRATES, "probe", src)
    assert [[name(m) for m in comp] for comp in cycles(graph("probe"))] == [["a", "b"]]


def rust_files():
    for crate, src in CRATES.items():
        yield from sorted(src.rglob("*.rs"))


def test_unit_tests_sit_beside_their_file_in_one_layout():
    # One layout: a file's unit tests are `<stem>_tests.rs` beside it,
    # declared `#[cfg(test)] #[path = "<stem>_tests.rs"] mod tests;`.
    inline, orphans = [], []
    for f in rust_files():
        text = f.read_text()
        if re.search(r"mod tests\s*\{", text):
            inline.append(str(f.relative_to(ROOT)))
        if f.name.endswith("_tests.rs"):
            owner = f.with_name(f.name[: -len("_tests.rs")] + ".rs")
            if f'#[path = "{f.name}"]' not in owner.read_text() if owner.exists() else True:
                orphans.append(str(f.relative_to(ROOT)))
    assert inline == [] and orphans == []


def test_step_modules_are_private_behind_the_facade():
    lib = (ROOT / "policies" / "src" / "lib.rs").read_text()
    public = re.findall(r"^pub mod (\w+)", lib, re.M)
    # explain is the CLI's and the explorer's api; parsers the fuzz targets'.
    assert set(public) <= {"explain", "parsers"}, public
    steps = {p.name for p in (ROOT / "policies" / "src").iterdir() if p.is_dir() and p.name not in ("bin", "testdata")}
    declared = set(re.findall(r"^mod (\w+);", lib, re.M))
    assert steps <= declared, steps - declared


def test_the_readme_flow_table_names_every_file_of_the_flow():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| step |"):]
    rows = table[: table.index("\n\n")].splitlines()
    missing = []
    for f in rust_files():
        rel = f.relative_to(ROOT).as_posix()
        if f.name.endswith("_tests.rs") or f.name == "testing.rs" or "/bin/" in rel or "/conformance" in rel:
            continue
        # A row names the file: its whole path, or its folder and its name.
        folder = rel.rsplit("/", 1)[0] + "/"
        if not any(rel in row or (f"`{folder}" in row and re.search(rf"\b{re.escape(f.name)}\b", row)) for row in rows):
            missing.append(rel)
    assert missing == [], "README's flow table does not name: " + ", ".join(missing)


def test_no_code_outside_api_names_a_provider():
    # Adding a provider is one file in policies/src/api/ plus one arm of
    # its `apis!` list (docs/providers.md): nothing else may name one.
    apis = set(re.findall(r"^\s+(\w+) = \"\w+\" =>", (ROOT / "policies/src/api/mod.rs").read_text(), re.M))
    assert {"OpenAi", "Anthropic", "Bedrock"} <= apis, apis
    named = []
    for f in rust_files():
        rel = f.relative_to(ROOT).as_posix()
        if "/api/" in rel or f.name.endswith("_tests.rs") or f.name == "testing.rs":
            continue
        for variant in re.findall(r"\bApi::(\w+)", f.read_text()):
            if variant in apis:
                named.append(f"{rel}: Api::{variant}")
    assert named == []
