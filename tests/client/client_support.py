"""Helpers and fixtures for the client tests: a real emulator server on loopback and clients for both GSPs.

Every test gets a fresh :class:`~gspauth.emulator.ThreadedEmulator` (port 0, frozen clock) so
session caps, stats and stored returns never leak between tests. Clients use the emulator's
clock, so tests move time with ``env.advance(minutes=…)`` instead of sleeping.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
for _src in (ROOT / "plugins" / "cleartax" / "src", ROOT / "plugins" / "vayana" / "src"):
    if str(_src) not in sys.path:
        sys.path.insert(0, str(_src))

from cryptography.hazmat.primitives import serialization

import gspauth_cleartax
import gspauth_vayana
from gspauth.client import AsyncClient, Client
from gspauth.emulator import (
    ThreadedEmulator,
    defaults,
)
from gspauth.emulator.config import EmulatorConfig
from gspauth.hookspecs import hookimpl
from gspauth.plugins import Hooks, get_plugin_manager
from gspauth.retry import RetryPolicy
from gspauth.store import MemoryStore
from gspauth.types import Credentials, SessionEvent

GSPS = ("cleartax", "vayana")
START = dt.datetime(2026, 7, 1, 9, 0, tzinfo=dt.timezone.utc)
FAST_RETRY = RetryPolicy(attempts=4, backoff=0.01, cap=0.05, jitter=0.5)


def vayana_private_pem() -> bytes:
    return defaults.vayana_demo_private_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def credentials_for(gsp: str) -> Credentials:
    if gsp == "cleartax":
        return Credentials(gsp_token=defaults.CLEARTAX_AUTH_TOKEN)
    if gsp == "vayana":
        return Credentials(
            client_id=defaults.VAYANA_ASP_CLIENTID,
            client_secret=defaults.VAYANA_ASP_CLIENT_SECRET,
            asp_cust_id=defaults.VAYANA_ASP_CUST_ID,
            private_key_pem=vayana_private_pem(),
        )
    raise ValueError(gsp)


class EventRecorder:
    """An observer plugin collecting every SessionEvent (and a ledger stand-in)."""

    def __init__(self) -> None:
        self.events: list[SessionEvent] = []

    @hookimpl
    def gspauth_on_session_event(self, event: SessionEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


@dataclass
class Env:
    server: ThreadedEmulator
    url: str
    recorder: EventRecorder
    hooks: Hooks
    taxpayer: Any = field(default_factory=lambda: defaults.sample_taxpayer(0))
    certificate: bytes = b""
    opened: list[Any] = field(default_factory=list)

    @property
    def emu(self) -> Any:
        return self.server.emulator

    def now(self) -> dt.datetime:
        return self.emu.clock.now()  # type: ignore[no-any-return]

    def advance(self, minutes: float) -> None:
        self.emu.clock.advance(minutes * 60)

    def latest_otp(self, gstin: str | None = None) -> str:
        otp = self.emu.outbox.latest_otp(gstin or self.taxpayer.gstin)
        assert otp, "the emulator sent no OTP"
        return str(otp)

    def actions(self) -> dict[str, int]:
        return dict(self.emu.stats["actions"])

    def events(self) -> dict[str, int]:
        return dict(self.emu.stats["events"])

    def client_kwargs(self, gsp: str, **overrides: Any) -> dict[str, Any]:
        tp = overrides.pop("taxpayer", self.taxpayer)
        kw: dict[str, Any] = dict(
            gstin=tp.gstin,
            username=tp.username,
            certificate=self.certificate,
            hooks=self.hooks,
            clock=self.now,
            retry=FAST_RETRY,
            store=MemoryStore(),
            ip_usr="203.0.113.7",
            timeout=10.0,
        )
        kw.update(overrides)
        return kw

    def client(self, gsp: str = "cleartax", credentials: Credentials | None = None, **overrides: Any) -> Client:
        creds = credentials if credentials is not None else credentials_for(gsp)
        client = Client(gsp, "sandbox", creds, **self.client_kwargs(gsp, **overrides))
        self.opened.append(client)
        return client

    def aclient(self, gsp: str = "cleartax", **overrides: Any) -> AsyncClient:
        return AsyncClient(gsp, "sandbox", credentials_for(gsp), **self.client_kwargs(gsp, **overrides))

    def login(self, client: Client) -> None:
        client.request_otp()
        client.authenticate(self.latest_otp(client.gstin))


def make_hooks(url: str, recorder: EventRecorder) -> Hooks:
    pm = get_plugin_manager(autoload=False)
    pm.register(gspauth_cleartax, name="gspauth_cleartax")
    pm.register(gspauth_vayana, name="gspauth_vayana")
    pm.register(recorder, name="recorder")
    hosts = {("cleartax", "sandbox"): f"{url}/cleartax", ("vayana", "sandbox"): f"{url}/vayana"}
    return Hooks(pm, hosts=hosts, config=False)


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(seed=7, clock_start=START, clock_frozen=True)


@pytest.fixture
def env(emulator_config: EmulatorConfig) -> Iterator[Env]:
    server = ThreadedEmulator(config=emulator_config)
    server.start()
    try:
        recorder = EventRecorder()
        url = server.url.rstrip("/")
        # the GSTN certificate, fetched like a user would download it
        certificate = httpx.get(f"{url}/_emulator/certificate.pem", timeout=10).content
        environment = Env(server, url, recorder, make_hooks(url, recorder), certificate=certificate)
        try:
            yield environment
        finally:
            for client in environment.opened:
                client.close()
    finally:
        server.stop()


@pytest.fixture(params=GSPS)
def gsp(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class SecretLog(logging.Handler):
    """Collects every formatted record (all loggers, DEBUG) for secret scans."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(record.getMessage())
        except Exception:  # noqa: BLE001
            self.lines.append(str(record.msg))
        if record.exc_text:
            self.lines.append(record.exc_text)


@pytest.fixture
def all_logs() -> Iterator[SecretLog]:
    handler = SecretLog()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


class TxnRecorder:
    """httpx event hook: the txn header of every request sent (per action)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> None:
        meta = request.extensions.get("gspauth", {})
        self.sent.append((str(meta.get("action")), request.headers.get("txn", "")))


# --------------------------------------------------------------------------- multi-process workers
# Run in spawned processes: everything they need comes in as plain arguments.


def _worker_client(url: str, certificate: bytes, store_path: str, store_key: bytes, clock_offset: float,
                   gstin: str, username: str, gsp: str = "cleartax") -> Client:
    from gspauth.store import SQLiteStore

    def clock() -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=clock_offset)

    return Client(gsp, "sandbox", credentials_for(gsp), gstin=gstin, username=username, certificate=certificate,
                  hooks=make_hooks(url, EventRecorder()), clock=clock, retry=FAST_RETRY,
                  store=SQLiteStore(store_path, key=store_key), ip_usr="203.0.113.7", timeout=20.0)


def refresh_worker(args: tuple[Any, ...], barrier: Any, results: Any) -> None:
    """Wait for the others, then make a data call that needs a refresh; report the token digest."""
    import hashlib

    from gspauth.types import Api

    try:
        client = _worker_client(*args)
        barrier.wait(60)
        client.get(Api.RETURNS, "gstr1", action="B2B", ret_period="072017")
        assert client.session is not None
        results.put(("ok", hashlib.sha256(client.session.auth_token.encode()).hexdigest()))
        client.close()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def filing_worker(args: tuple[Any, ...], journal: str, chunks: list[Any], die_after: int) -> None:
    """File chunks and die abruptly (os._exit, no cleanup) after ``die_after`` of them."""
    import os

    from gspauth.filing import BatchFiler

    client = _worker_client(*args)
    seen = [0]

    def progress(result: Any) -> None:
        seen[0] += 1
        if seen[0] >= die_after:
            os._exit(17)

    BatchFiler(client, journal, progress=progress).file(chunks)
    os._exit(0)
