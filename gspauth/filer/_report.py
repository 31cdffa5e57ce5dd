"""What a filing run did: live counters for a progress display, and the final report."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FilingProgress", "FilingReport", "GstinProgress"]


@dataclass
class GstinProgress:
    """One GSTIN's counters (invoices unless named otherwise)."""

    planned: int = 0
    sent: int = 0
    saved: int = 0
    accepted: int = 0
    rejected: int = 0
    in_doubt: int = 0
    chunks_planned: int = 0
    chunks_saved: int = 0
    parked: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "sent": self.sent, "saved": self.saved, "accepted": self.accepted,
                "rejected": self.rejected, "in_doubt": self.in_doubt, "chunks_planned": self.chunks_planned,
                "chunks_saved": self.chunks_saved, "parked": self.parked}


class FilingProgress:
    """Counters a filing run updates as it goes (thread-safe); a display reads :meth:`snapshot`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.bytes_total = 0
        self.bytes_read = 0
        self.records_read = 0
        self.record_errors: dict[str, int] = {}
        self.duplicates = 0
        self.unchanged = 0
        self.still_rejected = 0
        self.reading_done = False
        self.gstins: dict[str, GstinProgress] = {}
        self.host_down: str | None = None

    def _g(self, gstin: str) -> GstinProgress:
        g = self.gstins.get(gstin)
        if g is None:
            g = self.gstins[gstin] = GstinProgress()
        return g

    def read(self, nbytes: int, records: int) -> None:
        with self._lock:
            self.bytes_read += nbytes
            self.records_read += records

    def classified(self, duplicates: int, unchanged: int, still_rejected: int) -> None:
        with self._lock:
            self.duplicates += duplicates
            self.unchanged += unchanged
            self.still_rejected += still_rejected

    def record_error(self, code: str) -> None:
        with self._lock:
            self.record_errors[code] = self.record_errors.get(code, 0) + 1

    def planned(self, gstin: str, invoices: int) -> None:
        with self._lock:
            g = self._g(gstin)
            g.planned += invoices
            g.chunks_planned += 1

    def sent(self, gstin: str, invoices: int) -> None:
        with self._lock:
            self._g(gstin).sent += invoices

    def saved(self, gstin: str, invoices: int) -> None:
        with self._lock:
            g = self._g(gstin)
            g.saved += invoices
            g.chunks_saved += 1

    def in_doubt(self, gstin: str, invoices: int) -> None:
        with self._lock:
            self._g(gstin).in_doubt += invoices

    def processed(self, gstin: str, accepted: int, rejected: int) -> None:
        with self._lock:
            g = self._g(gstin)
            g.accepted += accepted
            g.rejected += rejected

    def parked(self, gstin: str, reason: str) -> None:
        with self._lock:
            self._g(gstin).parked = reason

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of every counter, with rates."""
        with self._lock:
            elapsed = max(1e-6, time.monotonic() - self.started)
            totals = GstinProgress()
            for g in self.gstins.values():
                for name in ("planned", "sent", "saved", "accepted", "rejected", "in_doubt", "chunks_planned",
                             "chunks_saved"):
                    setattr(totals, name, getattr(totals, name) + getattr(g, name))
            return {
                "elapsed": elapsed, "bytes_total": self.bytes_total, "bytes_read": self.bytes_read,
                "records_read": self.records_read, "record_errors": dict(self.record_errors),
                "duplicates": self.duplicates, "unchanged": self.unchanged, "still_rejected": self.still_rejected,
                "reading_done": self.reading_done, "totals": totals.to_dict(),
                "gstins": {k: v.to_dict() for k, v in self.gstins.items()}, "host_down": self.host_down,
                "rate": totals.saved / elapsed,
            }


@dataclass
class FilingReport:
    """The outcome of a run (also as :meth:`to_dict` for ``--json``).

    :param outcome: ``complete`` (everything read was accepted or was already), ``rejected``
        (some records were refused by validation or by GSTN), ``parked`` (some GSTINs need OTP
        consent), ``in-doubt`` (some chunks got no answer: run again), ``interrupted``,
        ``unreachable`` (a GSP was down past the give-up time), or ``dry-run``.
    """

    outcome: str
    journal: str
    run_id: int | None
    elapsed: float
    records_read: int
    record_errors: list[dict[str, Any]]
    record_error_counts: dict[str, int]
    duplicates: int
    unchanged: int
    still_rejected: int
    gstins: dict[str, dict[str, Any]]
    parked: dict[str, dict[str, str]] = field(default_factory=dict)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    host_down: str | None = None

    @property
    def totals(self) -> dict[str, int]:
        keys = ("planned", "sent", "saved", "accepted", "rejected", "in_doubt", "chunks_planned", "chunks_saved")
        return {k: sum(int(g.get(k) or 0) for g in self.gstins.values()) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "journal": self.journal, "run_id": self.run_id,
                "elapsed_seconds": round(self.elapsed, 3), "records_read": self.records_read,
                "totals": self.totals, "record_error_counts": self.record_error_counts,
                "record_errors": self.record_errors, "duplicates": self.duplicates, "unchanged": self.unchanged,
                "still_rejected": self.still_rejected, "gstins": self.gstins, "parked": self.parked,
                "rejected_by_gstn": self.rejected, "host_down": self.host_down}

    def text(self, limit: int = 10) -> str:
        """A short, actionable summary for people."""
        t = self.totals
        lines = [f"{self.outcome}: {self.records_read} record(s) read in {self.elapsed:.1f} s; "
                 f"{t['accepted']} accepted, {t['saved'] - t['accepted'] - t['rejected']} saved (status pending), "
                 f"{t['rejected']} rejected by GSTN, {t['in_doubt']} in doubt, {self.unchanged} already filed, "
                 f"{sum(self.record_error_counts.values())} invalid, {self.duplicates} duplicate(s)"]
        if self.record_errors:
            lines.append("invalid records (not sent):")
            for e in self.record_errors[:limit]:
                lines.append(f"  {e['source']}:{e['line']}: {e['code']}: {e['message']}")
            if len(self.record_errors) > limit:
                lines.append(f"  … and {len(self.record_errors) - limit} more (--json lists them all)")
        if self.rejected:
            lines.append("rejected by GSTN:")
            for r in self.rejected[:limit]:
                lines.append(f"  {r['gstin']} {r['fp']} {r['section']} {r['ident']}: {r['error_code']}: "
                             f"{r['error_message']}")
            if len(self.rejected) > limit:
                lines.append(f"  … and {len(self.rejected) - limit} more (`gspauth journal export --state rejected`)")
        if self.parked:
            lines.append("parked (the other GSTINs went on); for each, what to do, then run the same command again:")
            for gstin, info in sorted(self.parked.items()):
                lines.append(f"  {gstin}: {info['reason']} → {info['command']}")
        if t["in_doubt"]:
            lines.append("in doubt (no answer): run the same command again; each chunk is re-sent with its "
                         "original txn, so nothing is filed twice")
        if self.host_down:
            lines.append(f"gave up on {self.host_down}: it stayed down; run again later (nothing is lost)")
        return "\n".join(lines)
