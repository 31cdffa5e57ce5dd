"""Run the emulator as a real HTTP server (uvicorn) in a background thread.

uvicorn's access log (off unless asked for) prints request paths with their query
strings; :class:`RedactingFilter` replaces the values that work as bearer handles there
(the FILEDET ``token`` query parameter and the file id of a FILEDET download URL) with
``[secure]``. Everything else secret travels in headers and bodies, which are never logged.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from typing import Any

import uvicorn

from gspauth.emulator.asgi import DroppingH11Protocol, EmulatorASGI
from gspauth.emulator.config import EmulatorConfig
from gspauth.emulator.core import Emulator

__all__ = ["RedactingFilter", "ThreadedEmulator", "make_server"]

_SECRET_QUERY = re.compile(r"(?i)([?&](?:token|otp|auth_token|auth-token|app_key|appkey|sek|rek|client-secret)=)[^&\s\"]*")
_FILE_ID = re.compile(r"/files/[0-9a-f]{32}/")


def redact_url(text: str) -> str:
    """``text`` with secret-bearing query values and FILEDET file ids replaced by ``[secure]``."""
    return _FILE_ID.sub("/files/[secure]/", _SECRET_QUERY.sub(r"\1[secure]", text))


class RedactingFilter(logging.Filter):
    """A logging filter that applies :func:`redact_url` to every string argument of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact_url(record.msg)
        return True


_REDACTOR = RedactingFilter()


def make_server(emulator: Emulator, *, log_level: str = "warning", access_log: bool = False) -> uvicorn.Server:
    config = uvicorn.Config(
        EmulatorASGI(emulator), http=DroppingH11Protocol, lifespan="off", log_level=log_level,
        access_log=access_log, timeout_keep_alive=30, backlog=2048,
    )  # fmt: skip
    for name in ("uvicorn.access", "uvicorn.error"):  # uvicorn configured them in Config(); idempotent
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
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
        server = make_server(self.emulator, log_level=self.log_level, access_log=self.access_log)
        self._server = server

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # surfaced by start()/stop()
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
