"""The GSTN session lifecycle (spec §3, §7), written once as effect-yielding flows.

:class:`Lifecycle` holds one client's configuration and state and offers each operation as
a generator of :mod:`gspauth._effects`; :class:`gspauth.Client` drives them with blocking
calls and :class:`gspauth.AsyncClient` awaits them. Nothing here touches the network, the
disk or a lock directly.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from gspauth import crypto, protocol
from gspauth._effects import Call, Flow, Lock, Send, Sleep, Unlock
from gspauth.errors import (
    ApiAccessDenied,
    GSPError,
    InvalidParameter,
    OtpRequired,
    RetryableError,
    SessionExpired,
    SessionInvalid,
    SessionLimitExceeded,
)
from gspauth.otp import OtpRequest
from gspauth.protocol import Payload
from gspauth.retry import RetryPolicy, network_error, retry_after
from gspauth.session import Session, SessionKey
from gspauth.types import Api, SessionEvent, SessionEventKind

if TYPE_CHECKING:
    from gspauth._requests import RequestBuilder
    from gspauth.ledger import ConsentLedger
    from gspauth.otp import OtpProvider
    from gspauth.store import SessionStore

__all__ = ["OTP_VALIDITY", "Lifecycle"]

log = logging.getLogger("gspauth.client")

#: How long an OTP sent by OTPREQUEST is assumed to stay valid (GSTN does not say; the
#: emulator uses 10 minutes). Within it, ``authenticate()`` does not send another OTPREQUEST.
OTP_VALIDITY = _dt.timedelta(minutes=10)
#: Payloads and replies at least this large are encrypted/decrypted as a blocking call
#: (a worker thread in :class:`~gspauth.AsyncClient`), so a multi-megabyte chunk does not stall the loop.
OFFLOAD_BYTES = 256 * 1024

_OTP_REASONS = {
    "no-session": "no GSTN session for GSTIN {gstin}: taxpayer OTP consent is needed",
    "refresh-refused": "GSTN refused to refresh the session of GSTIN {gstin} (AUTH4037)",
    "expired": "the session of GSTIN {gstin} expired beyond refresh",
    "revoked": "the session of GSTIN {gstin} was revoked or replaced (AUTH4033)",
    "logged-out": "the session of GSTIN {gstin} was logged out",
    "not-refreshable": "the session of GSTIN {gstin} cannot be refreshed",
    "session-cap": "GSTN refused a new session for GSTIN {gstin}: too many sessions (AUTH403)",
}


class Lifecycle:
    """One taxpayer session's configuration, state and flows (shared by both clients)."""

    def __init__(
        self,
        *,
        key: SessionKey,
        requests: RequestBuilder,
        certificate: crypto.GSTNCertificate,
        store: SessionStore,
        otp_provider: OtpProvider | None,
        ledger: ConsentLedger | None,
        margin: _dt.timedelta,
        auto_refresh: bool,
        retry: RetryPolicy,
        clock: Callable[[], _dt.datetime],
        allow_expired_certificate: bool,
        lock_timeout: float | None,
        end_gsp_session: Callable[[], httpx.Request | None],
    ) -> None:
        self.key = key
        self.requests = requests
        self.certificate = certificate
        self.store = store
        self.otp_provider = otp_provider
        self.ledger = ledger
        self.margin = margin
        self.auto_refresh = auto_refresh
        self.retry = retry
        self.clock = clock
        self.allow_expired_certificate = allow_expired_certificate
        self.lock_timeout = lock_timeout
        self._end_gsp_session = end_gsp_session
        self.session: Session | None = None
        self._pending_app_key: bytes | None = None
        self._otp_sent_at: _dt.datetime | None = None
        self._logged_out = False

    @property
    def gsp(self) -> str:
        return self.key.gsp

    @property
    def gstin(self) -> str:
        return self.key.gstin

    @property
    def username(self) -> str:
        return self.key.username

    # -- events ------------------------------------------------------------------------------

    def _event(self, kind: SessionEventKind, *, txn: str | None = None, outcome: str = "ok",
               detail: str | None = None, expires_at: _dt.datetime | None = None) -> SessionEvent:
        return SessionEvent(kind=kind, gsp=self.gsp, environment=self.key.environment, gstin=self.gstin,
                            username=self.username, at=self.clock(), txn=txn, ip_usr=self.requests.ip_usr,
                            outcome=outcome, detail=detail, expires_at=expires_at)

    def emit(self, event: SessionEvent) -> None:
        """Tell the plugins' observers and the ledger. Blocking; never raises."""
        # Observers and the ledger must not turn a successful auth into a failure.
        log.info("session %s: %s %s (%s)", event.kind, self.key.id, event.outcome, event.detail or "")
        self.requests.hooks.session_event(event)
        if self.ledger is not None:
            try:
                self.ledger.record(event)
            except Exception:  # noqa: BLE001 - a ledger failure is logged, the session stands
                log.error("could not write %s to the consent ledger", event.kind, exc_info=True)

    def _fire(self, kind: SessionEventKind, **kw: Any) -> Flow[None]:
        yield Call(self.emit, (self._event(kind, **kw),))

    # -- sending with retries ------------------------------------------------------------------

    def _send(self, make: Callable[[], httpx.Request], what: str) -> Flow[dict[str, Any]]:
        """Send ``make()`` until a non-transient answer; every attempt carries the same txn."""
        policy = self.retry
        attempt = 0
        while True:
            attempt += 1
            request = make()
            response: httpx.Response | None = None
            try:
                response = yield Send(request)
                assert response is not None
                log.debug("%s %s txn=%s -> HTTP %s (attempt %d)", request.method, what,
                          request.headers.get("txn"), response.status_code, attempt)
                reply = response
                return protocol.parse_reply(reply.status_code, reply.content, gsp=self.gsp,
                                            map_error=lambda: self.requests.hooks.map_error(self.gsp, reply))
            except (httpx.TransportError, RetryableError) as exc:
                wait: float | None = None
                if isinstance(exc, RetryableError):
                    ra = retry_after(response)
                    if ra is not None:
                        exc.retry_after = ra
                    wait = exc.retry_after
                    reason = exc.error_code or f"HTTP {exc.status_code}"
                else:
                    reason = type(exc).__name__
                if attempt >= policy.attempts or (wait is not None and wait > policy.max_retry_after):
                    if isinstance(exc, httpx.TransportError):  # a typed gspauth error, host and hint
                        raise network_error(exc, gsp=self.gsp, attempts=attempt) from exc
                    raise
                delay = policy.delay(attempt, wait)
                log.warning("%s txn=%s failed transiently (%s); retry %d/%d in %.2fs with the same txn",
                            what, request.headers.get("txn"), reason, attempt, policy.attempts - 1, delay)
                yield Sleep(delay)

    # -- OTP -----------------------------------------------------------------------------------

    def otp_required(self, reason: str, message: str | None = None) -> OtpRequired:
        how = (
            f"call authenticate(otp=...) with the OTP sent to the taxpayer's registered mobile/email, "
            f"run `gspauth login --gsp {self.gsp} --gstin {self.gstin} --username {self.username}`, "
            "or configure an OTP provider"
        )
        text = _OTP_REASONS.get(reason, "a new OTP consent is needed for GSTIN {gstin}").format(gstin=self.gstin)
        if message:
            text = f"{text}: {message}"
        return OtpRequired(f"{text}; {how}", gstin=self.gstin, reason=reason)

    def request_otp(self) -> Flow[str]:
        txn = protocol.new_txn()
        app_key = crypto.generate_app_key()
        call = protocol.otp_request(username=self.username, certificate=self.certificate, app_key=app_key,
                                    allow_expired=self.allow_expired_certificate, now=self.clock())
        try:
            yield from self._send(lambda: self.requests.auth(call, txn), "OTPREQUEST")
        except GSPError as exc:
            yield from self._fire("failed", txn=txn, outcome=exc.error_code or type(exc).__name__,
                                  detail="OTPREQUEST")
            raise
        self._pending_app_key = app_key
        self._otp_sent_at = self.clock()
        yield from self._fire("otp-requested", txn=txn)
        return txn

    def _ask_otp(self, provider: OtpProvider) -> str | None:
        # Blocking: may prompt or poll. Runs in a worker thread for the async client.
        request = OtpRequest(self.gsp, self.key.environment, self.gstin, self.username,
                             self._otp_sent_at or self.clock())
        otp = provider.get_otp(request)
        return otp.strip() if otp else None

    def _obtain_otp(self, reason: str) -> Flow[str]:
        """Send OTPREQUEST (unless one is still fresh), then ask the provider; park if it has none."""
        provider = self.otp_provider
        if provider is None:
            yield from self._fire("needs-otp", outcome=reason, detail="no OTP provider configured")
            raise self.otp_required(reason)
        now = self.clock()
        if self._otp_sent_at is None or now - self._otp_sent_at > OTP_VALIDITY:
            yield from self.request_otp()
        otp: str | None = yield Call(self._ask_otp, (provider,))
        if not otp:
            yield from self._fire("needs-otp", outcome=reason, detail="the OTP provider has no OTP yet")
            raise self.otp_required(reason, "the OTP provider has none yet (OTPREQUEST was sent)")
        return otp

    # -- auth, refresh, logout (callers hold the lock) -------------------------------------------

    def _authenticate_locked(self, otp: str, previous: Session | None) -> Flow[Session]:
        app_key = self._pending_app_key or crypto.generate_app_key()
        txn = protocol.new_txn()
        call = protocol.auth_token_request(username=self.username, certificate=self.certificate, app_key=app_key,
                                           otp=otp, allow_expired=self.allow_expired_certificate, now=self.clock())
        try:
            reply = yield from self._send(lambda: self.requests.auth(call, txn), "AUTHTOKEN")
        except GSPError as exc:
            yield from self._fire("failed", txn=txn, outcome=exc.error_code or type(exc).__name__,
                                  detail="AUTHTOKEN")
            raise
        grant = protocol.parse_token_grant(reply, app_key)
        observed = previous.observed_lifetime_minutes if previous is not None else None
        session = Session.new(self.key, auth_token=grant.auth_token, app_key=app_key, sek=grant.sek,
                              expiry_minutes=grant.expiry_minutes, now=self.clock(), txn=txn,
                              ip_usr=self.requests.ip_usr, observed_lifetime_minutes=observed)
        yield Call(self.store.save, (session,))
        self.session = session
        self._pending_app_key = None
        self._otp_sent_at = None
        self._logged_out = False
        yield from self._fire("consent", txn=txn, expires_at=session.effective_expires_at)
        yield from self._fire("established", txn=txn, expires_at=session.effective_expires_at)
        return session

    def _refresh_locked(self, session: Session) -> Flow[Session]:
        """REFRESHTOKEN; AUTH4037 → non-refreshable + OtpRequired; expired/unknown → OtpRequired."""
        txn = protocol.new_txn()
        # AK' = the session's AK: LOGOUT proves the AK later, and every GSTN client in the
        # wild reuses it (spec §3.4), so this is the choice every server accepts.
        call = protocol.refresh_token_request(username=self.username, auth_token=session.auth_token,
                                              sek=session.sek, new_app_key=session.app_key)
        try:
            reply = yield from self._send(lambda: self.requests.auth(call, txn), "REFRESHTOKEN")
        except ApiAccessDenied as exc:
            stale = session.not_refreshable()
            yield Call(self.store.save, (stale,))
            self.session = stale
            yield from self._fire("needs-otp", txn=txn, outcome=exc.error_code or "AUTH4037",
                                  detail="refresh refused")
            raise self.otp_required("refresh-refused", exc.hint) from exc
        except SessionInvalid as exc:
            yield Call(self.store.delete, (self.key,))
            self.session = None
            yield from self._fire("needs-otp", txn=txn, outcome=exc.error_code or type(exc).__name__,
                                  detail="refresh rejected: session expired or unknown")
            raise self.otp_required("expired", exc.error_code) from exc
        except GSPError as exc:
            yield from self._fire("failed", txn=txn, outcome=exc.error_code or type(exc).__name__,
                                  detail="REFRESHTOKEN")
            raise
        grant = protocol.parse_token_grant(reply, session.app_key)
        fresh = session.refreshed(auth_token=grant.auth_token, sek=grant.sek, expiry_minutes=grant.expiry_minutes,
                                  app_key=session.app_key, now=self.clock())
        yield Call(self.store.save, (fresh,))
        self.session = fresh
        yield from self._fire("refreshed", txn=txn, expires_at=fresh.effective_expires_at)
        return fresh

    def ensure_session(self, *, stale_token: str | None = None) -> Flow[Session]:
        """A usable session: cached, stored, refreshed, or (with an OTP provider) newly consented.

        ``stale_token``: a token GSTN just rejected as expired; a stored session with that
        token is refreshed even if its clock says it is still usable.
        """
        session = self.session
        if session is not None and stale_token is None and session.usable(self.clock(), self.margin):
            return session
        if session is None:
            loaded: Session | None = yield Call(self.store.load, (self.key,))
            if loaded is not None and stale_token is None and loaded.usable(self.clock(), self.margin):
                self.session = loaded
                return loaded
        handle = yield Lock()
        try:
            # Re-load under the lock: another thread or process may have refreshed meanwhile.
            current: Session | None = yield Call(self.store.load, (self.key,))
            if current is not None and current.usable(self.clock(), self.margin) and (
                stale_token is None or current.auth_token != stale_token
            ):
                self.session = current
                return current
            if current is None:
                reason = "logged-out" if self._logged_out else "no-session"
            elif not current.refreshable:
                reason = "refresh-refused"
            elif not self.auto_refresh:
                reason = "expired"
            else:
                return (yield from self._refresh_locked(current))
            otp = yield from self._obtain_otp(reason)
            try:
                return (yield from self._authenticate_locked(otp, current))
            except SessionLimitExceeded as exc:
                # Unattended callers (filers) park the GSTIN instead of burning an OTP per call.
                yield from self._fire("needs-otp", outcome="AUTH403", detail="session cap reached")
                raise self.otp_required("session-cap", exc.hint) from exc
        finally:
            yield Unlock(handle)

    # -- public flows ------------------------------------------------------------------------------

    def authenticate(self, otp: str | None) -> Flow[Session]:
        handle = yield Lock()
        try:
            previous: Session | None = yield Call(self.store.load, (self.key,))
            if otp is None:
                otp = yield from self._obtain_otp("no-session")
            return (yield from self._authenticate_locked(otp, previous))
        finally:
            yield Unlock(handle)

    def refresh(self) -> Flow[Session]:
        handle = yield Lock()
        try:
            session: Session | None = yield Call(self.store.load, (self.key,))
            if session is None:
                yield from self._fire("needs-otp", outcome="no-session")
                raise self.otp_required("no-session")
            if not session.refreshable:
                yield from self._fire("needs-otp", outcome="refresh-refused")
                raise self.otp_required("refresh-refused", "refresh was refused earlier (AUTH4037)")
            return (yield from self._refresh_locked(session))
        finally:
            yield Unlock(handle)

    def logout(self) -> Flow[bool]:
        handle = yield Lock()
        try:
            session: Session | None = yield Call(self.store.load, (self.key,))
            if session is None:
                self.session = None
                return False
            txn = protocol.new_txn()
            call = protocol.logout_request(username=self.username, auth_token=session.auth_token,
                                           certificate=self.certificate, app_key=session.app_key,
                                           allow_expired=self.allow_expired_certificate, now=self.clock())
            outcome = "ok"
            try:
                yield from self._send(lambda: self.requests.auth(call, txn), "LOGOUT")
            except SessionInvalid as exc:  # already gone on GSTN's side: forget it all the same
                outcome = exc.error_code or "SessionInvalid"
            yield Call(self.store.delete, (self.key,))
            self.session = None
            self._logged_out = True
            yield from self._end_gsp_level_session()
            yield from self._fire("ended", txn=txn, outcome=outcome, detail="logout")
            return True
        finally:
            yield Unlock(handle)

    def _end_gsp_level_session(self) -> Flow[None]:
        """End the GSP's own session (TaxPro GetKey, JWT logins), if the plugin has one.

        Best effort: GSTN's LOGOUT already succeeded, so a failure here is logged, not raised.
        """
        request = self._end_gsp_session()
        if request is None:
            return
        try:
            yield Send(request, signed=False)
        except (httpx.HTTPError, GSPError) as exc:
            log.info("GSP-level logout for %s failed (%s); the GSP session will expire on its own",
                     self.gsp, type(exc).__name__)

    def _on_invalid(self, rejected: Session, exc: SessionInvalid) -> Flow[Session]:
        """GSTN said AUTH4033 for ``rejected``: reuse a newer stored session, else it was revoked."""
        handle = yield Lock()
        try:
            stored: Session | None = yield Call(self.store.load, (self.key,))
            if stored is None or stored.auth_token == rejected.auth_token:
                if stored is not None:
                    yield Call(self.store.delete, (self.key,))
                self.session = None
                yield from self._fire("revoked", outcome=exc.error_code or "AUTH4033",
                                      detail="GSTN no longer accepts the auth token")
                raise self.otp_required("revoked", exc.error_code) from exc
            self.session = stored  # another worker refreshed or re-consented meanwhile
        finally:
            yield Unlock(handle)
        # Outside the lock (the async lock is not re-entrant): refresh it if it is in the margin.
        return (yield from self.ensure_session())

    def data(self, method: str, api: Api, path: str, action: str, payload: Payload | None, ret_period: str | None,
             params: Mapping[str, object] | None, version: str | None, txn: str | None) -> Flow[Any]:
        if not action or not isinstance(action, str):
            raise InvalidParameter("action is required (e.g. 'RETSAVE', 'B2B')", "action")
        if ret_period is not None:
            protocol.validate_ret_period(ret_period)
        txn = protocol.validate_txn(txn) if txn is not None else protocol.new_txn()
        body: bytes | None = None
        if method != "GET" and payload is not None:
            body = protocol.encode_payload(payload)  # serialised once: every retry sends equal bytes
        session = yield from self.ensure_session()
        recovered = False
        while True:
            current = session
            # Encrypted once per session key, not per attempt (AES-ECB: every retry sends equal
            # bytes). A large payload is encrypted off the event loop (a worker thread for the
            # async client; the crypto core releases the GIL).
            content: bytes | None = None
            if body is not None:
                if len(body) >= OFFLOAD_BYTES:
                    content = yield Call(protocol.wrap_payload_content, (current.sek, action, body))
                else:
                    content = protocol.wrap_payload_content(current.sek, action, body)

            def make(current: Session = current, content: bytes | None = content) -> httpx.Request:
                return self.requests.data(method=method, api=api, path=path, action=action,
                                          auth_token=current.auth_token, ret_period=ret_period, params=params,
                                          version=version, txn=txn, content=content)

            try:
                reply = yield from self._send(make, action)
            except SessionExpired:
                if recovered:
                    raise
                recovered = True
                # GSTN says expired although our clock said usable: learn the real lifetime.
                now = self.clock()
                if now < current.effective_expires_at:
                    lived = max(1, int((now - current.issued_at).total_seconds() // 60))
                    learned = current.with_observed_lifetime(lived)
                    log.warning("GSTN expired the token of %s after %d min, earlier than the stated %d min; "
                                "using the observed lifetime from now on", self.key.id, lived, current.expiry_minutes)
                    yield Call(self._save_if_current, (learned,))
                    self.session = learned
                session = yield from self.ensure_session(stale_token=current.auth_token)
                continue
            except SessionInvalid as exc:
                if recovered:
                    raise
                recovered = True
                session = yield from self._on_invalid(current, exc)
                continue
            data = reply.get("data")
            if isinstance(data, str) and len(data) >= OFFLOAD_BYTES:
                return (yield Call(protocol.unwrap_reply, (current.sek, reply)))
            return protocol.unwrap_reply(current.sek, reply)

    def evc_otp(self, pan: str, form_type: str) -> Flow[str]:
        """EVCOTP: GSTN sends a filing OTP to the signatory with ``pan`` (spec §3.6)."""
        params = protocol.evc_otp_params(gstin=self.gstin, pan=pan, form_type=form_type)
        session = yield from self.ensure_session()
        txn = protocol.new_txn()
        yield from self._send(lambda: self.requests.evc_otp(auth_token=session.auth_token, params=params, txn=txn),
                              "EVCOTP")
        return txn

    def _save_if_current(self, session: Session) -> None:
        with self.store.lock(self.key, self.lock_timeout):
            stored = self.store.load(self.key)
            if stored is None or stored.auth_token == session.auth_token:
                self.store.save(session)
