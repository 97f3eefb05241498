"""The crates' import graph, read from the sources: each `.rs` file is a node,
each path it names into its own crate (`crate::a::b`, `super::x`, `self::x`)
an edge to the file that defines it. Used by test_layout.py; run it directly
(`python3 tests/layout.py`) to print the graph's cycles."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES = {"policies": ROOT / "policies" / "src", "filter": ROOT / "filter" / "src"}


def modules(src: Path) -> dict:
    """Module path (tuple) → file, for every file of the crate's module tree.
    Test-only files (`*_tests.rs`, `testing.rs`) and binaries are left out:
    tests may reach anywhere."""
    found = {}
    for f in sorted(src.rglob("*.rs")):
        rel = f.relative_to(src)
        if rel.parts[0] == "bin" or rel.name.endswith("_tests.rs") or rel.name == "testing.rs":
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "mod":
            parts.pop()
        if parts == ["lib"]:
            parts = []
        found[tuple(parts)] = f
    return found


USE = re.compile(r"\buse\s+([^;]*);", re.S)
PATH = re.compile(r"\b(crate|super|self)((?:::\w+)+)")


def expand(tree: str) -> list:
    """`a::{b, c::{d, e}}` → ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+", "", tree)
    i = tree.find("{")
    if i < 0:
        return [tree]
    prefix, depth, parts, start = tree[:i], 0, [], i + 1
    for j in range(i, len(tree)):
        c = tree[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                parts.append(tree[start:j])
                break
        elif c == "," and depth == 1:
            parts.append(tree[start:j])
            start = j + 1
    out = []
    for p in parts:
        if p:
            out += [prefix + q for q in expand(p)]
    return out


def strip_tests(text: str) -> str:
    """The text before the file's test module (`#[cfg(test)]`, maybe more
    attributes, then `mod`): unit tests are not part of the graph. Other
    `#[cfg(test)]` items stay in."""
    m = re.search(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+", text)
    return text if m is None else text[: m.start()]


def graph(crate: str) -> dict:
    src = CRATES[crate]
    mods = modules(src)
    edges = {m: set() for m in mods}
    for here, f in mods.items():
        text = strip_tests(f.read_text())
        text = re.sub(r"//[^\n]*", "", text)
        # the module a relative path starts from: a file's own module
        base = list(here)
        paths = []
        for u in USE.findall(text):
            paths += expand(u)
        paths += [m.group(1) + m.group(2) for m in PATH.finditer(text)]
        for p in paths:
            segs = [s for s in p.split("::") if s]
            if not segs or segs[0] not in ("crate", "super", "self"):
                continue
            if segs[0] == "crate":
                cur, segs = [], segs[1:]
            else:
                cur = list(base)
                while segs and segs[0] in ("super", "self"):
                    if segs[0] == "super":
                        cur = cur[:-1]
                    segs = segs[1:]
            target = tuple(cur)
            for s in segs:
                if tuple(cur + [s]) in mods:
                    cur.append(s)
                    target = tuple(cur)
                else:
                    break
            if target != here:
                edges[here].add(target)
        # a child module named by a relative path (`use child::X`, `child::f()`)
        for child in re.findall(r"\bmod\s+(\w+)\s*;", text):
            key = tuple(base + [child])
            if key in mods and re.search(rf"(?<![:\w]){child}::", text):
                edges[here].add(key)
    return edges


def cycles(edges: dict) -> list:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def name(m: tuple) -> str:
    return "::".join(m) or "lib"


if __name__ == "__main__":
    for crate in CRATES:
        for comp in cycles(graph(crate)):
            print(f"{crate}: cycle among {', '.join(name(m) for m in comp)}")
