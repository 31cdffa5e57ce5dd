"""What travels between the client and the workers of a distributed run: small descriptions
only, and nothing secret (a test pickles them and looks for the secrets)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from gspauth.errors import ConfigurationError

if TYPE_CHECKING:
    from gspauth.cli._taxpayers import Taxpayer
    from gspauth.filer import FilerOptions, FilingInput, FilingReport
    from gspauth.filer._partition import Partition

__all__ = ["Location", "PartitionResult", "PartitionTask", "TaskError", "WorkerTarget"]


@dataclass(frozen=True)
class WorkerTarget:
    """Where each worker files to, minus everything secret: the worker adds its GSP
    credentials and the store key from its own environment or ``config.toml`` (README
    "Settings"), so that none of them ever passes through the Dask scheduler.

    Each field left ``None`` is resolved on the worker as ``gspauth file`` resolves it
    (``GSPAUTH_<NAME>``, then the profile), so paths may differ from machine to machine.

    :param profile: the ``config.toml`` profile the workers load.
    :param gsp: GSP id; :param environment: ``sandbox`` or ``production``.
    :param host: GSP host override (an emulator); :param certificate: GSTN certificate path
        *on the workers*; :param ip_usr: the ``ip-usr`` header.
    :param gstin: / :param username: a single taxpayer, as ``--gstin``/``--username``.
    """

    profile: str | None = None
    gsp: str | None = None
    environment: str | None = None
    host: str | None = None
    certificate: str | None = None
    ip_usr: str | None = None
    gstin: str | None = None
    username: str | None = None

    def overrides(self) -> dict[str, str | None]:
        return {"gsp": self.gsp, "environment": self.environment, "host": self.host,
                "certificate": self.certificate, "ip_usr": self.ip_usr, "gstin": self.gstin,
                "username": self.username}


@dataclass(frozen=True)
class Location:
    """A store or journal setting as the workers receive it: a path or a URL without its
    password (``password`` stays on the client: workers get theirs from ``PGPASSWORD``,
    ``PGPASSFILE`` or ``~/.pgpass``)."""

    text: str
    password: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, spec: str | os.PathLike[str], what: str) -> Location:
        text = os.fspath(spec)
        if not text:
            raise ConfigurationError(f"no {what} given: a distributed run needs one every worker can open")
        scheme, sep, _ = text.partition("://")
        if not sep or scheme in ("sqlite", "file"):
            return cls(text)
        parts = urlsplit(text)
        if parts.password is None:
            return cls(text)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        user = f"{parts.username}@" if parts.username else ""
        return cls(urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment)), parts.password)

    @property
    def is_local_file(self) -> bool:
        """A file on this machine's disk (an SQLite path or ``sqlite:///`` URL)."""
        scheme, sep, _ = self.text.partition("://")
        return not sep or scheme in ("sqlite", "file")

    def with_password(self) -> str:
        """The setting as the user gave it (for this process only)."""
        if self.password is None:
            return self.text
        parts = urlsplit(self.text)
        user = parts.username or ""
        netloc = f"{user}:{self.password}@{parts.netloc.split('@', 1)[-1]}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def __str__(self) -> str:
        return self.text


def is_loopback(address: str) -> bool:
    """Whether a Dask address (``tcp://host:port``, ``inproc://…``) is on this machine only."""
    scheme, _, rest = address.partition("://")
    if scheme == "inproc":
        return True
    host = urlsplit(f"//{rest}").hostname or ""
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class PartitionTask:
    """One Dask task: file ``partition``'s GSTINs from ``inputs``.

    :param run: the run's id (names the stop event and the task keys).
    :param store: / :param journal: where every worker opens them (no password).
    :param options: the filer options, with the run's limits already divided among the tasks
        that run at once.
    :param taxpayers: a taxpayers file every worker reads (a shared path), or this
        partition's taxpayers (never secret: GSTIN, username, GSP, environment).
    :param wait_for_consent: seconds a GSTIN that needs OTP consent may wait for a session to
        appear in the store (0: park it at once).
    :param claim_wait: seconds a GSTIN another filer holds may be waited for.
    :param stop_event: the name of the Dask event that asks every task to stop cleanly.
    """

    run: str
    partition: Partition
    inputs: tuple[FilingInput, ...]
    store: str
    journal: str
    options: FilerOptions
    target: WorkerTarget
    taxpayers: str | tuple[Taxpayer, ...] | None = None
    request_otp: bool = True
    otp_dir: str | None = None
    wait_for_consent: float = 0.0
    claim_wait: float = 120.0
    http_timeout: float = 60.0
    stop_event: str | None = None


@dataclass(frozen=True)
class TaskError:
    """Why a partition produced no report.

    :param kind: ``error`` (a gspauth error on the worker: settings, files, the database),
        ``lost`` (the worker running it died more often than the scheduler allows),
        ``internal`` (an unexpected exception: a bug), ``cancelled``.
    :param type: the exception's class name; :param message: its message — gspauth errors'
        only (they never hold secrets); :param hint: what to do.
    """

    kind: str
    type: str
    message: str | None = None
    hint: str | None = None

    def text(self) -> str:
        if self.kind == "lost":
            return f"lost: {self.message or 'its worker died'}; run again (chunks in flight stay in doubt and are " \
                   "re-sent with their txn)"
        if self.kind == "internal":
            return f"internal error ({self.type}): a bug in gspauth; the worker's log has the traceback"
        return f"{self.type}: {self.message}" + (f" (hint: {self.hint})" if self.hint else "")


@dataclass
class PartitionResult:
    """What a task returns: its partition's report (passes merged), or why there is none."""

    index: int
    worker: str
    pid: int
    report: FilingReport | None = None
    error: TaskError | None = None
    passes: int = 0
    elapsed: float = 0.0
