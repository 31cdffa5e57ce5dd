"""Small response helpers shared by the emulator's layers."""

from __future__ import annotations

import json
from typing import Any

import httpx

from gspauth import codes

__all__ = ["DroppedConnection", "Reply", "gstn_error", "json_response"]

_JSON = {"content-type": "application/json"}


class DroppedConnection(httpx.RemoteProtocolError):
    """An injected fault: the server closes the connection without answering.

    In-process (``httpx.MockTransport``) it reaches the client as this exception; the
    ASGI adapter turns it into a closed socket.
    """


class Reply(Exception):  # noqa: N818 - control flow, not an error
    """Raised anywhere in a handler to answer with ``response`` (carries ``code`` for stats)."""

    def __init__(self, response: httpx.Response, code: str | None = None) -> None:
        super().__init__(code or response.status_code)
        self.response = response
        self.code = code


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(obj, separators=(",", ":")).encode(), headers={**_JSON, **(headers or {})})


def gstn_error(code: str, detail: str | None = None, *, status: int | None = None) -> Reply:
    """A GSTN error reply (spec §6) from the :mod:`gspauth.codes` table, as a raisable :class:`Reply`."""
    entry = codes.CODES[code]
    message = f"{entry.message}: {detail}" if detail else entry.message
    body = {"status_cd": "0", "error": {"error_cd": code, "message": message}}
    return Reply(json_response(status or entry.http_status, body), code)
