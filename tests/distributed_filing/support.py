"""Helpers of the distributed-filing tests: the workers' environment, consent given before a
run, and a run through :func:`gspauth.filer.distributed.file_distributed`."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

import httpx

from gspauth.client import Client
from gspauth.emulator import defaults
from gspauth.filer import FilerOptions
from gspauth.filer.distributed import DistributedReport, WorkerTarget, file_distributed
from gspauth.journal import FilingJournal, open_journal
from gspauth.otp import EmulatorOtp
from gspauth.store import SessionStore, SQLiteStore, open_store
from gspauth.store.postgres import PostgresStore
from gspauth.types import Credentials
from tests.filer.support import World

#: The store key of every test store; the workers have it in their environment, nowhere else.
STORE_KEY = os.urandom(32)


def worker_env(**extra: str) -> dict[str, str]:
    """What a worker's environment holds: the store key and the GSP credential."""
    return {"GSPAUTH_STORE_KEY": base64.b64encode(STORE_KEY).decode(),
            "GSPAUTH_CRED_GSP_TOKEN": defaults.CLEARTAX_AUTH_TOKEN, **extra}


@dataclass(frozen=True)
class SharedDb:
    """A PostgreSQL URL (no password) holding the session store and the filing journal."""

    url: str

    def store(self) -> SessionStore:
        return open_store(self.url, key=STORE_KEY)

    def journal(self) -> FilingJournal:
        return open_journal(self.url)


def close_store(store: SessionStore) -> None:
    if isinstance(store, PostgresStore | SQLiteStore):
        store.close()


def consent(world: World, gstins: list[str], db: SharedDb | None = None) -> None:
    """OTP consent for ``gstins`` now (the emulator's outbox gives the OTP), into the store
    (``db``'s, or the world's SQLite file)."""
    store = db.store() if db is not None else world.store()
    try:
        with httpx.Client(timeout=20.0) as http:  # one pool: a TLS context per client costs ~0.1 s
            for gstin in gstins:
                with Client("cleartax", "sandbox", Credentials(gsp_token=defaults.CLEARTAX_AUTH_TOKEN), gstin=gstin,
                            username=world.usernames[gstin], certificate=world.emu.certificate_pem,
                            hosts={"sandbox": world.url + "/cleartax"}, store=store,
                            otp_provider=EmulatorOtp(world.emu), http_client=http) as client:
                    client.authenticate()
    finally:
        close_store(store)


def target(world: World) -> WorkerTarget:
    return WorkerTarget(gsp="cleartax", host=world.url + "/cleartax", certificate=str(world.certificate))


def run(world: World, scheduler: Any, paths: list[Any], db: SharedDb, *, options: FilerOptions | None = None,
        **kwargs: Any) -> DistributedReport:
    """One distributed run on ``scheduler`` (a Client) with ``db``'s store and journal."""
    kwargs.setdefault("request_otp", False)
    return file_distributed([str(p) for p in paths], scheduler=scheduler, store=db.url, journal=db.url,
                            target=target(world),
                            options=options or FilerOptions(status_poll=0.05, max_chunk_bytes=20_000),
                            taxpayers=world.taxpayers_file(), **kwargs)
