"""Fake installed distributions: a dist-info with ``gspauth`` entry points, for discovery tests."""

from __future__ import annotations

from pathlib import Path


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
