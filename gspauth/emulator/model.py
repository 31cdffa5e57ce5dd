"""The emulator's records: taxpayers, application sessions, issued OTPs, one GSTN call."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from gspauth.emulator._http import Request

__all__ = ["AppSession", "Call", "IssuedOtp", "Taxpayer", "iso"]

_UTC = _dt.timezone.utc


def iso(ts: float) -> str:
    """A POSIX timestamp as ISO-8601 UTC text."""
    return _dt.datetime.fromtimestamp(ts, _UTC).isoformat()


@dataclass
class Taxpayer:
    """One registered taxpayer and its portal "Manage API Access" settings."""

    gstin: str
    username: str
    state_code: str
    api_access: bool = True
    access_duration_hours: int = 720
    mobile: str = "+919800000000"
    email: str = "taxpayer@example.invalid"

    @property
    def pan(self) -> str:
        return self.gstin[2:12]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class AppSession:
    """One application session; ``session_id`` survives refreshes, ``auth_token`` does not."""

    session_id: str
    username: str
    gstin: str
    gsp: str
    application: str
    clientid: str
    ak: bytes = field(repr=False)
    ek: bytes = field(repr=False)
    auth_token: str = field(repr=False)
    started_at: float = 0.0
    token_expires_at: float = 0.0
    access_expires_at: float = 0.0
    refresh_count: int = 0

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ak"], d["ek"] = self.ak.hex(), self.ek.hex()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AppSession:
        d = dict(d)
        d["ak"], d["ek"] = bytes.fromhex(d["ak"]), bytes.fromhex(d["ek"])
        return cls(**d)

    def public_view(self) -> dict[str, Any]:
        """What the portal shows the taxpayer (no token, no keys)."""
        return {
            "session_id": self.session_id, "username": self.username, "gstin": self.gstin, "gsp": self.gsp,
            "application": self.application, "client_id": self.clientid, "started_at": iso(self.started_at),
            "token_expires_at": iso(self.token_expires_at), "access_expires_at": iso(self.access_expires_at),
            "refresh_count": self.refresh_count,
        }  # fmt: skip


@dataclass
class IssuedOtp:
    """An OTP the emulator sent (OTPREQUEST or EVCOTP): valid until ``expires_at``, for ``attempts_left`` tries."""

    otp: str = field(repr=False)
    expires_at: float
    attempts_left: int


@dataclass
class Call:
    """One request after the GSP layer: who is calling GSTN, and with what.

    ``headers`` are the request's (lower-case names) plus the GSTN credentials a GSP
    layer adds; ``parsed`` is the JSON body when it is an object (parsed once per call).
    """

    request: Request = field(repr=False)
    layer: str  # gstn | generic | cleartax | cleartax-legacy | vayana
    gsp: str
    application: str
    path: str  # GSTN path, e.g. /taxpayerapi/v1.0/authenticate
    headers: dict[str, str] = field(repr=False)
    files_base: str  # how FILEDET urls are written for this layer ("" = relative)
    parsed: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def query(self) -> dict[str, str]:
        return self.request.query

    @property
    def body(self) -> bytes:
        return self.request.body
