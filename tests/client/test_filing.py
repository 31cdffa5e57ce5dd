"""The resumable batch filer: crash half-way, resume, nothing duplicated or lost."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

from gspauth import synthetic
from gspauth.emulator import defaults
from gspauth.errors import IntegrityError, JournalBusy, SessionInvalid
from gspauth.filing import BatchFiler, ChunkResult, chunk_content, chunk_key
from gspauth.otp import FileOtp
from gspauth.protocol import encode_payload
from gspauth.store import MemoryStore, SQLiteStore
from tests.client.client_support import Env, filing_worker

PERIOD = "072017"


class Crash(Exception):
    pass


def chunks_for(gstin: str, n_chunks: int, seed: int = 11) -> list[dict[str, Any]]:
    return synthetic.gstr1_chunks(n_chunks * 2, seed=seed, supplier_gstin=gstin, ret_period=PERIOD,
                                  invoices_per_chunk=2)


def test_chunk_key_is_deterministic() -> None:
    gstin = defaults.sample_taxpayer(0).gstin
    a, b = chunks_for(gstin, 2)
    ka = chunk_key(gstin, PERIOD, encode_payload(a))
    assert ka == chunk_key(gstin, PERIOD, encode_payload(dict(a)))
    assert ka != chunk_key(gstin, PERIOD, encode_payload(b))
    assert ka != chunk_key(gstin, "082017", encode_payload(a))


def test_resume_after_crash_in_progress_callback(env: Env, tmp_path: Path) -> None:
    client = env.client("cleartax")
    env.login(client)
    chunks = chunks_for(client.gstin, 6)
    journal = tmp_path / "gstr1.journal"
    seen: list[ChunkResult] = []

    def progress(result: ChunkResult) -> None:
        seen.append(result)
        if len(seen) == 3:
            raise Crash("simulated crash after three chunks")

    with BatchFiler(client, journal, progress=progress) as filer, pytest.raises(Crash):
        filer.file(chunks)
    assert [r.state for r in seen] == ["acked"] * 3

    resumed: list[ChunkResult] = []
    with BatchFiler(client, journal, progress=resumed.append) as filer:
        summary = filer.file(chunks)
        rows = filer.journal_rows()
    assert summary.skipped == 3 and summary.acked == 3 and summary.complete
    assert [r.state for r in resumed] == ["skipped"] * 3 + ["acked"] * 3
    assert [r.done for r in resumed] == [1, 2, 3, 4, 5, 6]
    assert len(rows) == 6 and {r["state"] for r in rows} == {"acked"}
    refs = [r["reference_id"] for r in rows]
    assert len(set(refs)) == 6 and set(summary.reference_ids.values()) == set(refs)
    assert env.events()["retsave_stored"] == 6 and "retsave_replayed" not in env.events()
    # every invoice arrived exactly once
    stored = env.emu.saved_records(client.gstin, PERIOD, "b2b")
    assert len(stored) == 12


def test_in_doubt_chunk_resent_with_same_txn(env: Env, tmp_path: Path) -> None:
    """Crash after GSTN stored a chunk but before the journal recorded the ack."""
    client = env.client("vayana")
    env.login(client)
    chunks = chunks_for(client.gstin, 4)
    first_refs: list[str] = []

    class CrashAfterSecondSend:
        gstin = client.gstin

        def ensure_session(self) -> Any:
            return client.ensure_session()

        def put(self, *args: Any, **kwargs: Any) -> Any:
            reply = client.put(*args, **kwargs)
            first_refs.append(reply["reference_id"])
            if len(first_refs) == 2:
                raise Crash("process died before writing the ack")
            return reply

    journal = tmp_path / "j.sqlite"
    with BatchFiler(CrashAfterSecondSend(), journal) as filer, pytest.raises(Crash):
        filer.file(chunks)
    with BatchFiler(client, journal) as filer:
        states = {r["seq"]: r["state"] for r in filer.journal_rows()}
        assert states == {0: "acked", 1: "sent"}
        summary = filer.file(chunks)
        rows = filer.journal_rows()
    assert summary.skipped == 1 and summary.acked == 3
    # the in-doubt chunk got its original reference back: GSTN recognised the txn
    assert rows[1]["reference_id"] == first_refs[1]
    assert len({r["reference_id"] for r in rows}) == 4
    assert env.events()["retsave_stored"] == 4 and env.events()["retsave_replayed"] == 1
    assert len(env.emu.saved_records(client.gstin, PERIOD, "b2b")) == 8


def test_killed_process_resumes(env: Env, tmp_path: Path) -> None:
    """A real crash: a child process dies with os._exit half-way; the parent resumes."""
    store_path = str(tmp_path / "s.db")
    key = os.urandom(32)
    client = env.client("cleartax", store=SQLiteStore(store_path, key=key))
    env.login(client)
    chunks = chunks_for(client.gstin, 5, seed=21)
    journal = str(tmp_path / "killed.journal")
    offset = (env.now() - dt.datetime.now(dt.timezone.utc)).total_seconds()
    args = (env.url, env.certificate, store_path, key, offset, client.gstin, client.username)
    proc = multiprocessing.get_context("spawn").Process(target=filing_worker, args=(args, journal, chunks, 2))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 17
    assert env.events()["retsave_stored"] == 2
    with BatchFiler(client, journal) as filer:
        summary = filer.file(chunks)
    assert (summary.skipped, summary.acked) == (2, 3) and summary.complete
    assert env.events()["retsave_stored"] == 5
    assert len(set(summary.reference_ids.values())) == 5


def test_gstin_needing_otp_is_parked(env: Env, tmp_path: Path) -> None:
    tp_a, tp_b = defaults.sample_taxpayer(0), defaults.sample_taxpayer(1)
    clients = {tp.gstin: env.client("cleartax", taxpayer=tp, store=MemoryStore()) for tp in (tp_a, tp_b)}
    env.login(clients[tp_a.gstin])  # B never consented
    a_chunks, b_chunks = chunks_for(tp_a.gstin, 3), chunks_for(tp_b.gstin, 3)
    mixed = [c for pair in zip(a_chunks, b_chunks) for c in pair]
    journal = tmp_path / "multi.journal"
    with BatchFiler(clients.__getitem__, journal) as filer:
        summary = filer.file(mixed)
        assert filer.parked() == {tp_b.gstin: "no-session"}
        b_states = {r["state"] for r in filer.journal_rows() if r["gstin"] == tp_b.gstin}
    assert summary.acked == 3 and summary.parked == 3 and not summary.complete
    assert summary.needs_otp == {tp_b.gstin: "no-session"}
    assert b_states == {"needs-otp"}
    assert tp_b.gstin in str(summary)
    # B's only attempt raised OtpRequired before anything was sent; the other B chunks were not tried
    assert env.actions().get("RETSAVE", 0) == 3

    env.login(clients[tp_b.gstin])
    with BatchFiler(clients.__getitem__, journal) as filer:
        summary = filer.file(mixed)
        assert filer.parked() == {}
    assert summary.skipped == 3 and summary.acked == 3 and summary.complete
    assert len(env.emu.saved_records(tp_b.gstin, PERIOD, "b2b")) == 6


def test_permanent_rejection_is_failed_not_retried(env: Env, tmp_path: Path) -> None:
    client = env.client("cleartax")
    env.login(client)
    bad = chunks_for(client.gstin, 1)[0] | {"fp": "082017"}  # payload period ≠ ret_period header
    good = chunks_for(client.gstin, 1, seed=5)[0]
    with BatchFiler(client, tmp_path / "f.journal") as filer:
        summary = filer.file([bad, good], ret_period=PERIOD)
        again = filer.file([bad, good], ret_period=PERIOD)
    assert summary.failed == 1 and summary.acked == 1
    assert list(summary.errors.values()) == ["AUTH4039"]
    assert again.failed == 1 and again.skipped == 1
    assert env.actions()["RETSAVE"] == 2  # the failed chunk was not re-sent


def test_client_bound_to_other_gstin(env: Env, tmp_path: Path) -> None:
    client = env.client("cleartax")
    other = chunks_for(defaults.sample_taxpayer(2).gstin, 1)
    with BatchFiler(client, tmp_path / "x.journal") as filer:
        summary = filer.file(other)
    assert summary.failed == 1 and env.actions().get("RETSAVE", 0) == 0
    assert "no client" in filer_rows_error(tmp_path / "x.journal")


def filer_rows_error(journal: Path) -> str:
    with BatchFiler(lambda gstin: None, journal) as filer:
        return str(filer.journal_rows()[0]["error"])


def test_same_chunk_rebuilt_in_another_order_keeps_its_key() -> None:
    """A chunk rebuilt after a restart (say, from a database, keys in another order) keeps its txn."""
    gstin = defaults.sample_taxpayer(0).gstin
    a = chunks_for(gstin, 1)[0]
    shuffled = dict(reversed(list(a.items())))
    assert encode_payload(a) != encode_payload(shuffled)
    assert chunk_content(a) == chunk_content(shuffled)
    key = chunk_key(gstin, PERIOD, chunk_content(a))
    assert key == chunk_key(gstin, PERIOD, chunk_content(shuffled))
    assert key != chunk_key(gstin, PERIOD, chunk_content(a | {"fp": "082017"}))


def test_second_filer_on_the_same_journal_is_refused(env: Env, tmp_path: Path) -> None:
    client = env.client("cleartax")
    env.login(client)
    journal = tmp_path / "shared.journal"
    refused: list[BaseException] = []

    def progress(result: ChunkResult) -> None:
        if not refused:  # a second worker starts on the same journal while the first is filing
            with BatchFiler(client, journal) as other:
                with pytest.raises(JournalBusy) as info:
                    other.file(chunks_for(client.gstin, 2))
                refused.append(info.value)

    with BatchFiler(client, journal, progress=progress) as filer:
        summary = filer.file(chunks_for(client.gstin, 2))
    assert summary.acked == 2 and refused and "in use by another filer" in str(refused[0])
    assert env.actions()["RETSAVE"] == 2
    with BatchFiler(client, journal) as filer:  # released when the first run ended
        assert filer.file(chunks_for(client.gstin, 2)).skipped == 2
    assert oct(journal.stat().st_mode & 0o777) == "0o600"


def test_gstin_waiting_for_its_otp_does_not_block_the_others(env: Env, tmp_path: Path) -> None:
    """With workers, B waits for its OTP file while A files; B resumes in the same run when it arrives."""
    tp_a, tp_b = defaults.sample_taxpayer(0), defaults.sample_taxpayer(1)
    otp_dir = tmp_path / "otp"
    clients = {
        tp_a.gstin: env.client("cleartax", taxpayer=tp_a),
        tp_b.gstin: env.client("cleartax", taxpayer=tp_b, otp_provider=FileOtp(otp_dir, wait=30, poll=0.02)),
    }
    env.login(clients[tp_a.gstin])
    a_chunks, b_chunks = chunks_for(tp_a.gstin, 4), chunks_for(tp_b.gstin, 3)
    mixed = [b_chunks[0], *a_chunks, *b_chunks[1:]]
    order: list[str] = []

    def progress(result: ChunkResult) -> None:
        order.append(result.gstin)
        if order == [tp_a.gstin] * 4:  # all of A filed while B waited: now the OTP arrives
            otp_file, needed = FileOtp(otp_dir).paths(tp_b.gstin)
            assert needed.exists()
            tmp = otp_file.with_suffix(".tmp")
            tmp.touch(mode=0o600)
            tmp.write_text(env.latest_otp(tp_b.gstin))
            tmp.rename(otp_file)

    started = time.monotonic()
    with BatchFiler(clients.__getitem__, tmp_path / "w.journal", workers=2, progress=progress) as filer:
        summary = filer.file(mixed)
    assert summary.acked == 7 and summary.complete, summary.report()
    assert order == [tp_a.gstin] * 4 + [tp_b.gstin] * 3
    assert time.monotonic() - started < 25  # B resumed on the OTP, not on the 30 s timeout
    assert env.actions()["AUTHTOKEN"] == 2 and env.events()["retsave_stored"] == 7


def test_summary_report_is_actionable(env: Env, tmp_path: Path) -> None:
    tp_a, tp_b = defaults.sample_taxpayer(0), defaults.sample_taxpayer(1)
    clients = {tp.gstin: env.client("cleartax", taxpayer=tp) for tp in (tp_a, tp_b)}
    env.login(clients[tp_a.gstin])
    bad = chunks_for(tp_a.gstin, 1)[0] | {"fp": "082017"}
    with BatchFiler(clients.__getitem__, tmp_path / "r.journal", workers=3) as filer:
        summary = filer.file([bad, *chunks_for(tp_b.gstin, 2)], ret_period=PERIOD)
    text = summary.report()
    assert summary.failed == 1 and summary.parked == 2
    assert f"1 failed (AUTH4039): {tp_a.gstin} #0" in text and "hint:" in text
    assert f"2 needs OTP (no-session): {tp_b.gstin} #0, {tp_b.gstin} #1" in text
    assert f"gspauth login --gstin {tp_b.gstin}" in text
    assert {f.state for f in summary.failures} == {"failed", "needs-otp"}


def test_session_lock_timeout_on_one_gstin_does_not_stop_the_batch(env: Env, tmp_path: Path) -> None:
    """Another process holding B's session lock (e.g. waiting for B's OTP) must leave B's chunks
    in doubt, not abort the filing of every other GSTIN."""
    import threading

    tp_a, tp_b = defaults.sample_taxpayer(0), defaults.sample_taxpayer(1)
    store_b = MemoryStore()
    clients = {
        tp_a.gstin: env.client("cleartax", taxpayer=tp_a),
        tp_b.gstin: env.client("cleartax", taxpayer=tp_b, store=store_b, lock_timeout=0.2),
    }
    env.login(clients[tp_a.gstin])
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with store_b.lock(clients[tp_b.gstin].key, 10):
            holding.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert holding.wait(5)
        b_chunks, a_chunks = chunks_for(tp_b.gstin, 2), chunks_for(tp_a.gstin, 2)
        with BatchFiler(clients.__getitem__, tmp_path / "lt.journal") as filer:
            summary = filer.file([*b_chunks, *a_chunks])
            states = {r["gstin"]: r["state"] for r in filer.journal_rows()}
    finally:
        release.set()
        t.join(5)
    assert summary.acked == 2 and summary.in_doubt == 2, summary.report()
    assert states == {tp_a.gstin: "acked", tp_b.gstin: "sent"}
    assert "LockTimeout" in summary.report()


@pytest.mark.parametrize("error", [
    IntegrityError("hmac does not match the decrypted payload (tampered data or wrong key)", "hmac"),
    SessionInvalid("Invalid Session", error_code="AUTH4033", hint="log in again"),
], ids=["unverifiable-reply", "session-refused"])
def test_unreadable_reply_or_refused_session_leaves_the_chunk_in_doubt(
    env: Env, tmp_path: Path, error: Exception
) -> None:
    """Neither says GSTN rejected the chunk: it stays 'sent' (re-sent with its txn on the next run),
    and the other GSTINs are filed."""
    tp_a, tp_b = defaults.sample_taxpayer(0), defaults.sample_taxpayer(1)
    good = env.client("cleartax", taxpayer=tp_a)
    env.login(good)

    class Failing:
        def ensure_session(self) -> None:
            return None  # a session exists; the call itself fails

        def put(self, *args: Any, **kwargs: Any) -> Any:
            raise error

    clients: dict[str, Any] = {tp_a.gstin: good, tp_b.gstin: Failing()}
    with BatchFiler(clients.__getitem__, tmp_path / "doubt.journal") as filer:
        summary = filer.file([*chunks_for(tp_b.gstin, 1), *chunks_for(tp_a.gstin, 1)])
        states = {r["gstin"]: r["state"] for r in filer.journal_rows()}
    assert summary.acked == 1 and summary.in_doubt == 1 and summary.failed == 0, summary.report()
    assert states == {tp_a.gstin: "acked", tp_b.gstin: "sent"}
