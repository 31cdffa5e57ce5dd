"""ASGI adapter: serve an :class:`~gspauth.emulator.Emulator` with uvicorn (or any ASGI server).

:meth:`Emulator.handle` runs in a worker thread so slow calls (RSA, injected latency)
never block the event loop. An injected dropped connection
(:class:`~gspauth.emulator._http.DroppedConnection`) closes the socket without a
response when served through :class:`DroppingH11Protocol` (what
:class:`~gspauth.emulator.server.ThreadedEmulator` and the CLI use); under another
server it degrades to that server's 500.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
from uvicorn.protocols.http.h11_impl import H11Protocol

from gspauth.emulator._http import DroppedConnection

if TYPE_CHECKING:
    from gspauth.emulator.core import Emulator

__all__ = ["DroppingH11Protocol", "EmulatorASGI", "app"]


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
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        host = next((v for k, v in headers if k.lower() == "host"), None)
        if host is None:
            server = scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = f"{scope.get('scheme', 'http')}://{host}{path.decode('latin-1')}" + (f"?{query.decode('latin-1')}" if query else "")
        request = httpx.Request(scope["method"], url, headers=headers, content=b"".join(chunks))
        loop = asyncio.get_running_loop()
        response = await loop.run_in_executor(None, self.emulator.handle, request)
        await send({
            "type": "http.response.start",
            "status": response.status_code,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()
                        if k.lower() not in ("content-length", "transfer-encoding")]
                       + [(b"content-length", str(len(response.content)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": response.content})


def app(emulator: Emulator) -> EmulatorASGI:
    return EmulatorASGI(emulator)


class DroppingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus: a :class:`DroppedConnection` from the app closes the socket silently."""

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
