"""The emulator's own small request/response types and reply helpers.

The emulator logic works on :class:`Request` and :class:`Response`, plain and cheap to
build: :meth:`Emulator.handle <gspauth.emulator.Emulator.handle>` converts from and to
``httpx`` (for ``httpx.MockTransport``), and the ASGI adapter builds them straight from
the ASGI scope, so the served path pays for no ``httpx`` object per request.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx

from gspauth import codes

__all__ = [
    "DroppedConnection",
    "Reply",
    "Request",
    "Response",
    "consteq",
    "gstn_error",
    "json_response",
    "plain_response",
]

_JSON = "application/json"


class DroppedConnection(httpx.RemoteProtocolError):
    """An injected fault: the server closes the connection without answering.

    In-process (``httpx.MockTransport``) it reaches the client as this exception; the
    ASGI adapter turns it into a closed socket.
    """


@dataclass(slots=True)
class Request:
    """One HTTP request as the emulator sees it.

    ``headers`` has lower-case names (header names are case-insensitive, spec §2.3);
    a header sent twice has its values joined with ``", "`` (as ``httpx`` does), which
    no strict check accepts. ``query`` keeps the first value of each parameter.
    ``root`` is ``scheme://host[:port]`` as the client addressed the emulator.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    root: str

    @classmethod
    def build(cls, method: str, root: str, path: str, query: str,
              headers: list[tuple[str, str]], body: bytes) -> Request:  # fmt: skip
        hdrs: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            hdrs[key] = f"{hdrs[key]}, {value}" if key in hdrs else value
        params: dict[str, str] = {}
        if query:
            for k, v in parse_qsl(query, keep_blank_values=True):
                params.setdefault(k, v)
        return cls(method.upper(), path, params, hdrs, body, root)

    @classmethod
    def from_httpx(cls, request: httpx.Request) -> Request:
        url = request.url
        return cls.build(
            request.method, f"{url.scheme}://{url.netloc.decode('ascii')}", url.path,
            url.query.decode("ascii"), list(request.headers.items()), request.read(),
        )  # fmt: skip


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = field(repr=False)
    content_type: str = _JSON
    extra_headers: tuple[tuple[str, str], ...] = ()

    def header_list(self) -> list[tuple[str, str]]:
        return [("content-type", self.content_type), ("content-length", str(len(self.body))), *self.extra_headers]

    def to_httpx(self) -> httpx.Response:
        return httpx.Response(self.status, content=self.body, headers=self.header_list())


class Reply(Exception):
    """Raised anywhere in a handler to answer with ``response`` (carries ``code`` for stats)."""

    def __init__(self, response: Response, code: str | None = None) -> None:
        super().__init__(code or response.status)
        self.response = response
        self.code = code


_dumps = json.JSONEncoder(separators=(",", ":")).encode


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, _dumps(obj).encode(), _JSON, tuple((headers or {}).items()))


def plain_response(status: int, body: bytes, content_type: str) -> Response:
    return Response(status, body, content_type)


def gstn_error(code: str, detail: str | None = None, *, status: int | None = None) -> Reply:
    """A GSTN error reply (spec §6) from the :mod:`gspauth.codes` table, as a raisable :class:`Reply`."""
    entry = codes.CODES[code]
    message = f"{entry.message}: {detail}" if detail else entry.message
    body = {"status_cd": "0", "error": {"error_cd": code, "message": message}}
    return Reply(json_response(status or entry.http_status, body), code)


def consteq(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality of two secrets (``str`` compared as UTF-8)."""
    a_b = a.encode("utf-8") if isinstance(a, str) else a
    b_b = b.encode("utf-8") if isinstance(b, str) else b
    return hmac.compare_digest(a_b, b_b)
