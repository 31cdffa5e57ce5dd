"""The consent ledger suite, over SQLite and PostgreSQL (``ledgers`` in conftest.py)."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pluggy
import pytest

from gspauth import hookspecs
from gspauth.errors import LedgerTampered
from gspauth.ledger import Ledger, default_ledger_path
from gspauth.types import SessionEvent
from tests.store.conftest import LedgerFactory

T0 = dt.datetime(2025, 7, 1, 9, 0, tzinfo=dt.timezone.utc)


def ev(kind: str, gstin: str = "27AAAAA0000A1Z5", gsp: str = "cleartax", minutes: int = 0, **kw: object) -> SessionEvent:
    return SessionEvent(
        kind=kind, gsp=gsp, environment="sandbox", gstin=gstin, username="acme", at=T0 + dt.timedelta(minutes=minutes),
        txn=f"T{minutes}", ip_usr="203.0.113.7", **kw,  # type: ignore[arg-type]
    )


def test_record_and_query(ledgers: LedgerFactory) -> None:
    ledger = ledgers()
    ledger.record(ev("otp-requested", minutes=0))
    ledger.record(ev("consent", minutes=1, expires_at=T0 + dt.timedelta(hours=6)))
    ledger.record(ev("refreshed", minutes=300))
    ledger.record(ev("consent", gstin="29AAAAA0000A1Z3", gsp="vayana", minutes=2))
    ledger.record(ev("ended", minutes=400, outcome="ok", detail="logout"))
    assert [e.kind for e in ledger.query()] == ["otp-requested", "consent", "refreshed", "consent", "ended"]
    assert [e.kind for e in ledger.query(gstin="27aaaaa0000a1z5")] == ["otp-requested", "consent", "refreshed", "ended"]
    assert [e.gsp for e in ledger.query(kind="consent")] == ["cleartax", "vayana"]
    assert [e.kind for e in ledger.query(gsp="vayana")] == ["consent"]
    assert [e.kind for e in ledger.query(since=T0 + dt.timedelta(minutes=100))] == ["refreshed", "ended"]
    assert [e.kind for e in ledger.query(limit=2)] == ["consent", "ended"]
    first_consent = ledger.query(kind="consent", gsp="cleartax")[0]
    assert first_consent == ev("consent", minutes=1, expires_at=T0 + dt.timedelta(hours=6))
    assert ledger.count(kind="consent") == 2
    assert ledger.verify() == 5


def test_persists_and_default_path(gspauth_home: Path) -> None:
    Ledger().record(ev("consent"))
    assert default_ledger_path() == gspauth_home / "ledger.db"
    assert len(Ledger().query()) == 1
    assert stat.S_IMODE(default_ledger_path().stat().st_mode) == 0o600


@pytest.mark.parametrize("sql", ["UPDATE events SET outcome = 'AUTH4034'", "DELETE FROM events",
                                 "DELETE FROM events WHERE seq = 1"])
def test_append_only_is_enforced_by_the_database(ledgers: LedgerFactory, sql: str) -> None:
    ledgers().record(ev("consent"))
    with pytest.raises(Exception, match="append-only"):
        ledgers.execute(sql)
    assert [e.outcome for e in ledgers().query()] == ["ok"]


def test_hash_chain_detects_out_of_band_edits(ledgers: LedgerFactory) -> None:
    ledger = ledgers()
    for i in range(3):
        ledger.record(ev("refreshed", minutes=i))
    assert ledger.verify() == 3
    # someone with the database drops the guard and rewrites history
    if ledgers.backend == "sqlite":
        ledgers.execute("DROP TRIGGER events_no_update")
    else:
        ledgers.execute("ALTER TABLE events DISABLE TRIGGER USER")
    ledgers.execute("UPDATE events SET gstin = '29AAAAA0000A1Z3' WHERE seq = 2")
    with pytest.raises(LedgerTampered, match="row 2"):
        ledgers().verify()


def test_token_like_text_never_lands_in_the_ledger(ledgers: LedgerFactory) -> None:
    token = "46c8db2decd24f438c2a3f5df29bae50"
    ledgers().record(ev("failed", outcome="AUTH4033", detail=f"rejected token {token}"))
    assert ledgers().query()[0].detail == "rejected token [secure]"
    if ledgers.backend == "sqlite":
        blob = b"".join(p.read_bytes() for p in Path(ledgers.spec).parent.glob("ledger.db*"))
        assert b"rejected token" in blob and token.encode() not in blob


def test_observer_feeds_the_ledger_through_the_hook(tmp_path: Path) -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    ledger = Ledger(tmp_path / "l.db")
    ledger.register(pm)
    pm.hook.gspauth_on_session_event(event=ev("consent"))
    pm.hook.gspauth_on_session_event(event=ev("ended", minutes=5))
    assert [e.kind for e in ledger.query()] == ["consent", "ended"]


def test_appends_from_many_threads_and_objects_keep_one_chain(ledgers: LedgerFactory) -> None:
    import threading

    writers = [ledgers() for _ in range(3)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(10):
                writers[i % 3].record(ev("refreshed", minutes=i * 100 + j))
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert ledgers().verify() == 60 and ledgers().count(kind="refreshed") == 60
