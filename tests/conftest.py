"""Shared fixtures: the crypto backend (native and python) and hypothesis profiles.

``GSPAUTH_REQUIRE_NATIVE=1`` (set by CI) turns a missing Rust extension into a
failure instead of a reported skip.
"""

from __future__ import annotations

import importlib
import os
import re
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from gspauth.testing.postgres import Cluster

settings.register_profile("fast", max_examples=100, deadline=None)
settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "deep", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# CI (CI=true) runs the larger profile; GSPAUTH_HYPOTHESIS_PROFILE overrides either way.
settings.load_profile(os.environ.get("GSPAUTH_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "fast"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--backend-banner", action="store_true",
                     help="print which crypto backend gspauth.crypto chose (for runs under GSPAUTH_BACKEND)")


def _backend_line() -> str:
    from gspauth import crypto

    return f"gspauth crypto backend: {crypto.BACKEND} ({crypto.BACKEND_REASON})"


def pytest_report_header(config: pytest.Config) -> str:
    return _backend_line()


def pytest_sessionstart(session: pytest.Session) -> None:
    if session.config.getoption("--backend-banner"):  # also under -q, where headers are hidden
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(_backend_line())


@pytest.fixture(autouse=True, scope="session")
def _private_gspauth_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Never write into the user's data directory: clients record consent in the default
    ledger, which lives under GSPAUTH_HOME (tests that need their own home override this)."""
    os.environ["GSPAUTH_HOME"] = str(tmp_path_factory.mktemp("gspauth-home"))


def _native_or_skip() -> ModuleType:
    try:
        return importlib.import_module("gspauth._native")
    except ImportError as exc:
        if os.environ.get("GSPAUTH_REQUIRE_NATIVE") == "1":
            pytest.fail(f"GSPAUTH_REQUIRE_NATIVE=1 but gspauth._native is not importable: {exc}")
        pytest.skip(f"gspauth._native not built ({exc}); build with `maturin develop --release`")


@pytest.fixture(scope="session")
def native() -> ModuleType:
    """The Rust backend module (fails under GSPAUTH_REQUIRE_NATIVE=1 when missing)."""
    return _native_or_skip()


@pytest.fixture(scope="session")
def reference() -> ModuleType:
    """The pure-Python reference backend module."""
    from gspauth.crypto import _python

    return _python


@pytest.fixture(scope="session", params=["native", "python"], ids=str)
def backend(request: pytest.FixtureRequest) -> ModuleType:
    """Each crypto backend module in turn: the same tests run against both."""
    if request.param == "native":
        return _native_or_skip()
    from gspauth.crypto import _python

    return _python


# -- PostgreSQL -----------------------------------------------------------------------------------
# One throw-away cluster per test session, started by the first test that asks for it (the
# others never pay for it); each test gets its own schema in it, so nothing leaks between
# tests and no database has to be created. Without a server the cluster installs the OS
# package (as root with apt-get) or fails saying what to install: never a silent skip.


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """The session's throw-away PostgreSQL cluster (:func:`gspauth.testing.postgres.throwaway_cluster`)."""
    from gspauth.testing.postgres import throwaway_cluster

    with throwaway_cluster() as cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres_cluster: Cluster, request: pytest.FixtureRequest) -> str:
    """A ``postgresql://`` URL (password embedded) to a schema of its own for this test."""
    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40]
    return postgres_cluster.url(schema=f"t_{name}_{uuid.uuid4().hex[:8]}")
