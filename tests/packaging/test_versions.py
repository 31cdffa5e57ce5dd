"""One version source: ``[workspace.package] version`` in Cargo.toml; everything else agrees with it."""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest

import gspauth
from gspauth import _version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10 has tomli (a gspauth dependency there)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))


def _toml(path: Path) -> dict[str, object]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def version() -> str:
    cargo = _toml(ROOT / "Cargo.toml")
    value = cargo["workspace"]["package"]["version"]  # type: ignore[index]
    assert isinstance(value, str) and re.fullmatch(r"\d+\.\d+\.\d+", value), value
    return value


def _compatible_range(version: str) -> str:
    """``0.2.0`` -> ``gspauth>=0.2,<0.3``: plugins accept any release of the same minor series."""
    major, minor, _ = (int(part) for part in version.split("."))
    return f"gspauth>={major}.{minor},<{major}.{minor + 1}"


def test_pyproject_takes_the_version_from_cargo() -> None:
    project = _toml(ROOT / "pyproject.toml")["project"]
    assert isinstance(project, dict)
    assert "version" not in project and "version" in project["dynamic"], "pyproject.toml must not repeat it"


def test_both_crates_inherit_it_and_the_lock_file_agrees(version: str) -> None:
    lock = _toml(ROOT / "Cargo.lock")["package"]
    assert isinstance(lock, list)
    for crate in ("gspauth-core", "gspauth-py"):
        manifest = _toml(ROOT / "rust" / crate / "Cargo.toml")["package"]
        assert manifest["version"] == {"workspace": True}, crate  # type: ignore[index]
        assert [p["version"] for p in lock if p["name"] == crate] == [version], f"run `cargo update -w` ({crate})"


def test_python_metadata_and_dunder_agree(version: str) -> None:
    assert metadata.version("gspauth") == version, "reinstall gspauth (pip install -e . / maturin develop)"
    assert gspauth.__version__ == version


def test_a_plain_checkout_reads_the_workspace_version(version: str, tmp_path: Path) -> None:
    assert _version._from_checkout(ROOT) == version
    assert _version._from_checkout(tmp_path) == "0+unknown"  # no Cargo.toml: an honest unknown


@pytest.mark.native
def test_the_extension_reports_it(native: ModuleType, version: str) -> None:
    assert native.__version__ == version


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_plugin_distributions_share_it(plugin: Path, version: str) -> None:
    project = _toml(plugin / "pyproject.toml")
    dist = project["project"]["name"]  # type: ignore[index]
    module = dist.replace("-", "_")
    # Each plugin's one source is its module's __version__, which hatchling reads.
    assert project["project"]["dynamic"] == ["version"]  # type: ignore[index]
    assert project["tool"]["hatch"]["version"]["path"] == f"src/{module}/__init__.py"  # type: ignore[index]
    source = (plugin / "src" / module / "__init__.py").read_text(encoding="utf-8")
    assert re.findall(r'^__version__ = "([^"]+)"$', source, re.MULTILINE) == [version]
    assert _compatible_range(version) in project["project"]["dependencies"]  # type: ignore[index]
    assert metadata.version(dist) == version, f"reinstall {dist} (pip install -e {plugin.relative_to(ROOT)})"


def test_the_plugin_template_depends_on_this_release(version: str) -> None:
    # A generated plugin starts at its own 0.1.0; what must follow gspauth is the dependency range.
    template = (ROOT / "gspauth" / "templates" / "plugin" / "pyproject.toml.tmpl").read_text(encoding="utf-8")
    assert f'dependencies = ["{_compatible_range(version)}"]' in template
    assert f"Depend on `{_compatible_range(version)}`" in (ROOT / "docs" / "writing-a-plugin.md").read_text(
        encoding="utf-8")
