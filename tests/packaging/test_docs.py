"""The install and test commands the docs give, and the paths they point to, match the repository."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from gspauth.templates import _PLUGIN_FILES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10 has tomli (a gspauth dependency there)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("plugins/*/README.md")),
        ROOT / "benchmarks" / "README.md"]
PATH_REF = re.compile(r"`((?:plugins|tests|gspauth|docs|benchmarks|rust|\.ci)/[\w./-]*)`")


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^# 2\. .*\n(.+)$", readme, re.MULTILINE)
    assert found, "README.md lost its test command (the line after '# 2. ...')"
    return found.group(1)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert _readme_test_command() in ci


def test_the_test_command_installs_every_plugin_whose_tests_it_runs() -> None:
    words = shlex.split(_readme_test_command().split("&&")[1])
    editable = {Path(words[i + 1]).as_posix().removeprefix("./") for i, w in enumerate(words) if w == "-e"}
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    plugins = sorted(p.parent.relative_to(ROOT).as_posix() for p in ROOT.glob("plugins/*/pyproject.toml"))
    assert editable == {".[test,release]", *plugins}
    assert set(config["pytest"]["ini_options"]["testpaths"]) == {"tests", *(f"{p}/tests" for p in plugins)}
    assert set(config["mypy"]["files"]) == {"gspauth", *(f"{p}/src" for p in plugins)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_paths_in_the_docs_exist(doc: Path) -> None:
    # A path may be relative to the repository, to the document, or name a file of a plugin
    # that `gspauth plugin new` generates (docs/writing-a-plugin.md walks through one).
    generated = {f.format(module="gspauth_acme") for f in _PLUGIN_FILES}
    missing = [ref for ref in PATH_REF.findall(doc.read_text(encoding="utf-8"))
               if not ((ROOT / ref).exists() or (doc.parent / ref).exists() or ref in generated)]
    assert missing == []


TEST_REF = re.compile(r"`(tests/[\w./-]+\.py)::(\w+)`")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_tests_named_in_the_docs_exist(doc: Path) -> None:
    # docs/pain-points.md backs each claim with a named test: a renamed or deleted test must
    # take the claim with it (or the doc must name the test that now proves it).
    missing = []
    for path, name in TEST_REF.findall(doc.read_text(encoding="utf-8")):
        source = (ROOT / path).read_text(encoding="utf-8") if (ROOT / path).exists() else ""
        if not re.search(rf"^(async )?def {name}\(", source, re.MULTILINE):
            missing.append(f"{path}::{name}")
    assert missing == []
