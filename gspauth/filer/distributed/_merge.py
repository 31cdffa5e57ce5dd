"""One report from many: a task's passes into its partition's report, and the partitions'
reports into the run's :class:`DistributedReport` (same outcomes, so the same exit codes, as
``gspauth file``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gspauth.filer import FilingReport

if TYPE_CHECKING:
    from gspauth.filer.distributed._spec import PartitionResult

__all__ = ["OUTCOMES", "DistributedReport", "merge_partitions", "merge_passes"]

#: Outcomes, the most pressing first: a run's outcome is the first any part of it has.
#: ``internal`` (a task failed with a bug) and ``failed`` (a task could not run: settings,
#: files, the database) come before everything ``gspauth file`` itself reports.
OUTCOMES = ("internal", "failed", "interrupted", "unreachable", "parked", "in-doubt", "rejected", "complete", "dry-run")
_SUMMED = ("sent", "saved", "accepted", "rejected", "chunks_saved")
_MAX_KEPT = 10_000


def _outcome(report: FilingReport, dry_run: bool) -> str:
    """What ``Filer`` would say of these counts (see :class:`~gspauth.filer.FilingReport`)."""
    if dry_run:
        return "dry-run"
    totals = report.totals
    if report.host_down:
        return "unreachable"
    if report.parked:
        return "parked"
    if totals["in_doubt"]:
        return "in-doubt"
    if totals["rejected"] or report.record_error_counts or report.duplicates:
        return "rejected"
    return "complete"


def merge_passes(passes: Sequence[tuple[FilingReport, frozenset[str] | None]]) -> FilingReport:
    """A partition's report from its passes: the first over every GSTIN, later ones over a few
    (``covered``). A retried GSTIN's work is summed over its passes; its planned count is the
    first pass's, and what is still parked or in doubt is what its last pass left. Counts of the
    input itself (records read, invalid, duplicates, already filed) are the first pass's."""
    first = passes[0][0]
    if len(passes) == 1:
        return first
    gstins = {g: dict(v) for g, v in first.gstins.items()}
    parked = dict(first.parked)
    rejected = list(first.rejected)
    host_down = first.host_down
    interrupted = first.outcome == "interrupted"
    for report, covered in passes[1:]:
        for gstin in covered or ():
            parked.pop(gstin, None)
        parked.update(report.parked)
        rejected += report.rejected[:max(0, _MAX_KEPT - len(rejected))]
        host_down = report.host_down or host_down
        interrupted = interrupted or report.outcome == "interrupted"
        for gstin, new in report.gstins.items():
            old = gstins.get(gstin)
            if old is None:
                gstins[gstin] = dict(new)
                continue
            for k in _SUMMED:
                old[k] = int(old.get(k) or 0) + int(new.get(k) or 0)
            if not old.get("planned"):
                old["planned"], old["chunks_planned"] = new.get("planned", 0), new.get("chunks_planned", 0)
            old["in_doubt"], old["parked"] = new.get("in_doubt", 0), new.get("parked")
    merged = FilingReport(
        outcome=first.outcome, journal=first.journal, run_id=first.run_id,
        elapsed=sum(r.elapsed for r, _ in passes), records_read=first.records_read, record_errors=first.record_errors,
        record_error_counts=first.record_error_counts, duplicates=first.duplicates, unchanged=first.unchanged,
        still_rejected=first.still_rejected, gstins=gstins, parked=parked, rejected=rejected, host_down=host_down)
    merged.outcome = "interrupted" if interrupted else _outcome(merged, first.outcome == "dry-run")
    return merged


@dataclass
class DistributedReport(FilingReport):
    """The report of a distributed run: the partitions' reports merged (their GSTINs are
    disjoint), plus what each partition did and where.

    :param outcome: as :class:`~gspauth.filer.FilingReport`, and also ``failed`` (a partition
        could not run: its error says why; exit 1) and ``internal`` (a partition hit a bug; exit
        70). A partition whose worker died more often than the scheduler allows leaves its
        chunks in doubt (``in-doubt``, exit 75: run again).
    :param run: the run's id (Dask task keys ``gspauth-file-<run>-<partition>``).
    :param partitions: per partition: ``index``, ``worker``, ``pid``, ``outcome``, ``passes``,
        ``elapsed_seconds``, ``gstins`` and ``error`` (``None``, or why it has no report).
    :param workers: worker processes (threads) the run started with.
    """

    run: str = ""
    partitions: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 0
    threads: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(run=self.run, workers=self.workers, threads=self.threads, partitions=self.partitions)
        return out

    def text(self, limit: int = 10) -> str:
        lines = [super().text(limit)]
        failed = [p for p in self.partitions if p["error"]]
        lines.append(f"{len(self.partitions)} partition(s) on {self.workers} worker(s), {self.threads} thread(s); "
                     f"{len(self.partitions) - len(failed)} finished")
        for p in failed[:limit]:
            lines.append(f"  partition {p['index']} ({p['worker'] or 'no worker'}): {p['error']}")
        if len(failed) > limit:
            lines.append(f"  … and {len(failed) - limit} more (--json lists them all)")
        return "\n".join(lines)


def merge_partitions(results: Sequence[PartitionResult], *, journal: str, run: str, elapsed: float, dry_run: bool,
                     interrupted: bool, workers: int, threads: int) -> DistributedReport:
    """The run's report from its partitions' results (some of which may hold an error instead)."""
    gstins: dict[str, dict[str, Any]] = {}
    parked: dict[str, dict[str, str]] = {}
    record_errors: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    rejected: list[dict[str, Any]] = []
    records_read = duplicates = unchanged = still_rejected = 0
    host_down: str | None = None
    outcomes: set[str] = set()
    partitions: list[dict[str, Any]] = []
    for res in sorted(results, key=lambda r: r.index):
        r = res.report
        info: dict[str, Any] = {"index": res.index, "worker": res.worker, "pid": res.pid, "passes": res.passes,
                                "elapsed_seconds": round(res.elapsed, 3), "outcome": None, "gstins": 0,
                                "error": res.error.text() if res.error else None}
        partitions.append(info)
        if res.error is not None:
            outcomes.add({"error": "failed", "internal": "internal"}.get(
                res.error.kind, "interrupted" if interrupted else "in-doubt"))
        if r is None:
            continue
        info["outcome"], info["gstins"] = r.outcome, len(r.gstins)
        outcomes.add(r.outcome)
        gstins.update({g: dict(v, partition=res.index) for g, v in r.gstins.items()})
        parked.update(r.parked)
        record_errors += r.record_errors[:max(0, _MAX_KEPT - len(record_errors))]
        rejected += r.rejected[:max(0, _MAX_KEPT - len(rejected))]
        for code, n in r.record_error_counts.items():
            counts[code] = counts.get(code, 0) + n
        records_read += r.records_read
        duplicates += r.duplicates
        unchanged += r.unchanged
        still_rejected += r.still_rejected
        host_down = host_down or r.host_down
    if interrupted:
        outcomes.add("interrupted")
    record_errors.sort(key=lambda e: (str(e.get("source")), int(e.get("line") or 0)))
    outcome = next((o for o in OUTCOMES if o in outcomes), "dry-run" if dry_run else "complete")
    if outcome == "dry-run" and not dry_run:
        outcome = "complete"
    return DistributedReport(
        outcome=outcome, journal=journal, run_id=None, elapsed=elapsed, records_read=records_read,
        record_errors=record_errors, record_error_counts=counts, duplicates=duplicates, unchanged=unchanged,
        still_rejected=still_rejected, gstins=dict(sorted(gstins.items())), parked=dict(sorted(parked.items())),
        rejected=rejected, host_down=host_down, run=run, partitions=partitions, workers=workers, threads=threads)
