"""Pure builders and parsers for GSTN's taxpayer API (spec §2-§6): no sockets, no disk, no clock.

Everything the client sends is built here and everything it receives is parsed
here, so the wire format can be tested without a server:

* :func:`auth_headers` / :func:`data_headers` — the §2.3 headers (``clientid`` and
  ``client-secret`` only when the credentials carry them, ``state-cd`` derived from
  the GSTIN and checked, ``ip-usr``, ``txn``, ``ret_period`` validated as ``MMYYYY``);
* :func:`otp_request`, :func:`auth_token_request`, :func:`refresh_token_request`,
  :func:`logout_request`, :func:`evc_otp_params` — the auth action bodies (§3),
  with the app key / OTP encrypted through :mod:`gspauth.crypto`;
* :func:`parse_token_grant` — AUTHTOKEN/REFRESHTOKEN replies → :class:`TokenGrant`
  with the decrypted session key;
* :func:`parse_reply` — ``status_cd`` (``"1"``/``"0"`` as string or number) and the
  §6 error shape → the typed exception from :func:`gspauth.codes.error_for`;
* :func:`wrap_payload` / :func:`unwrap_payload` — the encrypted data envelope (§4).

No function here logs, and no exception message contains a key, token, OTP or payload.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, runtime_checkable

from gspauth import codes, crypto
from gspauth.errors import GSPError, InvalidInput, InvalidParameter, RequestRejected, ServerError
from gspauth.gstin import validate_gstin, validate_state_code

__all__ = [
    "AuthCall",
    "CredentialsLike",
    "Payload",
    "SealedBody",
    "TokenGrant",
    "auth_headers",
    "auth_token_request",
    "data_headers",
    "derive_txn",
    "encode_payload",
    "evc_otp_params",
    "logout_request",
    "new_txn",
    "otp_request",
    "parse_reply",
    "parse_token_grant",
    "refresh_token_request",
    "unwrap_payload",
    "unwrap_reply",
    "validate_ip",
    "validate_ret_period",
    "validate_txn",
    "wrap_payload",
    "wrap_payload_content",
]

_JSON_CONTENT_TYPE = "application/json"


@runtime_checkable
class SealedBody(Protocol):
    """A payload that writes its own encrypted request body ``{"action","data","hmac"}`` under
    a session key — the ingest's chunks do, in one buffer, in Rust (:mod:`gspauth.ingest`)."""

    def body(self, sek: bytes, action: str, /) -> bytes: ...


#: What a write call encrypts: JSON bytes as they are, or a mapping/list serialised as compact JSON.
Payload: TypeAlias = "Mapping[str, Any] | list[Any] | bytes"

_TXN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RET_PERIOD = re.compile(r"(0[1-9]|1[0-2])(20[1-9][0-9])")
_IPV4 = re.compile(r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}")
_COMPACT = (",", ":")


class CredentialsLike(Protocol):
    """What the builders read from credentials (``gspauth.types.Credentials`` fits).

    Both attributes are optional on the object: when absent or empty the
    corresponding header is not sent (newer GSPs add their own).
    """

    client_id: str | None
    client_secret: str | None


# --------------------------------------------------------------------------- values


def new_txn() -> str:
    """A fresh transaction id: 32 lower-case hex characters (uuid4)."""
    return uuid.uuid4().hex


def derive_txn(*parts: str | bytes) -> str:
    """A deterministic transaction id from ``parts`` (e.g. GSTIN, period, content hash).

    Used as an idempotency key: the same parts always give the same ``txn``, so a
    re-sent RETSAVE is recognised by GSTN (and the emulator) instead of filed twice.
    32 hex characters, like :func:`new_txn`.
    """
    h = hashlib.sha256()
    for part in parts:
        raw = part.encode("utf-8") if isinstance(part, str) else bytes(part)
        h.update(len(raw).to_bytes(8, "big"))
        h.update(raw)
    return h.hexdigest()[:32]


def validate_txn(txn: str) -> str:
    """Check a caller-supplied ``txn``: 1-64 characters of ``[A-Za-z0-9_-]``."""
    if not isinstance(txn, str) or not _TXN.fullmatch(txn):
        raise InvalidParameter("txn must be 1-64 characters of letters, digits, '-' or '_'", "txn")
    return txn


def validate_ret_period(ret_period: str) -> str:
    """Check a return period ``MMYYYY`` (``"072017"``); return it unchanged."""
    if not isinstance(ret_period, str) or not _RET_PERIOD.fullmatch(ret_period):
        raise InvalidParameter(
            f"ret_period {ret_period!r} must be MMYYYY (month 01-12, then a year 2010-2099), e.g. '072017'",
            "ret_period",
        )
    return ret_period


def validate_ip(ip_usr: str) -> str:
    """Check the ``ip-usr`` header: the end user's IPv4 address in dotted form."""
    if not isinstance(ip_usr, str) or not _IPV4.fullmatch(ip_usr):
        raise InvalidParameter(f"ip-usr {ip_usr!r} must be an IPv4 address such as '203.0.113.7'", "ip_usr")
    return ip_usr


# --------------------------------------------------------------------------- headers


def _base_headers(
    *,
    gstin: str,
    ip_usr: str,
    txn: str,
    credentials: object | None,
    state_cd: str | None,
) -> dict[str, str]:
    gstin = validate_gstin(gstin)
    if state_cd is not None:
        validate_state_code(state_cd, gstin)  # AUTH4041 caught before sending
    headers: dict[str, str] = {}
    client_id = getattr(credentials, "client_id", None) if credentials is not None else None
    client_secret = getattr(credentials, "client_secret", None) if credentials is not None else None
    if client_id:
        headers["clientid"] = str(client_id)
    if client_secret:
        headers["client-secret"] = str(client_secret)
    headers["state-cd"] = state_cd or gstin[:2]  # gstin is validated: its state code
    headers["ip-usr"] = validate_ip(ip_usr)
    headers["txn"] = validate_txn(txn)
    headers["gstin"] = gstin
    headers["Content-Type"] = _JSON_CONTENT_TYPE
    headers["accept"] = _JSON_CONTENT_TYPE
    return headers


def auth_headers(
    *,
    gstin: str,
    username: str,
    ip_usr: str,
    txn: str,
    credentials: object | None = None,
    state_cd: str | None = None,
    auth_token: str | None = None,
) -> dict[str, str]:
    """Headers for an ``authenticate`` call (spec §2.3, auth column).

    :param gstin: the taxpayer's GSTIN; ``state-cd`` is derived from it.
    :param state_cd: an explicit state code; checked against the GSTIN (AUTH4041 otherwise).
    :param credentials: object with optional ``client_id`` / ``client_secret``.
    :param auth_token: only for EVCOTP.
    :raises InvalidGSTIN, InvalidStateCode, InvalidParameter: on a bad value, before anything is sent.
    """
    if not username:
        raise InvalidParameter("username (the GST portal username) is required", "username")
    headers = _base_headers(gstin=gstin, ip_usr=ip_usr, txn=txn, credentials=credentials, state_cd=state_cd)
    headers["username"] = username
    if auth_token:
        headers["auth-token"] = auth_token
    return headers


def data_headers(
    *,
    gstin: str,
    username: str,
    auth_token: str,
    ip_usr: str,
    txn: str,
    ret_period: str | None = None,
    credentials: object | None = None,
    state_cd: str | None = None,
) -> dict[str, str]:
    """Headers for a data call (spec §2.3, data column); ``ret_period`` validated as ``MMYYYY``."""
    if not auth_token:
        raise InvalidParameter("a data call needs an auth token: authenticate first", "auth_token")
    headers = auth_headers(gstin=gstin, username=username, ip_usr=ip_usr, txn=txn, credentials=credentials,
                           state_cd=state_cd, auth_token=auth_token)
    if ret_period is not None:
        headers["ret_period"] = validate_ret_period(ret_period)
    return headers


# --------------------------------------------------------------------------- auth bodies


@dataclass(frozen=True)
class AuthCall:
    """One prepared auth action: what to send, plus the key material it committed to.

    ``app_key`` is the plain key the reply's ``sek`` will be encrypted under; it is
    excluded from ``repr``.
    """

    action: str
    body: dict[str, str] = field(repr=False)
    app_key: bytes | None = field(default=None, repr=False)

    def content(self) -> bytes:
        """The body as compact UTF-8 JSON bytes."""
        return json.dumps(self.body, separators=_COMPACT).encode("utf-8")


def otp_request(
    *,
    username: str,
    certificate: crypto.GSTNCertificate,
    app_key: bytes,
    allow_expired: bool = False,
    now: Any = None,
) -> AuthCall:
    """OTPREQUEST body: ``{action, username, app_key = B64(RSA(pub, AK))}`` (spec §3.2)."""
    wire = crypto.encrypt_app_key(certificate, app_key, allow_expired=allow_expired, now=now)
    return AuthCall("OTPREQUEST", {"action": "OTPREQUEST", "username": username, "app_key": wire}, app_key)


def auth_token_request(
    *,
    username: str,
    certificate: crypto.GSTNCertificate,
    app_key: bytes,
    otp: str,
    allow_expired: bool = False,
    now: Any = None,
) -> AuthCall:
    """AUTHTOKEN body with ``otp = E(AK, otp)`` under the same AK as ``app_key`` (spec §3.3)."""
    otp = otp.strip() if isinstance(otp, str) else otp
    wire = crypto.encrypt_app_key(certificate, app_key, allow_expired=allow_expired, now=now)
    body = {"action": "AUTHTOKEN", "username": username, "app_key": wire, "otp": crypto.encrypt_otp(app_key, otp)}
    return AuthCall("AUTHTOKEN", body, app_key)


def refresh_token_request(*, username: str, auth_token: str, sek: bytes, new_app_key: bytes) -> AuthCall:
    """REFRESHTOKEN body: ``app_key = E(EK_current, AK')`` (AES, not RSA; spec §3.4)."""
    body = {
        "action": "REFRESHTOKEN",
        "username": username,
        "auth_token": auth_token,
        "app_key": crypto.encrypt_refresh_app_key(sek, new_app_key),
    }
    return AuthCall("REFRESHTOKEN", body, new_app_key)


def logout_request(
    *,
    username: str,
    auth_token: str,
    certificate: crypto.GSTNCertificate,
    app_key: bytes,
    allow_expired: bool = False,
    now: Any = None,
) -> AuthCall:
    """LOGOUT body with the session's AK RSA-encrypted again (spec §3.5)."""
    wire = crypto.encrypt_app_key(certificate, app_key, allow_expired=allow_expired, now=now)
    body = {"action": "LOGOUT", "username": username, "auth_token": auth_token, "app_key": wire}
    return AuthCall("LOGOUT", body, app_key)


def evc_otp_params(*, gstin: str, pan: str, form_type: str = "R1") -> dict[str, str]:
    """Query parameters of the EVCOTP GET (spec §3.1, §3.6)."""
    pan = pan.strip().upper()
    if not re.fullmatch(r"[A-Z]{5}[0-9]{4}[A-Z]", pan):
        raise InvalidParameter("pan must be a 10-character PAN such as 'ABCDE1234F'", "pan")
    return {"action": "EVCOTP", "gstin": validate_gstin(gstin), "pan": pan, "form_type": form_type}


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class TokenGrant:
    """A parsed AUTHTOKEN / REFRESHTOKEN reply: the token, its stated life and the session key."""

    auth_token: str = field(repr=False)
    expiry_minutes: int
    sek: bytes = field(repr=False)
    app_key: bytes = field(repr=False)


def _parse_json(content: bytes, *, status_code: int | None = None, gsp: str | None = None) -> Any:
    """Decode a reply body as JSON; a non-JSON body becomes a typed error (never echoed)."""
    try:
        return json.loads(content) if content else None
    except (ValueError, UnicodeDecodeError):
        if status_code is not None and status_code >= 500:
            raise ServerError(f"HTTP {status_code} with a non-JSON body", status_code=status_code, gsp=gsp,
                              hint="an upstream failure; retry later") from None
        raise GSPError(f"reply is not JSON (HTTP {status_code})", status_code=status_code, gsp=gsp) from None


def _reply_ok(reply: Any) -> bool:
    """``True`` when ``status_cd`` is 1 (string ``"1"`` or the number 1)."""
    if not isinstance(reply, Mapping):
        return False
    cd = reply.get("status_cd")
    return cd in (1, "1", True)


def _error_from_reply(reply: Any, status_code: int | None, gsp: str | None) -> GSPError:
    code: str | None = None
    message: str | None = None
    if isinstance(reply, Mapping):
        err = reply.get("error")
        if isinstance(err, Mapping):
            code = err.get("error_cd") or err.get("error_code") or err.get("code")
            message = err.get("message") or err.get("msg")
        elif isinstance(err, str):
            message = err
        code = code or reply.get("error_cd") or reply.get("error_code")
        message = message or reply.get("message")
    return codes.error_for(
        str(code) if code is not None else None,
        str(message) if message is not None else None,
        status_code=status_code,
        gsp=gsp,
    )


def parse_reply(
    status_code: int,
    content: bytes,
    *,
    gsp: str | None = None,
    map_error: Callable[[], BaseException | None] | None = None,
) -> dict[str, Any]:
    """Check a reply and return its JSON object, or raise the typed error.

    Order: a GSP-level mapping first (``map_error`` — e.g. ``lambda: hooks.map_error(gsp,
    response)`` — returning an exception or ``None``); then a GSTN §6 error object
    (``status_cd`` 0 with ``error.error_cd``), typed by :func:`gspauth.codes.error_for`;
    then the HTTP status (5xx → :class:`~gspauth.errors.ServerError`, 429 →
    :class:`~gspauth.errors.RateLimited`).
    """
    if map_error is not None:
        mapped = map_error()
        if mapped is not None:
            raise mapped
    reply = _parse_json(content, status_code=status_code, gsp=gsp)
    if 200 <= status_code < 300 and _reply_ok(reply):
        return dict(reply)
    if isinstance(reply, Mapping) and ("error" in reply or "status_cd" in reply or "error_cd" in reply):
        err = _error_from_reply(reply, status_code, gsp)
        if err.error_code is None and 200 <= status_code < 300:
            err = GSPError("reply has status_cd 0 and no error code", status_code=status_code, gsp=gsp)
        raise err
    raise codes.error_for(None, f"unexpected reply (HTTP {status_code})", status_code=status_code, gsp=gsp)


def parse_token_grant(reply: Mapping[str, Any], app_key: bytes) -> TokenGrant:
    """An AUTHTOKEN/REFRESHTOKEN success reply → :class:`TokenGrant` (``EK = D(AK, sek)``)."""
    token = reply.get("auth_token")
    sek = reply.get("sek")
    expiry = reply.get("expiry")
    if not isinstance(token, str) or not token or not isinstance(sek, str):
        raise RequestRejected("token reply lacks auth_token or sek", error_code=None)
    try:
        minutes = int(expiry)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RequestRejected("token reply has no integer 'expiry' (minutes)") from None
    if minutes <= 0:
        raise RequestRejected("token reply has a non-positive 'expiry'")
    return TokenGrant(auth_token=token, expiry_minutes=minutes, sek=crypto.decrypt_sek(app_key, sek, tolerant=True),
                      app_key=app_key)


# --------------------------------------------------------------------------- data envelope


def encode_payload(payload: Payload) -> bytes:
    """A payload as JSON bytes: ``bytes`` pass through, anything else → compact UTF-8 JSON."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    text = json.dumps(payload, separators=_COMPACT, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"payload is not valid text: a lone surrogate in its JSON at character {exc.start} "
                           "(decode the source file as UTF-8 without errors='surrogateescape')", "payload") from None


def wrap_payload(sek: bytes, action: str, payload: Mapping[str, Any] | list[Any] | bytes) -> dict[str, str]:
    """The request body ``{action, data, hmac}`` for a write call (spec §4, §5.2)."""
    data, mac = crypto.encrypt_request(sek, encode_payload(payload))
    return {"action": action, "data": data, "hmac": mac}


def wrap_payload_content(sek: bytes, action: str, payload: Mapping[str, Any] | list[Any] | bytes) -> bytes:
    """:func:`wrap_payload` as the request body's JSON bytes, built without re-encoding ``data``.

    ``data`` and ``hmac`` are Base64 text (nothing to escape), so the body is assembled
    directly; ``json.dumps`` of a multi-megabyte ``data`` string would cost a few ms per call.
    """
    data, mac = crypto.encrypt_request(sek, encode_payload(payload))
    head = json.dumps({"action": action}, separators=_COMPACT, ensure_ascii=False)[:-1].encode("utf-8")
    return b"".join((head, b',"data":"', data.encode("ascii"), b'","hmac":"', mac.encode("ascii"), b'"}'))


def unwrap_payload(sek: bytes, reply: Mapping[str, Any]) -> bytes:
    """Decrypt a reply's ``data`` with its ``rek`` (HMAC verified when present) → JSON bytes."""
    data, rek = reply.get("data"), reply.get("rek")
    if not isinstance(data, str) or not isinstance(rek, str):
        raise RequestRejected("encrypted reply lacks 'data' or 'rek'")
    mac = reply.get("hmac")
    return crypto.decrypt_response(sek, data, rek, mac if isinstance(mac, str) else None, tolerant=True)


def unwrap_reply(sek: bytes, reply: Mapping[str, Any]) -> Any:
    """A success reply's decrypted JSON; a reply without ``data`` is returned as it is."""
    if "data" not in reply:
        return {k: v for k, v in reply.items() if k != "status_cd"}
    return json.loads(unwrap_payload(sek, reply))
