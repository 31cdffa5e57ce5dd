"""Fixtures for the emulator tests: a seeded emulator with a frozen clock, raw-HTTP callers."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterator

import httpx
import pytest

from gspauth import crypto
from gspauth.emulator import Emulator, defaults
from tests.emulator.rawclient import Raw

START = _dt.datetime(2026, 1, 15, 10, 0, 0, tzinfo=_dt.timezone.utc)
#: The seed most tests use: its deterministic GSTN key (~1 s to find) is computed once per process.
SEED = 20240601
TP = defaults.SAMPLE_TAXPAYERS[0]
TP2 = defaults.SAMPLE_TAXPAYERS[1]


@pytest.fixture
def emu() -> Iterator[Emulator]:
    e = Emulator(seed=SEED, clock_start=START, clock_frozen=True)
    yield e
    e.close()


@pytest.fixture
def client(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(transport=httpx.MockTransport(emu.handle), base_url="http://emulator.test") as c:
        yield c


@pytest.fixture
def make(emu: Emulator, client: httpx.Client) -> Callable[..., Raw]:
    """``make(layer="gstn", taxpayer=TP)`` → a raw caller bound to the emulator."""
    cert = crypto.load_certificate(emu.certificate_pem)

    def factory(layer: str = "gstn", taxpayer: defaults.SampleTaxpayer = TP, **kw: object) -> Raw:
        return Raw(client, layer, taxpayer.gstin, taxpayer.username, cert, now=emu.clock.now, **kw)  # type: ignore[arg-type]

    return factory
