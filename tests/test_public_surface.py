"""The public surface: each module's ``__all__`` is its promise, kept, documented and unambiguous.

Rules (a module is *public* when no part of its dotted name starts with ``_``; the
three plugin distributions under ``plugins/`` are checked alongside ``gspauth``):

1. every public module defines ``__all__`` (``__main__`` is a script, not a module);
2. every name in any module's ``__all__`` exists on the module;
3. every name in a public module's ``__all__`` is documented where it is defined:

   * a class or function by its docstring;
   * a constant, type alias or other bound value by a ``#:`` comment on the line(s)
     directly above its assignment (the form Sphinx autodoc reads), or by a mention in
     its module's docstring as ````NAME```` or ``:role:`NAME```;
   * a submodule listed in ``__all__`` by its module docstring;

   a re-exported name is checked where it is defined (following ``from … import``);
4. no name is promised by two public ``gspauth`` modules unless every promise is the
   same object (a re-export). :data:`FAMILIES` lists the few names a family of sibling
   modules each define on purpose, with the reason;
5. a public module defines no public name outside its ``__all__``: a new helper is either
   promised (and so documented and checked here) or private. Hook implementations
   (``gspauth_*``) are exempt: pluggy finds them by name, and ``docs/hooks.md`` documents them.

The checks read the source with :mod:`ast` (so a dataclass's generated ``__doc__`` does
not count as documentation) and import the modules only to check that names exist and
which objects they are.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = ("plugins/cleartax/src", "plugins/vayana/src", "plugins/taxpro-example/src")

#: Names that each module of a family defines for the same role, so that they can share a
#: name without being re-exports of one another.
FAMILIES: dict[str, str] = {
    "register": "every gspauth.cli command module exposes register(subparsers) for gspauth.cli.main",
    "BACKEND": "each subsystem with a native/python switch (crypto, ingest) says which backend it loaded",
    "SCHEMA_VERSION": "each SQLite file format (session store, filing journal) states its own schema version",
}


@dataclass(frozen=True)
class Module:
    name: str
    path: Path

    @property
    def public(self) -> bool:
        return not any(part.startswith("_") for part in self.name.split("."))

    @property
    def tree(self) -> ast.Module:
        return _parse(self.path)


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _discover() -> list[Module]:
    found = [Module(_module_name(p, ROOT), p) for p in sorted((ROOT / "gspauth").rglob("*.py"))]
    for src in PLUGIN_SOURCES:
        found += [Module(_module_name(p, ROOT / src), p) for p in sorted((ROOT / src).rglob("*.py"))]
    return [m for m in found if m.name.rsplit(".", 1)[-1] != "__main__"]


MODULES = _discover()
BY_NAME = {m.name: m for m in MODULES}
PUBLIC = [m for m in MODULES if m.public]

_TREES: dict[Path, ast.Module] = {}


def _parse(path: Path) -> ast.Module:
    if path not in _TREES:
        _TREES[path] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return _TREES[path]


def _declared_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "__all__":
            value = node.value
            assert value is not None
            return [str(v) for v in ast.literal_eval(value)]
    return None


def _statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Module-level statements, looking into ``if``/``try`` blocks (conditional definitions)."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.If):
            out += _statements(node.body) + _statements(node.orelse)
        elif isinstance(node, ast.Try):
            out += _statements(node.body) + _statements(node.orelse) + _statements(node.finalbody)
            for handler in node.handlers:
                out += _statements(handler.body)
    return out


def _binds(node: ast.stmt, name: str) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(n, ast.Name) and n.id == name for t in node.targets for n in ast.walk(t))
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.target.id == name
    return False


def _import_source(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.name.split(".")
    if module.path.name != "__init__.py":
        package.pop()
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _module_docstring_mentions(tree: ast.Module, name: str) -> bool:
    doc = ast.get_docstring(tree) or ""
    return re.search(rf"``{re.escape(name)}``|:[a-z]+:`~?(?:[\w.]+\.)?{re.escape(name)}`", doc) is not None


def _has_hash_colon_comment(path: Path, node: ast.stmt) -> bool:
    lines = path.read_text(encoding="utf-8").splitlines()
    if "#:" in lines[node.lineno - 1]:  # a trailing ``#:`` on the assignment itself
        return True
    above = node.lineno - 2
    return above >= 0 and lines[above].lstrip().startswith("#:")


def _undocumented(module: Module, name: str, seen: frozenset[str] = frozenset()) -> str | None:
    """Why ``module.name`` is undocumented where it is defined, or ``None`` when it is documented."""
    key = f"{module.name}.{name}"
    if key in seen:
        return f"{key}: import cycle"
    tree = module.tree
    for node in _statements(tree.body):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) != name:
                    continue
                source = _import_source(module, node)
                if f"{source}.{alias.name}" in BY_NAME:  # a submodule
                    return None if ast.get_docstring(BY_NAME[f"{source}.{alias.name}"].tree) else (
                        f"module {source}.{alias.name} has no docstring")
                if source in BY_NAME:
                    return _undocumented(BY_NAME[source], alias.name, seen | {key})
                return None  # re-exported from another distribution: documented there
        if not _binds(node, name):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return None if (ast.get_docstring(node) or "").strip() else f"{key}: no docstring"
        if _has_hash_colon_comment(module.path, node) or _module_docstring_mentions(tree, name):
            return None
        return f"{key}: a constant needs a '#:' comment above it or a mention in the module docstring"
    if f"{module.name}.{name}" in BY_NAME:  # a submodule listed in its package's __all__
        return None if ast.get_docstring(BY_NAME[f"{module.name}.{name}"].tree) else f"module {key}: no docstring"
    # Bound at run time (a lazy module __getattr__): check where the object says it lives.
    obj = getattr(importlib.import_module(module.name), name)
    home = BY_NAME.get(getattr(obj, "__module__", ""))
    if home is not None and home != module:
        return _undocumented(home, name, seen | {key})
    return f"{key}: defined nowhere this test can see"


def _defined_names(tree: ast.Module) -> set[str]:
    """Names the module itself binds at module level (not those it imports)."""
    names: set[str] = set()
    for node in _statements(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _import(module: Module) -> ModuleType:
    return importlib.import_module(module.name)


@pytest.fixture(autouse=True, scope="module")
def _plugins_importable() -> None:
    for src in PLUGIN_SOURCES:  # the plugins are normally installed; this covers a bare checkout
        if str(ROOT / src) not in sys.path:
            sys.path.append(str(ROOT / src))


def test_the_walk_finds_the_package() -> None:
    names = {m.name for m in MODULES}
    assert {"gspauth", "gspauth.client", "gspauth.emulator.core", "gspauth_cleartax"} <= names
    assert "gspauth.__main__" not in names
    assert len(PUBLIC) > 50


@pytest.mark.parametrize("module", PUBLIC, ids=lambda m: m.name)
def test_public_module_defines_all(module: Module) -> None:
    assert _declared_all(module.tree) is not None, f"{module.name} defines no __all__"


def test_every_name_in_all_exists() -> None:
    missing = [
        f"{m.name}.{name}"
        for m in MODULES
        for name in _declared_all(m.tree) or []
        if not hasattr(_import(m), name)
    ]
    assert missing == []


def test_every_public_name_is_documented() -> None:
    problems = [
        why
        for m in PUBLIC
        for name in _declared_all(m.tree) or []
        if (why := _undocumented(m, name)) is not None
    ]
    assert problems == [], "\n".join(problems)


def test_no_name_is_promised_twice() -> None:
    promises: dict[str, list[Module]] = defaultdict(list)
    for m in PUBLIC:
        if m.name.split(".")[0] == "gspauth":
            for name in _declared_all(m.tree) or []:
                promises[name].append(m)
    clashes = []
    for name, modules in sorted(promises.items()):
        objects = [getattr(_import(m), name) for m in modules]
        if len(modules) > 1 and name not in FAMILIES and any(o is not objects[0] for o in objects):
            clashes.append(f"{name}: " + ", ".join(m.name for m in modules))
    assert clashes == [], "different objects share a public name:\n" + "\n".join(clashes)


def test_families_are_real() -> None:
    """Each :data:`FAMILIES` entry is still defined by at least two public modules."""
    promised: dict[str, int] = defaultdict(int)
    for m in PUBLIC:
        for name in _declared_all(m.tree) or []:
            promised[name] += 1
    assert {name: promised[name] for name in FAMILIES if promised[name] < 2} == {}


def test_public_modules_define_nothing_public_outside_all() -> None:
    unlisted = sorted(
        f"{m.name}.{name}"
        for m in PUBLIC
        for name in _defined_names(m.tree) - set(_declared_all(m.tree) or [])
        if not name.startswith("_") and not name.startswith("gspauth_")
    )
    assert unlisted == [], "public but not in __all__ (list it, or make it private):\n" + "\n".join(unlisted)
