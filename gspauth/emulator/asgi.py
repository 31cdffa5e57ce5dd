"""ASGI adapter: serve an :class:`~gspauth.emulator.Emulator` with uvicorn (or any ASGI server).

The request becomes an emulator :class:`~gspauth.emulator._http.Request` straight from
the ASGI scope (no ``httpx`` objects on the served path). Data calls, the common case
and a few hundred microseconds of work, run on the event loop; calls that can take
milliseconds or more (``authenticate`` with its RSA, admin such as key rotation) run in
a worker thread so they never stall the loop. Injected latency is awaited, not slept.

A body over ``max_request_body_bytes`` is refused (HTTP 413, GEN5413) as soon as its
``Content-Length`` says so, or, for a chunked body, once the bytes read pass the limit:
the server stops reading there and closes the connection after the reply.

An injected dropped connection (:class:`~gspauth.emulator._http.DroppedConnection`)
closes the socket without a response when served through :class:`DroppingH11Protocol`
(what :class:`~gspauth.emulator.server.ThreadedEmulator` and the CLI use); under another
server it degrades to that server's 500. An unexpected exception answers HTTP 500 with a
GSTN-shaped TEC4001 body and is logged by class and traceback only: exception messages
may carry request data, so they are not logged.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from gspauth.emulator._http import DroppedConnection, Request, Response, gstn_error

if TYPE_CHECKING:
    from gspauth.emulator.core import Emulator

__all__ = ["DroppingH11Protocol", "EmulatorASGI", "app"]

_logger = logging.getLogger("gspauth.emulator")

_INTERNAL_ERROR = gstn_error("TEC4001", "emulator bug", status=500).response


def _in_thread(path: str) -> bool:
    return path.startswith("/_emulator") or path.endswith("/authenticate")


class EmulatorASGI:
    """ASGI 3 application around one emulator."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        limit = self.emulator.config.max_request_body_bytes
        declared = _content_length(scope["headers"])
        if declared is not None and declared > limit:  # refuse without reading a byte of it
            await _send(send, self.emulator.body_too_large(declared), close=True)
            return
        chunks = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:  # a chunked body past the limit: stop reading here
                await _send(send, self.emulator.body_too_large(None), close=True)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        host = next((v for k, v in headers if k == "host"), None)
        if host is None:
            server = scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        request = Request.build(
            scope["method"], f"{scope.get('scheme', 'http')}://{host}", scope["path"],
            scope.get("query_string", b"").decode("latin-1"), headers, b"".join(chunks),
        )  # fmt: skip
        await _send(send, await self._respond(request))

    async def _respond(self, request: Request) -> Response:
        emu = self.emulator
        try:
            plan = emu.plan_faults(request)
            if plan.delay:  # awaited here, so a slow request never stalls the others
                await asyncio.sleep(plan.delay)
            if _in_thread(request.path):
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(None, lambda: emu.respond(request, plan=plan))
            return emu.respond(request, plan=plan)
        except DroppedConnection:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug must not leak request data into logs
            tb = "".join(traceback.format_tb(exc.__traceback__))
            _logger.error("emulator error %s on %s %s\n%s", type(exc).__name__, request.method, request.path, tb)
            return _INTERNAL_ERROR


def _content_length(raw_headers: list[tuple[bytes, bytes]]) -> int | None:
    """The declared body size, or ``None`` (absent, chunked, or not a plain number)."""
    for name, value in raw_headers:
        if name.lower() == b"content-length":
            return int(value) if value.strip().isdigit() else None
    return None


async def _send(send: Any, response: Response, *, close: bool = False) -> None:
    # ``close``: the request body was left unread, so the connection cannot carry another
    # request; "connection: close" makes the server close it after this reply.
    headers = response.header_list() + ([("connection", "close")] if close else [])
    await send({
        "type": "http.response.start",
        "status": response.status,
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": response.body})


def app(emulator: Emulator) -> EmulatorASGI:
    """The ASGI application serving ``emulator`` (what ``gspauth emulator serve`` runs under uvicorn)."""
    return EmulatorASGI(emulator)


class DroppingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus: a :class:`DroppedConnection` from the app closes the socket silently.

    ASGI has no way to drop a connection without answering (an app exception before the
    response makes uvicorn send a 500), so this subclasses uvicorn's private ``H11Protocol``
    and uses its ``app``, ``cycle`` and ``transport`` attributes. That is why pyproject.toml
    pins uvicorn below the next release: the bound moves only after tests/emulator (the
    dropped-connection tests in test_server.py and test_faults.py) pass on that release.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = self.app

        async def wrapped(scope: Any, receive: Any, send: Any) -> None:
            try:
                await inner(scope, receive, send)
            except DroppedConnection:
                cycle = getattr(self, "cycle", None)
                if cycle is not None:
                    cycle.disconnected = True  # uvicorn must not try to answer
                self.transport.close()

        self.app = wrapped
