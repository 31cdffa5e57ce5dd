"""Taxpayer sessions: who a session belongs to (:class:`SessionKey`) and what it holds (:class:`Session`).

A session is what a successful ``AUTHTOKEN`` (OTP consent) or ``REFRESHTOKEN``
gives (spec §3.3, §3.4, §7): an ``auth_token``, the 32-byte app key the client
generated, and the 32-byte session key ``EK`` (here ``sek``, already decrypted).

Both classes are frozen. A refresh makes a *new* :class:`Session`
(:meth:`Session.refreshed`); stores persist whole values, never mutate them.

Times are timezone-aware UTC :class:`~datetime.datetime` values. ``repr()`` and
``str()`` of a :class:`Session` never show the token or key bytes; they print
``[secure]`` in their place.

Lifetime rules (spec §7 and user-pain-points §1):

* ``expires_at`` is what GSTN *stated*: ``issued_at + expiry`` minutes.
* ``observed_lifetime_minutes`` is what we have *seen* (a token that died earlier
  than stated); :attr:`Session.effective_expires_at` is the earlier of the two.
* A token is *usable* until ``effective_expires_at - margin``; the default
  margin is :data:`DEFAULT_MARGIN` (15 minutes, GSPs advise stopping at 5 h 45 m).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

__all__ = [
    "DEFAULT_MARGIN",
    "OTP_ATTEMPTS",
    "OTP_VALIDITY",
    "PendingOtp",
    "RefreshIntent",
    "Session",
    "SessionKey",
    "SessionTarget",
    "effective_expiry",
    "utcnow",
]

#: Stop using a token this long before it expires (GSPs advise 5 h 45 m for a 6 h token).
DEFAULT_MARGIN = _dt.timedelta(minutes=15)
#: How long an OTP sent by OTPREQUEST is taken to stay valid (INFERRED: GSTN does not say; the
#: emulator uses 10 minutes). Within it a pending request is answered with AUTHTOKEN instead of
#: a new OTPREQUEST (which would void the OTP the taxpayer holds).
OTP_VALIDITY = _dt.timedelta(minutes=10)
#: Tries an OTP allows before a new one must be requested (INFERRED: the emulator's default).
OTP_ATTEMPTS = 3

_UTC = _dt.timezone.utc


def utcnow() -> _dt.datetime:
    """The current time as an aware UTC datetime."""
    return _dt.datetime.now(_UTC)


def _aware(value: _dt.datetime, name: str) -> _dt.datetime:
    if not isinstance(value, _dt.datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (use datetime.now(timezone.utc))")
    return value.astimezone(_UTC)


def _margin(margin: _dt.timedelta | float | None) -> _dt.timedelta:
    if margin is None:
        return DEFAULT_MARGIN
    if isinstance(margin, _dt.timedelta):
        return margin
    return _dt.timedelta(seconds=float(margin))


def effective_expiry(issued_at: _dt.datetime, expires_at: _dt.datetime, observed_minutes: int | None) -> _dt.datetime:
    """The earlier of the stated expiry and ``issued_at + observed_minutes``.

    See :attr:`Session.effective_expires_at`.
    """
    if observed_minutes is None:
        return expires_at
    return min(expires_at, issued_at + _dt.timedelta(minutes=observed_minutes))


def _env_text(environment: Any) -> str:
    # Accept an Environment enum (gspauth.types) as well as a plain string.
    value = getattr(environment, "value", environment)
    return str(value)


@dataclass(frozen=True, order=True)
class SessionKey:
    """Identifies one taxpayer session: GSP, environment, GSTIN and portal username.

    ``environment`` may be an enum; it is kept as its string value. ``gstin`` is
    upper-cased, ``gsp`` lower-cased; ``username`` is kept as given (GST portal
    usernames are case-sensitive on some GSPs).
    """

    gsp: str
    environment: str
    gstin: str
    username: str

    def __post_init__(self) -> None:
        for name in ("gsp", "gstin", "username"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"SessionKey.{name} must be a non-empty string")
        object.__setattr__(self, "gsp", self.gsp.strip().lower())
        object.__setattr__(self, "environment", _env_text(self.environment).strip().lower())
        object.__setattr__(self, "gstin", self.gstin.strip().upper())
        object.__setattr__(self, "username", self.username.strip())
        if not self.environment:
            raise ValueError("SessionKey.environment must be a non-empty string")

    @property
    def id(self) -> str:
        """A stable, unambiguous text id: ``gsp/environment/GSTIN/username`` (parts percent-quoted)."""
        return "/".join(quote(part, safe="") for part in (self.gsp, self.environment, self.gstin, self.username))

    @property
    def digest(self) -> str:
        """A short filesystem-safe hash of :attr:`id` (used for lock-file names)."""
        return hashlib.sha256(self.id.encode("utf-8")).hexdigest()[:32]

    @classmethod
    def from_id(cls, text: str) -> SessionKey:
        """Inverse of :attr:`id`."""
        from urllib.parse import unquote

        parts = text.split("/")
        if len(parts) != 4:
            raise ValueError(f"not a session id: {text!r} (expected gsp/environment/GSTIN/username)")
        return cls(*(unquote(p) for p in parts))

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True, repr=False)
class Session:
    """An established GSTN session for one :class:`SessionKey`.

    :param key: whose session this is.
    :param auth_token: the GSTN ``auth-token`` (secret).
    :param app_key: the 32-byte app key ``AK`` the client generated (secret).
    :param sek: the *decrypted* 32-byte session key ``EK`` (secret).
    :param issued_at: when GSTN issued this token (aware UTC).
    :param expiry_minutes: the ``expiry`` GSTN returned, in minutes.
    :param expires_at: ``issued_at + expiry_minutes``: the *stated* end of life.
    :param consent_at: when the taxpayer last gave OTP consent (refreshes keep it).
    :param refresh_count: refreshes since that consent.
    :param refreshable: ``False`` once GSTN refused a refresh (AUTH4037) or the
        user's API-access setting is known not to allow one.
    :param observed_lifetime_minutes: a lifetime we saw in practice, when shorter
        than stated (see :attr:`effective_expires_at`).
    :param txn_of_consent: the ``txn`` of the AUTHTOKEN call that created the consent.
    :param refreshed_at: when the last refresh happened, else ``None``.
    :param ip_usr: the ``ip-usr`` the consent was given from, if known.
    """

    key: SessionKey
    auth_token: str = field(compare=True)
    app_key: bytes = field(compare=True)
    sek: bytes = field(compare=True)
    issued_at: _dt.datetime
    expiry_minutes: int
    expires_at: _dt.datetime
    consent_at: _dt.datetime
    refresh_count: int = 0
    refreshable: bool = True
    observed_lifetime_minutes: int | None = None
    txn_of_consent: str | None = None
    refreshed_at: _dt.datetime | None = None
    ip_usr: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, SessionKey):
            raise TypeError("Session.key must be a SessionKey")
        if not isinstance(self.auth_token, str) or not self.auth_token:
            raise ValueError("Session.auth_token must be a non-empty string")
        for name in ("app_key", "sek"):
            value = getattr(self, name)
            if not isinstance(value, (bytes, bytearray)):
                raise TypeError(f"Session.{name} must be bytes (the raw key), not {type(value).__name__}")
            if len(value) != 32:
                raise ValueError(f"Session.{name} must be 32 bytes, got {len(value)}")
            object.__setattr__(self, name, bytes(value))
        object.__setattr__(self, "issued_at", _aware(self.issued_at, "issued_at"))
        object.__setattr__(self, "expires_at", _aware(self.expires_at, "expires_at"))
        object.__setattr__(self, "consent_at", _aware(self.consent_at, "consent_at"))
        if self.refreshed_at is not None:
            object.__setattr__(self, "refreshed_at", _aware(self.refreshed_at, "refreshed_at"))
        if int(self.expiry_minutes) < 0:
            raise ValueError("Session.expiry_minutes must not be negative")
        object.__setattr__(self, "expiry_minutes", int(self.expiry_minutes))
        if self.observed_lifetime_minutes is not None:
            object.__setattr__(self, "observed_lifetime_minutes", int(self.observed_lifetime_minutes))

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def new(
        cls,
        key: SessionKey,
        *,
        auth_token: str,
        app_key: bytes,
        sek: bytes,
        expiry_minutes: int,
        now: _dt.datetime | None = None,
        txn: str | None = None,
        ip_usr: str | None = None,
        observed_lifetime_minutes: int | None = None,
    ) -> Session:
        """A session from a successful AUTHTOKEN reply (fresh OTP consent at ``now``)."""
        issued = _aware(now, "now") if now is not None else utcnow()
        return cls(
            key=key,
            auth_token=auth_token,
            app_key=app_key,
            sek=sek,
            issued_at=issued,
            expiry_minutes=int(expiry_minutes),
            expires_at=issued + _dt.timedelta(minutes=int(expiry_minutes)),
            consent_at=issued,
            txn_of_consent=txn,
            ip_usr=ip_usr,
            observed_lifetime_minutes=observed_lifetime_minutes,
        )

    def refreshed(
        self,
        *,
        auth_token: str,
        sek: bytes,
        expiry_minutes: int,
        app_key: bytes | None = None,
        now: _dt.datetime | None = None,
    ) -> Session:
        """The session that a successful REFRESHTOKEN reply gives (consent time is kept).

        :param app_key: the ``AK'`` sent in the refresh, if it was a new one.
        """
        issued = _aware(now, "now") if now is not None else utcnow()
        return replace(
            self,
            auth_token=auth_token,
            sek=sek,
            app_key=self.app_key if app_key is None else app_key,
            issued_at=issued,
            expiry_minutes=int(expiry_minutes),
            expires_at=issued + _dt.timedelta(minutes=int(expiry_minutes)),
            refresh_count=self.refresh_count + 1,
            refreshed_at=issued,
        )

    def with_observed_lifetime(self, minutes: int) -> Session:
        """Record that a token of this kind died after ``minutes`` (keeps the shortest seen)."""
        minutes = max(0, int(minutes))
        if self.observed_lifetime_minutes is not None:
            minutes = min(minutes, self.observed_lifetime_minutes)
        return replace(self, observed_lifetime_minutes=minutes)

    def not_refreshable(self) -> Session:
        """This session marked as not refreshable (GSTN refused a refresh: next step is OTP)."""
        return replace(self, refreshable=False)

    # -- lifetime -----------------------------------------------------------------------------

    @property
    def effective_expires_at(self) -> _dt.datetime:
        """The earlier of the stated expiry and ``issued_at + observed lifetime``."""
        return effective_expiry(self.issued_at, self.expires_at, self.observed_lifetime_minutes)

    def remaining(self, now: _dt.datetime | None = None) -> _dt.timedelta:
        """Time left until :attr:`effective_expires_at` (negative when past)."""
        now = _aware(now, "now") if now is not None else utcnow()
        return self.effective_expires_at - now

    def usable(self, now: _dt.datetime | None = None, margin: _dt.timedelta | float | None = None) -> bool:
        """``True`` while ``now`` is before ``effective_expires_at - margin``.

        :param margin: a :class:`~datetime.timedelta` or seconds; default :data:`DEFAULT_MARGIN`.
        """
        now = _aware(now, "now") if now is not None else utcnow()
        return now < self.effective_expires_at - _margin(margin)

    def needs_refresh(self, now: _dt.datetime | None = None, margin: _dt.timedelta | float | None = None) -> bool:
        """``True`` when the token is inside the safety margin (or past it) and should be replaced.

        Whether a refresh is *possible* is :attr:`refreshable` (and GSTN's answer).
        """
        return not self.usable(now, margin)

    def expired(self, now: _dt.datetime | None = None) -> bool:
        """``True`` when ``now`` is at or past :attr:`effective_expires_at` (no margin)."""
        now = _aware(now, "now") if now is not None else utcnow()
        return now >= self.effective_expires_at

    # -- display ------------------------------------------------------------------------------

    def __repr__(self) -> str:
        observed = "" if self.observed_lifetime_minutes is None else f", observed={self.observed_lifetime_minutes}m"
        return (
            f"Session(key={self.key.id!r}, auth_token=[secure], app_key=[secure], sek=[secure], "
            f"issued_at={self.issued_at.isoformat()}, expires_at={self.expires_at.isoformat()}, "
            f"expiry_minutes={self.expiry_minutes}, refresh_count={self.refresh_count}, "
            f"refreshable={self.refreshable}{observed})"
        )

    __str__ = __repr__


@dataclass(frozen=True, repr=False)
class PendingOtp:
    """An OTPREQUEST GSTN accepted that no AUTHTOKEN has used yet: the first half of a two-step
    consent, kept in the session store so that *any* later process holding the OTP can finish it.

    It never holds the OTP. It holds the app key the OTPREQUEST committed to (sealed like the
    session's secrets), in case GSTN binds the OTP to it.

    :param requested_at: when GSTN accepted the OTPREQUEST (the client's clock, aware UTC).
    :param expires_at: when the OTP is taken to have lapsed (``requested_at + OTP_VALIDITY``).
    :param requested_wall: the same moment as POSIX time on this machine's wall clock: an OTP
        delivered as a file must be newer than it.
    :param attempts_used: wrong OTPs already tried against this request.
    """

    key: SessionKey
    txn: str
    requested_at: _dt.datetime
    expires_at: _dt.datetime
    app_key: bytes = field(compare=False)
    requested_wall: float = 0.0
    attempts_used: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "requested_at", _aware(self.requested_at, "requested_at"))
        object.__setattr__(self, "expires_at", _aware(self.expires_at, "expires_at"))
        if not isinstance(self.app_key, (bytes, bytearray)) or len(self.app_key) != 32:
            raise ValueError("PendingOtp.app_key must be 32 bytes")
        object.__setattr__(self, "app_key", bytes(self.app_key))

    def valid(self, now: _dt.datetime) -> bool:
        """``True`` while the OTP may still be used (not lapsed, tries left)."""
        return now < self.expires_at and self.attempts_used < OTP_ATTEMPTS

    @property
    def attempts_left(self) -> int:
        return max(0, OTP_ATTEMPTS - self.attempts_used)

    def tried(self) -> PendingOtp:
        """This request after one more wrong OTP."""
        return replace(self, attempts_used=self.attempts_used + 1)

    def __repr__(self) -> str:
        return (f"PendingOtp(key={self.key.id!r}, txn={self.txn!r}, requested_at={self.requested_at.isoformat()}, "
                f"expires_at={self.expires_at.isoformat()}, attempts_used={self.attempts_used}, app_key=[secure])")

    __str__ = __repr__


@dataclass(frozen=True)
class SessionTarget:
    """Where a session was made: what (besides credentials) is needed to act on it again by its
    id alone — refresh it, log it out, keep it alive. Nothing here is secret.

    :param host: the GSP host base URL in use (after overrides).
    :param certificate: the path the GSTN certificate was read from, if it came from a file.
    :param certificate_sha256: the certificate's fingerprint (to tell a rotated one).
    :param ip_usr: the ``ip-usr`` the consent was given with.
    :param auth_version: a non-default authenticate API version, if one was used.
    """

    key: SessionKey
    host: str
    certificate: str | None
    certificate_sha256: str
    ip_usr: str
    auth_version: str | None = None


@dataclass(frozen=True)
class RefreshIntent:
    """A REFRESHTOKEN was sent (``txn``, ``started_at``) and its result not yet saved.

    GSTN replaces the token when it answers a refresh; if the process dies before saving the
    answer, the stored token is dead. The intent tells the next process why.
    """

    txn: str
    started_at: _dt.datetime
