"""OTP handoff: how a client gets the taxpayer's OTP after it sent OTPREQUEST.

A provider answers :meth:`OtpProvider.get_otp` with the OTP, or ``None`` when
none is available *now*. On ``None`` the client raises
:class:`~gspauth.errors.OtpRequired`: an unattended job parks ("needs OTP for
GSTIN X") instead of failing, and resumes when an OTP arrives (see
:class:`FileOtp` with ``wait``).

Providers:

* :class:`PromptOtp` — asks on the terminal; refuses (``None``) without a TTY.
* :class:`EnvOtp` — ``GSPAUTH_OTP_<GSTIN>`` or ``GSPAUTH_OTP``.
* :class:`FileOtp` — reads and deletes ``<dir>/<GSTIN>.otp``; writes ``<GSTIN>.needed``
  while waiting, for operators, cron jobs or a webhook receiver.
* :class:`CommandOtp` — runs a command (GSTIN in its environment) whose stdout is the OTP.
* :class:`HookOtp` — asks plugins through ``gspauth_provide_otp``.
* :class:`ChainOtp` — the first provider that answers.
* :class:`EmulatorOtp` — reads the local emulator's OTP outbox (demo and tests only).

:func:`default_otp_provider` builds the chain the CLI uses. No provider ever logs
an OTP, puts it in an exception, or writes it anywhere.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, TextIO, cast, runtime_checkable

from gspauth.session import utcnow

if TYPE_CHECKING:
    from gspauth.plugins import Hooks

__all__ = [
    "ChainOtp",
    "CommandOtp",
    "EmulatorOtp",
    "EnvOtp",
    "FileOtp",
    "HookOtp",
    "OtpProvider",
    "OtpRequest",
    "PromptOtp",
    "default_otp_provider",
]

_logger = logging.getLogger(__name__)

# GSTN OTPs are 6 digits; accept 4-8 so sandboxes/GSPs with other lengths still work.
_OTP_RE = re.compile(r"[0-9]{4,8}")


def _clean(value: str | None, source: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if not _OTP_RE.fullmatch(value):
        # Say what was wrong without echoing what was given.
        _logger.warning("ignoring the OTP from %s: it is not 4-8 digits (%d characters)", source, len(value))
        return None
    return value


@dataclass(frozen=True)
class OtpRequest:
    """Whose OTP is needed, for which OTPREQUEST. Carries no secret.

    :param requested_at: when GSTN accepted the OTPREQUEST (the client's clock, aware UTC).
    :param not_before: the same moment as POSIX time on this machine: an OTP delivered as a
        file older than this belongs to an earlier request (``None``: unknown).
    :param valid_until: when the OTP is taken to lapse, if known.
    :param attempts_left: tries the request still allows, if known.
    """

    gsp: str
    environment: str
    gstin: str
    username: str
    requested_at: _dt.datetime = field(default_factory=utcnow)
    not_before: float | None = None
    valid_until: _dt.datetime | None = None
    attempts_left: int | None = None

    def describe(self) -> str:
        return f"GSTIN {self.gstin} (user {self.username}, {self.gsp}/{self.environment})"


@runtime_checkable
class OtpProvider(Protocol):
    """Supplies OTPs. Implementations may block, but should honour their own time limits."""

    def get_otp(self, request: OtpRequest) -> str | None:
        """The OTP for ``request``, or ``None`` if none is available now."""
        ...


class PromptOtp:
    """Ask for the OTP on the terminal (input hidden).

    Refuses (returns ``None`` and logs why) when ``stdin`` is not a TTY, so a cron
    job or a container never hangs waiting for a keyboard.

    :param stdin: stream to read (default ``sys.stdin``).
    :param stderr: stream for the prompt (default ``sys.stderr``).
    :param attempts: re-ask this many times on malformed input.
    """

    def __init__(self, stdin: IO[str] | None = None, stderr: IO[str] | None = None, *, attempts: int = 3) -> None:
        self._stdin = stdin
        self._stderr = stderr
        self.attempts = attempts

    def get_otp(self, request: OtpRequest) -> str | None:
        stdin = self._stdin or sys.stdin
        stderr = self._stderr or sys.stderr
        try:
            tty = stdin is not None and stdin.isatty()
        except (ValueError, AttributeError):
            tty = False
        if not tty:
            _logger.warning("needs OTP for %s, but stdin is not a terminal; not prompting", request.describe())
            return None
        left = f"; {request.attempts_left} attempt(s) left" if request.attempts_left is not None else ""
        until = (f", valid until {request.valid_until.astimezone().strftime('%H:%M')}"
                 if request.valid_until is not None else "")
        for _ in range(max(1, self.attempts)):
            text = self._read(f"OTP sent to the taxpayer of {request.describe()}{until}{left}: ", stdin, stderr)
            if text is None:
                return None
            otp = _clean(text, "the terminal")
            if otp is not None:
                return otp
            print("That is not an OTP (4-8 digits); try again.", file=stderr)
        return None

    @staticmethod
    def _read(prompt: str, stdin: IO[str], stderr: IO[str]) -> str | None:
        import getpass

        try:
            if stdin is sys.stdin:
                return getpass.getpass(prompt, stream=cast(TextIO, stderr))
            stderr.write(prompt)
            stderr.flush()
            line = stdin.readline()
            return line if line else None
        except EOFError:
            return None


class EnvOtp:
    """Read the OTP from ``GSPAUTH_OTP_<GSTIN>`` (preferred) or ``GSPAUTH_OTP``.

    :param environ: mapping to read (default ``os.environ``).
    """

    def __init__(self, environ: Any = None, *, prefix: str = "GSPAUTH_OTP") -> None:
        self._environ = environ
        self.prefix = prefix

    def get_otp(self, request: OtpRequest) -> str | None:
        env = os.environ if self._environ is None else self._environ
        for name in (f"{self.prefix}_{request.gstin.upper()}", self.prefix):
            value = env.get(name)
            if value:
                return _clean(value, f"${name}")
        return None


class FileOtp:
    """Hand OTPs over through a directory: the job reads and deletes ``<GSTIN>.otp``.

    While an OTP is needed, ``<GSTIN>.needed`` holds a JSON note (GSTIN, username,
    GSP, environment, when it was requested) for operators, monitoring or a
    webhook that forwards the taxpayer's SMS. Deliver the OTP by writing
    ``<GSTIN>.otp`` (ideally to a temporary name, then rename it in place); the
    file is claimed atomically, so of several waiting workers exactly one takes it.
    A file written before the pending OTP request (its ``not_before``) answers an earlier
    request and is ignored, so it cannot burn one of the new OTP's attempts.

    :param directory: created with mode 0700 if absent.
    :param wait: seconds to wait for the file (``0``: look once). A job with a long
        ``wait`` parks and resumes as soon as the OTP file appears.
    :param poll: seconds between looks.
    :param max_age: ignore (and delete) OTP files older than this many seconds
        (OTPs expire; a stale file would only burn an attempt). ``None`` disables.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        wait: float = 0.0,
        poll: float = 0.5,
        *,
        max_age: float | None = 15 * 60,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.directory = Path(directory).expanduser()
        self.wait = float(wait)
        self.poll = max(0.01, float(poll))
        self.max_age = max_age
        self._clock = clock
        self._sleep = sleep

    def paths(self, gstin: str) -> tuple[Path, Path]:
        """``(<GSTIN>.otp, <GSTIN>.needed)`` for ``gstin``."""
        g = gstin.upper()
        if not re.fullmatch(r"[0-9A-Z]{15}", g):
            raise ValueError("a GSTIN is 15 letters or digits")
        return self.directory / f"{g}.otp", self.directory / f"{g}.needed"

    def get_otp(self, request: OtpRequest) -> str | None:
        from gspauth.config import ensure_private_dir

        ensure_private_dir(self.directory)
        otp_path, needed_path = self.paths(request.gstin)
        deadline = self._clock() + self.wait
        otp = self._take(otp_path, request)
        if otp is not None:
            with contextlib.suppress(FileNotFoundError):
                needed_path.unlink()
            return otp
        self._write_needed(needed_path, request)
        _logger.info("needs OTP for %s: waiting up to %.0fs for %s", request.describe(), self.wait, otp_path)
        while self._clock() < deadline:
            self._sleep(min(self.poll, max(0.0, deadline - self._clock())))
            otp = self._take(otp_path, request)
            if otp is not None:
                with contextlib.suppress(FileNotFoundError):
                    needed_path.unlink()
                return otp
        _logger.warning("needs OTP for %s: none in %s; parking (write the OTP to that file to resume)",
                        request.describe(), otp_path)
        return None

    def _write_needed(self, path: Path, request: OtpRequest) -> None:
        note = {
            "message": f"needs OTP for GSTIN {request.gstin}",
            "gstin": request.gstin,
            "username": request.username,
            "gsp": request.gsp,
            "environment": request.environment,
            "requested_at": request.requested_at.isoformat(),
            "valid_until": request.valid_until.isoformat() if request.valid_until else None,
            "deliver_to": str(path.with_suffix(".otp")),
            "how": f"write the 6-digit OTP the taxpayer received to {path.with_suffix('.otp')} "
                   "(to a temporary name first, then rename it there); an older file is ignored",
        }
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(note, fh, indent=1)
            fh.write("\n")
        os.replace(tmp, path)

    def _take(self, path: Path, request: OtpRequest) -> str | None:
        # Claim by rename: atomic, so two workers never both use (and burn) one OTP.
        claimed = path.with_name(f".{path.name}.{uuid.uuid4().hex}.claimed")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None
        try:
            st = claimed.stat()
            if os.name == "posix" and st.st_mode & 0o077:
                _logger.warning("OTP file %s was readable by other users; deliver OTPs with mode 0600", path)
            if request.not_before is not None and st.st_mtime < request.not_before - 1.0:
                # written before the pending OTPREQUEST: it answers an earlier one and would burn an attempt
                _logger.warning("ignoring OTP file %s: written before the pending OTP request of %s", path,
                            request.describe())
                return None
            if self.max_age is not None and time.time() - st.st_mtime > self.max_age:
                _logger.warning("ignoring stale OTP file %s (older than %.0fs)", path, self.max_age)
                return None
            text = claimed.read_text(encoding="utf-8", errors="replace")
        finally:
            with contextlib.suppress(FileNotFoundError):
                claimed.unlink()
        return _clean(text, str(path))


class CommandOtp:
    """Run a command that prints the OTP on stdout (a vault lookup, an SMS-gateway poll …).

    The command gets ``GSPAUTH_OTP_GSTIN``, ``GSPAUTH_OTP_USERNAME``, ``GSPAUTH_OTP_GSP``,
    ``GSPAUTH_OTP_ENVIRONMENT`` and ``GSPAUTH_OTP_REQUESTED_AT`` in its environment. A
    non-zero exit, empty output or a timeout means "no OTP now" (``None``). Its stderr
    is passed through; its stdout is never logged.

    :param argv: the command and arguments (no shell).
    :param timeout: seconds before the command is killed.
    """

    def __init__(self, argv: Sequence[str], *, timeout: float = 120.0) -> None:
        if isinstance(argv, str) or not argv:
            raise ValueError("CommandOtp needs argv as a non-empty list, e.g. ['my-otp-tool', '--gstin']")
        self.argv = list(argv)
        self.timeout = timeout

    def get_otp(self, request: OtpRequest) -> str | None:
        env = dict(os.environ)
        env.update(
            GSPAUTH_OTP_GSTIN=request.gstin,
            GSPAUTH_OTP_USERNAME=request.username,
            GSPAUTH_OTP_GSP=request.gsp,
            GSPAUTH_OTP_ENVIRONMENT=request.environment,
            GSPAUTH_OTP_REQUESTED_AT=request.requested_at.isoformat(),
        )
        try:
            done = subprocess.run(
                self.argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                timeout=self.timeout, check=False, text=True,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            _logger.warning("OTP command %s timed out after %.0fs for %s", self.argv[0], self.timeout,
                            request.describe())
            return None
        except OSError as exc:
            _logger.warning("OTP command %s could not run: %s", self.argv[0], exc.strerror)
            return None
        if done.returncode != 0:
            _logger.warning("OTP command %s exited with %d for %s", self.argv[0], done.returncode, request.describe())
            return None
        return _clean(done.stdout, f"command {self.argv[0]}")

    def __repr__(self) -> str:
        return f"CommandOtp({self.argv[0]!r}, timeout={self.timeout})"


class HookOtp:
    """Ask installed plugins (``gspauth_provide_otp``) for the OTP, through the plugin facade.

    :param hooks: the :class:`~gspauth.plugins.Hooks` whose plugins to ask (default: the
        process-wide :func:`~gspauth.plugins.default_hooks`).
    """

    def __init__(self, hooks: Hooks | None = None) -> None:
        self._hooks = hooks

    def get_otp(self, request: OtpRequest) -> str | None:
        from gspauth.plugins import default_hooks

        hooks = self._hooks if self._hooks is not None else default_hooks()
        value = hooks.provide_otp(request.gsp, request.environment, request.gstin, request.username)
        return _clean(value, "a plugin")


class ChainOtp:
    """Try providers in order; the first non-``None`` answer wins."""

    def __init__(self, providers: Iterable[OtpProvider]) -> None:
        self.providers = list(providers)

    def get_otp(self, request: OtpRequest) -> str | None:
        for provider in self.providers:
            otp = provider.get_otp(request)
            if otp is not None:
                return otp
        return None

    def __repr__(self) -> str:
        return f"ChainOtp({', '.join(type(p).__name__ for p in self.providers)})"


class EmulatorOtp:
    """Read the OTP the local emulator "sent" (its outbox). For the demo and tests only.

    :param emulator_or_url: a :class:`gspauth.emulator.ThreadedEmulator`, an emulator
        object with an OTP outbox, or the emulator's root URL (then
        ``GET {url}/_emulator/outbox/otp?gstin=…`` is used).
    :param wait: seconds to keep looking when the outbox is empty.
    """

    def __init__(self, emulator_or_url: Any, *, wait: float = 5.0, poll: float = 0.05) -> None:
        self._target = emulator_or_url
        self.wait = wait
        self.poll = poll

    def _in_process(self, gstin: str) -> str | None:
        emulator = getattr(self._target, "emulator", self._target)  # ThreadedEmulator → Emulator
        outbox = getattr(emulator, "outbox", None)
        latest = getattr(outbox, "latest_otp", None)
        if not callable(latest):
            raise TypeError("EmulatorOtp needs a gspauth emulator (with .outbox.latest_otp) or its URL")
        value = latest(gstin, "auth")
        return None if value is None else str(value)

    def _over_http(self, url: str, gstin: str) -> str | None:
        import httpx

        r = httpx.get(f"{url.rstrip('/')}/_emulator/outbox/otp", params={"gstin": gstin, "purpose": "auth"},
                      timeout=10.0)
        r.raise_for_status()
        body: Any = r.json()
        latest = body.get("latest") if isinstance(body, dict) else None
        return None if latest is None else str(latest)

    def get_otp(self, request: OtpRequest) -> str | None:
        deadline = time.monotonic() + self.wait
        while True:
            if isinstance(self._target, str):
                otp = self._over_http(self._target, request.gstin)
            else:
                otp = self._in_process(request.gstin)
            if otp is not None or time.monotonic() >= deadline:
                return _clean(otp, "the emulator outbox")
            time.sleep(self.poll)


def default_otp_provider(*, interactive: bool = True, hooks: Hooks | None = None) -> OtpProvider:
    """The chain the CLI uses: env → ``$GSPAUTH_OTP_DIR`` files → ``$GSPAUTH_OTP_COMMAND`` → plugins → prompt.

    ``GSPAUTH_OTP_DIR`` enables :class:`FileOtp` (``GSPAUTH_OTP_WAIT`` seconds, default 0);
    ``GSPAUTH_OTP_COMMAND`` (split like a shell would) enables :class:`CommandOtp`.
    """
    import shlex

    providers: list[OtpProvider] = [EnvOtp()]
    directory = os.environ.get("GSPAUTH_OTP_DIR")
    if directory:
        providers.append(FileOtp(directory, wait=float(os.environ.get("GSPAUTH_OTP_WAIT", "0") or 0)))
    command = os.environ.get("GSPAUTH_OTP_COMMAND")
    if command:
        providers.append(CommandOtp(shlex.split(command)))
    providers.append(HookOtp(hooks))
    if interactive:
        providers.append(PromptOtp())
    return ChainOtp(providers)
