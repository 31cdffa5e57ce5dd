"""The filing pipeline against the emulator server on loopback: exactly once, resumable,
differential, per-invoice verdicts, faults, parking."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gspauth.filer import FilerOptions
from gspauth.journal import ChunkState, open_journal
from gspauth.journal.sqlite import SQLiteJournal
from tests.filer.support import PERIOD, World, assert_exactly_once, world  # noqa: F401


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_files_every_invoice_once_and_a_rerun_sends_nothing(world: World, backend: str,
                                                            request: pytest.FixtureRequest) -> None:
    journal = "journal.db" if backend == "sqlite" else str(request.getfixturevalue("postgres_url"))
    a, b = world.taxpayers(2)
    path, lines = world.write_jsonl("in.jsonl", {a: 300, b: 250})
    report = world.file([path], journal=journal, options=FilerOptions(max_chunk_bytes=150_000, status_poll=0.05))
    assert report.outcome == "complete", report.text()
    assert report.totals["accepted"] == 550 and report.totals["chunks_planned"] >= 6
    assert_exactly_once(world, lines)
    saves = world.emu.stats["actions"]["RETSAVE"]
    again = world.file([path], journal=journal)
    assert again.outcome == "complete" and again.unchanged == 550 and again.totals["planned"] == 0
    assert world.emu.stats["actions"]["RETSAVE"] == saves  # nothing sent twice
    j = open_journal(journal if backend == "postgres" else world.tmp / journal)
    try:
        assert j.counts()["invoices"] == {"accepted": 550}
    finally:
        j.close()


def test_a_corrected_input_re_sends_only_the_changed_invoices(world: World) -> None:
    (a,) = world.taxpayers(1)
    path, lines = world.write_jsonl("in.jsonl", {a: 200})
    assert world.file([path]).outcome == "complete"
    changed = []
    for n in (5, 77, 150):
        inv = json.loads(lines[n])
        inv["rchrg"] = "Y" if inv["rchrg"] == "N" else "N"
        lines[n] = (json.dumps(inv, separators=(",", ":")) + "\n").encode()
        changed.append((inv["ctin"], inv["inum"]))
    path.write_bytes(b"".join(lines))
    saves = world.emu.stats["actions"]["RETSAVE"]
    report = world.file([path])
    assert report.outcome == "complete" and report.unchanged == 197 and report.totals["planned"] == 3
    assert world.emu.stats["actions"]["RETSAVE"] == saves + 1  # one chunk holding the three
    assert_exactly_once(world, lines)
    stored = world.stored(a)
    assert all(stored[k]["rchrg"] == json.loads(lines[n])["rchrg"] for k, n in zip(changed, (5, 77, 150)))


def test_invalid_and_duplicate_records_are_reported_and_the_rest_filed(world: World) -> None:
    (a,) = world.taxpayers(1)
    path, lines = world.write_jsonl("in.jsonl", {a: 40})
    bad = json.loads(lines[3])
    bad["itms"][0]["itm_det"]["rt"] = 17  # not a GST rate
    dup = lines[10]
    broken = b'{"gstin": "' + a.encode() + b'", "fp": "072017", "section": "b2b", "ctin": \n'
    path.write_bytes(b"".join([*lines[:3], (json.dumps(bad) + "\n").encode(), *lines[4:], dup, broken]))
    report = world.file([path])
    assert report.outcome == "rejected"
    codes = {e["code"]: e["line"] for e in report.record_errors}
    assert codes == {"rate": 4, "duplicate": 41, "json": 42}
    assert report.totals["accepted"] == 39
    assert len(world.stored(a)) == 39


@pytest.mark.parametrize("world", [{"retstatus_delay_seconds": 1}], indirect=True)
def test_gstn_per_invoice_rejections_reach_the_journal_and_the_report(world: World) -> None:
    (a,) = world.taxpayers(1)
    path, lines = world.write_jsonl("in.jsonl", {a: 30})
    victims = {json.loads(lines[n])["ctin"] for n in (2, 9)}
    for ctin in victims:
        world.emu.set_gstin_status(ctin, "cancelled")
    report = world.file([path])
    rejected = {r["ident"].split("|")[0] for r in report.rejected}
    n_victim = sum(1 for line in lines if json.loads(line)["ctin"] in victims)
    assert report.outcome == "rejected" and rejected == victims
    assert report.totals["rejected"] == n_victim and report.totals["accepted"] == 30 - n_victim
    assert all(r["error_code"] == "RET191113" for r in report.rejected)
    with SQLiteJournal(world.tmp / "journal.db") as j:
        rows = list(j.invoices(states=["rejected"]))
        assert len(rows) == n_victim and all(r.error_code == "RET191113" for r in rows)
    # a re-run leaves them alone (same content, still rejected) until retried
    again = world.file([path])
    assert again.still_rejected == n_victim and again.totals["planned"] == 0


@pytest.mark.parametrize("world", [{"faults": {"error_5xx_rate": 0.15, "rate_429": 0.1, "drop_rate": 0.1,
                                               "drop_after_rate": 0.15, "retry_after_seconds": 1,
                                               "actions": ("RETSAVE", "RETSTATUS")}}], indirect=True)
def test_faults_at_10_to_30_percent_lose_and_duplicate_nothing(world: World) -> None:
    a, b, c = world.taxpayers(3)
    path, lines = world.write_jsonl("in.jsonl", {a: 120, b: 120, c: 120})
    options = FilerOptions(max_chunk_bytes=60_000, status_poll=0.05, backoff=0.05, backoff_cap=0.2, attempts=8,
                           breaker_threshold=50)
    for _ in range(5):  # a chunk with no answer after its attempts is in doubt: the next run settles it
        report = world.file([path], options=options)
        if report.outcome == "complete":
            break
    assert report.outcome == "complete", report.text()
    faults = world.emu.stats["faults"]
    assert faults.get("drop_after", 0) > 0 and faults.get("429", 0) > 0 and faults.get("503", 0) > 0, faults
    assert world.emu.stats["events"].get("retsave_replayed", 0) > 0  # the same txn was answered from memory
    assert_exactly_once(world, lines)


def test_a_gstin_without_consent_is_parked_and_the_others_filed(world: World) -> None:
    a, b = world.taxpayers(2)
    path, _ = world.write_jsonl("in.jsonl", {a: 50, b: 50})
    world.emu.set_api_access(b, False)  # b's OTP consent cannot work
    report = world.file([path], otp=False)
    assert report.outcome == "parked" and set(report.parked) == {a, b}
    assert "gspauth login" in report.parked[a]["command"] and report.totals["saved"] == 0
    report = world.file([path], otp=True)  # a's OTP arrives now (the emulator outbox); b still cannot
    assert a not in report.parked and b in report.parked
    assert len(world.stored(a)) == 50 and world.stored(b) == {}
    with SQLiteJournal(world.tmp / "journal.db") as j:
        assert set(j.parked()) == {b}


def test_dry_run_sends_and_records_nothing(world: World) -> None:
    (a,) = world.taxpayers(1)
    path, _ = world.write_jsonl("in.jsonl", {a: 20})
    report = world.file([path], options=FilerOptions(dry_run=True))
    assert report.outcome == "dry-run" and report.totals["chunks_planned"] == 1 and report.totals["sent"] == 0
    assert world.emu.stats["actions"].get("RETSAVE", 0) == 0
    with SQLiteJournal(world.tmp / "journal.db") as j:
        assert j.counts() == {"invoices": {}, "chunks": {}}


def test_a_chunk_gstn_refuses_whole_rejects_its_invoices(world: World, monkeypatch: Any) -> None:
    (a,) = world.taxpayers(1)
    path, _ = world.write_jsonl("in.jsonl", {a: 20})
    world.emu.update_config(max_request_body_bytes=1000)  # every body is "too large" (GEN5413)
    report = world.file([path])
    assert report.outcome == "rejected" and report.totals["rejected"] == 20
    assert {r["error_code"] for r in report.rejected} == {"GEN5413"}



def test_a_gstin_another_filer_holds_is_left_to_it(world: World) -> None:
    a, b = world.taxpayers(2)
    path, lines = world.write_jsonl("in.jsonl", {a: 40, b: 40})
    other = SQLiteJournal(world.tmp / "journal.db")  # another filer, mid-run on GSTIN a
    try:
        run = other.begin_run({})
        other.classify(run, "elsewhere", [(a, PERIOD, "b2b", "X/1", "0" * 64, 1)])
        other.plan_chunk("other-txn", a, PERIOD, "b2b", "RETSAVE", "0" * 64, 10, [("X/1", "0" * 64)])
        assert other.claim(a)
        report = world.file([path])
        assert set(report.parked) == {a} and report.parked[a]["reason"].startswith("busy")
        assert "other filer is done" in report.parked[a]["command"]  # not an OTP: nothing to log in
        assert len(world.stored(b)) == 40 and world.stored(a) == {}
        # the other filer's record is untouched: its chunk still planned, its GSTIN not parked
        assert [(c.txn, c.state) for c in other.chunks(gstin=a)] == [("other-txn", ChunkState.PLANNED)]
        assert a not in other.parked()
        assert [(r.ident, r.source) for r in other.invoices(gstin=a)] == [("X/1", "elsewhere")]  # not classified
    finally:
        other.close()  # the other filer is done: the next run files a
    again = world.file([path])
    assert again.outcome == "complete", again.text()
    assert_exactly_once(world, lines)
