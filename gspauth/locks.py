"""Locks that hold across threads and processes: the one home of gspauth's locking.

* :class:`KeyLocks` — re-entrant per-name thread locks with a timeout (in-process stores).
* :func:`hold_file_lock` — an exclusive lock on a lock file, re-entrant within a thread,
  exclusive across threads, :class:`~gspauth.store.SQLiteStore` objects and processes;
  waits up to a timeout. The session store's single-flight refresh uses it.
* :class:`ExclusiveFile` — take a lock file without waiting, or learn that someone holds it
  (one filer per filing journal).

On POSIX the process part is ``fcntl.flock``: it belongs to the open file, so it also excludes
other objects in the same process, and the OS releases it when a process dies (no stale
locks). On Windows ``msvcrt.locking`` on the same files (released when the handle closes).
Lock files are never deleted: removing one while someone waits on it would let two holders in.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator

from gspauth.errors import LockTimeout

__all__ = ["ExclusiveFile", "KeyLocks", "hold_file_lock"]


def _wait_for(lock: threading.RLock, timeout: float | None, what: str) -> None:
    ok = lock.acquire() if timeout is None else lock.acquire(timeout=max(0.0, timeout))
    if not ok:
        raise LockTimeout(f"waited {timeout:.1f}s for the lock on {what}; another auth or refresh holds it")


class KeyLocks:
    """Re-entrant per-name thread locks, created on first use."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}

    def _get(self, name: str) -> threading.RLock:
        with self._guard:
            lock = self._locks.get(name)
            if lock is None:
                lock = self._locks[name] = threading.RLock()
            return lock

    @contextlib.contextmanager
    def hold(self, name: str, timeout: float | None, what: str | None = None) -> Iterator[None]:
        """Hold the lock ``name``; :class:`LockTimeout` after ``timeout`` seconds (``None``: wait)."""
        lock = self._get(name)
        _wait_for(lock, timeout, what or name)
        try:
            yield
        finally:
            lock.release()


def _os_trylock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _os_unlock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


class _FileLock:
    """One lock file, held at most once per process (thread part: an RLock; process part: flock)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.rlock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None


_file_locks: dict[str, _FileLock] = {}
_file_locks_guard = threading.Lock()


def _after_fork_in_child() -> None:
    # The child inherits descriptors that share the parent's open file descriptions:
    # unlocking them would release the *parent's* lock, so only close them.
    global _file_locks, _file_locks_guard
    for fl in _file_locks.values():
        if fl.fd is not None:
            with contextlib.suppress(OSError):
                os.close(fl.fd)
    _file_locks = {}
    _file_locks_guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def hold_file_lock(path: str | os.PathLike[str], timeout: float | None, what: str) -> Iterator[None]:
    """Hold the exclusive lock of the file at ``path`` (created 0600 if absent).

    Re-entrant within a thread; excludes other threads and processes.

    :param timeout: seconds to wait in all; ``None`` waits forever.
    :param what: names the locked thing in the :class:`LockTimeout` message.
    """
    path = os.fspath(path)
    deadline = None if timeout is None else time.monotonic() + timeout
    with _file_locks_guard:
        fl = _file_locks.get(path)
        if fl is None:
            fl = _file_locks[path] = _FileLock(path)
    _wait_for(fl.rlock, timeout, what)
    try:
        if fl.depth == 0:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                delay = 0.002
                while not _os_trylock(fd):
                    if deadline is not None and time.monotonic() >= deadline:
                        raise LockTimeout(f"waited {timeout:.1f}s for the lock on {what}; "
                                          "another process holds it (authenticating or refreshing?)")
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
            except BaseException:
                os.close(fd)
                raise
            fl.fd = fd
        fl.depth += 1
        try:
            yield
        finally:
            fl.depth -= 1
            if fl.depth == 0 and fl.fd is not None:
                fd, fl.fd = fl.fd, None
                try:
                    _os_unlock(fd)
                finally:
                    os.close(fd)
    finally:
        fl.rlock.release()


class ExclusiveFile:
    """A lock file taken without waiting: :meth:`acquire` says whether we got it.

    :param path: the lock file (created 0600 if absent).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock now; ``False`` if another holder (thread or process) has it."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if not _os_trylock(fd):
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Give the lock back (no error when not held)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                _os_unlock(fd)
            finally:
                os.close(fd)
