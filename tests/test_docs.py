"""The configuration reference cannot drift from the config types: every
field of every `Raw*` struct (what the parser accepts) and every variant
of their enums is named in docs/configuration.md."""

import re

from harness import ROOT


def config_names() -> set:
    names = set()
    for source in ("raw.rs", "credentials.rs"):
        text = (ROOT / "policies" / "src" / "config" / source).read_text()
        for body in re.findall(r"struct Raw\w+ \{(.*?)\n\}", text, re.S):
            names |= set(re.findall(r"\n    (?:pub )?(\w+):", body))
        for body in re.findall(r"pub enum Raw\w+ \{(.*?)\n\}", text, re.S):
            names |= {re.sub(r"(?<!^)([A-Z])", r"_\1", v).lower() for v in re.findall(r"\n    (\w+)", body)}
    names = {"match" if n == "match_" else n for n in names}
    return names


def test_every_config_field_is_documented():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    names = config_names()
    assert len(names) > 60
    missing = sorted(n for n in names if f"`{n}`" not in doc and f'"{n}"' not in doc)
    assert not missing, f"docs/configuration.md does not name: {missing}"
