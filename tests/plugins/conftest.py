"""Fixtures for the plugin-system tests: fake installed distributions (entry points) on sys.path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gspauth.plugins import Hooks
from gspauth.testing import hooks_for

_SWITCHES = ("GSPAUTH_PLUGINS", "GSPAUTH_BLOCKED_PLUGINS", "GSPAUTH_DISABLE_PLUGIN_AUTOLOAD", "GSPAUTH_TRACE_HOOKS",
             "GSPAUTH_CONFIG")


def write_dist(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str] | None = None,
               version: str = "0.1.0") -> Path:
    """Make ``root`` look like site-packages holding distribution ``dist`` with ``gspauth`` entry points."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[gspauth]\n{lines}")
    for name, source in (modules or {}).items():
        (root / f"{name}.py").write_text(source)
    return root


@pytest.fixture(name="write_dist")
def _write_dist_fixture() -> Callable[..., Path]:
    """The :func:`write_dist` helper, for tests that build fake distributions themselves."""
    return write_dist


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _SWITCHES:
        monkeypatch.delenv(name, raising=False)
    for name in list(__import__("os").environ):
        if name.startswith("GSPAUTH_") and name.endswith("_HOST"):
            monkeypatch.delenv(name)


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """``fake_dist(dist, {entry: module}, {module: source})``: install a fake distribution for this test."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def make(dist: str, entry_points: dict[str, str], modules: dict[str, str] | None = None) -> Path:
        return write_dist(site, dist, entry_points, modules)

    return make


@pytest.fixture
def hooks() -> Hooks:
    """Built-ins plus the installed ClearTax and Vayana plugins."""
    import gspauth_cleartax
    import gspauth_vayana

    return hooks_for(gspauth_cleartax, gspauth_vayana)
