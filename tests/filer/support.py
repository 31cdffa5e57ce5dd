"""Shared pieces of the filer tests: an emulator server, taxpayers, input files, and a proof
from the emulator's stored state that every invoice is there exactly once."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gspauth import synthetic
from gspauth.client import AsyncClient
from gspauth.emulator import ThreadedEmulator, defaults
from gspauth.emulator.config import EmulatorConfig
from gspauth.filer import Filer, FilerOptions, FilingInput, FilingReport
from gspauth.journal import open_journal
from gspauth.otp import EmulatorOtp
from gspauth.retry import RetryPolicy
from gspauth.store import SQLiteStore
from gspauth.types import Credentials

PERIOD = "072017"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class World:
    """An emulator server, a session store, taxpayers with usernames, and a tmp directory."""

    server: Any
    tmp: Path
    store_key: bytes
    gstins: list[str] = field(default_factory=list)
    usernames: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return str(self.server.url)

    @property
    def emu(self) -> Any:
        return self.server.emulator

    @property
    def certificate(self) -> Path:
        path = self.tmp / "gstn.pem"
        if not path.exists():
            path.write_bytes(self.emu.certificate_pem)
        return path

    def taxpayers(self, n: int, *, prefix: str = "AAACX") -> list[str]:
        out = []
        for _ in range(n):
            gstin = defaults.make_gstin("27", f"{prefix}{len(self.gstins):04d}K")
            username = f"filer.{len(self.gstins)}"
            self.emu.register_taxpayer(gstin, username)
            self.gstins.append(gstin)
            self.usernames[gstin] = username
            out.append(gstin)
        return out

    def write_jsonl(self, name: str, per_gstin: dict[str, int], seed: int = 1) -> tuple[Path, list[bytes]]:
        lines: list[bytes] = []
        for i, (gstin, count) in enumerate(per_gstin.items()):
            lines += list(synthetic.b2b_jsonl(count, seed=seed + i, supplier_gstin=gstin, ret_period=PERIOD))
        path = self.tmp / name
        path.write_bytes(b"".join(lines))
        return path, lines

    def taxpayers_file(self) -> Path:
        path = self.tmp / "taxpayers.csv"
        path.write_text("gstin,username\n" + "".join(f"{g},{u}\n" for g, u in self.usernames.items()))
        return path

    def store(self) -> SQLiteStore:
        return SQLiteStore(self.tmp / "sessions.db", key=self.store_key)

    def file(self, paths: list[Path], *, journal: str = "journal.db", options: FilerOptions | None = None,
             otp: bool = True) -> FilingReport:
        """One filing run through the library, as `gspauth file` does it (``journal``: a file name
        in the world's directory, or a ``postgresql://`` URL)."""
        import asyncio

        async def go() -> FilingReport:
            store = self.store()
            async with httpx.AsyncClient(timeout=20.0) as http:
                def client_for(gstin: str) -> AsyncClient:
                    return AsyncClient("cleartax", "sandbox", Credentials(gsp_token=defaults.CLEARTAX_AUTH_TOKEN),
                                       gstin=gstin, username=self.usernames[gstin], certificate=self.emu.certificate_pem,
                                       hosts={"sandbox": self.url + "/cleartax"}, store=store,
                                       otp_provider=EmulatorOtp(self.url) if otp else None,
                                       retry=RetryPolicy(attempts=1), http_client=http)

                j = open_journal(journal if "://" in journal else self.tmp / journal)
                try:
                    filer = Filer(j, client_for, options=options or FilerOptions(status_poll=0.05))
                    return await filer.run([FilingInput(str(p)) for p in paths])
                finally:
                    j.close()

        return asyncio.run(go())

    def stored(self, gstin: str) -> dict[tuple[str, str], Any]:
        """The emulator's stored b2b invoices of ``gstin``: (ctin, inum) → invoice."""
        out: dict[tuple[str, str], Any] = {}
        for rec in self.emu.saved_records(gstin, PERIOD, "b2b"):
            key = (rec["ctin"], rec["inv"]["inum"])
            assert key not in out, f"{key} stored twice"
            out[key] = rec["inv"]
        return out


def expected(lines: list[bytes]) -> dict[str, dict[tuple[str, str], Any]]:
    """gstin → (ctin, inum) → invoice (canonical numbers), from JSONL lines."""
    from decimal import Decimal

    def num(text: str) -> int | float:
        d = Decimal(text).normalize()
        return int(d) if d == d.to_integral_value() else float(d)

    out: dict[str, dict[tuple[str, str], Any]] = {}
    for line in lines:
        inv = json.loads(line, parse_float=num, parse_int=num)
        gstin, ctin = inv.pop("gstin"), inv.pop("ctin")
        inv.pop("fp")
        inv.pop("section")
        out.setdefault(gstin, {})[(ctin, inv["inum"])] = inv
    return out


def assert_exactly_once(world: World, lines: list[bytes]) -> None:
    """Every invoice of the input is stored at GSTN exactly once, as sent; nothing else is."""
    for gstin, invoices in expected(lines).items():
        stored = world.stored(gstin)
        assert set(stored) == set(invoices), (f"{gstin}: missing {len(set(invoices) - set(stored))}, "
                                              f"extra {len(set(stored) - set(invoices))}")
        different = [k for k in invoices if stored[k] != invoices[k]]
        assert not different, f"{gstin}: {len(different)} invoice(s) differ from the input"


@pytest.fixture
def world(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    from gspauth.emulator.config import FaultConfig

    overrides = dict(getattr(request, "param", {}))
    if "faults" in overrides:
        overrides["faults"] = FaultConfig(**overrides["faults"])
    server = ThreadedEmulator(config=EmulatorConfig(seed=13, **overrides)).start()
    try:
        yield World(server, tmp_path, os.urandom(32))
    finally:
        server.stop()
