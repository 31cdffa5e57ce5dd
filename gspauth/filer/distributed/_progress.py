"""Live progress of a distributed run on the client, from the shared journal: nothing is
streamed from the workers; the journal already knows what every one of them did."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gspauth.filer.distributed._spec import PartitionResult
    from gspauth.journal import FilingJournal

__all__ = ["JournalProgress"]

log = logging.getLogger("gspauth.filer.distributed")
_DONE = ("saved", "accepted", "rejected")


class JournalProgress:
    """Counters for a progress display (:meth:`snapshot` has the keys of
    :meth:`gspauth.filer.FilingProgress.snapshot`, plus ``partitions``: finished and total).

    Invoice counts come from the journal's :meth:`~gspauth.journal.FilingJournal.counts`,
    read at most every ``interval`` seconds and taken relative to the counts when the run
    began; what only a partition knows (records read, invalid, already filed, per GSTIN)
    is added as each partition finishes.

    :param open_journal: opens the run's journal on this machine (``None``: partitions only,
        e.g. a journal file on the workers' disks).
    """

    def __init__(self, open_journal: Callable[[], FilingJournal] | None = None, *, interval: float = 1.0) -> None:
        self._open = open_journal
        self._journal: FilingJournal | None = None
        self.interval = interval
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self._base: dict[str, int] = {}
        self._now: dict[str, int] = {}
        self._chunks: dict[str, int] = {}
        self._read_at = 0.0
        self.partitions_total = 0
        self.partitions_done = 0
        self.records_read = 0
        self.record_errors: dict[str, int] = {}
        self.duplicates = self.unchanged = self.still_rejected = 0
        self.gstins: dict[str, dict[str, Any]] = {}

    def begin(self, partitions: int) -> None:
        """The run starts now, with ``partitions`` tasks."""
        self.started = time.monotonic()
        self.partitions_total = partitions
        if self._open is not None:
            try:
                self._journal = self._open()
                self._base = self._journal.counts()["invoices"]
            except Exception as exc:  # noqa: BLE001 - progress is a nicety: the run goes on without it
                log.warning("progress: cannot read the journal here (%s); showing finished partitions only",
                            type(exc).__name__)
                self._journal = None
        self._now = dict(self._base)

    def finished(self, result: PartitionResult) -> None:
        """A partition returned (with a report or an error)."""
        with self._lock:
            self.partitions_done += 1
            r = result.report
            if r is None:
                return
            self.records_read += r.records_read
            for code, n in r.record_error_counts.items():
                self.record_errors[code] = self.record_errors.get(code, 0) + n
            self.duplicates += r.duplicates
            self.unchanged += r.unchanged
            self.still_rejected += r.still_rejected
            self.gstins.update(r.gstins)

    def _refresh(self) -> None:
        if self._journal is None or time.monotonic() - self._read_at < self.interval:
            return
        self._read_at = time.monotonic()
        try:
            counts = self._journal.counts()
        except Exception as exc:  # noqa: BLE001 - a busy or unreachable journal: keep the last counts
            log.info("progress: journal not read (%s)", type(exc).__name__)
            return
        self._now, self._chunks = counts["invoices"], counts["chunks"]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self._refresh()
            now, base = self._now, self._base

            def delta(*states: str) -> int:
                return max(0, sum(now.get(s, 0) for s in states) - sum(base.get(s, 0) for s in states))

            saved = delta(*_DONE)
            totals = {"planned": saved + now.get("pending", 0) + now.get("sent", 0), "sent": now.get("sent", 0),
                      "saved": saved, "accepted": delta("accepted"), "rejected": delta("rejected"), "in_doubt": 0,
                      "chunks_planned": sum(self._chunks.values()), "chunks_saved": sum(
                          self._chunks.get(s, 0) for s in ("saved", "processed", "partial", "error"))}
            elapsed = max(1e-6, time.monotonic() - self.started)
            gstins = dict(self.gstins)
            if self._journal is not None:
                try:
                    for gstin, reason in self._journal.parked().items():
                        gstins.setdefault(gstin, {"planned": 0, "saved": 0, "accepted": 0, "rejected": 0,
                                                  "in_doubt": 0, "chunks_planned": 0, "chunks_saved": 0})
                        gstins[gstin] = dict(gstins[gstin], parked=reason)
                except Exception:  # noqa: BLE001 - as above: a display must not end the run
                    pass
            return {"elapsed": elapsed, "bytes_total": 0, "bytes_read": 0, "records_read": self.records_read,
                    "record_errors": dict(self.record_errors), "duplicates": self.duplicates,
                    "unchanged": self.unchanged, "still_rejected": self.still_rejected,
                    "reading_done": self.partitions_done >= self.partitions_total > 0, "totals": totals,
                    "gstins": gstins, "host_down": None, "rate": saved / elapsed,
                    "partitions": (self.partitions_done, self.partitions_total)}

    def close(self) -> None:
        with self._lock:
            journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()
