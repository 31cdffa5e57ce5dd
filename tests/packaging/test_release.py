"""Release artefacts, built the way a maintainer builds them, installed the way a user installs them.

``.ci/build-release`` builds the gspauth sdist, a manylinux wheel from that sdist (maturin + zig,
checked by ``auditwheel show``) and every plugin's sdist and wheel. Then a fresh virtual
environment gets the wheels (dependencies from the package index), and from a directory outside
the checkout it runs ``gspauth demo``, reports the native backend loaded from site-packages, and
follows a generated plugin's README from its first step to a green ``pytest``.

Slow (about 1-3 minutes: one release build of the Rust extension, reusing the checkout's cargo
target directory for the dependencies, and a virtual environment from the package index), and
run by the README test command, so CI runs it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import gspauth

ROOT = Path(__file__).resolve().parents[2]
VERSION = gspauth.__version__
PLUGINS = sorted(p.parent.name for p in (ROOT / "plugins").glob("*/pyproject.toml"))
WHEEL_TAG = "cp310-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@dataclass(frozen=True)
class Venv:
    root: Path
    home: Path  # a working directory outside the checkout

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def env(self) -> dict[str, str]:
        # Nothing from this checkout or the test process: no PYTHONPATH, no GSPAUTH_* settings.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GSPAUTH_", "PYTHON", "VIRTUAL_ENV", "CARGO_TARGET_DIR"))}
        env["PATH"] = os.pathsep.join([str(self.bin), env.get("PATH", "")])
        env["GSPAUTH_HOME"] = str(self.home / ".gspauth")
        return env

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), cwd=cwd or self.home, env=self.env(), capture_output=True, text=True,
                              timeout=timeout, check=False)


def _checked(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Everything .ci/build-release makes, from this working tree (hence --allow-dirty)."""
    out = tmp_path_factory.mktemp("release") / "dist"
    env = {k: v for k, v in os.environ.items() if k != "CARGO_TARGET_DIR"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "build-release"), "--out", str(out), "--allow-dirty",
         "--cargo-target-dir", str(ROOT / "target")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    return out


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh virtual environment, outside the checkout, with the built wheels installed."""
    base = tmp_path_factory.mktemp("user")
    assert not base.resolve().is_relative_to(ROOT.resolve())
    env = Venv(base / "venv", base / "work")
    env.home.mkdir()
    _checked(subprocess.run([sys.executable, "-m", "venv", str(env.root)], capture_output=True, text=True,
                            timeout=300, check=False))
    wheels = sorted(str(p) for p in dist.glob("*.whl"))
    _checked(env.run(str(env.bin / "python"), "-m", "pip", "install", "--disable-pip-version-check", *wheels))
    return env


def _names(archive: Path) -> list[str]:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as whl:
            return whl.namelist()
    with tarfile.open(archive) as tar:
        return tar.getnames()


def test_everything_is_built_with_one_version(dist: Path) -> None:
    modules = [name.replace("-", "_") for name in PLUGINS]
    expected = {f"gspauth-{VERSION}.tar.gz", f"gspauth-{VERSION}-{WHEEL_TAG}.whl", "SHA256SUMS"}
    for module in modules:
        expected |= {f"gspauth_{module}-{VERSION}.tar.gz", f"gspauth_{module}-{VERSION}-py3-none-any.whl"}
    assert {p.name for p in dist.iterdir()} == expected
    sums = (dist / "SHA256SUMS").read_text().splitlines()
    assert sorted(line.split("  ")[1] for line in sums) == sorted(expected - {"SHA256SUMS"})


def test_auditwheel_confirms_the_manylinux_tag(dist: Path) -> None:
    (wheel,) = dist.glob("gspauth-*.whl")
    report = _checked(subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)],
                                     capture_output=True, text=True, timeout=120, check=False))
    assert re.search(r'consistent with the following platform tag:\s*"manylinux_2_17_x86_64"', report), report
    assert "linux_x86_64.whl" not in wheel.name.replace("manylinux", "")  # not the unuploadable plain tag


def test_gspauth_wheel_holds_the_package_and_extension_only(dist: Path) -> None:
    (wheel,) = dist.glob("gspauth-*.whl")
    names = _names(wheel)
    assert "gspauth/_native.abi3.so" in names and "gspauth/_native.pyi" in names and "gspauth/py.typed" in names
    assert any(n.startswith("gspauth/templates/plugin/") and n.endswith(".tmpl") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "plugins/", "benchmarks/", "target/"))]
    assert not [n for n in names if "__pycache__" in n]
    with zipfile.ZipFile(wheel) as whl:
        metadata = whl.read(f"gspauth-{VERSION}.dist-info/METADATA").decode()
        entry_points = whl.read(f"gspauth-{VERSION}.dist-info/entry_points.txt").decode()
    assert f"\nVersion: {VERSION}\n" in metadata and "Provides-Extra: test" in metadata
    assert "gspauth=gspauth.cli:main" in entry_points.replace(" ", "")


def test_sdist_has_what_a_build_needs_and_nothing_else(dist: Path) -> None:
    top = f"gspauth-{VERSION}/"
    names = {n.removeprefix(top) for n in _names(dist / f"gspauth-{VERSION}.tar.gz")}
    assert {"pyproject.toml", "Cargo.toml", "Cargo.lock", "README.md", "PKG-INFO", "gspauth/__init__.py",
            "gspauth/_native.pyi", "rust/gspauth-core/Cargo.toml", "rust/gspauth-py/Cargo.toml",
            "rust/gspauth-py/src/lib.rs"} <= names
    assert not [n for n in names if n.startswith(("tests/", "plugins/", "benchmarks/", "target/", ".venv/"))]
    assert not [n for n in names if n.endswith((".so", ".pyc"))]


@pytest.mark.parametrize("plugin", PLUGINS)
def test_plugin_wheel_requires_this_gspauth_series(dist: Path, plugin: str) -> None:
    module = "gspauth_" + plugin.replace("-", "_")
    wheel = dist / f"{module}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as whl:
        metadata = whl.read(f"{module}-{VERSION}.dist-info/METADATA").decode()
        entry_points = whl.read(f"{module}-{VERSION}.dist-info/entry_points.txt").decode()
        names = whl.namelist()
    assert f"{module}/py.typed" in names
    major, minor = VERSION.split(".")[:2]
    assert f"Requires-Dist: gspauth<{major}.{int(minor) + 1},>={major}.{minor}\n" in metadata
    assert f"[gspauth]\n{plugin} = {module}\n" in entry_points


def test_demo_passes_from_a_fresh_venv_outside_the_checkout(venv: Venv) -> None:
    out = _checked(venv.run(str(venv.bin / "gspauth"), "demo", "--invoices", "40", "--chunk", "10"))
    assert "RESULT: PASS" in out and "[FAIL]" not in out


def test_the_installed_native_backend_is_used(venv: Venv) -> None:
    code = ("import json, gspauth, gspauth._native as n, gspauth.crypto as c; "
            "print(json.dumps([gspauth.__version__, n.__version__, c.BACKEND, gspauth.__file__, n.__file__]))")
    version, native_version, backend, package, native = json.loads(_checked(venv.run(str(venv.bin / "python"), "-c",
                                                                                      code)))
    assert (version, native_version, backend) == (VERSION, VERSION, "native")
    site = (venv.root / "lib").resolve()
    for path in (package, native):
        assert Path(path).resolve().is_relative_to(site) and "site-packages" in path, path
    doctor = json.loads(venv.run(str(venv.bin / "gspauth"), "doctor", "--json").stdout)
    checks = {c["name"]: c for c in doctor["checks"]}
    assert checks["crypto backend"]["status"] == "ok" and checks["crypto backend"]["detail"].startswith("native")
    assert f"gspauth {VERSION}" in checks["versions"]["detail"]
    plugins = {p["name"]: p["version"] for p in json.loads(_checked(venv.run(str(venv.bin / "gspauth"), "plugins",
                                                                             "--json")))}
    assert {name: plugins.get(name) for name in PLUGINS} == dict.fromkeys(PLUGINS, VERSION)


def _readme_steps(readme: str, wheels: Path) -> Iterator[str]:
    """The commands of a generated README's first code block, with our wheel directory filled in."""
    block = readme.split("```")[1]
    for line in block.splitlines():
        command = line.split("  #")[0].strip()
        if command and not command.startswith("#"):
            yield command.replace("/path/to/gspauth-wheels", str(wheels))


def test_a_generated_plugin_readme_works_from_its_first_step(venv: Venv, dist: Path) -> None:
    _checked(venv.run(str(venv.bin / "gspauth"), "plugin", "new", "acme"))
    plugin = venv.home / "gspauth-acme"
    steps = list(_readme_steps((plugin / "README.md").read_text(), dist))
    assert steps[0].startswith("pip install --find-links ") and steps[-1] == "pytest", steps
    for step in steps:
        out = _checked(venv.run("bash", "-c", step, cwd=plugin))
    assert re.search(r"\b1[0-9] passed\b", out) and "failed" not in out, out


def test_the_plugin_guide_first_step_works(venv: Venv, dist: Path) -> None:
    guide = (ROOT / "docs" / "writing-a-plugin.md").read_text(encoding="utf-8")
    block = guide.split("## 1. Generate the package", 1)[1]
    steps = list(_readme_steps(block, dist))
    assert steps[0].startswith("pip install --find-links ") and steps[-1] == "pytest", steps
    work = venv.home / "guide"
    work.mkdir()
    out = _checked(venv.run("bash", "-c", " && ".join(steps), cwd=work))  # one shell: the guide `cd`s
    assert re.search(r"\b1[0-9] passed\b", out) and "failed" not in out, out
