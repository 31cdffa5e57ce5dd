"""The client side of a distributed run: connect (or start a local cluster), check the
settings every worker will need, submit one task per partition, follow the shared journal,
and merge what comes back."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gspauth.errors import ConfigurationError, GSPAuthError
from gspauth.filer._partition import Partition, partition_of
from gspauth.filer._plan import FilingInput
from gspauth.filer._run import FilerOptions
from gspauth.filer.distributed._merge import DistributedReport, merge_partitions
from gspauth.filer.distributed._spec import (
    Location,
    PartitionResult,
    PartitionTask,
    TaskError,
    WorkerTarget,
    is_loopback,
)
from gspauth.filer.distributed._worker import file_partition, worker_facts

if TYPE_CHECKING:
    from distributed import Client, Future

    from gspauth.cli._taxpayers import Taxpayer
    from gspauth.filer.distributed._progress import JournalProgress

__all__ = ["default_partitions", "file_distributed"]

log = logging.getLogger("gspauth.filer.distributed")

#: Partitions per worker thread by default: enough to even out GSTINs of different sizes,
#: few enough that reading the input (blanked lines aside) stays cheap.
PARTITIONS_PER_THREAD = 2


def default_partitions(threads: int) -> int:
    """``PARTITIONS_PER_THREAD`` × the cluster's worker threads (at least 1)."""
    return max(1, PARTITIONS_PER_THREAD * threads)


def _need_dask() -> None:
    try:
        import distributed  # noqa: F401 - only probing that the dask extra is installed
    except ImportError:
        raise ConfigurationError("distributed filing needs Dask: pip install 'gspauth[distributed]'") from None


def _inputs(inputs: Sequence[FilingInput | str | os.PathLike[str]]) -> tuple[FilingInput, ...]:
    if not inputs:
        raise ConfigurationError("no input files to file")
    out = []
    for i in inputs:
        spec = i if isinstance(i, FilingInput) else FilingInput(os.fspath(i))
        out.append(spec.resolved())  # fail here, once, not in every task
    return tuple(out)


def _split_limits(options: FilerOptions, at_once: int) -> FilerOptions:
    """Limits that hold for the whole run (chunks in flight, per GSP, the GSP's request rate),
    divided among the tasks that run at once: 8 per GSP means 8 across the cluster."""
    if at_once <= 1:
        return options
    return dataclasses.replace(
        options, concurrency=max(1, options.concurrency // at_once), per_gsp=max(1, options.per_gsp // at_once),
        rate=None if options.rate is None else options.rate / at_once)


@contextlib.contextmanager
def _connect(scheduler: str | Client | None, workers: int | None, env: Mapping[str, str],
             ) -> Iterator[tuple[Client, bool]]:
    """A client of the scheduler, and whether we started the cluster (closed on exit)."""
    import dask
    from distributed import Client, LocalCluster

    from gspauth._malloc import THRESHOLD

    if scheduler is None:
        n = workers if workers is not None else (os.cpu_count() or 1)
        if n < 1:
            raise ConfigurationError(f"--workers {n}: need at least one worker process")
        # One thread per worker process: a filer is asyncio inside; its CPU work (ingest,
        # crypto) is spread by running more processes, not threads sharing one GIL.
        # Dask's own log lines (a closing worker's lost heartbeat …) only when gspauth's are asked for:
        # what goes wrong in a task comes back in the report.
        level = logging.getLogger("gspauth").getEffectiveLevel()
        # Dask sets pre-spawn-environ in each worker process's environment before it starts, as
        # glibc needs: megabyte buffers mapped on their own, as `gspauth file` does (gspauth._malloc).
        spawn = {} if "MALLOC_MMAP_THRESHOLD_" in os.environ else {
            "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": THRESHOLD}
        with dask.config.set(spawn):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address="127.0.0.1:0", env=dict(env),
                                   silence_logs=logging.CRITICAL if level >= logging.ERROR else level)
        try:
            with Client(cluster, set_as_default=False) as client:
                yield client, True
        finally:
            cluster.close()
        return
    if isinstance(scheduler, str):
        try:
            client = Client(scheduler, set_as_default=False, timeout=30)
        except (OSError, TimeoutError) as exc:
            raise ConfigurationError(f"cannot reach the Dask scheduler at {scheduler} ({type(exc).__name__}); is "
                                     "it running (`dask scheduler`), and is the address right?") from None
        with client:
            yield client, False
        return
    yield scheduler, False


def _address(client: Client) -> str:
    return str(client.scheduler_info().get("address") or "")


def _workers(client: Client) -> dict[str, int]:
    """Worker address -> threads, once at least one worker is there."""
    try:
        client.wait_for_workers(1, timeout=60)
    except TimeoutError:
        raise ConfigurationError(f"the Dask scheduler at {_address(client)} has no workers; start some "
                                 "(`dask worker tcp://…`) with gspauth installed") from None
    info = client.scheduler_info(n_workers=-1)["workers"]
    return {addr: int(w.get("nthreads", 1)) for addr, w in info.items()}


def _check_workers(client: Client) -> None:
    from gspauth import __version__

    try:
        facts: dict[str, dict[str, Any]] = client.run(worker_facts)
    except Exception as exc:  # noqa: BLE001 - whatever a worker without gspauth raises: say what to do
        raise ConfigurationError(f"the Dask workers could not run gspauth ({type(exc).__name__}); install the same "
                                 "gspauth (and its GSP plugins) on every worker") from None
    wrong = {addr: f["version"] for addr, f in facts.items() if f["version"] != __version__}
    if wrong:
        addr, version = next(iter(wrong.items()))
        raise ConfigurationError(f"worker {addr} runs gspauth {version}, this client {__version__}; install the "
                                 f"same gspauth on every worker ({len(wrong)} differ)")


def _check_locations(store: Location, journal: Location, *, local: bool, started: bool,
                     shared_storage: bool) -> dict[str, str]:
    """Refuse settings the workers cannot share; returns environment for workers we start."""
    for loc, what in ((store, "session store"), (journal, "filing journal")):
        if loc.text in ("memory:",):
            raise ConfigurationError(f"a memory: {what} lives in one process; a distributed run needs one every "
                                     "worker shares (a postgresql:// URL, or a file path on one machine)")
        if loc.is_local_file and not local and not shared_storage:
            raise ConfigurationError(
                f"the {what} {loc.text} is a file on this machine, but the Dask workers run on other machines and "
                f"cannot share it; use a postgresql://… URL for both the store and the journal (or, if {loc.text} "
                "is on storage every worker mounts at that same path, pass --shared-storage)")
    passwords = {loc.password for loc in (store, journal) if loc.password is not None}
    if not passwords:
        return {}
    if not started:
        raise ConfigurationError(
            "the store or journal URL holds a password, which would travel through the Dask scheduler to every "
            "worker; drop it from the URL and give it to each worker as PGPASSWORD, in PGPASSFILE or ~/.pgpass")
    if len(passwords) > 1:
        raise ConfigurationError("the store and journal URLs hold different passwords; give them to the workers "
                                 "through a PGPASSFILE (one line per database) and drop them from the URLs")
    return {"PGPASSWORD": passwords.pop()}


def _taxpayers_by_partition(taxpayers: str | os.PathLike[str] | Mapping[str, Taxpayer] | None,
                            count: int) -> list[tuple[Taxpayer, ...] | None]:
    """Each partition's taxpayers (GSTIN, username, GSP, environment: nothing secret)."""
    if taxpayers is None:
        return [None] * count
    from gspauth.cli._taxpayers import read_taxpayers

    table = dict(taxpayers) if isinstance(taxpayers, Mapping) else read_taxpayers(os.fspath(taxpayers))
    parts: list[list[Taxpayer]] = [[] for _ in range(count)]
    for gstin, t in table.items():
        parts[partition_of(gstin, count)].append(t)
    return [tuple(p) for p in parts]


def _collect(future: Future[PartitionResult], index: int, interrupted: bool) -> PartitionResult:
    from distributed.scheduler import KilledWorker

    if future.status == "finished":
        result: PartitionResult = future.result()
        return result
    if future.status == "cancelled":
        return PartitionResult(index, "", 0, error=TaskError("cancelled", "CancelledError", "cancelled"))
    exc = future.exception()
    if isinstance(exc, KilledWorker):
        return PartitionResult(index, "", 0, error=TaskError(
            "lost", "KilledWorker", "its worker died more often than the scheduler allows "
            "(distributed.scheduler.allowed-failures)"))
    if isinstance(exc, GSPAuthError):  # raised by a worker outside file_partition (unpickled as is)
        return PartitionResult(index, "", 0, error=TaskError("error", type(exc).__name__, str(exc), exc.hint))
    log.error("partition %d failed: %s (the worker's log has the traceback)", index, type(exc).__name__)
    return PartitionResult(index, "", 0, error=TaskError("internal", type(exc).__name__))


def _raise_if_all_failed(results: Sequence[PartitionResult]) -> None:
    """No partition could run, each for a gspauth error (a setting or file every worker lacks,
    typically): raise the first here, typed, as if the run were local."""
    errors = [r.error for r in sorted(results, key=lambda r: r.index) if r.error is not None]
    if not errors or len(errors) != len(results) or any(e.kind != "error" for e in errors):
        return
    first = errors[0]
    from gspauth import errors as _errors

    cls = getattr(_errors, first.type, None)
    message = first.message or first.type
    if len(errors) > 1 and {e.type for e in errors} != {first.type}:
        message += f" (and {len(errors) - 1} other partition(s) failed; run with -v for each)"
    exc: GSPAuthError
    try:
        exc = cls(message) if isinstance(cls, type) and issubclass(cls, GSPAuthError) else ConfigurationError(message)
    except TypeError:
        exc = ConfigurationError(message)
    exc.hint = first.hint
    raise exc


def file_distributed(
    inputs: Sequence[FilingInput | str | os.PathLike[str]],
    *,
    store: str | os.PathLike[str],
    journal: str | os.PathLike[str],
    scheduler: str | Client | None = None,
    workers: int | None = None,
    options: FilerOptions | None = None,
    target: WorkerTarget | None = None,
    taxpayers: str | os.PathLike[str] | Mapping[str, Taxpayer] | None = None,
    partitions: int | None = None,
    request_otp: bool = True,
    otp_dir: str | None = None,
    wait_for_consent: float = 0.0,
    claim_wait: float = 120.0,
    retries: int = 2,
    shared_storage: bool = False,
    http_timeout: float = 60.0,
    worker_env: Mapping[str, str] | None = None,
    progress: JournalProgress | None = None,
    stop: threading.Event | None = None,
) -> DistributedReport:
    """File ``inputs`` on a Dask cluster, partitioned by GSTIN; see :mod:`gspauth.filer.distributed`.

    :param inputs: invoice files (paths every worker reads at the same place, or URLs fsspec
        reads); each task reads them all and keeps its own GSTINs' records.
    :param store: / :param journal: the session store and filing journal every worker opens
        (``postgresql://…`` across machines; a file path on one machine). A password in a
        URL never goes to the workers: they take theirs from ``PGPASSWORD``/``PGPASSFILE``.
    :param scheduler: a scheduler address (``tcp://host:8786``), a connected
        :class:`distributed.Client`, or ``None`` to start a local cluster of ``workers``
        processes for this run.
    :param options: :class:`~gspauth.filer.FilerOptions`; ``concurrency``, ``per_gsp`` and
        ``rate`` are totals for the run, divided among the tasks that run at once.
    :param target: the non-secret part of the GSP target (:class:`WorkerTarget`); workers
        resolve the rest, and every credential and the store key, from their own settings.
    :param taxpayers: usernames per GSTIN (a ``--taxpayers`` file or a mapping), read here and
        sent to each task for its GSTINs only.
    :param partitions: how many tasks (default :func:`default_partitions`).
    :param request_otp: / :param otp_dir: as ``gspauth file`` (on the workers).
    :param wait_for_consent: seconds a GSTIN that needs OTP consent waits, on its worker, for a
        session to appear in the store (``gspauth login --otp`` anywhere); 0 parks it at once.
    :param claim_wait: seconds a task waits for a GSTIN another filer holds (a zombie of an
        earlier attempt, or another run) before reporting it ``busy``.
    :param retries: Dask retries of a task that raised (a worker that dies is retried by the
        scheduler, up to ``distributed.scheduler.allowed-failures``, regardless).
    :param shared_storage: allow a file store/journal with a cluster on other machines, because
        the path is on storage every worker mounts (SQLite on network file systems is risky).
    :param worker_env: extra environment of the workers of a local cluster (``scheduler=None``).
    :param progress: a :class:`JournalProgress` to update (for a display).
    :param stop: set it to stop cleanly: no new chunk starts, chunks in flight are journalled.
    :returns: the merged :class:`DistributedReport`.
    :raises ConfigurationError: settings the workers cannot share or use (and any gspauth error
        every partition failed with alike, as its own class).
    """
    _need_dask()
    from distributed import Event

    specs = _inputs(inputs)
    store_loc, journal_loc = Location.of(store, "session store"), Location.of(journal, "filing journal")
    options = options or FilerOptions()
    target = target or WorkerTarget()
    stop = stop or threading.Event()
    run = uuid.uuid4().hex[:12]
    started_at = time.monotonic()
    env = dict(worker_env or {})
    if scheduler is None:  # decided before starting it: a password would go into its environment
        env.update(_check_locations(store_loc, journal_loc, local=True, started=True, shared_storage=shared_storage))
    elif isinstance(scheduler, str) and not is_loopback(scheduler):  # refuse before waiting on the network
        _check_locations(store_loc, journal_loc, local=False, started=False, shared_storage=shared_storage)
    with _connect(scheduler, workers, env) as (client, started):
        nthreads = _workers(client)
        local = started or (is_loopback(_address(client)) and all(is_loopback(a) for a in nthreads))
        _check_locations(store_loc, journal_loc, local=local, started=started, shared_storage=shared_storage)
        _check_workers(client)
        threads = sum(nthreads.values())
        count = partitions or default_partitions(threads)
        if count < 1:
            raise ConfigurationError(f"--partitions {count}: need at least one")
        per_task = _split_limits(options, min(count, threads))
        stop_name = f"gspauth-file-stop-{run}"
        tasks = [PartitionTask(run=run, partition=Partition(i, count), inputs=specs, store=store_loc.text,
                               journal=journal_loc.text, options=per_task, target=target, taxpayers=tp,
                               request_otp=request_otp, otp_dir=otp_dir, wait_for_consent=wait_for_consent,
                               claim_wait=claim_wait, http_timeout=http_timeout, stop_event=stop_name)
                 for i, tp in enumerate(_taxpayers_by_partition(taxpayers, count))]
        if progress is not None:
            progress.begin(count)
        futures = {client.submit(file_partition, t, key=f"gspauth-file-{run}-{t.partition.index:03d}", pure=False,
                                 retries=retries): t.partition.index for t in tasks}
        results = _gather(client, futures, stop, stop_name, progress)
        with contextlib.suppress(Exception):  # the event only matters while tasks run
            Event(stop_name, client=client).clear()
        workers_n = len(nthreads)
    _raise_if_all_failed(results)
    return merge_partitions(results, journal=str(journal_loc), run=run, elapsed=time.monotonic() - started_at,
                            dry_run=options.dry_run, interrupted=stop.is_set(), workers=workers_n, threads=threads)


def _gather(client: Client, futures: dict[Future[PartitionResult], int], stop: threading.Event, stop_name: str,
            progress: JournalProgress | None) -> list[PartitionResult]:
    from distributed import Event

    results: list[PartitionResult] = []
    pending = dict(futures)
    asked = False
    try:
        while pending:
            if stop.is_set() and not asked:
                Event(stop_name, client=client).set()  # every task stops cleanly and reports
                asked = True
            done = [f for f in pending if f.done()]  # a local look at each future: no round trip
            if not done:
                time.sleep(0.2)
                continue
            for f in done:
                res = _collect(f, pending.pop(f), stop.is_set())
                results.append(res)
                if progress is not None:
                    progress.finished(res)
    finally:
        if pending:  # leaving early (a second Ctrl-C): what runs is abandoned, safely in doubt
            client.cancel(list(pending))
    return results
