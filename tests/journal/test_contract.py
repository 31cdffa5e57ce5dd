"""The FilingJournal contract, run against every backend: SQLite (a file) and PostgreSQL (a
throw-away server). A filer must not be able to tell them apart."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gspauth.journal import ChunkState, FilingJournal, InvoiceState, RecordKey, open_journal

FP = "072017"
A = "27AAACB0000K1Z5"
B = "29AAACB0001K1Z3"


@pytest.fixture(params=["sqlite", "postgres"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "journal.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def journal(spec: str) -> Iterator[FilingJournal]:
    j = open_journal(spec)
    try:
        yield j
    finally:
        j.close()


def rec(gstin: str, n: int, content: str = "v1", line: int | None = None) -> RecordKey:
    ident = f"29AAACR{n:05d}A1ZX/INV-{n}"
    return (gstin, FP, "b2b", ident, f"{content}-{n}".ljust(64, "0"), line if line is not None else n)


def file_chunk(j: FilingJournal, txn: str, records: list[RecordKey], status: str = "P",
               errors: dict[str, tuple[str, str]] | None = None) -> None:
    """Plan, send, save and process ``records`` as one chunk."""
    g = records[0][0]
    assert j.plan_chunk(txn, g, FP, "b2b", "RETSAVE", "c" * 64, 100, [(r[3], r[4]) for r in records]) \
        == ChunkState.PLANNED
    j.mark_sent(txn)
    j.mark_saved(txn, f"REF-{txn}")
    j.mark_status(txn, status, errors or {})


def states(j: FilingJournal, **kw: str) -> dict[str, str]:
    return {r.ident: str(r.state) for r in j.invoices(**kw)}  # type: ignore[arg-type]


def test_new_records_are_pending_and_duplicates_in_a_run_are_reported(journal: FilingJournal) -> None:
    run = journal.begin_run({"inputs": ["a.jsonl"]})
    first = [rec(A, 1), rec(A, 2), rec(A, 1)]
    c = journal.classify(run, "a.jsonl", first)
    assert c.skip == b"\x00\x00\x01" and c.duplicates == (2,)
    # the same identity in a later batch of the same run is a duplicate too
    c2 = journal.classify(run, "a.jsonl", [rec(A, 2, "v9"), rec(A, 3)])
    assert c2.skip == b"\x01\x00" and c2.duplicates == (0,)
    assert journal.counts() ["invoices"] == {"pending": 3}
    rows = {r.ident: r for r in journal.invoices()}
    assert rows[rec(A, 1)[3]].source == "a.jsonl" and rows[rec(A, 1)[3]].line == 1
    assert rows[rec(A, 2)[3]].sha256 == rec(A, 2)[4]  # the duplicate did not overwrite it
    journal.end_run(run, "complete")


def test_a_rerun_skips_what_gstn_has_and_resends_what_changed(journal: FilingJournal) -> None:
    run = journal.begin_run({})
    records = [rec(A, n) for n in range(1, 6)]
    journal.classify(run, "in", records)
    file_chunk(journal, "t1", records, "PE", {records[4][3]: ("RET191113", "recipient not registered")})
    assert states(journal) == {**{r[3]: "accepted" for r in records[:4]}, records[4][3]: "rejected"}
    rejected = next(journal.invoices(states=[InvoiceState.REJECTED]))
    assert (rejected.error_code, rejected.error_message, rejected.reference_id) == (
        "RET191113", "recipient not registered", "REF-t1")
    assert [c.state for c in journal.chunks()] == [ChunkState.PARTIAL]

    run2 = journal.begin_run({})
    again = [*records[:3], rec(A, 4, "v2"), records[4], rec(A, 6)]
    c = journal.classify(run2, "in", again)
    assert c.skip == b"\x01\x01\x01\x00\x01\x00" and c.unchanged == 3 and c.still_rejected == 1
    assert states(journal)[rec(A, 4)[3]] == "pending"
    # retry_rejected re-sends the rejected content and forgets GSTN's old error
    run3 = journal.begin_run({})
    c3 = journal.classify(run3, "in", [records[4]], retry_rejected=True)
    assert c3.skip == b"\x00"
    row = next(r for r in journal.invoices() if r.ident == records[4][3])
    assert row.state == InvoiceState.PENDING and row.error_code is None and row.error_message is None


def test_a_dry_run_records_nothing(journal: FilingJournal) -> None:
    run = journal.begin_run({})
    c = journal.classify(run, "in", [rec(A, 1), rec(A, 1)], write=False)
    assert c.duplicates == (1,)
    assert list(journal.invoices()) == []


def test_chunks_keep_their_state_across_runs_and_in_doubt_stays_in_doubt(journal: FilingJournal) -> None:
    run = journal.begin_run({})
    records = [rec(A, 1), rec(A, 2)]
    journal.classify(run, "in", records)
    pairs = [(r[3], r[4]) for r in records]
    assert journal.plan_chunk("t1", A, FP, "b2b", "RETSAVE", "c" * 64, 10, pairs) == ChunkState.PLANNED
    journal.mark_sent("t1")
    journal.mark_in_doubt("t1", "NetworkTimeout")
    assert states(journal) == {r[3]: "sent" for r in records}
    # a resumed run rebuilds the same chunk: the journal says it was sent (in doubt)
    run2 = journal.begin_run({})
    c = journal.classify(run2, "in", records)
    assert c.skip == b"\x00\x00"  # in doubt: sent again, with the same txn
    assert journal.plan_chunk("t1", A, FP, "b2b", "RETSAVE", "c" * 64, 10, pairs) == ChunkState.SENT
    (row,) = journal.chunks(states=[ChunkState.SENT])
    assert (row.txn, row.gstin, row.count, row.attempts, row.error) == ("t1", A, 2, 1, "NetworkTimeout")
    assert row.updated_at is not None and row.updated_at.tzinfo is not None
    journal.mark_sent("t1")
    journal.mark_saved("t1", "REF")
    assert journal.chunks()[0].attempts == 2 and states(journal) == {r[3]: "saved" for r in records}


def test_a_refused_chunk_rejects_its_invoices_and_retry_resets_them(journal: FilingJournal) -> None:
    run = journal.begin_run({})
    records = [rec(A, 1), rec(A, 2)]
    journal.classify(run, "in", records)
    journal.plan_chunk("t1", A, FP, "b2b", "RETSAVE", "c" * 64, 10, [(r[3], r[4]) for r in records])
    journal.mark_sent("t1")
    journal.mark_failed("t1", "RET191106", "invalid return period")
    assert {r.error_code for r in journal.invoices()} == {"RET191106"}
    assert journal.counts() == {"invoices": {"rejected": 2}, "chunks": {"failed": 1}}
    assert journal.reset_for_retry(gstin=B) == 0  # another GSTIN: nothing
    assert journal.reset_for_retry(gstin=A) == 2
    assert journal.counts() == {"invoices": {"pending": 2}, "chunks": {"planned": 1}}


def test_parking_and_counts_per_gstin(journal: FilingJournal) -> None:
    run = journal.begin_run({})
    journal.classify(run, "in", [rec(A, 1), rec(B, 2)])
    journal.plan_chunk("ta", A, FP, "b2b", "RETSAVE", "c" * 64, 10, [(rec(A, 1)[3], rec(A, 1)[4])])
    journal.plan_chunk("tb", B, FP, "b2b", "RETSAVE", "c" * 64, 10, [(rec(B, 2)[3], rec(B, 2)[4])])
    journal.park(B, "needs-otp: no session")
    assert journal.parked() == {B: "needs-otp: no session"}
    assert [c.txn for c in journal.chunks(states=[ChunkState.PARKED])] == ["tb"]
    assert journal.counts(gstin=A) == {"invoices": {"pending": 1}, "chunks": {"planned": 1}}
    journal.park(B, "revoked")
    assert journal.parked() == {B: "revoked"}
    journal.unpark(B)
    assert journal.parked() == {}
    journal.park(B, "again")
    journal.reset_for_retry(rejected=False)
    assert journal.parked() == {} and {c.state for c in journal.chunks()} == {ChunkState.PLANNED}


def test_invoices_are_read_in_pages_with_filters(journal: FilingJournal) -> None:
    run = journal.begin_run({})
    many = [rec(A, n) for n in range(12_001)]
    journal.classify(run, "in", many)
    journal.classify(run, "in", [rec(B, 1)])
    rows = list(journal.invoices(gstin=A))
    assert len(rows) == 12_001 and len({r.ident for r in rows}) == 12_001
    assert [r.ident for r in rows] == sorted(r.ident for r in rows)
    assert [r.gstin for r in journal.invoices(gstin=B, fp=FP)] == [B]
    assert list(journal.invoices(fp="082017")) == []
    assert sum(1 for _ in journal.invoices(states=[InvoiceState.PENDING])) == 12_002


# -- claims: one filer per GSTIN, across processes ---------------------------------------------------


_HOLDER = """
import sys, time
from gspauth.journal import open_journal
j = open_journal(sys.argv[1])
assert j.claim(sys.argv[2])
print("claimed", flush=True)
time.sleep(60)
"""


def test_a_claim_excludes_other_processes_until_it_is_released_or_its_holder_dies(spec: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, spec, A], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "claimed"
        j = open_journal(spec)
        try:
            assert not j.claim(A)  # held by the other process
            assert j.claim(B)      # another GSTIN is free
            assert j.claim(B)      # re-entrant for its holder
            holder.send_signal(signal.SIGKILL)  # the holder dies without releasing
            holder.wait(10)
            deadline = time.monotonic() + 10
            while not j.claim(A):
                assert time.monotonic() < deadline, "a dead holder's claim was never freed"
                time.sleep(0.1)
            j.release(A)
            j.release(B)
        finally:
            j.close()
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
