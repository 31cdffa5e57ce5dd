"""The GSTN session lifecycle (spec §3, §7): choosing a usable session, and data calls.

:class:`Lifecycle` adds to the consent flows (:mod:`gspauth._consent`) the choice of a session
for each call — cached, re-loaded, refreshed under the single-flight lock, or newly consented
through the OTP provider — and the encrypted data calls, which learn a token's real lifetime
when GSTN expires it early and recover once from a token another worker replaced.
:class:`gspauth.Client` drives these flows with blocking calls and :class:`gspauth.AsyncClient`
awaits them. Nothing here touches the network, the disk or a lock directly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx

from gspauth import protocol
from gspauth._consent import ConsentFlows
from gspauth._effects import Call, Flow, Lock, Unlock
from gspauth.errors import InvalidParameter, SessionExpired, SessionInvalid, SessionLimitExceeded
from gspauth.protocol import Payload, SealedBody
from gspauth.session import RefreshIntent, Session
from gspauth.types import Api

__all__ = ["Lifecycle"]

_logger = logging.getLogger("gspauth.client")  # the client's logger: lifecycle is part of the session flow

#: Payloads and replies at least this large are encrypted/decrypted as a blocking call
#: (a worker thread in :class:`~gspauth.AsyncClient`), so a multi-megabyte chunk does not stall the loop.
_OFFLOAD_BYTES = 256 * 1024


class Lifecycle(ConsentFlows):
    """One taxpayer session's flows (shared by both clients)."""

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
            otp, pending = yield from self._obtain_otp(reason)
            try:
                return (yield from self._authenticate_locked(otp, pending, current))
            except SessionLimitExceeded as exc:
                # Unattended callers (filers) park the GSTIN instead of burning an OTP per call.
                yield from self._fire("needs-otp", outcome="AUTH403", detail="session cap reached")
                raise self.otp_required("session-cap", exc.hint) from exc
        finally:
            yield Unlock(handle)

    def _on_invalid(self, rejected: Session, exc: SessionInvalid) -> Flow[Session]:
        """GSTN said AUTH4033 for ``rejected``: reuse a newer stored session, else it was revoked
        (or replaced by a refresh whose answer was never saved)."""
        handle = yield Lock()
        try:
            stored: Session | None = yield Call(self.store.load, (self.key,))
            if stored is None or stored.auth_token == rejected.auth_token:
                intent: RefreshIntent | None = yield Call(self.store.refresh_intent, (self.key,))
                if stored is not None:
                    yield Call(self.store.delete, (self.key,))
                self.session = None
                if intent is not None:
                    detail = (f"the refresh sent at {intent.started_at:%Y-%m-%d %H:%M} UTC (txn {intent.txn}) was "
                              "answered but never saved")
                    yield from self._fire("needs-otp", outcome=exc.error_code or "AUTH4033", detail=detail)
                    raise self.otp_required("refresh-lost", detail) from exc
                yield from self._fire("revoked", outcome=exc.error_code or "AUTH4033",
                                      detail="GSTN no longer accepts the auth token")
                raise self.otp_required("revoked", exc.error_code) from exc
            self.session = stored  # another worker refreshed or re-consented meanwhile
        finally:
            yield Unlock(handle)
        # Outside the lock (the async lock is not re-entrant): refresh it if it is in the margin.
        return (yield from self.ensure_session())

    def data(self, method: str, api: Api, path: str, action: str, payload: Payload | SealedBody | None,
             ret_period: str | None,
             params: Mapping[str, object] | None, version: str | None, txn: str | None) -> Flow[Any]:
        if not action or not isinstance(action, str):
            raise InvalidParameter("action is required (e.g. 'RETSAVE', 'B2B')", "action")
        if ret_period is not None:
            protocol.validate_ret_period(ret_period)
        txn = protocol.validate_txn(txn) if txn is not None else protocol.new_txn()
        body: bytes | None = None
        sealed: SealedBody | None = None
        if method == "GET" or payload is None:
            pass
        elif isinstance(payload, SealedBody):
            sealed = payload  # writes its own request body (an ingest chunk)
        else:
            body = protocol.encode_payload(payload)  # serialised once: every retry sends equal bytes
        session = yield from self.ensure_session()
        recovered = False
        while True:
            current = session
            # Encrypted once per session key, not per attempt (AES-ECB: every retry sends equal
            # bytes). A large payload is encrypted off the event loop (a worker thread for the
            # async client; the crypto core releases the GIL).
            content: bytes | None = None
            if sealed is not None:
                content = yield Call(sealed.body, (current.sek, action))
            elif body is not None:
                if len(body) >= _OFFLOAD_BYTES:
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
                    _logger.warning("GSTN expired the token of %s after %d min, earlier than the stated %d min; "
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
            if isinstance(data, str) and len(data) >= _OFFLOAD_BYTES:
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
