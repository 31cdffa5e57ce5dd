"""One SQLite file shared by threads and processes: the plumbing under the session store and the ledger.

:class:`SQLiteFile` creates the file with mode 0600 (and tightens a file others can read),
opens one connection per process (reopened after a fork: a connection must never cross
one), switches to WAL, and serialises this object's use of the connection with an
``RLock``. :meth:`SQLiteFile.transaction` is ``BEGIN IMMEDIATE`` … ``COMMIT`` (rollback on
error), retried while another process holds the brief exclusive lock WAL setup needs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

__all__ = ["SQLiteFile"]

log = logging.getLogger("gspauth.store")
_T = TypeVar("_T")


class SQLiteFile:
    """A private SQLite file in WAL mode with one connection per process.

    :param path: the database file (parent directories created with mode 0700).
    :param busy_timeout: seconds to wait for another writer.
    :param pragmas: extra ``PRAGMA`` statements run on each new connection.
    """

    def __init__(self, path: Path, *, busy_timeout: float = 30.0, pragmas: tuple[str, ...] = ()) -> None:
        from gspauth.config import ensure_private_dir

        self.path = path
        ensure_private_dir(path.parent)
        if not path.exists():
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        elif os.name == "posix" and path.stat().st_mode & 0o077:
            log.warning("%s was readable by others; setting mode 0600", path)
        self.busy_timeout = busy_timeout
        self.pragmas = ("PRAGMA synchronous = NORMAL", *pragmas)
        self.guard = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self.tighten()

    def connection(self) -> sqlite3.Connection:
        """This process's connection (callers hold :attr:`guard`)."""
        if self._conn is None or self._pid != os.getpid():
            self._pid = os.getpid()
            conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            self.retry(lambda: conn.execute("PRAGMA journal_mode = WAL"))
            for pragma in self.pragmas:
                conn.execute(pragma)
            self._conn = conn
            weakref.finalize(self, conn.close)  # closed on garbage collection too
            self.tighten()
        return self._conn

    def retry(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` again while SQLite answers "database is locked" (WAL switch under a crowd of processes)."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def tighten(self) -> None:
        """Mode 0600 on the file and SQLite's ``-wal``/``-shm``/``-journal`` siblings."""
        if os.name != "posix":
            return
        for suffix in ("", "-wal", "-shm", "-journal"):
            p = Path(str(self.path) + suffix)
            with contextlib.suppress(FileNotFoundError, PermissionError):
                if p.stat().st_mode & 0o077:
                    os.chmod(p, 0o600)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if the block raises."""
        with self.guard:
            conn = self.connection()
            self.retry(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def close(self) -> None:
        """Close this process's connection (reopened on next use)."""
        with self.guard:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
