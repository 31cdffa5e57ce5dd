"""Which taxpayers a bulk command serves, and the async client of each (``gspauth file``,
``gspauth fetch``, the distributed workers).

A GSTIN's portal username comes from, first match wins: ``--taxpayers FILE`` (CSV with a
``gstin,username`` header — optional ``gsp``, ``environment`` columns — or JSONL with those
keys); a session already in the store for that GSTIN; the target's ``--gstin``/``--username``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gspauth.errors import ConfigurationError

if TYPE_CHECKING:
    import httpx

    from gspauth.client import AsyncClient
    from gspauth.config import Profile
    from gspauth.otp import OtpProvider
    from gspauth.store import SessionStore

__all__ = ["Taxpayer", "TaxpayerClients", "read_taxpayers"]


@dataclass(frozen=True)
class Taxpayer:
    gstin: str
    username: str
    gsp: str | None = None
    environment: str | None = None


def read_taxpayers(path: str | Path) -> dict[str, Taxpayer]:
    """GSTIN → :class:`Taxpayer` from a CSV (``gstin,username[,gsp,environment]``) or JSONL file."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the taxpayers file {path}: {exc.strerror}") from None
    rows: list[dict[str, str]]
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            raise ConfigurationError(f"{path}: each line must be a JSON object with gstin and username") from None
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
    out: dict[str, Taxpayer] = {}
    for n, row in enumerate(rows, 2):
        if not isinstance(row, dict) or not row.get("gstin") or not row.get("username"):
            raise ConfigurationError(f"{path}, record {n}: needs gstin and username (columns gstin,username"
                                     "[,gsp,environment])")
        gstin = str(row["gstin"]).strip().upper()
        out[gstin] = Taxpayer(gstin, str(row["username"]).strip(), (row.get("gsp") or None),
                              (row.get("environment") or None))
    return out


class TaxpayerClients:
    """Makes (and caches) the :class:`~gspauth.client.AsyncClient` of each GSTIN for a bulk run.

    :param profile: the target (GSP, environment, host, certificate, ip-usr, credentials).
    :param store: the shared session store.
    :param taxpayers: usernames (and optional GSP/environment) per GSTIN.
    :param otp_provider: where parked GSTINs' OTPs may come from (non-interactive).
    :param http: one connection pool for every client.
    """

    def __init__(self, profile: Profile, store: SessionStore, taxpayers: dict[str, Taxpayer],
                 otp_provider: OtpProvider | None, http: httpx.AsyncClient) -> None:
        self.profile = profile
        self.store = store
        self.taxpayers = taxpayers
        self.otp_provider = otp_provider
        self.http = http
        self._clients: dict[str, AsyncClient | None] = {}
        self._stored: dict[str, tuple[str, str, str]] | None = None

    def _from_store(self, gstin: str) -> tuple[str, str, str] | None:
        if self._stored is None:
            self._stored = {s.key.gstin: (s.key.gsp, s.key.environment, s.key.username) for s in self.store.list()}
        return self._stored.get(gstin)

    def __call__(self, gstin: str) -> AsyncClient | None:
        if gstin not in self._clients:
            self._clients[gstin] = self._make(gstin)
        return self._clients[gstin]

    def _make(self, gstin: str) -> AsyncClient | None:
        from gspauth.cli._common import async_client

        p = self.profile
        known = self.taxpayers.get(gstin)
        stored = self._from_store(gstin)
        if known is not None:
            gsp, env, username = known.gsp or p.gsp, known.environment or p.environment, known.username
        elif stored is not None and (p.gsp is None or stored[0] == p.gsp):
            gsp, env, username = stored
        elif p.gstin == gstin and p.username:
            gsp, env, username = p.gsp, p.environment, p.username
        else:
            return None
        if not gsp:
            raise ConfigurationError(f"no GSP for GSTIN {gstin}: pass --gsp or a gsp column in --taxpayers")
        return async_client(p, gsp=gsp, environment=env, gstin=gstin, username=username, store=self.store,
                            otp_provider=self.otp_provider, http=self.http)

    def login_hint(self, gstin: str) -> str:
        known = self.taxpayers.get(gstin)
        stored = self._from_store(gstin)
        username = known.username if known else (stored[2] if stored else "<username>")
        gsp = (known.gsp if known and known.gsp else None) or self.profile.gsp or (stored[0] if stored else "<gsp>")
        p = self.profile
        target = "".join(f" --{flag} {value}" for flag, value in (("environment", p.environment), ("host", p.host),
                                                                  ("certificate", p.certificate)) if value
                         and (flag != "environment" or value != "sandbox"))
        return f"gspauth login --gsp {gsp} --gstin {gstin} --username {username}{target} --otp <OTP>"
