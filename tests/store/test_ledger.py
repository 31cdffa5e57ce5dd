from __future__ import annotations

import datetime as dt
import sqlite3
import stat
from pathlib import Path

import pluggy
import pytest

from gspauth import hookspecs
from gspauth.errors import LedgerTampered
from gspauth.ledger import Ledger, default_ledger_path
from gspauth.types import SessionEvent

T0 = dt.datetime(2025, 7, 1, 9, 0, tzinfo=dt.timezone.utc)


def ev(kind: str, gstin: str = "27AAAAA0000A1Z5", gsp: str = "cleartax", minutes: int = 0, **kw: object) -> SessionEvent:
    return SessionEvent(
        kind=kind, gsp=gsp, environment="sandbox", gstin=gstin, username="acme", at=T0 + dt.timedelta(minutes=minutes),
        txn=f"T{minutes}", ip_usr="203.0.113.7", **kw,  # type: ignore[arg-type]
    )


def test_record_and_query(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.db")
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


@pytest.mark.parametrize("sql", ["UPDATE events SET outcome = 'AUTH4034'", "DELETE FROM events", "DELETE FROM events WHERE seq = 1"])
def test_append_only_is_enforced_by_the_database(tmp_path: Path, sql: str) -> None:
    path = tmp_path / "l.db"
    Ledger(path).record(ev("consent"))
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute(sql)
    conn.close()
    assert [e.outcome for e in Ledger(path).query()] == ["ok"]


def test_hash_chain_detects_out_of_band_edits(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = Ledger(path)
    for i in range(3):
        ledger.record(ev("refreshed", minutes=i))
    ledger.close()
    conn = sqlite3.connect(path)
    with conn:  # someone with the file drops the guard and rewrites history
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("UPDATE events SET gstin = '29AAAAA0000A1Z3' WHERE seq = 2")
    conn.close()
    with pytest.raises(LedgerTampered, match="row 2"):
        Ledger(path).verify()


def test_token_like_text_never_lands_in_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    token = "46c8db2decd24f438c2a3f5df29bae50"
    Ledger(path).record(ev("failed", outcome="AUTH4033", detail=f"rejected token {token}"))
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("l.db*"))
    assert b"rejected token" in blob and token.encode() not in blob
    assert Ledger(path).query()[0].detail == "rejected token [secure]"


def test_observer_feeds_the_ledger_through_the_hook(tmp_path: Path) -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    ledger = Ledger(tmp_path / "l.db")
    ledger.register(pm)
    pm.hook.gspauth_on_session_event(event=ev("consent"))
    pm.hook.gspauth_on_session_event(event=ev("ended", minutes=5))
    assert [e.kind for e in ledger.query()] == ["consent", "ended"]
