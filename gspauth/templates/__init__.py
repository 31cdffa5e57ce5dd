"""File templates for ``gspauth plugin new`` (package data: ``plugin/**/*.tmpl``).

:func:`render_plugin` writes a working plugin distribution whose tests pass as generated.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from gspauth.errors import ConfigurationError

__all__ = ["names_for", "render_plugin"]

#: The files a generated plugin consists of (relative paths, ``{module}`` filled in).
_PLUGIN_FILES: tuple[str, ...] = (
    "README.md",
    "pyproject.toml",
    "src/{module}/__init__.py",
    "src/{module}/py.typed",
    "tests/test_conformance.py",
    "tests/test_plugin.py",
)
_NAME_RE = re.compile(r"[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?\Z")


def names_for(name: str) -> dict[str, str]:
    """Every spelling of a plugin name: ``acme-gsp`` → dist ``gspauth-acme-gsp``, module
    ``gspauth_acme_gsp``, class ``AcmeGsp``, title ``Acme Gsp``, env ``ACME_GSP``."""
    if not _NAME_RE.match(name):
        raise ConfigurationError(
            f"plugin name {name!r} must be a GSP id: lowercase letters, digits and '-', starting with a letter"
        )
    words = name.split("-")
    return {
        "gsp": name,
        "dist": f"gspauth-{name}",
        "module": "gspauth_" + name.replace("-", "_"),
        "Class": "".join(w.capitalize() for w in words),
        "title": " ".join(w.capitalize() for w in words),
        "GSP_ENV": name.replace("-", "_").upper(),
    }


def _fill(text: str, names: dict[str, str]) -> str:
    return re.sub(r"\{\{(\w+)\}\}", lambda m: names[m.group(1)], text)


def _walk(node: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    out = []
    for child in node.iterdir():
        rel = f"{prefix}{child.name}"
        if child.is_dir():
            if child.name != "__pycache__":
                out.extend(_walk(child, rel + "/"))
        elif child.name.endswith(".tmpl"):
            out.append((rel[: -len(".tmpl")], child))
    return out


def render_plugin(name: str, directory: str | Path = ".") -> Path:
    """Write plugin distribution ``gspauth-<name>`` under ``directory``; return its root.

    :raises ConfigurationError: bad name, or the target exists and is not empty.
    """
    names = names_for(name)
    root = Path(directory) / names["dist"]
    if root.exists() and any(root.iterdir()):
        raise ConfigurationError(f"{root} already exists and is not empty")
    template = resources.files("gspauth.templates").joinpath("plugin")
    for rel, source in sorted(_walk(template)):
        target = root / rel.replace("__module__", names["module"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_fill(source.read_text(encoding="utf-8"), names), encoding="utf-8")
    return root
