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

log = logging.getLogger("gspauth.store")
_T = TypeVar("_T")
_MAGIC = b"SQLite format 3\x00"


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
            self._check_header()
            self._check_tables(expect)
            if os.name == "posix" and path.stat().st_mode & 0o077:
                log.warning("%s was readable by others; setting mode 0600", path)
        self.tighten()

    # -- creation and damage ---------------------------------------------------------------

    def damaged(self, why: str) -> DamagedFile:
        """The typed error for this file being unusable (callers raise it)."""
        return DamagedFile(
            f"the {self.what} {self.path} is damaged ({why}); nothing was changed",
            path=str(self.path),
            hint=f"move it aside (`mv {self.path} {self.path}.damaged`) to start a new one, or restore it from a backup",
        )

    def _check_header(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(len(_MAGIC))
        except OSError as exc:
            raise self.damaged(f"cannot be read: {exc.strerror}") from None
        if not head:
            raise self.damaged("it is empty (0 bytes): truncated or created by something else")
        if head != _MAGIC:
            raise self.damaged("it is not an SQLite database")

    def _check_tables(self, expect: Sequence[str]) -> None:
        if not expect:
            return
        try:
            probe = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:
                tables = {r[0] for r in probe.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                probe.close()
        except sqlite3.DatabaseError as exc:
            raise self.damaged(f"SQLite: {exc}") from None
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
        self._check_header()

    # -- connections -----------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This process's connection (callers hold :attr:`guard`)."""
        if self._conn is None or self._pid != os.getpid():
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
            weakref.finalize(self, conn.close)  # closed on garbage collection too
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
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
