from __future__ import annotations

import base64
import dataclasses
import datetime as dt

import pytest

from gspauth.session import DEFAULT_MARGIN, Session, SessionKey

NOW = dt.datetime(2025, 7, 1, 9, 0, tzinfo=dt.timezone.utc)


def test_key_normalises_and_id_round_trips() -> None:
    k = SessionKey(" ClearTax ", "SANDBOX", "27aaaaa0000a1z5", "acme/mh:1")
    assert (k.gsp, k.environment, k.gstin, k.username) == ("cleartax", "sandbox", "27AAAAA0000A1Z5", "acme/mh:1")
    assert k.id == "cleartax/sandbox/27AAAAA0000A1Z5/acme%2Fmh%3A1"
    assert SessionKey.from_id(k.id) == k
    assert len(k.digest) == 32 and k.digest == SessionKey.from_id(k.id).digest
    assert SessionKey("cleartax", "sandbox", "27AAAAA0000A1Z5", "a").digest != k.digest


def test_key_accepts_enum_environment() -> None:
    import enum

    class Env(str, enum.Enum):
        SANDBOX = "sandbox"

    assert SessionKey("vayana", Env.SANDBOX, "27AAAAA0000A1Z5", "u").environment == "sandbox"


@pytest.mark.parametrize("field", ["gsp", "gstin", "username"])
def test_key_rejects_empty_parts(field: str) -> None:
    parts = {"gsp": "cleartax", "environment": "sandbox", "gstin": "27AAAAA0000A1Z5", "username": "u"}
    parts[field] = " "
    with pytest.raises(ValueError, match=field):
        SessionKey(**parts)


def test_repr_and_str_hide_secrets(key: SessionKey, session: Session) -> None:
    for text in (repr(session), str(session), f"{session}", repr([session])):
        assert session.auth_token not in text
        assert "[secure]" in text
        for secret in (session.app_key, session.sek):
            assert repr(secret) not in text
            assert secret.hex() not in text
            assert base64.b64encode(secret).decode() not in text
    assert key.id in repr(session)


def test_times_must_be_aware(key: SessionKey) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Session.new(key, auth_token="t", app_key=b"a" * 32, sek=b"s" * 32, expiry_minutes=360, now=dt.datetime(2025, 1, 1))


def test_keys_must_be_32_raw_bytes(key: SessionKey) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Session.new(key, auth_token="t", app_key=b"a" * 16, sek=b"s" * 32, expiry_minutes=1, now=NOW)
    with pytest.raises(TypeError, match="bytes"):
        Session.new(key, auth_token="t", app_key="a" * 32, sek=b"s" * 32, expiry_minutes=1, now=NOW)  # type: ignore[arg-type]


def test_lifetime_margin_and_observed_expiry(key: SessionKey) -> None:
    s = Session.new(key, auth_token="t", app_key=b"a" * 32, sek=b"s" * 32, expiry_minutes=360, now=NOW)
    assert s.expires_at == NOW + dt.timedelta(hours=6) == s.effective_expires_at
    assert DEFAULT_MARGIN == dt.timedelta(minutes=15)
    assert s.usable(NOW + dt.timedelta(hours=5, minutes=44))
    assert not s.usable(NOW + dt.timedelta(hours=5, minutes=45))
    assert s.needs_refresh(NOW + dt.timedelta(hours=5, minutes=45))
    assert s.usable(NOW + dt.timedelta(hours=5, minutes=55), margin=dt.timedelta(minutes=1))
    assert s.usable(NOW + dt.timedelta(hours=5, minutes=55), margin=60)  # seconds
    assert not s.expired(NOW + dt.timedelta(hours=5, minutes=59)) and s.expired(NOW + dt.timedelta(hours=6))
    # the token died after 2 h although 6 h were stated: learn it
    o = s.with_observed_lifetime(120)
    assert o.effective_expires_at == NOW + dt.timedelta(hours=2)
    assert o.needs_refresh(NOW + dt.timedelta(hours=1, minutes=46))
    assert o.with_observed_lifetime(300).observed_lifetime_minutes == 120  # keeps the shortest
    assert s.with_observed_lifetime(600).effective_expires_at == s.expires_at  # never later than stated
    assert o.remaining(NOW) == dt.timedelta(hours=2)


def test_refreshed_keeps_consent_and_counts(key: SessionKey) -> None:
    s = Session.new(key, auth_token="t1", app_key=b"a" * 32, sek=b"s" * 32, expiry_minutes=360, now=NOW, txn="X1")
    later = NOW + dt.timedelta(hours=5)
    r = s.refreshed(auth_token="t2", sek=b"S" * 32, expiry_minutes=360, now=later)
    assert (r.auth_token, r.sek, r.app_key) == ("t2", b"S" * 32, b"a" * 32)
    assert r.issued_at == later == r.refreshed_at and r.expires_at == later + dt.timedelta(hours=6)
    assert r.consent_at == NOW and r.txn_of_consent == "X1" and r.refresh_count == 1
    assert r.refreshed(auth_token="t3", sek=b"T" * 32, app_key=b"b" * 32, expiry_minutes=1, now=later).app_key == b"b" * 32
    assert not s.not_refreshable().refreshable
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.auth_token = "x"  # type: ignore[misc]
