"""Secrets at rest: AES-256-GCM under the store key, bound to their row's public columns.

Every persistent store (SQLite, PostgreSQL) seals a session's ``auth_token``, ``app_key`` and
``sek`` — and a pending OTP request's app key — with :class:`Sealer`. The additional
authenticated data is a kind tag plus the row's id and all of its non-secret columns, so a row
moved to another key, or edited (a later ``expires_at``), fails to open instead of being used.
A key-check value stored beside the rows tells a wrong key (:class:`StoreKeyMismatch`) apart
from a tampered row (:class:`StoreCorrupted`). Databases never see a clear secret.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import secrets
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gspauth.session import PendingOtp, Session

__all__ = ["PENDING_AAD", "SESSION_AAD", "Sealer", "iso", "pending_public", "session_public"]

_KEY_CHECK_AAD = b"gspauth/store/key-check/v1"
_KEY_CHECK_PLAIN = b"gspauth store key check"
SESSION_AAD = b"gspauth/store/session/v1\x00"
PENDING_AAD = b"gspauth/store/pending-otp/v1\x00"


def iso(value: _dt.datetime | None) -> str | None:
    """The one text form of a time in sealed rows' additional data: ISO-8601 in UTC."""
    return None if value is None else value.astimezone(_dt.timezone.utc).isoformat()


def session_public(session: Session) -> tuple[Any, ...]:
    """A session row's public values, in the order its additional authenticated data binds them
    (every store, whatever its column types, rebuilds exactly this tuple to open the row)."""
    k = session.key
    return (
        k.id, k.gsp, k.environment, k.gstin, k.username,
        iso(session.issued_at), session.expiry_minutes, iso(session.expires_at), iso(session.consent_at),
        session.refresh_count, int(session.refreshable), session.observed_lifetime_minutes,
        session.txn_of_consent, iso(session.refreshed_at), session.ip_usr,
    )  # fmt: skip


def pending_public(pending: PendingOtp) -> tuple[Any, ...]:
    """A pending OTP request's public values, in additional-data order."""
    k = pending.key
    return (k.id, k.gsp, k.environment, k.gstin, k.username, pending.txn, iso(pending.requested_at),
            iso(pending.expires_at), pending.requested_wall, pending.attempts_used)


class Sealer:
    """Seal and open secrets under one store key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    # -- the key check ---------------------------------------------------------------------

    def key_check(self) -> bytes:
        """A value only this key opens (stored once per store)."""
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, _KEY_CHECK_PLAIN, _KEY_CHECK_AAD)

    def opens_key_check(self, blob: bytes) -> bool:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], _KEY_CHECK_AAD) == _KEY_CHECK_PLAIN
        except (InvalidTag, ValueError):
            return False

    # -- rows ------------------------------------------------------------------------------

    @staticmethod
    def _aad(kind: bytes, public: Sequence[object]) -> bytes:
        return kind + json.dumps(list(public), separators=(",", ":"), ensure_ascii=True).encode("ascii")

    def seal(self, kind: bytes, public: Sequence[object], plain: bytes) -> tuple[bytes, bytes]:
        """``(nonce, sealed)`` for ``plain``, bound to ``kind`` and the row's ``public`` values."""
        nonce = secrets.token_bytes(12)
        return nonce, self._aead.encrypt(nonce, plain, self._aad(kind, public))

    def open(self, kind: bytes, public: Sequence[object], nonce: bytes, sealed: bytes) -> bytes:
        """The plain bytes; :class:`cryptography.exceptions.InvalidTag` if anything was changed."""
        return self._aead.decrypt(nonce, sealed, self._aad(kind, public))

    # -- what a session and a pending OTP hold ---------------------------------------------------

    @staticmethod
    def session_secrets(session: Session) -> bytes:
        return json.dumps({"t": session.auth_token, "a": base64.b64encode(session.app_key).decode("ascii"),
                           "s": base64.b64encode(session.sek).decode("ascii")}, separators=(",", ":")).encode()

    @staticmethod
    def read_session_secrets(plain: bytes) -> tuple[str, bytes, bytes]:
        """``(auth_token, app_key, sek)``; ``KeyError``/``ValueError`` on a malformed blob."""
        data = json.loads(plain)
        return data["t"], base64.b64decode(data["a"]), base64.b64decode(data["s"])

    @staticmethod
    def pending_secrets(pending: PendingOtp) -> bytes:
        return pending.app_key
