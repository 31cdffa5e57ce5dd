"""The ingest backends as fixtures: every test of the contract runs against both.

``nat`` needs the compiled extension (the root ``native`` fixture: skipped when it
is not built, a failure under ``GSPAUTH_REQUIRE_NATIVE=1``); ``ref`` is the
pure-Python reference; ``ingest`` is each in turn.
"""

from __future__ import annotations

from types import ModuleType, SimpleNamespace

import pytest

from gspauth.ingest import _backend


@pytest.fixture(scope="session")
def ref() -> SimpleNamespace:
    """The pure-Python reference backend."""
    return _backend.load("python")


@pytest.fixture(scope="session")
def nat(native: ModuleType) -> SimpleNamespace:
    """The Rust backend."""
    return _backend.load("native")


@pytest.fixture(scope="session", params=[pytest.param("native", marks=pytest.mark.native), "python"], ids=str)
def ingest(request: pytest.FixtureRequest) -> SimpleNamespace:
    """Each ingest backend in turn."""
    if request.param == "native":
        request.getfixturevalue("native")
    return _backend.load(request.param)
