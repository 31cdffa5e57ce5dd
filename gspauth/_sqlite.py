"""One SQLite file shared by threads and processes: the plumbing under the session store,
the consent ledger and the filing journal.

:class:`SQLiteFile` keeps the file private (mode 0600, also SQLite's ``-wal``/``-shm``),
opens one connection per process (reopened after a fork: a connection must never cross
one), switches to WAL, and serialises this object's use of the connection with an ``RLock``.
:meth:`SQLiteFile.transaction` is ``BEGIN IMMEDIATE`` … ``COMMIT`` (rollback on error),
retried while another process holds the brief exclusive lock WAL setup needs.

A new file is built complete under a temporary name and renamed into place, so a file that
exists is either a finished database or damage: a zero-length file, one that is not SQLite,
or one SQLite cannot read raises :class:`~gspauth.errors.DamagedFile` naming the path and
what to do — it is never overwritten or silently replaced by an empty database.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from gspauth.errors import DamagedFile

__all__ = ["SQLiteFile"]

_logger = logging.getLogger("gspauth.store")
_T = TypeVar("_T")


# Connections a forked child inherited. Closing one in the child would make SQLite think it
# is the last connection (the parent's POSIX locks are not inherited), checkpoint and delete
# the parent's WAL under it: they are kept referenced instead, and never used.
_INHERITED: list[sqlite3.Connection] = []


def _close_in(conn: sqlite3.Connection, pid: int) -> None:
    if os.getpid() == pid:
        conn.close()
    else:
        _INHERITED.append(conn)


class SQLiteFile:
    """A private SQLite file in WAL mode with one connection per process.

    :param path: the database file (parent directories created with mode 0700).
    :param what: what the file is, for messages (``"session store"``, ``"filing journal"``).
    :param schema: statements creating the schema (run once, on a new file, before it is
        renamed into place; later opens may run their own migrations).
    :param expect: tables an existing file must have (checked read-only, before anything is
        written to it): another program's SQLite file is refused untouched.
    :param busy_timeout: seconds to wait for another writer.
    :param pragmas: extra ``PRAGMA`` statements run on each new connection.
    """

    def __init__(self, path: Path, *, what: str = "database", schema: Sequence[str] = (),
                 expect: Sequence[str] = (), busy_timeout: float = 30.0, pragmas: tuple[str, ...] = ()) -> None:
        from gspauth.config import ensure_private_dir

        self.path = path
        self.what = what
        ensure_private_dir(path.parent)
        self.busy_timeout = busy_timeout
        self.pragmas = ("PRAGMA synchronous = NORMAL", *pragmas)
        self.guard = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        if not path.exists():
            self._create(schema)
        else:
            self._check_file(expect)
            if os.name == "posix" and path.stat().st_mode & 0o077:
                _logger.warning("%s was readable by others; setting mode 0600", path)
        self.tighten()

    # -- creation and damage ---------------------------------------------------------------

    def damaged(self, why: str) -> DamagedFile:
        """The typed error for this file being unusable (callers raise it)."""
        return DamagedFile(
            f"the {self.what} {self.path} is damaged ({why}); nothing was changed",
            path=str(self.path),
            hint=f"move it aside (`mv {self.path} {self.path}.damaged`) to start a new one, "
                 "or restore it from a backup",
        )

    def _check_file(self, expect: Sequence[str]) -> None:
        # Only SQLite may open the file: closing a descriptor of it opened elsewhere (even to
        # read 16 header bytes) drops every POSIX lock this process's SQLite connections hold on
        # it, and a writer in another process could then corrupt the database.
        try:
            size = self.path.stat().st_size
        except OSError as exc:
            raise self.damaged(f"cannot be read: {exc.strerror}") from None
        if size == 0:
            raise self.damaged("it is empty (0 bytes): truncated or created by something else")
        self._check_tables(expect)

    def _check_tables(self, expect: Sequence[str]) -> None:
        # A plain connection that only reads: it changes nothing in the file (no journal-mode
        # switch), and unlike a mode=ro one it takes WAL's shared-memory locks, so a concurrent
        # writer (another process sharing a ledger) cannot make it read a torn page.
        try:
            probe = sqlite3.connect(str(self.path), timeout=self.busy_timeout)
            try:
                tables = {r[0] for r in probe.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                probe.close()
        except sqlite3.DatabaseError as exc:
            why = "it is not an SQLite database" if "not a database" in str(exc) else f"SQLite: {exc}"
            raise self.damaged(why) from None
        missing = [t for t in expect if t not in tables]
        if missing:
            raise self.damaged(f"it is an SQLite database, but not a gspauth {self.what} (no {', '.join(missing)})")

    def _create(self, schema: Sequence[str]) -> None:
        # Build the database complete under a private temporary name, then rename it into
        # place: a crash half-way leaves a stray temporary file, never a half-made database.
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.close(os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            conn = sqlite3.connect(str(tmp), isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("BEGIN IMMEDIATE")
                for statement in schema:
                    conn.execute(statement)
                conn.execute("COMMIT")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(str(tmp) + suffix)
            try:
                os.link(tmp, self.path)  # fails if another process created it meanwhile: use theirs
            except FileExistsError:
                pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    # -- connections -----------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This process's connection (callers hold :attr:`guard`)."""
        if self._conn is None or self._pid != os.getpid():
            if self._conn is not None:  # inherited through fork: never close it in this process
                _INHERITED.append(self._conn)
            self._pid = os.getpid()
            try:
                conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout, isolation_level=None,
                                       check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                self.retry(lambda: conn.execute("PRAGMA journal_mode = WAL"))
                for pragma in self.pragmas:
                    conn.execute(pragma)
            except sqlite3.DatabaseError as exc:
                raise self._classify(exc) from None
            self._conn = conn
            weakref.finalize(self, _close_in, conn, self._pid)  # closed on garbage collection too
            self.tighten()
        return self._conn

    def _classify(self, exc: sqlite3.Error) -> Exception:
        """SQLite's error as gspauth's: damage becomes :class:`DamagedFile`, the rest stays."""
        text = str(exc)
        # "file is not a database" is a plain DatabaseError; corruption shows in the message of
        # others. Constraint errors (IntegrityError) and "locked" are not damage.
        if type(exc) is sqlite3.DatabaseError or any(w in text for w in ("malformed", "not a database", "disk I/O")):
            return self.damaged(f"SQLite: {text}")
        return exc

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
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if the block raises; damage is typed."""
        with self.guard:
            conn = self.connection()
            try:
                self.retry(lambda: conn.execute("BEGIN IMMEDIATE"))
            except sqlite3.DatabaseError as exc:
                raise self._classify(exc) from None
            try:
                yield conn
            except sqlite3.DatabaseError as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise self._classify(exc) from None
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                raise self._classify(exc) from None

    def read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """Rows of a query outside a write transaction; damage is typed."""
        with self.guard:
            try:
                return self.connection().execute(sql, tuple(args)).fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._classify(exc) from None

    def close(self) -> None:
        """Close this process's connection (reopened on next use)."""
        with self.guard:
            if self._conn is not None:
                _close_in(self._conn, self._pid)
            self._conn = None
