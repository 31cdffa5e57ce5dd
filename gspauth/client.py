"""Taxpayer sessions over httpx: :class:`Client` (sync) and :class:`AsyncClient` (asyncio).

A client is bound to one GSP, environment, set of credentials, GSTIN and portal username.
It runs GSTN's session lifecycle (spec §3, §7) and encrypts/decrypts every data call::

    client = Client("cleartax", "sandbox", credentials, gstin="27…", username="acme",
                    certificate="GSTN_G2B_SANDBOX_UAT_public.cer", store=SQLiteStore())
    client.request_otp()
    client.authenticate("575757")                       # OTP consent
    ref = client.put(Api.RETURNS, "gstr1", action="RETSAVE", payload=chunk, ret_period="072017")
    b2b = client.get(Api.RETURNS, "gstr1", action="B2B", ret_period="072017")

Lifecycle rules:

* A token is used until ``margin`` (default 15 minutes) before it expires — the earlier of
  the stated expiry and a lifetime *observed* when GSTN rejected a token early; then it is
  refreshed (REFRESHTOKEN) before the next call, when the session allows it.
* When a new OTP is needed (no session, refresh refused with AUTH4037, refresh window
  passed, revoked, logged out) the client asks the OTP provider; if it has none it raises
  :class:`~gspauth.errors.OtpRequired` with the GSTIN and a ``reason``.
* One auth or refresh per session key at a time, across threads and processes: the store's
  lock is taken, the session re-loaded, and a session another worker just refreshed is
  reused instead of refreshed again.
* Transient failures (HTTP 5xx, 429, dropped connections, TEC4001/GEN5008,
  RETINPROGRESS) are retried with jittered exponential backoff, **re-sending the same
  ``txn``**, so GSTN can recognise a replayed RETSAVE instead of filing it twice.

Internally each operation is written once, as a generator that yields I/O *effects*
(send a request, call a blocking store/ledger function, sleep, take/release the session
lock); :class:`Client` runs them directly and :class:`AsyncClient` awaits them, running the
blocking ones with :func:`asyncio.to_thread`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as _dt
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from gspauth import crypto, protocol
from gspauth.errors import (
    ApiAccessDenied,
    ConfigurationError,
    GSPError,
    LockTimeout,
    OtpRequired,
    RetryableError,
    SessionExpired,
    SessionInvalid,
    SessionLimitExceeded,
)
from gspauth.session import DEFAULT_MARGIN, Session, SessionKey, utcnow
from gspauth.redact import install_log_filters
from gspauth.types import Api, Credentials, SessionEvent

if TYPE_CHECKING:
    from gspauth.store import SessionStore

__all__ = [
    "AsyncClient",
    "Client",
    "RetryPolicy",
]

log = logging.getLogger("gspauth.client")


T = TypeVar("T")

#: How long an OTP sent by OTPREQUEST is assumed to stay valid (GSTN does not say; the
#: emulator uses 10 minutes). Within it, ``authenticate()`` does not send another OTPREQUEST.
OTP_VALIDITY = _dt.timedelta(minutes=10)
_LOCALHOST_IP = "127.0.0.1"
#: Payloads and replies at least this large are encrypted/decrypted as a blocking call
#: (a worker thread in :class:`AsyncClient`), so a multi-megabyte chunk does not stall the loop.
_OFFLOAD_BYTES = 256 * 1024


# --------------------------------------------------------------------------- small values


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of transient failures, always with the same ``txn``.

    :param attempts: total tries per call (1 = no retry).
    :param backoff: first delay in seconds; doubles each retry.
    :param cap: largest backoff delay in seconds.
    :param jitter: random fraction added/subtracted (0.5 → ±50 %), to spread retries.
    :param max_retry_after: a server's ``Retry-After`` (HTTP 429/503) is honoured in full up
        to this many seconds; asked to wait longer, the client gives up at once and raises
        the :class:`~gspauth.errors.RateLimited` / :class:`~gspauth.errors.ServerError`
        with ``retry_after`` set, so the caller can reschedule instead of burning attempts.
    """

    attempts: int = 4
    backoff: float = 0.5
    cap: float = 10.0
    jitter: float = 0.5
    max_retry_after: float = 120.0

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based); a ``retry_after`` wins as it is."""
        if retry_after is not None and retry_after >= 0:
            return float(retry_after)
        base = min(self.cap, self.backoff * (2 ** (retry - 1)))
        spread = base * self.jitter
        return float(max(0.0, min(self.cap, base + random.uniform(-spread, spread))))


# Effects yielded by the lifecycle generators ------------------------------------------------


@dataclass
class _Send:
    request: httpx.Request
    signed: bool = True  # False: send as the plugin built it (GSP-level logout)


@dataclass
class _Call:
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


@dataclass
class _Sleep:
    seconds: float


@dataclass
class _Lock:
    pass


@dataclass
class _Unlock:
    handle: Any


_Flow = Generator[Any, Any, T]


def _step(flow: _Flow[Any], value: Any, error: BaseException | None) -> tuple[bool, Any]:
    """Advance ``flow`` by one effect: ``(True, result)`` when it returned, else ``(False, effect)``."""
    try:
        effect = flow.throw(error) if error is not None else flow.send(value)
    except StopIteration as stop:
        return True, stop.value
    return False, effect


def _load_certificate(certificate: Any) -> crypto.GSTNCertificate:
    if isinstance(certificate, crypto.GSTNCertificate):
        return certificate
    if isinstance(certificate, (bytes, bytearray)):
        return crypto.load_certificate(bytes(certificate))
    if isinstance(certificate, (str, os.PathLike)):
        text = os.fspath(certificate)
        if isinstance(text, str) and text.lstrip().startswith("-----BEGIN"):
            return crypto.load_certificate(text)
        path = Path(text).expanduser()
        try:
            return crypto.load_certificate(path.read_bytes())
        except OSError as exc:
            raise ConfigurationError(f"cannot read the GSTN certificate {str(path)!r}: {exc.strerror}") from None
    raise ConfigurationError(
        "certificate must be a GSTNCertificate, the certificate bytes (DER/PEM) or a path to them"
    )


def _retry_after(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# --------------------------------------------------------------------------- the shared core


class _BaseClient:
    """Configuration and the lifecycle flows shared by :class:`Client` and :class:`AsyncClient`."""

    def __init__(
        self,
        gsp: str,
        environment: str,
        credentials: Credentials | None = None,
        *,
        gstin: str,
        username: str,
        certificate: Any,
        store: SessionStore | None = None,
        otp_provider: Any = None,
        ledger: Any = None,
        hooks: Any = None,
        hosts: Mapping[str, Any] | None = None,
        ip_usr: str = _LOCALHOST_IP,
        margin: _dt.timedelta | float = DEFAULT_MARGIN,
        auto_refresh: bool = True,
        retry: RetryPolicy | None = None,
        clock: Callable[[], _dt.datetime] | None = None,
        allow_expired_certificate: bool = False,
        lock_timeout: float | None = 120.0,
        auth_version: str | None = None,
    ) -> None:
        from gspauth.gstin import validate_gstin

        install_log_filters()  # httpx logs request URLs: hide FILEDET tokens and the like
        self.gsp = gsp
        self.environment = str(getattr(environment, "value", environment))
        self.credentials = credentials if credentials is not None else Credentials()
        self.gstin = validate_gstin(gstin)
        if not isinstance(username, str) or not username.strip():
            raise ConfigurationError("username (the taxpayer's GST portal username) is required")
        self.username = username.strip()
        self.key = SessionKey(gsp, self.environment, self.gstin, self.username)
        self.ip_usr = protocol.validate_ip(ip_usr)
        self.margin = margin if isinstance(margin, _dt.timedelta) else _dt.timedelta(seconds=float(margin))
        self.auto_refresh = auto_refresh
        self.retry = retry or RetryPolicy()
        self.allow_expired_certificate = allow_expired_certificate
        self.lock_timeout = lock_timeout
        self.auth_version = auth_version
        self._clock = clock or utcnow
        self._certificate = _load_certificate(certificate)
        if not allow_expired_certificate:
            self._certificate.check_valid(self._clock())  # refuse a stale certificate up front
        if store is None:
            from gspauth.store import MemoryStore

            store = MemoryStore()
        self.store: SessionStore = store
        self.otp_provider = otp_provider
        self.ledger = ledger
        if hooks is None:
            from gspauth.plugins import Hooks, get_plugin_manager

            hooks = Hooks(get_plugin_manager(), hosts=hosts) if hosts is not None else Hooks(get_plugin_manager())
        self.hooks = hooks
        # Unknown, missing or malformed credentials fail here, before an OTP is spent.
        self.credentials = hooks.check_credentials(gsp, self.credentials)
        self._session: Session | None = None
        self._pending_app_key: bytes | None = None
        self._otp_sent_at: _dt.datetime | None = None
        self._logged_out = False

    # -- display ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(gsp={self.gsp!r}, environment={self.environment!r}, "
            f"gstin={self.gstin!r}, username={self.username!r})"
        )

    __str__ = __repr__

    @property
    def session(self) -> Session | None:
        """The session this client last used or obtained (``None`` before the first)."""
        return self._session

    def now(self) -> _dt.datetime:
        """The client's clock (aware UTC)."""
        return self._clock()

    # -- request building (pure) -----------------------------------------------------------

    def _url(self, api: Api, version: str | None, path: str = "", *, action: str | None = None) -> str:
        version = version or api.default_version
        return str(self.hooks.endpoint_url(self.gsp, api, self.environment, version, path=path, action=action))

    def _auth_request(self, call: protocol.AuthCall, txn: str, auth_token: str | None = None) -> httpx.Request:
        headers = protocol.auth_headers(
            gstin=self.gstin,
            username=self.username,
            ip_usr=self.ip_usr,
            txn=txn,
            credentials=self.credentials,
            auth_token=auth_token,
        )
        request = httpx.Request(
            "POST", self._url(Api.AUTH, self.auth_version, action=call.action), headers=headers, content=call.content()
        )
        request.extensions["gspauth"] = {"action": call.action, "api": Api.AUTH, "txn": txn}
        return request

    def _data_request(
        self,
        session: Session,
        method: str,
        api: Api,
        path: str,
        action: str,
        ret_period: str | None,
        params: Mapping[str, Any] | None,
        version: str | None,
        txn: str,
        content: bytes | None,
    ) -> httpx.Request:
        """``content``: the wrapped payload (:func:`protocol.wrap_payload_content`), or ``None``."""
        headers = protocol.data_headers(
            gstin=self.gstin,
            username=self.username,
            auth_token=session.auth_token,
            ip_usr=self.ip_usr,
            txn=txn,
            ret_period=ret_period,
            credentials=self.credentials,
        )
        query: dict[str, str] = {}
        if method == "GET":
            content = None
            query["gstin"] = self.gstin
            if ret_period is not None:
                query["ret_period"] = ret_period
            query["action"] = action
        elif content is None:
            content = protocol.encode_payload({"action": action})
        for k, v in (params or {}).items():
            query[str(k)] = str(v)
        request = httpx.Request(
            method,
            self._url(api, version, path, action=action),
            headers=headers,
            params=query or None,
            content=content,
        )
        request.extensions["gspauth"] = {"action": action, "api": api, "txn": txn}
        return request

    def _map_error(self, response: httpx.Response) -> Callable[[], BaseException | None]:
        def mapped() -> BaseException | None:
            fn = getattr(self.hooks, "map_error", None)
            return fn(self.gsp, response) if fn is not None else None

        return mapped

    # -- events ------------------------------------------------------------------------------

    def _event(
        self,
        kind: str,
        *,
        txn: str | None = None,
        outcome: str = "ok",
        detail: str | None = None,
        expires_at: _dt.datetime | None = None,
    ) -> SessionEvent:
        return SessionEvent(
            kind=kind,  # type: ignore[arg-type]
            gsp=self.gsp,
            environment=self.environment,
            gstin=self.gstin,
            username=self.username,
            at=self._clock(),
            txn=txn,
            ip_usr=self.ip_usr,
            outcome=outcome,
            detail=detail,
            expires_at=expires_at,
        )

    def _emit(self, event: SessionEvent) -> None:
        # Observers and the ledger must not turn a successful auth into a failure.
        log.info("session %s: %s %s (%s)", event.kind, self.key.id, event.outcome, event.detail or "")
        fn = getattr(self.hooks, "session_event", None)
        if fn is not None:
            try:
                fn(event)
            except Exception:  # noqa: BLE001 - observer failures are logged, never fatal
                log.warning("a session-event observer failed for %s", event.kind, exc_info=True)
        if self.ledger is not None:
            try:
                self.ledger.record(event)
            except Exception:  # noqa: BLE001
                log.error("could not write %s to the consent ledger", event.kind, exc_info=True)

    def _fire(self, kind: str, **kw: Any) -> _Flow[None]:
        yield _Call(self._emit, (self._event(kind, **kw),))

    # -- sending with retries ------------------------------------------------------------------

    def _flow_send(self, make: Callable[[], httpx.Request], what: str) -> _Flow[dict[str, Any]]:
        """Send ``make()`` until a non-transient answer; every attempt carries the same txn."""
        policy = self.retry
        attempt = 0
        while True:
            attempt += 1
            request = make()
            response: httpx.Response | None = None
            try:
                response = yield _Send(request)
                assert response is not None
                log.debug(
                    "%s %s txn=%s -> HTTP %s (attempt %d)",
                    request.method, what, request.headers.get("txn"), response.status_code, attempt,
                )
                return protocol.parse_reply(
                    response.status_code, response.content, gsp=self.gsp, map_error=self._map_error(response)
                )
            except (httpx.TransportError, RetryableError) as exc:
                if isinstance(exc, RetryableError):
                    ra = _retry_after(response)
                    if ra is not None:
                        exc.retry_after = ra
                    reason = exc.error_code or f"HTTP {exc.status_code}"
                else:
                    reason = type(exc).__name__
                retry_after = getattr(exc, "retry_after", None)
                if attempt >= policy.attempts or (retry_after is not None and retry_after > policy.max_retry_after):
                    raise
                delay = policy.delay(attempt, retry_after)
                log.warning(
                    "%s txn=%s failed transiently (%s); retry %d/%d in %.2fs with the same txn",
                    what, request.headers.get("txn"), reason, attempt, policy.attempts - 1, delay,
                )
                yield _Sleep(delay)

    # -- OTP -----------------------------------------------------------------------------------

    def _otp_required(self, reason: str, message: str | None = None) -> OtpRequired:
        how = (
            f"call authenticate(otp=...) with the OTP sent to the taxpayer's registered mobile/email, "
            f"run `gspauth login --gsp {self.gsp} --gstin {self.gstin} --username {self.username}`, "
            "or configure an OTP provider"
        )
        text = {
            "no-session": f"no GSTN session for GSTIN {self.gstin}: taxpayer OTP consent is needed",
            "refresh-refused": f"GSTN refused to refresh the session of GSTIN {self.gstin} (AUTH4037)",
            "expired": f"the session of GSTIN {self.gstin} expired beyond refresh",
            "revoked": f"the session of GSTIN {self.gstin} was revoked or replaced (AUTH4033)",
            "logged-out": f"the session of GSTIN {self.gstin} was logged out",
            "not-refreshable": f"the session of GSTIN {self.gstin} cannot be refreshed",
            "session-cap": f"GSTN refused a new session for GSTIN {self.gstin}: too many sessions (AUTH403)",
        }.get(reason, f"a new OTP consent is needed for GSTIN {self.gstin}")
        if message:
            text = f"{text}: {message}"
        return OtpRequired(f"{text}; {how}", gstin=self.gstin, reason=reason)

    def _flow_request_otp(self) -> _Flow[str]:
        txn = protocol.new_txn()
        app_key = crypto.generate_app_key()
        call = protocol.otp_request(
            username=self.username,
            certificate=self._certificate,
            app_key=app_key,
            allow_expired=self.allow_expired_certificate,
            now=self._clock(),
        )
        try:
            yield from self._flow_send(lambda: self._auth_request(call, txn), "OTPREQUEST")
        except GSPError as exc:
            yield from self._fire("failed", txn=txn, outcome=exc.error_code or type(exc).__name__,
                                  detail="OTPREQUEST")
            raise
        self._pending_app_key = app_key
        self._otp_sent_at = self._clock()
        yield from self._fire("otp-requested", txn=txn)
        return txn

    def _ask_otp(self) -> str | None:
        # Blocking: may prompt or poll. Runs in a worker thread for the async client.
        from gspauth.otp import OtpRequest

        request = OtpRequest(self.gsp, self.environment, self.gstin, self.username,
                             self._otp_sent_at or self._clock())
        getter = getattr(self.otp_provider, "get_otp", None)
        otp = getter(request) if getter is not None else self.otp_provider(request)
        return str(otp).strip() if otp else None

    def _flow_obtain_otp(self, reason: str) -> _Flow[str]:
        """Send OTPREQUEST (unless one is still fresh), then ask the provider; park if it has none."""
        if self.otp_provider is None:
            yield from self._fire("needs-otp", outcome=reason, detail="no OTP provider configured")
            raise self._otp_required(reason)
        now = self._clock()
        if self._otp_sent_at is None or now - self._otp_sent_at > OTP_VALIDITY:
            yield from self._flow_request_otp()
        otp = yield _Call(self._ask_otp)
        if not otp:
            yield from self._fire("needs-otp", outcome=reason, detail="the OTP provider has no OTP yet")
            raise self._otp_required(reason, "the OTP provider has none yet (OTPREQUEST was sent)")
        return str(otp)

    # -- auth, refresh, logout (callers hold the lock) -------------------------------------------

    def _flow_authenticate_locked(self, otp: str, previous: Session | None) -> _Flow[Session]:
        app_key = self._pending_app_key or crypto.generate_app_key()
        txn = protocol.new_txn()
        call = protocol.auth_token_request(
            username=self.username,
            certificate=self._certificate,
            app_key=app_key,
            otp=otp,
            allow_expired=self.allow_expired_certificate,
            now=self._clock(),
        )
        try:
            reply = yield from self._flow_send(lambda: self._auth_request(call, txn), "AUTHTOKEN")
        except GSPError as exc:
            yield from self._fire("failed", txn=txn, outcome=exc.error_code or type(exc).__name__,
                                  detail="AUTHTOKEN")
            raise
        grant = protocol.parse_token_grant(reply, app_key)
        observed = previous.observed_lifetime_minutes if previous is not None else None
        session = Session.new(
            self.key,
            auth_token=grant.auth_token,
            app_key=app_key,
            sek=grant.sek,
            expiry_minutes=grant.expiry_minutes,
            now=self._clock(),
            txn=txn,
            ip_usr=self.ip_usr,
            observed_lifetime_minutes=observed,
        )
        yield _Call(self.store.save, (session,))
        self._session = session
        self._pending_app_key = None
        self._otp_sent_at = None
        self._logged_out = False
        yield from self._fire("consent", txn=txn, expires_at=session.effective_expires_at)
        yield from self._fire("established", txn=txn, expires_at=session.effective_expires_at)
        return session

    def _flow_refresh_locked(self, session: Session) -> _Flow[Session]:
        """REFRESHTOKEN; AUTH4037 → non-refreshable + OtpRequired; expired/unknown → OtpRequired."""
        txn = protocol.new_txn()
        # AK' = the session's AK: LOGOUT proves the AK later, and every GSTN client in the
        # wild reuses it (spec §3.4), so this is the choice every server accepts.
        call = protocol.refresh_token_request(
            username=self.username, auth_token=session.auth_token, sek=session.sek, new_app_key=session.app_key
        )
        try:
            reply = yield from self._flow_send(lambda: self._auth_request(call, txn), "REFRESHTOKEN")
        except ApiAccessDenied as exc:
            stale = session.not_refreshable()
            yield _Call(self.store.save, (stale,))
            self._session = stale
            yield from self._fire("needs-otp", txn=txn, outcome=exc.error_code or "AUTH4037",
                                  detail="refresh refused")
            err = self._otp_required("refresh-refused", exc.hint)
            raise err from exc
        except SessionInvalid as exc:
            yield _Call(self.store.delete, (self.key,))
            self._session = None
            yield from self._fire("needs-otp", txn=txn, outcome=exc.error_code or type(exc).__name__,
                                  detail="refresh rejected: session expired or unknown")
            raise self._otp_required("expired", exc.error_code) from exc
        except GSPError as exc:
            yield from self._fire("failed", txn=txn, outcome=exc.error_code or type(exc).__name__,
                                  detail="REFRESHTOKEN")
            raise
        grant = protocol.parse_token_grant(reply, session.app_key)
        fresh = session.refreshed(
            auth_token=grant.auth_token,
            sek=grant.sek,
            expiry_minutes=grant.expiry_minutes,
            app_key=session.app_key,
            now=self._clock(),
        )
        yield _Call(self.store.save, (fresh,))
        self._session = fresh
        yield from self._fire("refreshed", txn=txn, expires_at=fresh.effective_expires_at)
        return fresh

    def _flow_session(self, *, stale_token: str | None = None) -> _Flow[Session]:
        """A usable session: cached, stored, refreshed, or (with an OTP provider) newly consented.

        ``stale_token``: a token GSTN just rejected as expired; a stored session with that
        token is refreshed even if its clock says it is still usable.
        """
        session = self._session
        now = self._clock()
        if session is not None and stale_token is None and session.usable(now, self.margin):
            return session
        if session is None:
            loaded: Session | None = yield _Call(self.store.load, (self.key,))
            if loaded is not None and stale_token is None and loaded.usable(self._clock(), self.margin):
                self._session = loaded
                return loaded
        handle = yield _Lock()
        try:
            # Re-load under the lock: another thread or process may have refreshed meanwhile.
            current: Session | None = yield _Call(self.store.load, (self.key,))
            session = current
            now = self._clock()
            if session is not None and session.usable(now, self.margin) and (
                stale_token is None or session.auth_token != stale_token
            ):
                self._session = session
                return session
            if session is None:
                reason = "logged-out" if self._logged_out else "no-session"
            elif not session.refreshable:
                reason = "refresh-refused"
            elif not self.auto_refresh:
                reason = "expired"
            else:
                return (yield from self._flow_refresh_locked(session))
            otp = yield from self._flow_obtain_otp(reason)
            try:
                return (yield from self._flow_authenticate_locked(otp, session))
            except SessionLimitExceeded as exc:
                # Unattended callers (filers) park the GSTIN instead of burning an OTP per call.
                yield from self._fire("needs-otp", outcome="AUTH403", detail="session cap reached")
                raise self._otp_required("session-cap", exc.hint) from exc
        finally:
            yield _Unlock(handle)

    # -- public flows ------------------------------------------------------------------------------

    def _flow_authenticate(self, otp: str | None) -> _Flow[Session]:
        handle = yield _Lock()
        try:
            previous = yield _Call(self.store.load, (self.key,))
            if otp is None:
                otp = yield from self._flow_obtain_otp("no-session")
            return (yield from self._flow_authenticate_locked(otp, previous))
        finally:
            yield _Unlock(handle)

    def _flow_refresh(self) -> _Flow[Session]:
        handle = yield _Lock()
        try:
            session = yield _Call(self.store.load, (self.key,))
            if session is None:
                yield from self._fire("needs-otp", outcome="no-session")
                raise self._otp_required("no-session")
            if not session.refreshable:
                yield from self._fire("needs-otp", outcome="refresh-refused")
                raise self._otp_required("refresh-refused", "refresh was refused earlier (AUTH4037)")
            return (yield from self._flow_refresh_locked(session))
        finally:
            yield _Unlock(handle)

    def _flow_logout(self) -> _Flow[bool]:
        handle = yield _Lock()
        try:
            session = yield _Call(self.store.load, (self.key,))
            if session is None:
                self._session = None
                return False
            txn = protocol.new_txn()
            call = protocol.logout_request(
                username=self.username,
                auth_token=session.auth_token,
                certificate=self._certificate,
                app_key=session.app_key,
                allow_expired=self.allow_expired_certificate,
                now=self._clock(),
            )
            outcome = "ok"
            try:
                yield from self._flow_send(lambda: self._auth_request(call, txn), "LOGOUT")
            except SessionInvalid as exc:  # already gone on GSTN's side: forget it all the same
                outcome = exc.error_code or "SessionInvalid"
            yield _Call(self.store.delete, (self.key,))
            self._session = None
            self._logged_out = True
            yield from self._flow_end_gsp_session()
            yield from self._fire("ended", txn=txn, outcome=outcome, detail="logout")
            return True
        finally:
            yield _Unlock(handle)

    def _flow_end_gsp_session(self) -> _Flow[None]:
        """End the GSP's own session (TaxPro GetKey, JWT logins), if the plugin has one.

        Best effort: GSTN's LOGOUT already succeeded, so a failure here is logged, not raised.
        """
        end = getattr(self, "_auth", None)
        request = end.end_gsp_session() if end is not None and hasattr(end, "end_gsp_session") else None
        if request is None:
            return
        try:
            yield _Send(request, signed=False)
        except (httpx.HTTPError, GSPError) as exc:
            log.info("GSP-level logout for %s failed (%s); the GSP session will expire on its own",
                     self.gsp, type(exc).__name__)

    def _flow_on_invalid(self, rejected: Session, exc: SessionInvalid) -> _Flow[Session]:
        """GSTN said AUTH4033 for ``rejected``: reuse a newer stored session, else it was revoked."""
        handle = yield _Lock()
        try:
            stored: Session | None = yield _Call(self.store.load, (self.key,))
            if stored is None or stored.auth_token == rejected.auth_token:
                if stored is not None:
                    yield _Call(self.store.delete, (self.key,))
                self._session = None
                yield from self._fire("revoked", outcome=exc.error_code or "AUTH4033",
                                      detail="GSTN no longer accepts the auth token")
                raise self._otp_required("revoked", exc.error_code) from exc
            self._session = stored  # another worker refreshed or re-consented meanwhile
        finally:
            yield _Unlock(handle)
        # Outside the lock (the async lock is not re-entrant): refresh it if it is in the margin.
        return (yield from self._flow_session())

    def _flow_data(
        self,
        method: str,
        api: Api,
        path: str,
        action: str,
        payload: Any,
        ret_period: str | None,
        params: Mapping[str, Any] | None,
        version: str | None,
        txn: str | None,
    ) -> _Flow[Any]:
        if not isinstance(api, Api):
            api = Api(api)
        if not action or not isinstance(action, str):
            raise protocol.InvalidParameter("action is required (e.g. 'RETSAVE', 'B2B')", "action")
        if ret_period is not None:
            protocol.validate_ret_period(ret_period)
        txn = protocol.validate_txn(txn) if txn is not None else protocol.new_txn()
        if isinstance(payload, (dict, list)):
            payload = protocol.encode_payload(payload)  # serialise once: every retry sends equal bytes
        session = yield from self._flow_session()
        recovered = False
        while True:
            current = session
            # Encrypted once per session key, not per attempt (AES-ECB: every retry sends equal
            # bytes). A large payload is encrypted off the event loop (a worker thread for the
            # async client; the crypto core releases the GIL).
            content: bytes | None = None
            if method != "GET" and payload is not None:
                if isinstance(payload, (bytes, bytearray)) and len(payload) >= _OFFLOAD_BYTES:
                    content = yield _Call(protocol.wrap_payload_content, (current.sek, action, payload))
                else:
                    content = protocol.wrap_payload_content(current.sek, action, payload)

            def make() -> httpx.Request:
                return self._data_request(current, method, api, path, action, ret_period, params, version, txn,
                                          content)

            try:
                reply = yield from self._flow_send(make, action)
            except SessionExpired:
                if recovered:
                    raise
                recovered = True
                # GSTN says expired although our clock said usable: learn the real lifetime.
                now = self._clock()
                if now < current.effective_expires_at:
                    lived = max(1, int((now - current.issued_at).total_seconds() // 60))
                    learned = current.with_observed_lifetime(lived)
                    log.warning(
                        "GSTN expired the token of %s after %d min, earlier than the stated %d min; "
                        "using the observed lifetime from now on", self.key.id, lived, current.expiry_minutes,
                    )
                    yield _Call(self._save_if_current, (learned,))
                    self._session = learned
                session = yield from self._flow_session(stale_token=current.auth_token)
                continue
            except SessionInvalid as exc:
                if recovered:
                    raise
                recovered = True
                session = yield from self._flow_on_invalid(current, exc)
                continue
            data = reply.get("data")
            if isinstance(data, str) and len(data) >= _OFFLOAD_BYTES:
                return (yield _Call(protocol.unwrap_reply, (current.sek, reply)))
            return protocol.unwrap_reply(current.sek, reply)

    def _flow_evc_otp(self, pan: str, form_type: str) -> _Flow[str]:
        """EVCOTP: GSTN sends a filing OTP to the signatory with ``pan`` (spec §3.6)."""
        params = protocol.evc_otp_params(gstin=self.gstin, pan=pan, form_type=form_type)
        session = yield from self._flow_session()
        txn = protocol.new_txn()

        def make() -> httpx.Request:
            headers = protocol.data_headers(gstin=self.gstin, username=self.username,
                                            auth_token=session.auth_token, ip_usr=self.ip_usr, txn=txn,
                                            credentials=self.credentials)
            request = httpx.Request("GET", self._url(Api.AUTH, self.auth_version, action="EVCOTP"), headers=headers,
                                    params=params)
            request.extensions["gspauth"] = {"action": "EVCOTP", "api": Api.AUTH, "txn": txn}
            return request

        yield from self._flow_send(make, "EVCOTP")
        return txn

    def _save_if_current(self, session: Session) -> None:
        with self.store.lock(self.key, self.lock_timeout):
            stored = self.store.load(self.key)
            if stored is None or stored.auth_token == session.auth_token:
                self.store.save(session)


# --------------------------------------------------------------------------- sync


class Client(_BaseClient):
    """A synchronous GSTN taxpayer client (thread-safe; share one per GSTIN across threads).

    :param gsp: GSP id served by an installed plugin (``"cleartax"``, ``"vayana"`` …).
    :param environment: ``"sandbox"``, ``"production"`` or another environment the plugin declares.
    :param credentials: the ASP's :class:`~gspauth.types.Credentials` for this GSP.
    :param gstin: the taxpayer's GSTIN (validated; ``state-cd`` is derived from it).
    :param username: the taxpayer's GST portal username.
    :param certificate: GSTN's certificate for the environment: a
        :class:`~gspauth.crypto.GSTNCertificate`, its bytes (DER/PEM) or a path. An expired
        certificate is refused with :class:`~gspauth.errors.CertificateExpired` unless
        ``allow_expired_certificate=True``.
    :param store: a :class:`~gspauth.store.SessionStore` (default: an in-memory store).
    :param otp_provider: an object with ``get_otp(request) -> str | None`` (or a callable);
        ``None`` from it means "not available now" and the call raises
        :class:`~gspauth.errors.OtpRequired`.
    :param ledger: a consent ledger with ``record(event)``; every session event is written to it.
    :param hooks: a :class:`gspauth.plugins.Hooks`; default: all installed plugins.
    :param hosts: host overrides passed to the default ``Hooks`` (e.g. an emulator URL).
    :param ip_usr: the end user's public IPv4 for the ``ip-usr`` header.
    :param margin: stop using a token this long before it expires (timedelta or seconds;
        default 15 minutes).
    :param auto_refresh: refresh automatically before use when the token is in the margin.
    :param retry: :class:`RetryPolicy` for transient failures.
    :param clock: returns the current aware UTC time (tests pass a controlled clock).
    :param transport: an httpx transport (tests: ``httpx.MockTransport(emulator.handle)``).
    :param timeout: httpx timeout for each request.
    :param http_client: use this :class:`httpx.Client` instead of creating one (not closed by us).
    """

    def __init__(
        self,
        gsp: str,
        environment: str,
        credentials: Credentials | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float | httpx.Timeout = 30.0,
        http_client: httpx.Client | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(gsp, environment, credentials, **kwargs)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(transport=transport, timeout=timeout)
        self._auth = _make_auth(self)
        self._thread_lock = threading.RLock()

    # -- effects ----------------------------------------------------------------------------

    def _run(self, flow: _Flow[T]) -> T:
        value: Any = None
        error: BaseException | None = None
        while True:
            done, effect = _step(flow, value, error)
            if done:
                return effect  # type: ignore[no-any-return]
            value, error = None, None
            try:
                if isinstance(effect, _Send):
                    value = self._http.send(effect.request, auth=self._auth if effect.signed else None)
                    value.read()
                elif isinstance(effect, _Call):
                    value = effect.fn(*effect.args)
                elif isinstance(effect, _Sleep):
                    time.sleep(effect.seconds)
                elif isinstance(effect, _Lock):
                    value = self._acquire()
                elif isinstance(effect, _Unlock):
                    self._release(effect.handle)
                else:  # pragma: no cover - programming error
                    raise TypeError(f"unknown effect {effect!r}")
            except BaseException as exc:  # noqa: BLE001 - handed to the flow, which re-raises
                error = exc

    def _acquire(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        if not self._thread_lock.acquire(timeout=-1 if self.lock_timeout is None else self.lock_timeout):
            raise LockTimeout(f"waited {self.lock_timeout}s for the session lock of {self.key.id}")
        stack.callback(self._thread_lock.release)
        try:
            stack.enter_context(self.store.lock(self.key, self.lock_timeout))
        except BaseException:
            stack.close()
            raise
        return stack

    @staticmethod
    def _release(handle: contextlib.ExitStack) -> None:
        handle.close()

    # -- public API ------------------------------------------------------------------------------

    def request_otp(self) -> str:
        """Send OTPREQUEST: GSTN texts/e-mails an OTP to the taxpayer. Returns the ``txn``."""
        return self._run(self._flow_request_otp())

    def authenticate(self, otp: str | None = None) -> Session:
        """Exchange the taxpayer's OTP for a session (AUTHTOKEN) and store it.

        :param otp: the OTP; ``None`` asks the OTP provider (after sending OTPREQUEST if none
            was sent in the last 10 minutes).
        :raises OtpRequired: when ``otp`` is ``None`` and no OTP is available now.
        :raises InvalidOtp: on a wrong or expired OTP (and when the attempt limit is hit).
        :raises SessionLimitExceeded: AUTH403, too many sessions for this user with this GSP.
        """
        return self._run(self._flow_authenticate(otp))

    def ensure_session(self) -> Session:
        """A session usable for at least ``margin``: reused, re-loaded, refreshed, or consented."""
        return self._run(self._flow_session())

    def refresh(self) -> Session:
        """Refresh now (REFRESHTOKEN), whatever the token's remaining life.

        :raises OtpRequired: ``reason="refresh-refused"`` on AUTH4037 (the session is then
            marked non-refreshable), ``"expired"`` when GSTN no longer knows the token.
        """
        return self._run(self._flow_refresh())

    def logout(self) -> bool:
        """End the session (LOGOUT) and delete it from the store. ``False`` if there was none."""
        return self._run(self._flow_logout())

    def get(self, api: Api, path: str = "", *, action: str, ret_period: str | None = None,
            params: Mapping[str, Any] | None = None, version: str | None = None, txn: str | None = None) -> Any:
        """A GET data call (download): returns the decrypted, HMAC-verified JSON.

        :param api: the API family (:class:`~gspauth.types.Api`), e.g. ``Api.RETURNS``.
        :param path: appended to the API path, e.g. ``"gstr1"``.
        :param action: the GSTN action (``"B2B"``, ``"RETSTATUS"`` …), sent as a query parameter.
        :param ret_period: ``MMYYYY``; sent as header and query parameter.
        :param params: further query parameters (``ctin``, ``trans_id`` …).
        :param txn: idempotency key (default: a fresh one); retries re-send it.
        """
        return self._run(self._flow_data("GET", api, path, action, None, ret_period, params, version, txn))

    def put(self, api: Api, path: str = "", *, action: str, payload: Any = None, ret_period: str | None = None,
            params: Mapping[str, Any] | None = None, version: str | None = None, txn: str | None = None) -> Any:
        """A PUT data call (e.g. RETSAVE): ``payload`` (dict → compact JSON, or bytes) is encrypted.

        Pass a deterministic ``txn`` to make the call idempotent across restarts.
        """
        return self._run(self._flow_data("PUT", api, path, action, payload, ret_period, params, version, txn))

    def post(self, api: Api, path: str = "", *, action: str, payload: Any = None, ret_period: str | None = None,
             params: Mapping[str, Any] | None = None, version: str | None = None, txn: str | None = None) -> Any:
        """A POST data call (RETSUBMIT, RESET …); like :meth:`put`."""
        return self._run(self._flow_data("POST", api, path, action, payload, ret_period, params, version, txn))

    def request_evc_otp(self, pan: str, form_type: str = "R1") -> str:
        """EVCOTP: ask GSTN to send an EVC filing OTP to the signatory ``pan``. Returns the ``txn``."""
        return self._run(self._flow_evc_otp(pan, form_type))

    def close(self) -> None:
        """Close the HTTP connection pool (the session stays in the store)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- async


class AsyncClient(_BaseClient):
    """The asyncio twin of :class:`Client` (same parameters; ``transport`` is an async transport).

    Safe to share between tasks of one event loop. Store, lock, ledger and OTP-provider calls
    (which may block) run in worker threads.
    """

    def __init__(
        self,
        gsp: str,
        environment: str,
        credentials: Credentials | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = 30.0,
        http_client: httpx.AsyncClient | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(gsp, environment, credentials, **kwargs)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, timeout=timeout)
        self._auth = _make_auth(self)
        self._alock: asyncio.Lock | None = None

    async def _run(self, flow: _Flow[T]) -> T:
        value: Any = None
        error: BaseException | None = None
        while True:
            done, effect = _step(flow, value, error)
            if done:
                return effect  # type: ignore[no-any-return]
            value, error = None, None
            try:
                if isinstance(effect, _Send):
                    value = await self._http.send(effect.request, auth=self._auth if effect.signed else None)
                    await value.aread()
                elif isinstance(effect, _Call):
                    value = await asyncio.to_thread(effect.fn, *effect.args)
                elif isinstance(effect, _Sleep):
                    await asyncio.sleep(effect.seconds)
                elif isinstance(effect, _Lock):
                    value = await self._acquire()
                elif isinstance(effect, _Unlock):
                    await self._release(effect.handle)
                else:  # pragma: no cover
                    raise TypeError(f"unknown effect {effect!r}")
            except BaseException as exc:  # noqa: BLE001
                error = exc

    async def _acquire(self) -> tuple[concurrent.futures.ThreadPoolExecutor, Any]:
        if self._alock is None:
            self._alock = asyncio.Lock()
        await self._alock.acquire()
        # The store lock is thread-affine (an RLock + flock): enter and exit it on one
        # dedicated thread so the event loop never blocks on it.
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gspauth-lock")
        cm = self.store.lock(self.key, self.lock_timeout)
        entering = pool.submit(cm.__enter__)
        try:
            await asyncio.wrap_future(entering)
        except BaseException:
            # Cancelled while the worker waits for the lock: it may still get it. Give it back on
            # that same worker as soon as it does, or it stays held for good.
            def undo(done: concurrent.futures.Future[Any]) -> None:
                if not done.cancelled() and done.exception() is None:
                    pool.submit(cm.__exit__, None, None, None)
                pool.shutdown(wait=False)

            entering.add_done_callback(undo)
            self._alock.release()
            raise
        return pool, cm

    async def _release(self, handle: tuple[concurrent.futures.ThreadPoolExecutor, Any]) -> None:
        pool, cm = handle
        try:
            # shielded: a cancellation must not drop the queued release (the lock would stay held)
            await asyncio.shield(asyncio.wrap_future(pool.submit(cm.__exit__, None, None, None)))
        finally:
            pool.shutdown(wait=False)
            assert self._alock is not None
            self._alock.release()

    async def request_otp(self) -> str:
        """See :meth:`Client.request_otp`."""
        return await self._run(self._flow_request_otp())

    async def authenticate(self, otp: str | None = None) -> Session:
        """See :meth:`Client.authenticate`."""
        return await self._run(self._flow_authenticate(otp))

    async def ensure_session(self) -> Session:
        """See :meth:`Client.ensure_session`."""
        return await self._run(self._flow_session())

    async def refresh(self) -> Session:
        """See :meth:`Client.refresh`."""
        return await self._run(self._flow_refresh())

    async def logout(self) -> bool:
        """See :meth:`Client.logout`."""
        return await self._run(self._flow_logout())

    async def get(self, api: Api, path: str = "", *, action: str, ret_period: str | None = None,
                  params: Mapping[str, Any] | None = None, version: str | None = None,
                  txn: str | None = None) -> Any:
        """See :meth:`Client.get`."""
        return await self._run(self._flow_data("GET", api, path, action, None, ret_period, params, version, txn))

    async def put(self, api: Api, path: str = "", *, action: str, payload: Any = None,
                  ret_period: str | None = None, params: Mapping[str, Any] | None = None,
                  version: str | None = None, txn: str | None = None) -> Any:
        """See :meth:`Client.put`."""
        return await self._run(self._flow_data("PUT", api, path, action, payload, ret_period, params, version, txn))

    async def post(self, api: Api, path: str = "", *, action: str, payload: Any = None,
                   ret_period: str | None = None, params: Mapping[str, Any] | None = None,
                   version: str | None = None, txn: str | None = None) -> Any:
        """See :meth:`Client.post`."""
        return await self._run(self._flow_data("POST", api, path, action, payload, ret_period, params, version, txn))

    async def request_evc_otp(self, pan: str, form_type: str = "R1") -> str:
        """See :meth:`Client.request_evc_otp`."""
        return await self._run(self._flow_evc_otp(pan, form_type))

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _make_auth(client: _BaseClient) -> httpx.Auth:
    """The plugin's GSP-level signing (and GSP session, if any) as an :class:`httpx.Auth`."""
    from gspauth.auth import GSPAuth

    return GSPAuth(client.hooks, client.gsp, client.environment, client.credentials,
                   gstin=client.gstin, username=client.username, clock=client.now)
