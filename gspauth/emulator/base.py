"""State and shared steps of the emulated GSTN core (spec §2.3, §6, §7, §12).

:class:`EmulatorBase` holds the emulator's state and the checks every GSTN call goes
through (mandatory headers, ``state-cd``, the JSON body, the session of an ``auth-token``,
the request and response envelopes). :mod:`~gspauth.emulator.auth` and
:mod:`~gspauth.emulator.returns` add the actions; :class:`~gspauth.emulator.Emulator`
puts them together with the GSP layers and the public API.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import logging
import random
import re
import threading
from collections import OrderedDict
from typing import Any

from gspauth import crypto
from gspauth.emulator import defaults
from gspauth.emulator._http import Response, consteq, gstn_error, json_response
from gspauth.emulator.config import Clock, EmulatorConfig
from gspauth.emulator.gsp import VayanaAsp
from gspauth.emulator.keys import KeyRing
from gspauth.emulator.model import AppSession, Call, IssuedOtp, Taxpayer, iso
from gspauth.emulator.outbox import Outbox
from gspauth.emulator.rules import valid_gstin
from gspauth.emulator.stats import Stats
from gspauth.emulator.store import Store
from gspauth.errors import CryptoError
from gspauth.gstin import STATE_CODES, is_valid_gstin

__all__ = ["MAX_DEAD_TOKENS", "EmulatorBase"]

_logger = logging.getLogger("gspauth.emulator")

_PERIOD = re.compile(r"(0[1-9]|1[0-2])(20\d\d)")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_B64_TEXT = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
#: What the emulator's GSTIN registry knows about a GSTIN.
_GSTIN_STATUSES = ("active", "cancelled", "unregistered")
#: How many dead-token digests are remembered (in memory and reloaded at start).
MAX_DEAD_TOKENS = 50_000
_WHITESPACE = b" \t\r\n"
_encode = json.JSONEncoder(separators=(",", ":")).encode


def _token_digest(token: str) -> str:
    """How dead tokens are remembered (and persisted): never the token itself."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class EmulatorBase:
    """The emulator's state (all guarded by ``_lock``) and the steps shared by its actions."""

    config: EmulatorConfig
    clock: Clock
    state_dir: str | None
    outbox: Outbox
    keys: KeyRing

    def _init_state(self, store: Store, rng: random.Random) -> None:
        self._lock = threading.RLock()
        self._rng_lock = threading.Lock()
        self._rng = rng
        self._store = store
        self._stats = Stats()
        self._taxpayers: dict[str, Taxpayer] = {}
        self._by_username: dict[str, str] = {}  # lower-case username -> gstin
        self._sessions: dict[str, AppSession] = {}  # auth_token -> session
        self._sessions_by_id: dict[str, AppSession] = {}
        self._dead_tokens: OrderedDict[str, str] = OrderedDict()  # token_digest -> why it died
        self._otps: dict[tuple[str, str], IssuedOtp] = {}  # (clientid, username) -> pending OTP
        self._evc_otps: dict[tuple[str, str], IssuedOtp] = {}  # (gstin, pan) -> pending EVC OTP
        self._downloads: dict[str, dict[str, Any]] = {}  # FILEDET token -> pending download
        self._files: dict[str, tuple[float, str, bytes]] = {}  # file id -> (expires, name, tar.gz)
        self._vayana_txns: set[str] = set()
        self._asps: dict[str, VayanaAsp] = {}
        self._gstin_status: dict[str, str] = {}  # GSTINs not "active" -> "cancelled" | "unregistered"

    # ------------------------------------------------------------ GSTIN registry --
    def gstin_status(self, gstin: str) -> str:
        """``"active"``, ``"cancelled"`` or ``"unregistered"``: every checksum-valid GSTIN is
        registered and active unless marked otherwise (config or ``POST /_emulator/registry``);
        an invalid one is never registered."""
        if not valid_gstin(gstin):
            return "unregistered"
        with self._lock:
            return self._gstin_status.get(gstin, "active")

    def set_gstin_status(self, gstin: str, status: str) -> dict[str, str]:
        """Mark a GSTIN ``active``, ``cancelled`` or ``unregistered`` (persisted).

        :raises ValueError: unknown status, or a GSTIN that is not checksum-valid.
        """
        if status not in _GSTIN_STATUSES:
            raise ValueError(f"status must be one of {', '.join(_GSTIN_STATUSES)}")
        if not isinstance(gstin, str) or not is_valid_gstin(gstin):
            raise ValueError(f"{gstin!r} is not a valid GSTIN (format and check character)")
        with self._lock:
            if status == "active":
                self._gstin_status.pop(gstin, None)
            else:
                self._gstin_status[gstin] = status
            self._store.set_gstin_status(gstin, status, self.clock.timestamp())
        return {"gstin": gstin, "status": status}

    def gstin_registry(self) -> dict[str, str]:
        """Every GSTIN that is not ``active`` → its status."""
        with self._lock:
            return dict(sorted(self._gstin_status.items()))

    # ----------------------------------------------------------------- random --
    def _randbytes(self, n: int) -> bytes:
        with self._rng_lock:
            return self._rng.randbytes(n)

    def _randint(self, n: int) -> int:
        with self._rng_lock:
            return self._rng.randrange(n)

    def _hex(self, nbytes: int = 16) -> str:
        return self._randbytes(nbytes).hex()

    def _new_reference(self) -> str:
        return "LAPN" + f"{self._randint(10**11):011d}"

    def _new_otp(self) -> str:
        return defaults.SANDBOX_OTP if self.config.sandbox_otp else f"{self._randint(1_000_000):06d}"

    # --------------------------------------------------------------- sessions --
    def _kill(self, s: AppSession, why: str) -> None:
        """Remove a session (caller holds the lock) and remember why its token died."""
        self._sessions.pop(s.auth_token, None)
        self._sessions_by_id.pop(s.session_id, None)
        self._bury(s.auth_token, why)
        self._store.put_session(s.session_id, None)

    def _bury(self, token: str, why: str) -> None:
        digest = _token_digest(token)
        self._dead_tokens[digest] = why
        self._store.bury_token(digest, why, self.clock.timestamp())
        while len(self._dead_tokens) > MAX_DEAD_TOKENS:
            self._dead_tokens.popitem(last=False)

    def _live_sessions(self, clientid: str, username: str, now: float) -> list[AppSession]:
        """Live sessions of one user with one GSP client; expired ones are removed (caller holds the lock)."""
        out = []
        for s in list(self._sessions.values()):
            if s.clientid != clientid or s.username.lower() != username.lower():
                continue
            if now > s.token_expires_at + self.config.refresh_grace_minutes * 60:
                self._kill(s, "session expired")
                continue
            out.append(s)
        return out

    def _session_by_token(self, token: str, call: Call) -> AppSession:
        """The live session of ``token`` for this GSP client (caller holds the lock)."""
        s = self._sessions.get(token)
        if s is None:
            why = self._dead_tokens.get(_token_digest(token))
            raise gstn_error("AUTH4033", f"auth token is no longer valid: {why}" if why else "unknown auth token")
        if s.clientid != call.headers["clientid"]:
            raise gstn_error("AUTH4033", "auth token was issued to another GSP client")
        return s

    def _notify(self, tp: Taxpayer, call: Call, action: str, now: float, text: str) -> None:
        """Consent notification by SMS and e-mail, naming the GSP and the application."""
        for channel, to in (("sms", tp.mobile), ("email", tp.email)):
            self.outbox.add_notification({
                "channel": channel, "to": to, "gstin": tp.gstin, "username": tp.username, "gsp": call.gsp,
                "application": call.application, "client_id": call.headers["clientid"], "action": action,
                "time": iso(now), "text": f"{text} by {call.application} through {call.gsp} at {iso(now)}",
            })  # fmt: skip

    def _send_otp(self, tp: Taxpayer, call: Call, purpose: str, otp: str, now: float, **extra: str) -> None:
        self.outbox.add_otp({
            "gstin": tp.gstin, "username": tp.username, "purpose": purpose, **extra, "otp": otp,
            "mobile": tp.mobile, "email": tp.email, "gsp": call.gsp, "application": call.application,
            "time": iso(now), "expires_at": iso(now + self.config.otp_validity_seconds),
        })  # fmt: skip
        _logger.info("%s OTP sent for %s (%s via %s)", purpose, tp.gstin, call.application, call.gsp)

    # ----------------------------------------------------------------- checks --
    def _require(self, call: Call, names: tuple[str, ...], *, body: bool = False) -> None:
        """Mandatory headers (spec §2.3): GEN5001 naming every missing one."""
        if body and self.config.require_json_content_type:
            names = (*names, "content-type")
        missing = [n for n in names if not call.headers.get(n)]
        if missing:
            raise gstn_error("GEN5001", f"missing header(s) {', '.join(missing)}")
        ip = call.headers["ip-usr"] if "ip-usr" in names else None
        if ip is not None and self.config.require_ipv4_ip_usr and not _IPV4.fullmatch(ip):
            raise gstn_error("GEN5007", "ip-usr must be the end user's IPv4 address, e.g. 203.0.113.7")
        if body and self.config.require_json_content_type:
            ctype = call.headers["content-type"].split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                raise gstn_error("GEN5007", "Content-Type must be application/json")

    def _check_state_cd(self, call: Call, gstin: str | None) -> str:
        state = call.headers["state-cd"]
        if state not in STATE_CODES:  # every key is two digits
            raise gstn_error("AUTH4041", f"state-cd {state!r} is not a 2-digit GST state code")
        if gstin is not None and gstin[:2] != state:
            raise gstn_error("AUTH4041", f"state-cd {state!r} does not match GSTIN {gstin} (state code {gstin[:2]!r})")
        return state

    @staticmethod
    def _json_body(call: Call) -> dict[str, Any]:
        if call.parsed is not None:
            return call.parsed
        if not call.body:
            raise gstn_error("GEN5007", "the body is empty; a JSON object is expected")
        raise gstn_error("GEN5007", "the body is not a JSON object")

    # -------------------------------------------------------------- data calls --
    def _data_session(self, call: Call, *, returns: bool) -> tuple[AppSession, str, str | None]:
        """Headers, GSTIN, period and the session of a data call (spec §12, data calls)."""
        need = ("state-cd", "ip-usr", "txn", "username", "gstin", "auth-token") + (("ret_period",) if returns else ())
        self._require(call, need, body=call.method in ("PUT", "POST"))
        q = call.query
        gstin = call.headers["gstin"]
        if not is_valid_gstin(gstin):
            raise gstn_error("GEN5007", "gstin header is not a valid GSTIN")
        self._check_state_cd(call, gstin)
        if q.get("gstin") not in (None, gstin):
            raise gstn_error("AUTH158", "gstin query parameter differs from the gstin header")
        period = call.headers["ret_period"] if returns else None
        if period is not None:
            if not _PERIOD.fullmatch(period):
                raise gstn_error("GEN5007", "ret_period must be MMYYYY, e.g. 072017")
            if q.get("ret_period") not in (None, period):
                raise gstn_error("GEN5007", "ret_period query parameter differs from the ret_period header")
        now = self.clock.timestamp()
        with self._lock:
            s = self._session_by_token(call.headers["auth-token"], call)
            if s.username.lower() != call.headers["username"].lower():
                raise gstn_error("AUTH4033", "auth-token does not belong to this username")
            if s.gstin != gstin:
                raise gstn_error("AUTH158", "this session is not authorised for that GSTIN")
            if now > s.token_expires_at:
                raise gstn_error("AUTH4038", "the auth token has expired; refresh it or log in again")
        return s, gstin, period

    def _envelope(self, ek: bytes, obj: Any) -> Response:
        """A success reply with ``data`` under a fresh random REK (spec §5.1)."""
        rek = self._randbytes(32)
        data, rek_wire, mac = crypto.encrypt_response(ek, rek, _compact(obj))
        return json_response(200, {"status_cd": "1", "data": data, "rek": rek_wire, "hmac": mac})

    def _open_envelope(self, ek: bytes, body: dict[str, Any], *, mac_field: str = "hmac",
                       mac_key: bytes | None = None) -> bytes:  # fmt: skip
        """``data`` (+ HMAC) of a write → the exact decrypted Base64 text (spec §4, §12).

        Order: AES under EK with a PKCS#7 check, then the plaintext must be Base64 *text*
        (both fail → TEC4002, what a wrong key gives), then the HMAC over those exact bytes
        (→ AUTH4039). ``mac_key`` defaults to EK (RETFILE's ``sign`` uses the ``sid``).
        """
        data, mac = body.get("data"), body.get(mac_field)
        if not isinstance(data, str) or not data:
            raise gstn_error("AUTH4040", "data is missing")
        if mac is None and mac_field == "hmac" and self.config.require_hmac:
            raise gstn_error("AUTH4040", "hmac is missing")
        if mac is not None and not isinstance(mac, str):
            raise gstn_error("AUTH4040", f"{mac_field} must be a string")
        try:
            j64 = crypto.decrypt_field(ek, data, field="data", tolerant=self.config.tolerant_base64)
        except CryptoError:
            raise gstn_error("TEC4002", "data could not be decrypted with the session key") from None
        inner = _b64_text(j64, self.config.tolerant_base64)
        if inner is None:
            raise gstn_error("TEC4002", "data did not decrypt to Base64 text under the session key (wrong key?)")
        if mac is not None:
            raw_mac = _b64_text(mac.encode("ascii", "replace"), self.config.tolerant_base64)
            given = binascii.a2b_base64(raw_mac) if raw_mac else b""
            expected = crypto.hmac_sha256(mac_key if mac_key is not None else ek, j64)
            if not consteq(given, expected):
                raise gstn_error("AUTH4039", f"{mac_field} does not match the decrypted data "
                                             "(HMAC-SHA256 of the exact Base64 text)")
        return inner

    @staticmethod
    def _decode_json(b64_text: bytes) -> Any:
        """The JSON inside a Base64 text (AUTH4039 when it is not UTF-8 JSON)."""
        try:
            return json.loads(binascii.a2b_base64(b64_text))
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise gstn_error("AUTH4039", "decrypted data is not Base64 of UTF-8 JSON") from None


def _compact(obj: Any) -> bytes:
    return _encode(obj).encode()


def _b64_text(raw: bytes, tolerant: bool) -> bytes | None:
    """``raw`` (whitespace removed when ``tolerant``) if it is canonical standard Base64, else ``None``."""
    if tolerant:
        raw = raw.translate(None, _WHITESPACE)
    if len(raw) % 4 or not _B64_TEXT.fullmatch(raw):
        return None
    return raw
