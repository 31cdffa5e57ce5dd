"""Helpers of the distributed-filing tests: the workers' environment, consent given before a
run, and a run through :func:`gspauth.filer.distributed.file_distributed`."""

from __future__ import annotations

import base64
import os
from typing import Any

import httpx

from gspauth.client import Client
from gspauth.emulator import defaults
from gspauth.filer import FilerOptions
from gspauth.filer.distributed import DistributedReport, WorkerTarget, file_distributed
from gspauth.otp import EmulatorOtp
from gspauth.types import Credentials
from tests.filer.support import World

#: The store key of every test store; the workers have it in their environment, nowhere else.
STORE_KEY = os.urandom(32)


def worker_env(**extra: str) -> dict[str, str]:
    """What a worker's environment holds: the store key and the GSP credential."""
    return {"GSPAUTH_STORE_KEY": base64.b64encode(STORE_KEY).decode(),
            "GSPAUTH_CRED_GSP_TOKEN": defaults.CLEARTAX_AUTH_TOKEN, **extra}


def consent(world: World, gstins: list[str]) -> None:
    """OTP consent for ``gstins`` now (the emulator's outbox gives the OTP), into the store."""
    store = world.store()
    try:
        with httpx.Client(timeout=20.0) as http:  # one pool: a TLS context per client costs ~0.1 s
            for gstin in gstins:
                with Client("cleartax", "sandbox", Credentials(gsp_token=defaults.CLEARTAX_AUTH_TOKEN), gstin=gstin,
                            username=world.usernames[gstin], certificate=world.emu.certificate_pem,
                            hosts={"sandbox": world.url + "/cleartax"}, store=store,
                            otp_provider=EmulatorOtp(world.emu), http_client=http) as client:
                    client.authenticate()
    finally:
        store.close()


def target(world: World) -> WorkerTarget:
    return WorkerTarget(gsp="cleartax", host=world.url + "/cleartax", certificate=str(world.certificate))


def run(world: World, scheduler: Any, paths: list[Any], *, journal: str = "journal.db",
        options: FilerOptions | None = None, **kwargs: Any) -> DistributedReport:
    """One distributed run on ``scheduler`` (a Client) with the world's store and a journal file."""
    kwargs.setdefault("request_otp", False)
    return file_distributed([str(p) for p in paths], scheduler=scheduler, store=str(world.tmp / "sessions.db"),
                            journal=str(world.tmp / journal), target=target(world),
                            options=options or FilerOptions(status_poll=0.05, max_chunk_bytes=20_000),
                            taxpayers=world.taxpayers_file(), **kwargs)
