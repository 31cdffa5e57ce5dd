"""Partitioning by GSTIN (no cluster): every record is planned by exactly one partition, every
record error is reported by exactly one, whatever the input holds and however it is read."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gspauth import synthetic
from gspauth.emulator import defaults
from gspauth.filer import FilingInput, FilingProgress
from gspauth.filer import _partition as partition_module
from gspauth.filer._plan import Planner
from gspauth.filer.distributed import Partition, partition_of
from gspauth.journal.sqlite import SQLiteJournal

PERIOD = "072017"
GSTINS = [defaults.make_gstin("27", f"AAACP{i:04d}K") for i in range(6)]
# A few valid lines per GSTIN (distinct invoices: no duplicates to blur the comparison).
LINES = {g: list(synthetic.b2b_jsonl(4, seed=i, supplier_gstin=g, ret_period=PERIOD)) for i, g in enumerate(GSTINS)}


def _escaped_key(line: bytes) -> bytes:
    """The same record with its gstin key spelt with an escape: valid JSON the byte search cannot read."""
    return line.replace(b'"gstin"', b'"g\\u0073tin"', 1)


NOISE = [
    b"\n", b"   \n", b"not json at all\n",
    b'{"gstin":"' + GSTINS[1].encode() + b'","broken": \n',   # a GSTIN the search reads, then invalid JSON
    b'{"fp":"072017","section":"b2b"}\n',                      # no gstin at all
    b'{"gstin":"27aaacp0002k1zz","fp":"072017"}\n',            # an invalid GSTIN
]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="gspauth-partition-") as name:
        yield Path(name)


def plan(path: Path, journal: SQLiteJournal, partition: Partition | None, block_size: int
         ) -> tuple[Counter[tuple[str, str]], Counter[tuple[int, str]]]:
    """What a dry run plans (gstin, ident) and reports (line, code) for ``partition``."""
    planner = Planner(journal, 0, action="RETSAVE", max_chunk_bytes=40_000, max_buffer_bytes=1 << 20,
                      retry_rejected=False, dry_run=True, progress=FilingProgress(), block_size=block_size,
                      partition=partition)
    records: Counter[tuple[str, str]] = Counter()

    def emit(pc: Any) -> None:
        for ident, _ in pc.chunk.records:
            records[(pc.chunk.gstin, ident)] += 1

    planner.run([FilingInput(str(path))], emit, lambda: False)
    return records, Counter((e.line, e.code) for e in planner.errors)


def test_partition_of_is_stable_and_spreads_evenly() -> None:
    # sha256("27AAPCD0007K1ZO") begins 0x5d2f…: the value every machine and Python computes
    assert [partition_of("27AAPCD0007K1ZO", n) for n in (1, 2, 3, 7)] == \
        [int.from_bytes(__import__("hashlib").sha256(b"27AAPCD0007K1ZO").digest()[:8], "big") % n for n in (1, 2, 3, 7)]
    gstins = [defaults.make_gstin("27", f"AAACQ{i:04d}K") for i in range(2000)]
    sizes = Counter(partition_of(g, 4) for g in gstins)
    assert set(sizes) == {0, 1, 2, 3} and all(400 < n < 600 for n in sizes.values()), sizes
    p = Partition(2, 4)
    assert {g for g in gstins if g in p} == {g for g in gstins if partition_of(g, 4) == 2}
    narrowed = p.narrowed(frozenset(gstins[:50]))
    assert {g for g in gstins if g in narrowed} == {g for g in gstins[:50] if partition_of(g, 4) == 2}
    with pytest.raises(ValueError, match="index < count"):
        Partition(4, 4)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), count=st.integers(1, 5), block_size=st.integers(16, 6000), small_limits=st.booleans())
def test_partitions_plan_every_record_once_and_report_every_error_once(
        workdir: Path, data: st.DataObject, count: int, block_size: int, small_limits: bool) -> None:
    picks = data.draw(st.lists(st.tuples(st.sampled_from(GSTINS), st.integers(0, 3), st.booleans()),
                               unique_by=lambda t: (t[0], t[1]), min_size=1, max_size=16))
    lines = [(_escaped_key if escaped else bytes)(LINES[g][n]) for g, n, escaped in picks]
    lines += data.draw(st.lists(st.sampled_from(NOISE), max_size=6))
    order = data.draw(st.permutations(range(len(lines))))
    body = b"".join(lines[i] for i in order)
    if data.draw(st.booleans()):
        body = body.replace(b"\n", b"\r\n")
    if data.draw(st.booleans()):
        body = body.rstrip(b"\r\n")  # the last line without its newline
    path = workdir / "in.jsonl"
    path.write_bytes(body)
    limits = mock.patch.multiple(partition_module, _MAX_FILTERED_LINE=300, _MAX_UNATTRIBUTED=1) if small_limits \
        else contextlib.nullcontext()
    with SQLiteJournal(workdir / "journal.db") as journal, limits:
        whole_records, whole_errors = plan(path, journal, None, block_size)
        records: Counter[tuple[str, str]] = Counter()
        errors: Counter[tuple[int, str]] = Counter()
        for index in range(count):
            mine, reported = plan(path, journal, Partition(index, count), block_size)
            assert all(partition_of(g, count) == index for g, _ in mine), "a record of another partition"
            records += mine
            errors += reported
    assert records == whole_records  # every record once, none lost, none twice
    assert errors == whole_errors    # every error reported by exactly one partition


def test_a_line_the_filter_misreads_is_refused_not_lost(workdir: Path) -> None:
    """The safety net: were the byte search ever wrong about a line's GSTIN, the partition that
    kept it finds a foreign record on a line it thought its own, and stops."""
    a, b = GSTINS[0], next(g for g in GSTINS[1:] if partition_of(g, 2) != partition_of(GSTINS[0], 2))
    path = workdir / "misread.jsonl"
    path.write_bytes(LINES[a][0] + LINES[b][0])
    wrong = partition_module.re.compile(rb'"fp"()')  # "reads" an empty GSTIN from every line
    with SQLiteJournal(workdir / "journal.db") as journal, mock.patch.object(partition_module, "_GSTIN_KEY", wrong):
        owner = partition_of("", 2)
        with pytest.raises(RuntimeError, match="refusing to go on"):
            plan(path, journal, Partition(owner, 2), 4096)


def test_a_csv_of_another_partitions_gstin_is_not_even_opened(workdir: Path) -> None:
    sample = Path(__file__).resolve().parents[2] / "docs" / "samples" / "b2b.csv"
    gstin = "27AAPCD0007K1ZO"
    with SQLiteJournal(workdir / "journal.db") as journal:
        spec = FilingInput(str(sample), gstin=gstin, fp=PERIOD)
        for index in range(3):
            progress = FilingProgress()
            planner = Planner(journal, 0, action="RETSAVE", max_chunk_bytes=40_000, max_buffer_bytes=1 << 20,
                              retry_rejected=False, dry_run=True, progress=progress, partition=Partition(index, 3))
            planned: list[Any] = []
            planner.run([spec], planned.append, lambda: False)
            mine = partition_of(gstin, 3) == index
            assert (progress.bytes_read > 0) == mine and bool(planned) == mine


def test_noise_lines_are_what_the_module_says() -> None:
    """The fixtures above mean what they claim: the escaped key is still a valid record."""
    record = json.loads(_escaped_key(LINES[GSTINS[0]][0]))
    assert record["gstin"] == GSTINS[0]
    assert partition_module._GSTIN_KEY.search(_escaped_key(LINES[GSTINS[0]][0])) is None
