"""Consent flows: OTPREQUEST, AUTHTOKEN, REFRESHTOKEN and LOGOUT (spec §3, §7).

The two-step OTP is durable: an accepted OTPREQUEST is recorded in the session store
(:class:`~gspauth.session.PendingOtp`: GSP, environment, GSTIN, username, time, txn and the app
key it committed to — never the OTP), so whichever process later holds the OTP — the CLI run
after ``--no-prompt``, a filer's next run, another worker — goes straight to AUTHTOKEN. A new
OTPREQUEST is sent only when none is pending, the pending one has lapsed or used its
attempts, or the caller asks (``resend``): a new one would void the OTP the taxpayer holds.

Everything checkable locally (certificate validity, the store's key and writability) is
checked before OTPREQUEST and again before AUTHTOKEN. If GSTN grants a session that then
cannot be saved, the session is logged out again (best effort), so it does not hold one of the
taxpayer's capped session slots, and the ledger records why.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time

from gspauth import crypto, protocol
from gspauth._effects import Call, Flow, Lock, Send, Unlock
from gspauth._flowcore import FlowCore
from gspauth.errors import ApiAccessDenied, GSPError, InvalidOtp, NetworkError, SessionInvalid
from gspauth.otp import OtpProvider, OtpRequest
from gspauth.session import OTP_ATTEMPTS, OTP_VALIDITY, PendingOtp, RefreshIntent, Session

__all__ = ["ConsentFlows"]

_logger = logging.getLogger("gspauth.client")  # the client's logger: consent is part of the session flow


class ConsentFlows(FlowCore):
    """The flows that create, extend and end a GSTN session."""

    # -- local checks ------------------------------------------------------------------------

    def _preflight(self) -> Flow[None]:
        """Everything that can fail locally, before asking GSTN for an OTP or a session."""
        if not self.allow_expired_certificate:
            self.certificate.check_valid(self.clock())
        yield Call(self.store.preflight)

    # -- the pending OTP request ----------------------------------------------------------------

    def pending_otp(self) -> Flow[PendingOtp | None]:
        """The store's pending OTP request for this session, if still usable (a lapsed one is dropped)."""
        pending: PendingOtp | None = yield Call(self.store.load_pending_otp, (self.key,))
        if pending is not None and not pending.valid(self.clock()):
            yield Call(self.store.delete_pending_otp, (self.key,))
            return None
        return pending

    def request_otp(self) -> Flow[PendingOtp]:
        """OTPREQUEST, recorded in the store as the pending request."""
        yield from self._preflight()
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
        now = self.clock()
        pending = PendingOtp(self.key, txn, requested_at=now, expires_at=now + OTP_VALIDITY, app_key=app_key,
                             requested_wall=time.time())
        yield Call(self.store.save_pending_otp, (pending,))
        yield from self._fire("otp-requested", txn=txn, expires_at=pending.expires_at)
        return pending

    def _ask_otp(self, provider: OtpProvider, pending: PendingOtp) -> str | None:
        # Blocking: may prompt or poll. Runs in a worker thread for the async client.
        request = OtpRequest(self.gsp, self.key.environment, self.gstin, self.username, pending.requested_at,
                             not_before=pending.requested_wall, valid_until=pending.expires_at,
                             attempts_left=pending.attempts_left)
        otp = provider.get_otp(request)
        return otp.strip() if otp else None

    def _obtain_otp(self, reason: str, *, resend: bool = False) -> Flow[tuple[str, PendingOtp]]:
        """The pending request (made now if there is none, or ``resend``) and the provider's OTP
        for it; :class:`OtpRequired` when there is no provider or it has no OTP yet."""
        provider = self.otp_provider
        pending = yield from self.pending_otp()
        if provider is None:
            yield from self._fire("needs-otp", outcome=reason, detail="no OTP provider configured")
            raise self.otp_required(reason, pending=pending)
        if pending is None or resend:
            pending = yield from self.request_otp()
        otp: str | None = yield Call(self._ask_otp, (provider, pending))
        if not otp:
            yield from self._fire("needs-otp", outcome=reason, detail="the OTP provider has no OTP yet")
            raise self.otp_required(reason, "the OTP provider has none yet", pending=pending)
        return otp, pending

    # -- AUTHTOKEN ----------------------------------------------------------------------------------

    def _otp_refused(self, exc: InvalidOtp | SessionInvalid, pending: PendingOtp | None) -> Flow[InvalidOtp]:
        """The :class:`InvalidOtp` to raise, with the attempts left and a hint that fits them."""
        resend = f"request a new OTP: `gspauth login --gstin {self.gstin} --resend` (or authenticate(resend=True))"
        if isinstance(exc, SessionInvalid):
            # AUTH4033 at AUTHTOKEN: GSTN holds no OTP for this user (lapsed, used up, or replaced).
            yield Call(self.store.delete_pending_otp, (self.key,))
            refused = InvalidOtp("GSTN has no OTP pending for this user: it lapsed, used up its attempts, or a newer "
                                 "OTPREQUEST replaced it", error_code=exc.error_code, status_code=exc.status_code,
                                 hint=resend, gsp=self.gsp)
            refused.attempts_left = 0
            return refused
        if pending is None:
            exc.hint = (f"no OTP request of this session is pending in the store (it lapsed after "
                        f"{int(OTP_VALIDITY.total_seconds() // 60)} minutes, or was made elsewhere): {resend}")
            return exc
        tried = pending.tried()
        lapsed = "expired" in (exc.message or "").lower() or not tried.valid(self.clock())
        if lapsed or tried.attempts_left == 0 or "limit" in (exc.message or "").lower():
            yield Call(self.store.delete_pending_otp, (self.key,))
            exc.attempts_left = 0
            why = "has lapsed" if lapsed and tried.attempts_left else f"has used its {OTP_ATTEMPTS} attempts"
            exc.hint = f"this OTP request {why}: {resend}"
        else:
            yield Call(self.store.save_pending_otp, (tried,))
            exc.attempts_left = tried.attempts_left
            exc.hint = (f"re-enter the OTP sent to the taxpayer ({tried.attempts_left} attempt(s) left before a new "
                        "OTP must be requested)")
        return exc

    def _authenticate_locked(self, otp: str, pending: PendingOtp | None, previous: Session | None) -> Flow[Session]:
        yield from self._preflight()  # again: the OTP may have taken minutes to arrive
        app_key = pending.app_key if pending is not None else crypto.generate_app_key()
        txn = protocol.new_txn()
        call = protocol.auth_token_request(username=self.username, certificate=self.certificate, app_key=app_key,
                                           otp=otp, allow_expired=self.allow_expired_certificate, now=self.clock())
        try:
            reply = yield from self._send(lambda: self.requests.auth(call, txn), "AUTHTOKEN")
        except (InvalidOtp, SessionInvalid) as exc:
            refused = yield from self._otp_refused(exc, pending)
            yield from self._fire("failed", txn=txn, outcome=exc.error_code or type(exc).__name__,
                                  detail="AUTHTOKEN: OTP refused")
            raise refused from (exc if refused is not exc else None)
        except GSPError as exc:
            yield from self._fire("failed", txn=txn, outcome=exc.error_code or type(exc).__name__,
                                  detail="AUTHTOKEN")
            raise
        grant = protocol.parse_token_grant(reply, app_key)
        observed = previous.observed_lifetime_minutes if previous is not None else None
        session = Session.new(self.key, auth_token=grant.auth_token, app_key=app_key, sek=grant.sek,
                              expiry_minutes=grant.expiry_minutes, now=self.clock(), txn=txn,
                              ip_usr=self.requests.ip_usr, observed_lifetime_minutes=observed)
        try:
            yield Call(self._keep_consent, (session,))
        except Exception as exc:
            yield from self._give_back(session, txn, exc)
            raise
        self.session = session
        self._logged_out = False
        yield from self._fire("consent", txn=txn, expires_at=session.effective_expires_at)
        yield from self._fire("established", txn=txn, expires_at=session.effective_expires_at)
        return session

    def _keep_consent(self, session: Session) -> None:
        self.store.save(session)
        self.store.save_target(self.target)
        self.store.delete_pending_otp(self.key)

    def _give_back(self, session: Session, txn: str, exc: Exception) -> Flow[None]:
        """GSTN granted ``session`` but it could not be saved: log it out so it does not hold one
        of the taxpayer's capped session slots for hours, and record why. Best effort."""
        call = protocol.logout_request(username=self.username, auth_token=session.auth_token,
                                       certificate=self.certificate, app_key=session.app_key,
                                       allow_expired=self.allow_expired_certificate, now=self.clock())
        logout_txn = protocol.new_txn()
        try:
            yield from self._send(lambda: self.requests.auth(call, logout_txn), "LOGOUT")
            outcome = "logged out again at GSTN"
        except Exception as logout_exc:  # noqa: BLE001 - best effort: the save error is what the caller sees
            outcome = f"LOGOUT failed too ({type(logout_exc).__name__}): the session lapses on its own"
        _logger.error("the new session of %s could not be saved (%s); %s", self.key.id, type(exc).__name__, outcome)
        yield from self._fire("failed", txn=txn, outcome=type(exc).__name__,
                              detail=f"consent granted but not saved; {outcome}")

    def authenticate(self, otp: str | None, *, resend: bool = False) -> Flow[Session]:
        """AUTHTOKEN with ``otp`` (or the provider's), answering the pending request if there is one."""
        handle = yield Lock()
        try:
            yield from self._preflight()
            previous: Session | None = yield Call(self.store.load, (self.key,))
            pending: PendingOtp | None
            if otp is None:
                otp, pending = yield from self._obtain_otp("no-session", resend=resend)
            else:
                pending = yield from self.pending_otp()
            return (yield from self._authenticate_locked(otp, pending, previous))
        finally:
            yield Unlock(handle)

    # -- REFRESHTOKEN -------------------------------------------------------------------------------

    def _refresh_locked(self, session: Session) -> Flow[Session]:
        """REFRESHTOKEN; AUTH4037 → non-refreshable + OtpRequired; expired/unknown → OtpRequired."""
        txn = protocol.new_txn()
        earlier: RefreshIntent | None = yield Call(self.store.refresh_intent, (self.key,))
        yield Call(self.store.begin_refresh, (self.key, RefreshIntent(txn, self.clock())))
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
            reason = "refresh-lost" if earlier is not None else "expired"
            detail = (f"an earlier refresh (txn {earlier.txn}, {earlier.started_at:%Y-%m-%d %H:%M} UTC) was never "
                      "saved" if earlier is not None else "refresh rejected: session expired or unknown")
            yield from self._fire("needs-otp", txn=txn, outcome=exc.error_code or type(exc).__name__, detail=detail)
            raise self.otp_required(reason, detail if earlier is not None else exc.error_code) from exc
        except GSPError as exc:
            if not isinstance(exc, NetworkError):  # GSTN answered, so the token was not replaced
                yield Call(self.store.save, (session,))  # (saving forgets the refresh intent)
            yield from self._fire("failed", txn=txn, outcome=exc.error_code or type(exc).__name__,
                                  detail="REFRESHTOKEN")
            raise
        grant = protocol.parse_token_grant(reply, session.app_key)
        fresh = session.refreshed(auth_token=grant.auth_token, sek=grant.sek, expiry_minutes=grant.expiry_minutes,
                                  app_key=session.app_key, now=self.clock())
        yield Call(self.store.save, (fresh,))  # also forgets the refresh intent
        self.session = fresh
        yield from self._fire("refreshed", txn=txn, expires_at=fresh.effective_expires_at)
        return fresh

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

    def refresh_if_due(self, ahead: _dt.timedelta) -> Flow[tuple[Session | None, bool]]:
        """Refresh if the stored session would enter its margin within ``ahead`` (the keeper's
        rule); ``(session, refreshed?)``. Under the single-flight lock, after re-loading: a
        session another worker refreshed meanwhile is not refreshed again. A session GSTN
        refused to refresh earlier raises :class:`OtpRequired` without contacting GSTN."""
        handle = yield Lock()
        try:
            session: Session | None = yield Call(self.store.load, (self.key,))
            if session is None:
                raise self.otp_required("no-session")
            if not session.refreshable:
                raise self.otp_required("refresh-refused", "GSTN refused to refresh it earlier (AUTH4037)")
            if session.effective_expires_at - self.margin > self.clock() + ahead:
                self.session = session
                return session, False
            return (yield from self._refresh_locked(session)), True
        finally:
            yield Unlock(handle)

    # -- LOGOUT ---------------------------------------------------------------------------------------

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
        except Exception as exc:  # noqa: BLE001 - best effort, logged
            _logger.info("GSP-level logout for %s failed (%s); the GSP session will expire on its own",
                     self.gsp, type(exc).__name__)
