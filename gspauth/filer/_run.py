"""The filing run: planner thread → bounded queue → async senders → RETSTATUS pollers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from gspauth import ingest
from gspauth.errors import (
    CryptoError,
    GSPAuthError,
    GSPError,
    LockLost,
    LockTimeout,
    NetworkError,
    OtpRequired,
    RateLimited,
    RetryableError,
    SessionInvalid,
    StoreCorrupted,
)
from gspauth.filer._gates import CircuitBreaker, GspGate, HostDown
from gspauth.filer._partition import Partition
from gspauth.filer._plan import FilingInput, PlannedChunk, Planner
from gspauth.filer._report import FilingProgress, FilingReport
from gspauth.filer._status import FINAL_STATUSES, report_errors
from gspauth.journal import ChunkRow, ChunkState, FilingJournal, InvoiceState
from gspauth.types import Api

if TYPE_CHECKING:
    from gspauth.client import AsyncClient

__all__ = ["ClientFor", "Filer", "FilerOptions"]

log = logging.getLogger("gspauth.filer")
T = TypeVar("T")

#: The async client of a GSTIN, or ``None`` when the filer cannot make one (no portal
#: username known for it): the GSTIN is then parked with that reason.
ClientFor = Callable[[str], "AsyncClient | None"]
_MAX_KEPT_REJECTIONS = 10_000


@dataclass(frozen=True)
class FilerOptions:
    """How a run files (every field has a default a demanding filer can live with).

    :param action: the save action (``RETSAVE``); :param path: the returns path (``gstr1``).
    :param max_chunk_bytes: payload limit per chunk (see :data:`gspauth.ingest.DEFAULT_MAX_CHUNK_BYTES`).
    :param max_buffer_bytes: record bytes held in open chunks before the largest is sent early.
    :param concurrency: chunks in flight overall; :param per_gstin: at once per GSTIN;
        :param per_gsp: at once per GSP; :param rate: requests per second per GSP (``None``: no limit).
    :param attempts: tries per chunk for transient failures (same txn each time), with jittered
        exponential backoff from ``backoff`` to ``backoff_cap`` seconds; a 429's ``Retry-After``
        pauses the whole GSP instead.
    :param breaker_threshold: consecutive failures that open a host's circuit breaker, closed
        again by a successful probe after ``breaker_cooldown`` (doubling); ``give_up_after``
        seconds of failing end the run for that host (``unreachable``).
    :param wait_status: poll RETSTATUS until GSTN has processed each chunk (every
        ``status_poll`` seconds, growing, for at most ``status_timeout``).
    :param retry_rejected: re-send records GSTN rejected before, unchanged.
    :param dry_run: read, validate and chunk only: nothing is sent or journalled.
    :param queue: chunks read ahead of the senders (bounds memory).
    """

    action: str = "RETSAVE"
    path: str = "gstr1"
    max_chunk_bytes: int = ingest.DEFAULT_MAX_CHUNK_BYTES
    max_buffer_bytes: int = ingest.DEFAULT_MAX_BUFFER_BYTES
    concurrency: int = 16
    per_gstin: int = 1
    per_gsp: int = 8
    rate: float | None = None
    attempts: int = 6
    backoff: float = 0.5
    backoff_cap: float = 30.0
    breaker_threshold: int = 5
    breaker_cooldown: float = 5.0
    give_up_after: float = 1800.0
    wait_status: bool = True
    status_poll: float = 1.0
    status_timeout: float = 900.0
    retry_rejected: bool = False
    dry_run: bool = False
    queue: int = 16

    def delay(self, attempt: int) -> float:
        base = min(self.backoff_cap, self.backoff * 2.0 ** (attempt - 1))
        return float(base * random.uniform(0.5, 1.5))


@dataclass
class _Gstin:
    client: AsyncClient | None
    slots: asyncio.Semaphore
    session: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: bool = False
    parked: str | None = None
    #: what the operator does about ``parked``; ``None``: deliver an OTP (the login hint)
    next_step: str | None = None


_RUN_AGAIN_LATER = "run the same command again later"
_BUSY = "busy: another filer is filing this GSTIN with the same journal"
_OTHER_FILER = "run the same command again when the other filer is done (`gspauth journal status` shows it)"


def default_login_hint(gstin: str) -> str:
    return f"gspauth login --gstin {gstin} --otp <OTP>"


class Filer:
    """File invoice files to GSTN: read, validate, journal, chunk, send, and follow each save to
    its final status. Safe to run again on the same inputs at any time: what GSTN has is not
    sent again, what is in doubt is re-sent with its txn, what changed is sent anew.

    :param journal: the filing journal (:class:`~gspauth.journal.FilingJournal`).
    :param client_for: the async client of each GSTIN (:data:`ClientFor`); give clients a
        ``RetryPolicy(attempts=1)``: the filer retries, pausing the whole GSP on 429.
    :param options: :class:`FilerOptions`.
    :param progress: counters a display may read while the run goes (one is made if ``None``).
    :param login_hint: the command that delivers a parked GSTIN's OTP, for the report.
    """

    def __init__(self, journal: FilingJournal, client_for: ClientFor, *, options: FilerOptions | None = None,
                 progress: FilingProgress | None = None, login_hint: Callable[[str], str] = default_login_hint) -> None:
        self.journal = journal
        self.client_for = client_for
        self.options = options or FilerOptions()
        self.progress = progress or FilingProgress()
        self.login_hint = login_hint
        self._gstins: dict[str, _Gstin] = {}
        self._claims: dict[str, bool] = {}  # GSTIN → this run holds its journal claim
        self._claims_guard = threading.Lock()
        self._gates: dict[str, GspGate] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._rejections: list[dict[str, Any]] = []
        self._jexec: concurrent.futures.ThreadPoolExecutor | None = None
        self._host_down: str | None = None
        self._in_doubt = 0
        self._stop = asyncio.Event()

    # -- plumbing -------------------------------------------------------------------------------

    async def _j(self, fn: Callable[..., T], *args: Any) -> T:
        """A journal call, off the event loop, one at a time."""
        assert self._jexec is not None
        return await asyncio.get_running_loop().run_in_executor(self._jexec, lambda: fn(*args))

    async def _gstin(self, gstin: str) -> _Gstin:
        g = self._gstins.get(gstin)
        if g is None:
            client = None
            reason = None
            try:
                client = self.client_for(gstin)
                if client is None:
                    reason = "no-username: the portal username of this GSTIN is unknown (add it to --taxpayers)"
            except GSPAuthError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            g = self._gstins[gstin] = _Gstin(client, asyncio.Semaphore(self.options.per_gstin), parked=reason)
            if not await self._j(self._admit, gstin):
                # Another filer holds the GSTIN and keeps its journal record: park it in this
                # run's report only (writing "parked" would mark the other filer's chunks).
                await self._park(gstin, g, _BUSY, record=False, step=_OTHER_FILER)
            elif reason is not None:
                await self._park(gstin, g, reason,
                                 step="add its username to --taxpayers, then run the same command again"
                                 if reason.startswith("no-username") else "fix the cause, then run the same "
                                 "command again")
        return g

    def _admit(self, gstin: str) -> bool:
        """Claim ``gstin`` for this run (once; thread-safe: the planner asks before it classifies
        any of the GSTIN's records, the event loop before it polls an earlier run's chunks)."""
        with self._claims_guard:
            held = self._claims.get(gstin)
            if held is None:
                held = self._claims[gstin] = self.journal.claim(gstin)
                if not held:
                    self.progress.parked(gstin, _BUSY)
                    log.warning("GSTIN %s is being filed by another filer with this journal; left to it", gstin)
            return held

    def _controls(self, client: AsyncClient) -> tuple[GspGate, CircuitBreaker]:
        gate = self._gates.get(client.gsp)
        if gate is None:
            gate = self._gates[client.gsp] = GspGate(self.options.per_gsp, self.options.rate)
        host = client.hooks.host(client.gsp, client.environment)
        breaker = self._breakers.get(host)
        if breaker is None:
            o = self.options
            breaker = self._breakers[host] = CircuitBreaker(host, threshold=o.breaker_threshold,
                                                            cooldown=o.breaker_cooldown, give_up_after=o.give_up_after)
        return gate, breaker

    async def _park(self, gstin: str, g: _Gstin, reason: str, *, record: bool = True,
                    step: str | None = None) -> None:
        """Leave ``gstin`` for this run; ``record``: also in the journal (only while this filer
        holds the GSTIN's claim: parking marks its planned chunks); ``step``: what the operator
        does about it (``None``: deliver an OTP)."""
        g.parked = reason
        g.next_step = step
        self.progress.parked(gstin, reason)
        if record:
            await self._j(self.journal.park, gstin, reason)
        log.warning("GSTIN %s parked (%s); the others go on", gstin, reason)

    # -- sessions -------------------------------------------------------------------------------

    async def _ensure_session(self, gstin: str, g: _Gstin) -> bool:
        """A usable session for ``g`` (once per run and GSTIN), or park it with the reason."""
        assert g.client is not None
        async with g.session:
            if g.ready or g.parked:
                return g.ready
            _, breaker = self._controls(g.client)
            for attempt in range(1, self.options.attempts + 1):
                probe = await breaker.wait()
                try:
                    await g.client.ensure_session()
                except OtpRequired as exc:
                    breaker.success(probe)
                    await self._park(gstin, g, exc.reason or "needs-otp")
                    return False
                except (RetryableError, LockTimeout) as exc:
                    breaker.failure(probe) if isinstance(exc, RetryableError) else breaker.success(probe)
                    if attempt == self.options.attempts:
                        await self._park(gstin, g, f"no session: {type(exc).__name__}", step=_RUN_AGAIN_LATER)
                        return False
                    await asyncio.sleep(self.options.delay(attempt))
                    continue
                except GSPAuthError as exc:
                    breaker.success(probe)
                    code = exc.error_code if isinstance(exc, GSPError) and exc.error_code else type(exc).__name__
                    await self._park(gstin, g, f"{code}: {exc}",
                                     step=exc.hint or "fix the cause, then run the same command again")
                    return False
                breaker.success(probe)
                g.ready = True
                await self._j(self.journal.unpark, gstin)
                return True
        return False

    # -- sending one chunk --------------------------------------------------------------------------

    async def _send(self, pc: PlannedChunk, polls: list[asyncio.Task[None]]) -> None:
        chunk, txn, o = pc.chunk, pc.txn, self.options
        g = await self._gstin(chunk.gstin)
        if g.parked:
            return
        if pc.known in (ChunkState.SAVED, ChunkState.PROCESSED, ChunkState.PARTIAL, ChunkState.ERROR):
            return  # an identical chunk was acknowledged before: nothing to send
        assert g.client is not None
        async with g.slots:
            if self._stop.is_set():  # stopping: chunks not yet started wait for the next run
                return
            if not await self._ensure_session(chunk.gstin, g):
                return
            gate, breaker = self._controls(g.client)
            for attempt in range(1, o.attempts + 1):
                try:
                    probe = await breaker.wait()
                except HostDown:
                    self._host_down = breaker.host
                    self.progress.host_down = breaker.host
                    return  # not sent: still planned, the next run sends it
                async with gate:
                    try:
                        await self._j(self.journal.mark_sent, txn)
                    except LockLost as exc:  # a shared journal's claim on the GSTIN went with its connection
                        await self._park(chunk.gstin, g, f"claim-lost: {exc}", record=False, step=_OTHER_FILER)
                        return
                    self.progress.sent(chunk.gstin, chunk.count)
                    try:
                        reply = await g.client.put(Api.RETURNS, o.path, action=o.action, payload=chunk,
                                                   ret_period=chunk.fp, txn=txn)
                    except RateLimited as exc:  # the GSP asks everyone to slow down, not just us
                        breaker.success(probe)
                        gate.pause(exc.retry_after if exc.retry_after is not None else o.delay(attempt))
                        error: BaseException = exc
                    except RetryableError as exc:  # 5xx, network, in progress: same txn again
                        breaker.failure(probe)
                        error = exc
                        await asyncio.sleep(o.delay(attempt) if not isinstance(exc, NetworkError) else 0)
                    except OtpRequired as exc:  # the session died and could not be renewed
                        breaker.success(probe)
                        await self._j(self.journal.mark_in_doubt, txn, "needs-otp")
                        self._in_doubt += 1
                        self.progress.in_doubt(chunk.gstin, chunk.count)
                        await self._park(chunk.gstin, g, exc.reason or "needs-otp")
                        return
                    except (SessionInvalid, CryptoError, StoreCorrupted, LockTimeout) as exc:
                        breaker.success(probe)
                        await self._j(self.journal.mark_in_doubt, txn, type(exc).__name__)
                        self._in_doubt += 1
                        self.progress.in_doubt(chunk.gstin, chunk.count)
                        return
                    except GSPError as exc:  # GSTN refused the chunk itself
                        breaker.success(probe)
                        code = exc.error_code or type(exc).__name__
                        await self._j(self.journal.mark_failed, txn, code, exc.message)
                        self.progress.processed(chunk.gstin, 0, chunk.count)
                        self._keep_rejections(chunk, {ident: (code, exc.message) for ident, _ in chunk.records})
                        return
                    else:
                        breaker.success(probe)
                        ref = reply.get("reference_id") if isinstance(reply, dict) else None
                        if not isinstance(ref, str) or not ref:
                            await self._j(self.journal.mark_in_doubt, txn, "no-reference")
                            self._in_doubt += 1
                            self.progress.in_doubt(chunk.gstin, chunk.count)
                            return
                        await self._j(self.journal.mark_saved, txn, ref)
                        self.progress.saved(chunk.gstin, chunk.count)
                        if o.wait_status:
                            idents = [ident for ident, _ in chunk.records]
                            polls.append(asyncio.create_task(self._poll(g, txn, chunk.gstin, chunk.fp, chunk.section,
                                                                        ref, idents)))
                        return
                log.info("chunk %s of %s: transient %s (attempt %d/%d); again with the same txn", txn, chunk.gstin,
                         type(error).__name__, attempt, o.attempts)
            await self._j(self.journal.mark_in_doubt, txn, type(error).__name__)
            self._in_doubt += 1
            self.progress.in_doubt(chunk.gstin, chunk.count)

    def _keep_rejections(self, chunk: Any, errors: dict[str, tuple[str, str]]) -> None:
        for ident, (code, message) in errors.items():
            if len(self._rejections) < _MAX_KEPT_REJECTIONS:
                self._rejections.append({"gstin": chunk.gstin, "fp": chunk.fp, "section": chunk.section,
                                         "ident": ident, "error_code": code, "error_message": message})

    # -- following a save to its final status ------------------------------------------------------

    async def _poll(self, g: _Gstin, txn: str, gstin: str, fp: str, section: str, reference_id: str,
                    idents: list[str]) -> None:
        assert g.client is not None
        o = self.options
        loop = asyncio.get_running_loop()
        deadline = loop.time() + o.status_timeout
        delay = o.status_poll
        while True:
            await asyncio.sleep(delay)
            try:
                reply = await g.client.get(Api.RETURNS, "", action="RETSTATUS", ret_period=fp,
                                           params={"ref_id": reference_id})
            except (RetryableError, LockTimeout):
                reply = None
            except GSPAuthError as exc:  # the session went; the status is polled on the next run
                log.info("RETSTATUS of %s for %s not known (%s); the next run asks again", txn, gstin,
                         type(exc).__name__)
                return
            status = reply.get("status_cd") if isinstance(reply, dict) else None
            if isinstance(status, str) and status in FINAL_STATUSES:
                errors = report_errors(reply.get("error_report") if isinstance(reply, dict) else None, section,
                                       idents) if status != "P" else {}
                if status == "ER" and not errors:
                    errors = dict.fromkeys(idents, ("ER", "GSTN could not process the save"))
                await self._j(self.journal.mark_status, txn, status, errors)
                self.progress.processed(gstin, len(idents) - len(errors), len(errors))
                self._keep_rejections(_ChunkInfo(gstin, fp, section), errors)
                return
            if loop.time() + delay > deadline:
                return  # stays "saved": the next run (or `gspauth journal status`) asks again
            delay = min(delay * 1.5, 30.0)

    def _saved_idents(self, row: ChunkRow) -> list[str]:
        return [i.ident for i in self.journal.invoices(gstin=row.gstin, fp=row.fp, states=[InvoiceState.SAVED])
                if i.chunk_txn == row.txn]

    async def _resume_polls(self, polls: list[asyncio.Task[None]], partition: Partition | None) -> None:
        """Chunks an earlier run saved but never saw processed: ask for their status now."""
        for row in await self._j(lambda: self.journal.chunks(states=[ChunkState.SAVED])):
            if row.reference_id is None or (partition is not None and row.gstin not in partition):
                continue
            g = await self._gstin(row.gstin)
            if g.parked or g.client is None:
                continue
            rows = await self._j(self._saved_idents, row)
            polls.append(asyncio.create_task(self._poll(g, row.txn, row.gstin, row.fp, row.section,
                                                        row.reference_id, rows)))

    # -- the run ------------------------------------------------------------------------------------

    async def run(self, inputs: Sequence[FilingInput], *, stop: asyncio.Event | None = None,
                  description: dict[str, object] | None = None, partition: Partition | None = None) -> FilingReport:
        """File ``inputs``; returns the :class:`FilingReport`. Set ``stop`` to end cleanly: no new
        chunk is started, in-flight ones finish and are journalled.

        :param partition: file only this partition's GSTINs (one task of a distributed run,
            :mod:`gspauth.filer.distributed`); the others' records are read and left alone.
        """
        stop = stop or asyncio.Event()
        self._stop = stop
        o = self.options
        self._jexec = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gspauth-journal")
        loop = asyncio.get_running_loop()
        run_id = None if o.dry_run else await self._j(self.journal.begin_run, description or {
            "inputs": [i.path for i in inputs], "options": {k: getattr(o, k) for k in ("action", "max_chunk_bytes",
                                                                                          "retry_rejected")}})
        planner = Planner(self.journal, run_id or 0, action=o.action, max_chunk_bytes=o.max_chunk_bytes,
                          max_buffer_bytes=o.max_buffer_bytes, retry_rejected=o.retry_rejected, dry_run=o.dry_run,
                          progress=self.progress, partition=partition, admit=self._admit)
        queue: asyncio.Queue[PlannedChunk | BaseException | None] = asyncio.Queue(maxsize=o.queue)
        halt = threading.Event()

        def emit(pc: PlannedChunk) -> None:
            asyncio.run_coroutine_threadsafe(queue.put(pc), loop).result()

        def read() -> None:
            try:
                planner.run(list(inputs), emit, lambda: halt.is_set())
                outcome: PlannedChunk | BaseException | None = None
            except BaseException as exc:  # noqa: BLE001 - handed to the event loop, re-raised there
                outcome = exc
            finally:
                self.progress.reading_done = True
            asyncio.run_coroutine_threadsafe(queue.put(outcome), loop).result()

        reader = loop.run_in_executor(None, read)
        polls: list[asyncio.Task[None]] = []
        sends: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(o.concurrency)
        failure: BaseException | None = None
        try:
            if o.wait_status and not o.dry_run:
                await self._resume_polls(polls, partition)
            while True:
                getter = asyncio.ensure_future(queue.get())
                stopper = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    halt.set()
                    break
                stopper.cancel()
                item = getter.result()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    failure = item
                    break
                if self._host_down:
                    halt.set()  # stop reading: nothing more can be sent this run
                    continue
                if o.dry_run:
                    continue
                await slots.acquire()
                task = asyncio.create_task(self._send(item, polls))
                sends.add(task)
                task.add_done_callback(self._finished(slots, sends))
            halt.set()
            while not reader.done():  # unblock a reader waiting on a full queue
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                await asyncio.sleep(0.01)
            await reader
            if sends:
                await asyncio.gather(*list(sends))
            if polls:
                if stop.is_set():
                    for p in polls:
                        p.cancel()
                await asyncio.gather(*polls, return_exceptions=True)
        finally:
            for gstin, held in list(self._claims.items()):
                if held:
                    await self._j(self.journal.release, gstin)
        if failure is not None:
            raise failure
        report = self._report(planner, run_id, stop.is_set())
        if run_id is not None:
            await self._j(self.journal.end_run, run_id, report.outcome)
        self._jexec.shutdown(wait=True)
        return report

    @staticmethod
    def _finished(slots: asyncio.Semaphore, sends: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            slots.release()
            sends.discard(task)

        return done

    def _report(self, planner: Planner, run_id: int | None, interrupted: bool) -> FilingReport:
        snap = self.progress.snapshot()
        parked = {gstin: {"reason": g.parked, "command": g.next_step or self.login_hint(gstin)}
                  for gstin, g in sorted(self._gstins.items()) if g.parked}
        for gstin, held in sorted(self._claims.items()):  # busy GSTINs whose records were left unread
            if not held and gstin not in parked:
                parked[gstin] = {"reason": _BUSY, "command": _OTHER_FILER}
        parked = dict(sorted(parked.items()))
        t = snap["totals"]
        if self.options.dry_run:
            outcome = "dry-run"
        elif interrupted:
            outcome = "interrupted"
        elif self._host_down:
            outcome = "unreachable"
        elif parked:
            outcome = "parked"
        elif t["in_doubt"] or self._in_doubt:
            outcome = "in-doubt"
        elif t["rejected"] or snap["record_errors"] or snap["duplicates"]:
            outcome = "rejected"
        else:
            outcome = "complete"
        return FilingReport(
            outcome=outcome, journal=repr(self.journal), run_id=run_id, elapsed=snap["elapsed"],
            records_read=snap["records_read"],
            record_errors=[e._asdict() for e in planner.errors], record_error_counts=snap["record_errors"],
            duplicates=snap["duplicates"], unchanged=snap["unchanged"], still_rejected=snap["still_rejected"],
            gstins=snap["gstins"], parked=parked, rejected=list(self._rejections), host_down=self._host_down,
        )

    def run_sync(self, inputs: Sequence[FilingInput], **kwargs: Any) -> FilingReport:
        """:meth:`run` in a new event loop (for code that is not async)."""
        return asyncio.run(self.run(inputs, **kwargs))


@dataclass(frozen=True)
class _ChunkInfo:
    gstin: str
    fp: str
    section: str

