"""A throw-away PostgreSQL cluster for tests: loopback only, random port, removed afterwards.

::

    from gspauth.testing.postgres import throwaway_cluster

    with throwaway_cluster() as cluster:
        url = cluster.url(schema="t1")          # postgresql://gspauth:…@127.0.0.1:PORT/gspauth_test?schema=t1
        store = open_store(url)

What it does:

* finds the server programs (``initdb``, ``postgres``) on ``PATH``, in ``pg_config --bindir``
  or in ``/usr/lib/postgresql/<version>/bin`` (the newest); when there are none and this process
  is root on a system with ``apt-get``, installs the OS package (``apt-get install -y
  postgresql``); otherwise raises :class:`PostgresUnavailable` saying what to install — never a
  silent skip;
* ``initdb`` refuses to run as root, so as root the cluster runs as an unprivileged user: the
  OS package's ``postgres`` account when it exists, else a dedicated system user
  ``gspauth-pg`` created with ``useradd``; the temporary directory is handed to that user;
* the server listens on ``127.0.0.1`` only, on a free port, with its Unix socket in the
  temporary directory; password authentication (SCRAM-SHA-256, a random password) for every
  connection; durability switched off (``fsync``, ``synchronous_commit``, ``full_page_writes``)
  because the data is thrown away;
* on exit — also when the block raised — the server is stopped (fast shutdown, then kill) and
  the directory removed. On Linux the server also gets SIGQUIT if the process that started it
  dies (``PR_SET_PDEATHSIG``), and clusters left by a killed test run are cleaned up by the
  next one.

Opt-in like the rest of :mod:`gspauth.testing`: nothing here runs at import.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import psycopg

__all__ = ["Cluster", "PostgresUnavailable", "ensure_server", "find_bindir", "throwaway_cluster"]

_log = logging.getLogger("gspauth.testing.postgres")

_PREFIX = "gspauth-pg-"
_SERVICE_USER = "gspauth-pg"
_SUPERUSER = "gspauth"
_DATABASE = "gspauth_test"
_HOW_TO_INSTALL = (
    "install the PostgreSQL server (Debian/Ubuntu: `apt-get install postgresql`; Fedora: `dnf install "
    "postgresql-server`; macOS: `brew install postgresql`) or put the directory holding `initdb` and "
    "`postgres` on PATH"
)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server programs here, and they could not be installed (the message says how)."""


@dataclass(frozen=True)
class Cluster:
    """A running throw-away cluster. ``repr`` hides the password."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    directory: Path
    bindir: Path

    def url(self, database: str | None = None, *, schema: str | None = None, password: bool = True) -> str:
        """A ``postgresql://`` URL for ``database`` (default: the test database).

        :param schema: appended as ``?schema=…`` (gspauth's own URL parameter).
        :param password: embed the password (``False``: give it via ``PGPASSWORD`` yourself).
        """
        auth = f"{self.user}:{quote(self.password, safe='')}" if password else self.user
        url = f"postgresql://{auth}@{self.host}:{self.port}/{database or self.database}"
        return f"{url}?schema={schema}" if schema else url

    def connect(self, database: str | None = None) -> psycopg.Connection[tuple[Any, ...]]:
        """A ``psycopg`` connection as the cluster's superuser (autocommit)."""
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=database or self.database, autocommit=True)


# -- finding or installing the server ----------------------------------------------------------


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "postgres"))


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or ``None``."""
    on_path = shutil.which("initdb")
    if on_path and _has_server(Path(on_path).resolve().parent):
        return Path(on_path).resolve().parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidate = Path(out.stdout.strip())
            if _has_server(candidate):
                return candidate

    def version(path: str) -> tuple[int, ...]:
        match = re.search(r"/postgresql/([\d.]+)/", path)
        return tuple(int(x) for x in match.group(1).split(".") if x) if match else ()

    for path in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if _has_server(Path(path)):
            return Path(path)
    return None


def _install_os_package() -> None:
    _log.warning("PostgreSQL server not found: installing the OS package (apt-get install -y postgresql)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"])
    for step in steps:
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise PostgresUnavailable(f"`{' '.join(step)}` failed ({done.returncode}):\n{tail}\n{_HOW_TO_INSTALL}")


def ensure_server(install: bool | None = None) -> Path:
    """The server's bin directory, installing the OS package if allowed and needed.

    :param install: ``None`` installs only as root on a system with ``apt-get``.
    :raises PostgresUnavailable: not found and not installable here.
    """
    bindir = find_bindir()
    if bindir is not None:
        return bindir
    can_install = os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get") is not None
    if install is None:
        install = can_install
    if not install or not can_install:
        why = "not running as root with apt-get" if not can_install else "installing was not allowed"
        raise PostgresUnavailable(f"PostgreSQL server programs (initdb, postgres) not found ({why}); {_HOW_TO_INSTALL}")
    _install_os_package()
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(f"installed the postgresql package but still found no initdb; {_HOW_TO_INSTALL}")
    return bindir


# -- who runs the server -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    uid: int
    gid: int
    name: str
    home: str


def _service_account() -> _Account | None:
    """``None`` when this process may run the server itself (not root)."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", _SERVICE_USER):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return _Account(entry.pw_uid, entry.pw_gid, name, entry.pw_dir or "/")
    useradd = shutil.which("useradd")
    if useradd is None:
        raise PostgresUnavailable("running as root, and initdb refuses root; no `useradd` to create an unprivileged "
                                  f"user: create one named {_SERVICE_USER} (or postgres), or run the tests as a "
                                  "normal user")
    subprocess.run([useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                    "--shell", "/usr/sbin/nologin", _SERVICE_USER], check=True, capture_output=True, timeout=60)
    entry = pwd.getpwnam(_SERVICE_USER)
    return _Account(entry.pw_uid, entry.pw_gid, _SERVICE_USER, "/")


def _chown_tree(path: Path, account: _Account) -> None:
    for root, dirs, files in os.walk(path):
        os.chown(root, account.uid, account.gid)
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), account.uid, account.gid, follow_symlinks=False)


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec function asking Linux to SIGQUIT the server if its parent dies (no orphan servers)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def arm() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGQUIT), 0, 0, 0)

    return arm


def _as_user(account: _Account | None) -> dict[str, Any]:
    """``subprocess`` arguments that run a program as ``account`` (nothing when we are not root)."""
    if account is None:
        return {}
    return {"user": account.uid, "group": account.gid, "extra_groups": []}


def _environment(account: _Account | None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
    if account is not None:
        env["HOME"] = account.home
    return env


# -- leftovers of killed runs ---------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_leftovers(base: Path) -> None:
    """Stop and remove clusters whose owning process is gone (a test run that was killed)."""
    for directory in base.glob(f"{_PREFIX}*"):
        owner_file = directory / "owner.pid"
        try:
            owner = int(owner_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if _pid_alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            server = int((directory / "data" / "postmaster.pid").read_text().splitlines()[0])
            # only if that pid is still this cluster's server (pids are reused)
            if str(directory) in Path(f"/proc/{server}/cmdline").read_bytes().decode(errors="replace"):
                os.kill(server, signal.SIGQUIT)
        shutil.rmtree(directory, ignore_errors=True)


# -- the cluster ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def _wait_ready(cluster: Cluster, server: subprocess.Popen[bytes], logfile: Path, timeout: float) -> bool:
    """``True`` when the server accepts a password login; ``False`` if it exited (port taken?)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            return False
        try:
            conn = psycopg.connect(host=cluster.host, port=cluster.port, user=cluster.user, password=cluster.password,
                                   dbname="postgres", connect_timeout=2)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"the test PostgreSQL server did not accept connections within "
                                          f"{timeout:.0f}s; its log ends:\n{_log_tail(logfile)}") from None
            time.sleep(0.05)
            continue
        conn.close()
        return True


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    # SIGQUIT is PostgreSQL's "immediate" shutdown: no checkpoint, nothing flushed — right for
    # data about to be deleted, and seconds faster than a fast shutdown on a loaded machine.
    for sig, wait in ((signal.SIGQUIT, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            server.send_signal(sig)
        try:
            server.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def throwaway_cluster(*, install: bool | None = None, settings: dict[str, str] | None = None,
                      start_timeout: float = 60.0) -> Iterator[Cluster]:
    """Start a private PostgreSQL cluster on 127.0.0.1; stop and delete it on exit.

    :param install: install the OS package when no server is found (default: only as root
        with ``apt-get``).
    :param settings: extra server settings (``postgresql.conf`` names → values).
    :raises PostgresUnavailable: no server and none installable, or it would not start.
    """
    bindir = ensure_server(install)
    account = _service_account()
    base = Path(tempfile.gettempdir())
    if account is not None and not os.stat(base).st_mode & 0o001:
        base = Path("/tmp")  # the service user must be able to reach its directory
    _sweep_leftovers(base)
    directory = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=base))
    server: subprocess.Popen[bytes] | None = None
    try:
        (directory / "owner.pid").write_text(f"{os.getpid()}\n")
        password = secrets.token_urlsafe(24)
        pwfile, data, sockets, logfile = directory / "pw", directory / "data", directory / "sock", directory / "log"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        sockets.mkdir(mode=0o700)
        logfile.touch(mode=0o600)
        if account is not None:
            _chown_tree(directory, account)
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", _SUPERUSER, f"--pwfile={pwfile}",
                  "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
                  "--no-instructions"]
        done = subprocess.run(initdb, cwd=directory, env=_environment(account), capture_output=True, text=True,
                              timeout=180, check=False, **_as_user(account))
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}")
        pwfile.unlink()
        options = {
            "listen_addresses": "127.0.0.1", "unix_socket_directories": str(sockets),
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "max_connections": "300", "shared_buffers": "64MB", "logging_collector": "off",
            "log_min_messages": "warning", "timezone": "UTC", **(settings or {}),
        }  # fmt: skip
        for _attempt in range(5):
            port = _free_port()
            cluster = Cluster("127.0.0.1", port, _SUPERUSER, password, _DATABASE, directory, bindir)
            args = [str(bindir / "postgres"), "-D", str(data), "-p", str(port)]
            for name, value in options.items():
                args += ["-c", f"{name}={value}"]
            with open(logfile, "ab") as out:
                # preexec_fn only makes one prctl call (see _parent_death_signal)
                server = subprocess.Popen(args, cwd=directory, env=_environment(account), stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=subprocess.STDOUT, preexec_fn=_parent_death_signal(),
                                          **_as_user(account))
            if _wait_ready(cluster, server, logfile, start_timeout):
                break
            server.wait(5)
            server = None
            if "could not bind" not in _log_tail(logfile) and "already in use" not in _log_tail(logfile):
                raise PostgresUnavailable(f"the test PostgreSQL server exited at start; its log ends:\n"
                                          f"{_log_tail(logfile)}")
        else:
            raise PostgresUnavailable("no free port for the test PostgreSQL server; its log ends:\n"
                                      + _log_tail(logfile))
        admin = cluster.connect("postgres")
        try:
            admin.execute(f'CREATE DATABASE "{_DATABASE}"')
        finally:
            admin.close()
        _log.info("test PostgreSQL %s started on 127.0.0.1:%d in %s", bindir, cluster.port, directory)
        yield cluster
    finally:
        if server is not None:
            _stop(server)
        shutil.rmtree(directory, ignore_errors=True)
