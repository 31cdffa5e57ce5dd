"""The worker side of a distributed run: one Dask task files one partition's GSTINs with the
ordinary :class:`~gspauth.filer.Filer`, opening the shared store and journal itself.

A task may make several passes over its input: the first files every GSTIN of the partition;
later ones, narrowed to a few GSTINs, take up those another filer held (``busy``: a zombie of
an earlier attempt, or a ``gspauth file`` on another machine) once the claim frees, and — with
``wait_for_consent`` — those that needed OTP consent, as soon as a session for them appears in
the store (an operator's ``gspauth login --otp`` anywhere).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from gspauth.errors import ConfigurationError, GSPAuthError
from gspauth.filer.distributed._merge import merge_passes
from gspauth.filer.distributed._spec import PartitionResult, PartitionTask, TaskError

if TYPE_CHECKING:
    from gspauth.cli._taxpayers import TaxpayerClients
    from gspauth.filer import FilingReport
    from gspauth.journal import FilingJournal
    from gspauth.session import Session, SessionKey
    from gspauth.store import SessionStore

__all__ = ["file_partition", "worker_facts"]

log = logging.getLogger("gspauth.filer.distributed")
T = TypeVar("T")

#: Parked reasons the filer gives a GSTIN another filer holds (or took over from us).
_BUSY = ("busy:", "claim-lost:")
# The first retry of a busy GSTIN waits this long, doubling up to _BUSY_POLL_MAX.
_BUSY_POLL, _BUSY_POLL_MAX = 1.0, 15.0
# A consent wait is done in slices of at most this many seconds (each a store wait per GSTIN),
# at most _WAITERS GSTINs at a time per task.
_WAIT_SLICE, _WAITERS = 5.0, 8
_UNSET: Any = object()


class _Rescheduled(Exception):
    """The worker is closing: the task is handed back to the scheduler (``distributed.Reschedule``)."""


def file_partition(task: PartitionTask) -> PartitionResult:
    """Run one task of :func:`~gspauth.filer.distributed.file_distributed` (on a worker).

    gspauth errors (settings, files, the database) come back in the result, typed and with
    their hint, so the client can report them; anything else propagates, and Dask retries
    the task (its ``retries``). When the worker itself is closing (SIGTERM, retirement), the
    chunks in flight finish and are journalled, and the task asks to be rescheduled elsewhere.
    """
    started = time.monotonic()
    watch = _StopWatch(task)
    result = PartitionResult(task.partition.index, watch.where, os.getpid())
    try:
        result.report, result.passes = asyncio.run(_file(task, watch))
    except GSPAuthError as exc:
        result.error = TaskError("error", type(exc).__name__, str(exc), exc.hint)
        log.warning("partition %s: %s", task.partition, result.error.text())
    except _Rescheduled:
        from distributed import Reschedule

        raise Reschedule() from None
    result.elapsed = time.monotonic() - started
    return result


def worker_facts() -> dict[str, object]:
    """What the client checks on every worker before submitting: the gspauth it runs."""
    from gspauth import __version__, crypto

    return {"version": __version__, "pid": os.getpid(), "backend": crypto.BACKEND}


class _StopWatch:
    """Tells the filer to stop cleanly when the client asks (a Dask event) or the worker closes."""

    def __init__(self, task: PartitionTask) -> None:
        self.where = f"pid {os.getpid()}"
        self.worker: Any = None
        self.event: Any = None
        self.closing = False
        self._done = threading.Event()
        try:
            from distributed import Event, get_client, get_worker

            self.worker = get_worker()  # thread-local: must be called on the task's own thread
            self.where = str(self.worker.address)
            if task.stop_event:
                self.event = Event(task.stop_event, client=get_client())
        except (ImportError, ValueError):
            pass  # not on a Dask worker (a direct call): nothing to watch

    def start(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        if self.worker is None:
            return

        def watch() -> None:
            tick = 0
            while not self._done.wait(0.2):  # the worker's status is a local look: often
                tick += 1
                if self._stopping(ask_scheduler=tick % 5 == 0):  # the client's stop: once a second
                    loop.call_soon_threadsafe(stop.set)
                    return

        threading.Thread(target=watch, name="gspauth-stopwatch", daemon=True).start()

    def _stopping(self, *, ask_scheduler: bool) -> bool:
        from distributed.core import Status

        if self.worker.status not in (Status.running, Status.paused):
            self.closing = True
            return True
        if not ask_scheduler:
            return False
        try:
            return bool(self.event is not None and self.event.is_set())
        except Exception:  # noqa: BLE001 - the scheduler is unreachable: the worker's own status decides
            return False

    def stop(self) -> None:
        self._done.set()


def _check_inputs(task: PartitionTask, where: str) -> None:
    from gspauth.filer._plan import is_url

    for spec in task.inputs:
        if not is_url(spec.path) and not os.path.isfile(spec.path):
            raise ConfigurationError(f"input file {spec.path} not found on worker {where}; every worker must read the "
                                     "inputs at the same path (shared storage) or from a URL (s3://…)")


@runtime_checkable
class _Closable(Protocol):
    def close(self) -> None: ...


@contextlib.contextmanager
def _opened(resource: T) -> Iterator[T]:
    """Use ``resource`` and close it afterwards if it can be (a worker runs many tasks: each
    gives back its database connections)."""
    try:
        yield resource
    finally:
        if isinstance(resource, _Closable):
            resource.close()


async def _file(task: PartitionTask, watch: _StopWatch) -> tuple[FilingReport, int]:
    import httpx

    from gspauth.cli._taxpayers import TaxpayerClients, read_taxpayers
    from gspauth.config import load_profile
    from gspauth.journal import open_journal
    from gspauth.otp import ChainOtp, FileOtp, OtpProvider, default_otp_provider
    from gspauth.store import open_store

    _check_inputs(task, watch.where)
    profile = load_profile(task.target.profile, {**task.target.overrides(), "store": task.store})
    taxpayers = read_taxpayers(task.taxpayers) if isinstance(task.taxpayers, str) else \
        {t.gstin: t for t in task.taxpayers or ()}
    provider: OtpProvider | None = default_otp_provider(interactive=False) if task.request_otp else None
    if provider is not None and task.otp_dir:
        provider = ChainOtp([FileOtp(task.otp_dir), provider])
    stop = asyncio.Event()
    watch.start(asyncio.get_running_loop(), stop)
    o = task.options
    limits = httpx.Limits(max_connections=max(8, o.concurrency * 2), max_keepalive_connections=o.concurrency)
    try:
        with _opened(open_store(task.store)) as store, _opened(open_journal(task.journal)) as journal:
            async with httpx.AsyncClient(timeout=task.http_timeout, limits=limits) as http:
                clients = TaxpayerClients(profile, store, taxpayers, provider, http)
                passes = await _Passes(task, journal, clients, store, stop).run()
    finally:
        watch.stop()
    if watch.closing:
        raise _Rescheduled()
    return merge_passes(passes), len(passes)


class _Passes:
    """The first pass over the partition, then narrowed passes for GSTINs that were busy or
    awaited consent, until none is left or their time is up."""

    def __init__(self, task: PartitionTask, journal: FilingJournal, clients: TaxpayerClients, store: SessionStore,
                 stop: asyncio.Event) -> None:
        self.task = task
        self.journal = journal
        self.clients = clients
        self.store = store
        self.stop = stop
        now = time.monotonic()
        self.claim_deadline = now + task.claim_wait
        self.consent_deadline = now + task.wait_for_consent
        self.busy_poll = _BUSY_POLL
        self.busy: set[str] = set()
        # GSTIN -> the session the store held when it was parked (_UNSET: not looked at yet)
        self.awaiting: dict[str, Session | None] = {}

    async def _pass(self, only: frozenset[str] | None) -> FilingReport:
        from gspauth.filer import Filer, FilingProgress

        partition = self.task.partition if only is None else self.task.partition.narrowed(only)
        filer = Filer(self.journal, self.clients, options=self.task.options, progress=FilingProgress(),
                      login_hint=self.clients.login_hint)
        description: dict[str, object] = {
            "inputs": [i.path for i in self.task.inputs], "distributed": self.task.run, "partition": str(partition),
            "options": {k: getattr(self.task.options, k) for k in ("action", "max_chunk_bytes", "retry_rejected")}}
        return await filer.run(self.task.inputs, stop=self.stop, description=description, partition=partition)

    async def run(self) -> list[tuple[FilingReport, frozenset[str] | None]]:
        passes: list[tuple[FilingReport, frozenset[str] | None]] = [(await self._pass(None), None)]
        self._absorb(passes[-1][0], None)
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= self.claim_deadline:
                self.busy.clear()
            if now >= self.consent_deadline:
                self.awaiting.clear()
            if not self.busy and not self.awaiting:
                break
            retry = await self._next()
            if retry and not self.stop.is_set():
                only = frozenset(retry)
                passes.append((await self._pass(only), only))
                self._absorb(passes[-1][0], only)
        return passes

    def _absorb(self, report: FilingReport, covered: frozenset[str] | None) -> None:
        """Note which GSTINs the pass (over ``covered``; ``None``: all) left busy or awaiting consent."""
        busy = {g for g, info in report.parked.items() if info.get("reason", "").startswith(_BUSY)}
        waiting: set[str] = set()
        if self.task.wait_for_consent > 0:
            waiting = {g for g in report.parked if g not in busy and self.clients(g) is not None}
        self.busy = busy if covered is None else (self.busy - covered) | busy
        for gstin in list(self.awaiting):
            if (covered is None or gstin in covered) and gstin not in waiting:
                del self.awaiting[gstin]  # filed, or parked for a reason no session cures
        for gstin in waiting:
            self.awaiting.setdefault(gstin, _UNSET)

    async def _next(self) -> set[str]:
        """Wait until something can be retried: GSTINs whose consent arrived, or busy ones after
        a pause. Returns the GSTINs for the next pass (none: keep waiting)."""
        arrived: set[str] = set()
        for gstin, seen in list(self.awaiting.items()):
            if seen is _UNSET:  # a session there now may have arrived during the pass: try once
                current = await asyncio.to_thread(self.store.load, self._key(gstin))
                self.awaiting[gstin] = current
                if current is not None:
                    arrived.add(gstin)
        if arrived:
            return arrived | self.busy
        now = time.monotonic()
        timeout = self.consent_deadline - now
        if self.busy:
            timeout = min(self.claim_deadline - now, self.busy_poll) if not self.awaiting else \
                min(timeout, self.busy_poll)
            self.busy_poll = min(self.busy_poll * 2, _BUSY_POLL_MAX)
        with _seceded():  # waiting is not work: the worker may run another partition meanwhile
            if self.awaiting:
                arrived = await asyncio.to_thread(self._wait_for_sessions, max(0.0, timeout))
            else:
                await _sleep_unless(self.stop, timeout)
        return arrived | self.busy

    def _key(self, gstin: str) -> SessionKey:
        client = self.clients(gstin)
        assert client is not None  # only GSTINs with a client wait for consent
        return client.key

    def _wait_for_sessions(self, timeout: float) -> set[str]:
        """GSTINs for which a new session was saved within ``timeout`` seconds (waits in slices,
        up to :data:`_WAITERS` GSTINs at a time, each on the store's own wake-up)."""
        deadline = time.monotonic() + timeout
        order = sorted(self.awaiting)
        arrived: set[str] = set()
        while not arrived and not self.stop.is_set():
            window = min(_WAIT_SLICE, deadline - time.monotonic())
            if window <= 0:
                break
            with concurrent.futures.ThreadPoolExecutor(min(_WAITERS, len(order)),
                                                       thread_name_prefix="gspauth-consent") as pool:
                futures = {pool.submit(self.store.wait_for_session, self._key(g), after=self.awaiting[g],
                                       timeout=window): g for g in order}
                for done in concurrent.futures.as_completed(futures):
                    session = None if done.cancelled() else done.result()
                    if session is not None:
                        arrived.add(futures[done])
                        self.awaiting[futures[done]] = session  # parked again: wait for a newer one
                        for f in futures:
                            f.cancel()  # not started yet: the next slice asks again
            order = order[_WAITERS:] + order[:_WAITERS]  # everyone gets a turn at the front
        return arrived


@contextlib.contextmanager
def _seceded() -> Iterator[None]:
    """Leave the worker's thread pool while waiting, and rejoin it afterwards."""
    rejoin: Callable[[], None] | None = None
    try:
        from distributed import rejoin as _rejoin
        from distributed import secede

        secede()
        rejoin = _rejoin
    except (ImportError, ValueError):
        pass  # not on a Dask worker
    try:
        yield
    finally:
        if rejoin is not None:
            rejoin()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
