"""Run the emulator as a real HTTP server (uvicorn) in a background thread.

uvicorn's access log (off unless asked for) prints request paths with their query
strings; :func:`gspauth.redact.install_log_filters` puts the project's one redacting filter
on the uvicorn loggers, which hides the values that work as bearer handles there (the
FILEDET ``token`` query parameter and the file id of a FILEDET download URL). Everything
else secret travels in headers and bodies, which are never logged.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import uvicorn

from gspauth.emulator.asgi import DroppingH11Protocol, EmulatorASGI
from gspauth.emulator.config import EmulatorConfig
from gspauth.emulator.core import Emulator
from gspauth.redact import install_log_filters

__all__ = ["ThreadedEmulator"]


def _make_server(emulator: Emulator, *, log_level: str = "warning", access_log: bool = False) -> uvicorn.Server:
    config = uvicorn.Config(
        EmulatorASGI(emulator), http=DroppingH11Protocol, lifespan="off", log_level=log_level,
        access_log=access_log, timeout_keep_alive=30, backlog=2048,
    )  # fmt: skip
    install_log_filters()  # after Config(), which configures uvicorn's loggers; idempotent
    return uvicorn.Server(config)


class ThreadedEmulator:
    """Start an emulator on ``127.0.0.1`` (port 0 = any free port) in a thread; stop it on exit.

    ::

        with ThreadedEmulator(seed=7) as server:
            httpx.get(server.url + "/_emulator/health")
            server.emulator.clock.advance(3600)   # in-process control of the same emulator
    """

    def __init__(
        self,
        emulator: Emulator | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        config: EmulatorConfig | None = None,
        log_level: str = "warning",
        access_log: bool = False,
        **overrides: Any,
    ) -> None:
        self.emulator = emulator if emulator is not None else Emulator(config, **overrides)
        self.host = host
        self.port = port
        self.log_level = log_level
        self.access_log = access_log
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ThreadedEmulator:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
        # listener's proto says TCP; without it every response stalls ~40 ms (Nagle + delayed ACK).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self.port))
        sock.listen(2048)
        self.port = sock.getsockname()[1]
        server = _make_server(self.emulator, log_level=self.log_level, access_log=self.access_log)
        self._server = server

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # noqa: BLE001 - surfaced by start()/stop()
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"gspauth-emulator:{self.port}", daemon=True)
        self._thread.start()
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the emulator server failed to start: {self._error!r}")
            self._thread.join(0.01)
        if self.emulator.state_dir:
            fd = os.open(os.path.join(self.emulator.state_dir, "url"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.url + "\n")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> ThreadedEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"url={self.url}" if self._thread is not None else "stopped"
        return f"<ThreadedEmulator {state}>"
