"""``authenticate``: OTPREQUEST, AUTHTOKEN, REFRESHTOKEN, LOGOUT (spec §3) and EVCOTP (§3.6).

Validation order of spec §12 after the GSP layer and the client credentials: mandatory
headers (GEN5001) → ``state-cd`` (AUTH4041) → JSON body (GEN5007 / AUTH4040) → user
(AUTH4032) → API access (AUTH4037) → RSA ``app_key`` (TEC4002 / AUTH4036 / TEC4003) →
the action's own checks (OTP AUTH4034, session AUTH4033 / AUTH4038, cap AUTH403).
Session rules: spec §7 and the INFERRED list in :mod:`gspauth.emulator`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from typing import Any

from gspauth import crypto
from gspauth.emulator._http import Response, consteq, gstn_error, json_response
from gspauth.emulator.base import EmulatorBase
from gspauth.emulator.model import AppSession, Call, IssuedOtp, Taxpayer
from gspauth.errors import CryptoError
from gspauth.gstin import is_valid_gstin

__all__ = ["AuthActions"]

_PAN = re.compile(r"[A-Z]{5}[0-9]{4}[A-Z]")
_NEEDS: dict[str, tuple[str, ...]] = {
    "OTPREQUEST": ("username", "app_key"),
    "AUTHTOKEN": ("username", "app_key", "otp"),
    "REFRESHTOKEN": ("username", "app_key", "auth_token"),
    "LOGOUT": ("username", "app_key", "auth_token"),
}


class AuthActions(EmulatorBase):
    """The authentication API: OTPREQUEST, AUTHTOKEN, REFRESHTOKEN, LOGOUT and EVCOTP (spec §3, §7)."""

    def _rotate_if_due(self) -> None:
        """Overridden by the emulator: GSTN's yearly certificate rotation, when due."""

    def _authenticate(self, call: Call) -> Response:
        self._require(call, ("state-cd", "ip-usr", "txn"), body=True)
        header_gstin = call.headers.get("gstin")
        if header_gstin is not None and not is_valid_gstin(header_gstin):
            raise gstn_error("GEN5007", "gstin header is not a valid GSTIN")
        state = self._check_state_cd(call, header_gstin)
        body = self._json_body(call)
        action = body.get("action")
        if action not in _NEEDS:
            raise gstn_error("AUTH4040", f"unknown action {action!r}")
        missing = [k for k in _NEEDS[action] if not isinstance(body.get(k), str) or not body.get(k)]
        if missing:
            raise gstn_error("AUTH4040", f"{action} needs {', '.join(missing)}")
        username = body["username"]
        header_user = call.headers.get("username")
        if header_user is not None and header_user.lower() != username.lower():
            raise gstn_error("AUTH4032", "the username header differs from the body's username")
        with self._lock:
            gstin = self._by_username.get(username.lower())
            found = self._taxpayers.get(gstin) if gstin else None
            tp = dataclasses.replace(found) if found else None
        if tp is None or (header_gstin is not None and header_gstin != tp.gstin):
            raise gstn_error("AUTH4032",
                             "unknown username" if tp is None else "username is not registered for this GSTIN")
        if self.config.check_state_cd_against_user and state != tp.gstin[:2]:
            raise gstn_error("AUTH4041", f"state-cd {state!r} is not the state of this user's GSTIN")
        if not tp.api_access:
            raise gstn_error("AUTH4037", "API access is disabled on the GST portal for this GSTIN")
        if action == "REFRESHTOKEN":
            return self._refresh(call, tp, body)
        ak = self._rsa_app_key(body["app_key"])
        if action == "OTPREQUEST":
            return self._otprequest(call, tp)
        if action == "AUTHTOKEN":
            return self._authtoken(call, tp, ak, body["otp"])
        return self._logout(call, tp, ak, body["auth_token"])

    def _rsa_app_key(self, text: str) -> bytes:
        """``B64(RSA(GSTN public key, AK))`` → AK, under the certificates accepted now."""
        self._rotate_if_due()
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise gstn_error(self.config.bad_app_key_code, "app_key is not valid Base64") from None
        plain, key = self.keys.decrypt_app_key(raw, self.clock.now(), accept_retired=self.config.accept_retired_certs)
        if plain is None:
            if key is not None:
                raise gstn_error(
                    self.config.expired_cert_code,
                    f"app_key is encrypted to a GSTN certificate no longer accepted (since "
                    f"{min(key.accepted_until, key.not_valid_after):%Y-%m-%d %H:%M}Z); download the current one",
                )
            raise gstn_error(self.config.bad_app_key_code, "app_key could not be decrypted with the GSTN key")
        if self.config.require_32_byte_app_key and len(plain) != 32:
            raise gstn_error("TEC4003", f"app_key must be 32 bytes, got {len(plain)}")
        return plain

    def _otprequest(self, call: Call, tp: Taxpayer) -> Response:
        otp = self._new_otp()
        now = self.clock.timestamp()
        with self._lock:
            self._otps[(call.headers["clientid"], tp.username.lower())] = IssuedOtp(
                otp, now + self.config.otp_validity_seconds, self.config.otp_attempt_limit
            )
        self._send_otp(tp, call, "auth", otp, now)
        return json_response(200, {"status_cd": "1"})

    def _authtoken(self, call: Call, tp: Taxpayer, ak: bytes, otp_wire: str) -> Response:
        try:
            otp_given = crypto.decrypt_field(ak, otp_wire, field="otp", tolerant=self.config.tolerant_base64)
        except CryptoError:
            otp_given = None
        clientid = call.headers["clientid"]
        key = (clientid, tp.username.lower())
        now = self.clock.timestamp()
        ek = self._randbytes(32)
        token = self._hex()
        sid = "S" + self._hex(6).upper()
        with self._lock:
            pending = self._otps.get(key)
            if pending is None:
                raise gstn_error("AUTH4033", "no OTP is pending for this user with this GSP; call OTPREQUEST first")
            if now > pending.expires_at:
                del self._otps[key]
                raise gstn_error("AUTH4034", "the OTP has expired; request a new one")
            if otp_given is None or not consteq(pending.otp.encode(), otp_given):
                pending.attempts_left -= 1
                if pending.attempts_left <= 0:
                    del self._otps[key]
                    raise gstn_error("AUTH4034", "wrong OTP; attempt limit reached, request a new OTP")
                raise gstn_error("AUTH4034", f"wrong OTP; {pending.attempts_left} attempt(s) left")
            live = self._live_sessions(clientid, tp.username, now)
            if len(live) >= self.config.max_sessions_per_user:
                raise gstn_error("AUTH403", f"{len(live)} active sessions (limit {self.config.max_sessions_per_user})")
            del self._otps[key]
            life = self.config.token_life_minutes * 60
            access_end = now + tp.access_duration_hours * 3600
            s = AppSession(sid, tp.username, tp.gstin, call.gsp, call.application, clientid, ak, ek, token, now,
                        min(now + life, access_end), access_end)
            self._sessions[token] = s
            self._sessions_by_id[sid] = s
            self._store.put_session(sid, s.to_json())
        self._notify(tp, call, "AUTHTOKEN", now, "OTP consent given: API access session started")
        return self._token_reply(s, now, ak)

    def _token_reply(self, s: AppSession, now: float, ak: bytes) -> Response:
        expiry = round((s.token_expires_at - now) / 60)
        return json_response(200, {"status_cd": "1", "auth_token": s.auth_token, "expiry": expiry,
                                   "sek": crypto.encrypt_sek(ak, s.ek)})

    def _refresh(self, call: Call, tp: Taxpayer, body: dict[str, Any]) -> Response:
        now = self.clock.timestamp()
        with self._lock:
            s = self._session_by_token(body["auth_token"], call)
            if s.username.lower() != tp.username.lower():
                raise gstn_error("AUTH4033", "auth_token does not belong to this username")
            if now > s.token_expires_at + self.config.refresh_grace_minutes * 60:
                raise gstn_error("AUTH4038", "the auth token has expired; refresh before expiry or log in with OTP")
            if tp.access_duration_hours * 60 <= self.config.token_life_minutes:
                raise gstn_error("AUTH4037", f"API access duration is {tp.access_duration_hours} h, not longer than "
                                             f"the {self.config.token_life_minutes} min token life: refresh refused")
            if now >= s.access_expires_at:
                raise gstn_error("AUTH4037", "the API access duration chosen on the portal has ended for this session")
            ek_current = s.ek
        try:
            ak2 = crypto.decrypt_refresh_app_key(ek_current, body["app_key"], tolerant=self.config.tolerant_base64)
        except CryptoError:
            raise gstn_error("AUTH4036",
                             "REFRESHTOKEN app_key must be E(EK, new app key) under the current session key") from None
        ek = self._randbytes(32)
        token = self._hex()
        with self._lock:
            if self._sessions.get(body["auth_token"]) is not s:  # refreshed, revoked or logged out meanwhile
                self._session_by_token(body["auth_token"], call)
                raise gstn_error("AUTH4033", "the session changed during refresh")
            del self._sessions[s.auth_token]
            self._bury(s.auth_token, "replaced by REFRESHTOKEN")
            s.auth_token, s.ek, s.ak = token, ek, ak2
            s.token_expires_at = min(now + self.config.token_life_minutes * 60, s.access_expires_at)
            s.refresh_count += 1
            self._sessions[token] = s
            self._store.put_session(s.session_id, s.to_json())
        self._notify(tp, call, "REFRESHTOKEN", now, "Authentication token refreshed for your GSTIN")
        return self._token_reply(s, now, ak2)

    def _logout(self, call: Call, tp: Taxpayer, ak: bytes, token: str) -> Response:
        with self._lock:
            s = self._session_by_token(token, call)
            if s.username.lower() != tp.username.lower():
                raise gstn_error("AUTH4033", "auth_token does not belong to this username")
            if not consteq(s.ak, ak):
                raise gstn_error("AUTH4036", "app_key is not this session's app key")
            self._kill(s, "logged out")
        return json_response(200, {"status_cd": "1"})

    def _evcotp(self, call: Call) -> Response:
        _, gstin, _ = self._data_session(call, returns=False)
        pan = call.query.get("pan") or ""
        form_type = call.query.get("form_type") or ""
        if not _PAN.fullmatch(pan) or not form_type:
            raise gstn_error("GEN5001", "EVCOTP needs pan (AAAAA9999A) and form_type")
        otp = self._new_otp()
        now = self.clock.timestamp()
        with self._lock:
            tp = self._taxpayers[gstin]
            self._evc_otps[(gstin, pan)] = IssuedOtp(otp, now + self.config.otp_validity_seconds, 1)
        self._send_otp(tp, call, "evc", otp, now, pan=pan, form_type=form_type)
        return json_response(200, {"status_cd": "1"})
