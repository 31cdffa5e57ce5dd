"""GSTN crypto: one API, two backends (Rust ``gspauth._native`` and pure Python).

Every function here gives the same bytes and raises the same exceptions on either
backend. Which one is active: :data:`BACKEND` (``"native"`` or ``"python"``) and
:data:`BACKEND_REASON`; force one with ``GSPAUTH_BACKEND=native|python``.

Keys and payloads are ``bytes``; Base64 wire fields (``data``, ``hmac``, ``rek``,
``sek``, ``otp``, ``app_key``) are ``str``. Decryption is strict about Base64 unless
``tolerant=True`` (accepts embedded whitespace, as some servers emit it).

Typical client flow (spec §4)::

    ak = generate_app_key()
    body_app_key = encrypt_app_key(load_certificate(cert_bytes), ak)
    body_otp = encrypt_otp(ak, "575757")
    ek = decrypt_sek(ak, reply["sek"])
    data, mac = encrypt_request(ek, json_bytes)
    payload = decrypt_response(ek, reply["data"], reply["rek"], reply.get("hmac"))
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from gspauth.crypto import _backend
from gspauth.crypto._python import MAX_PAYLOAD_BYTES, MAX_WIRE_CHARS
from gspauth.crypto._rsa import CertificateSource, GSTNCertificate, certificate_from, encrypt_app_key, load_certificate
from gspauth.errors import InvalidInput, InvalidKey

__all__ = [
    "BACKEND",
    "BACKEND_REASON",
    "MAX_PAYLOAD_BYTES",
    "MAX_WIRE_CHARS",
    "CertificateSource",
    "GSTNCertificate",
    "certificate_from",
    "decrypt_field",
    "decrypt_refresh_app_key",
    "decrypt_rek",
    "decrypt_request",
    "decrypt_response",
    "decrypt_responses",
    "decrypt_sek",
    "encrypt_app_key",
    "encrypt_field",
    "encrypt_otp",
    "encrypt_refresh_app_key",
    "encrypt_request",
    "encrypt_request_evc",
    "encrypt_requests",
    "encrypt_response",
    "encrypt_sek",
    "generate_app_key",
    "hmac_sha256",
    "load_certificate",
]

_impl = _backend.impl
#: ``"native"`` (Rust) or ``"python"``.
BACKEND: str = _backend.NAME
#: Why that backend was chosen, for ``gspauth doctor``.
BACKEND_REASON: str = _backend.REASON

# Functions whose public signature equals the backend's are bound directly:
# no wrapper frame on the hot path.
#: ``hmac_sha256(key, message) -> bytes``: the 32-byte HMAC-SHA256 (any key length, RFC 2104).
hmac_sha256 = _impl.hmac_sha256
#: ``encrypt_field(key, plaintext) -> str``: ``E(key, plaintext)``, the Base64 AES-256-ECB ciphertext.
encrypt_field = _impl.encrypt_field
#: ``encrypt_request(sek, payload) -> (data, hmac)``: JSON bytes → the request envelope (spec §4).
encrypt_request = _impl.encrypt_request
#: ``encrypt_response(sek, rek, payload) -> (data, rek, hmac)``: server side of :func:`decrypt_response`.
encrypt_response = _impl.encrypt_response


def generate_app_key() -> bytes:
    """A fresh 32-byte app key from the OS CSPRNG."""
    return secrets.token_bytes(32)


def decrypt_field(key: bytes, text: str, *, field: str = "value", tolerant: bool = False) -> bytes:
    """``D(key, text)``: Base64 → AES-256-ECB decrypt → unpad."""
    return _impl.decrypt_field(key, text, field, tolerant)


def encrypt_otp(app_key: bytes, otp: str) -> str:
    """``E(AK, utf8(otp))`` for AUTHTOKEN (24 Base64 characters for 6 digits)."""
    if not isinstance(otp, str):
        raise TypeError(f"otp must be str, not {type(otp).__name__}")
    if not otp.isascii() or not otp.isdigit():
        raise InvalidInput("otp must be a string of ASCII digits", "otp")
    return _impl.encrypt_field(app_key, otp.encode("ascii"))


def decrypt_sek(app_key: bytes, sek: str, *, tolerant: bool = False) -> bytes:
    """The session key EK from an AUTHTOKEN/REFRESHTOKEN reply's ``sek``."""
    return _impl.decrypt_key(app_key, sek, "sek", tolerant)


def encrypt_sek(app_key: bytes, sek: bytes) -> str:
    """Server side: ``sek = E(AK, EK)``."""
    return _impl.encrypt_field(app_key, sek)


def decrypt_rek(sek: bytes, rek: str, *, tolerant: bool = False) -> bytes:
    """The per-response key REK from a reply's ``rek``."""
    return _impl.decrypt_key(sek, rek, "rek", tolerant)


def encrypt_refresh_app_key(sek: bytes, new_app_key: bytes) -> str:
    """REFRESHTOKEN ``app_key`` = ``E(EK_current, AK')`` (AES, not RSA; spec §3.4)."""
    if not isinstance(new_app_key, bytes) or len(new_app_key) != 32:
        got = len(new_app_key) if isinstance(new_app_key, bytes) else type(new_app_key).__name__
        raise InvalidKey(f"new app_key must be 32 bytes, got {got}", "app_key")
    return _impl.encrypt_field(sek, new_app_key)


def decrypt_refresh_app_key(sek: bytes, app_key: str, *, tolerant: bool = False) -> bytes:
    """Server side of :func:`encrypt_refresh_app_key`."""
    return _impl.decrypt_key(sek, app_key, "app_key", tolerant)


def encrypt_request_evc(sek: bytes, sid: str, payload: bytes) -> tuple[str, str]:
    """EVC filing envelope ``(data, sign)`` with ``sid = "<PAN>|<EVC OTP>"`` (spec §3.6)."""
    if not isinstance(sid, str):
        raise TypeError(f"sid must be str, not {type(sid).__name__}")
    try:
        raw = sid.encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone surrogate (e.g. text decoded with errors="surrogateescape") has no UTF-8 form.
        raise InvalidInput(f"sid is not valid text: a lone surrogate at position {exc.start} "
                           "(give the PAN and EVC OTP as plain text)", "sid") from None
    return _impl.encrypt_request_evc(sek, raw, payload)


def encrypt_requests(sek: bytes, payloads: Sequence[bytes], *, threads: int = 0) -> list[tuple[str, str]]:
    """Batch :func:`encrypt_request`: many JSON payloads under one key → ``[(data, hmac), …]``.

    ``threads``: 0 = automatic (the Rust backend goes parallel above a measured
    threshold), 1 = this thread only, N = at most N threads. The Python backend
    ignores it. A failing record raises with ``index`` set; nothing is returned.
    """
    return _impl.encrypt_request_many(sek, payloads, threads)


def decrypt_response(sek: bytes, data: str, rek: str, hmac: str | None = None, *, tolerant: bool = False) -> bytes:
    """Response envelope → JSON bytes; the HMAC (under REK) is verified when present."""
    return _impl.decrypt_response(sek, data, rek, hmac, tolerant)


def decrypt_responses(
    sek: bytes,
    items: Sequence[tuple[str, str, str | None]],
    *,
    tolerant: bool = False,
    threads: int = 0,
) -> list[bytes]:
    """Batch :func:`decrypt_response`; each item is ``(data, rek, hmac_or_None)``."""
    return _impl.decrypt_response_many(sek, items, tolerant, threads)


def decrypt_request(sek: bytes, data: str, hmac: str | None = None, *, tolerant: bool = False) -> bytes:
    """Server side: request envelope → JSON bytes, HMAC checked over the exact Base64 text."""
    return _impl.decrypt_request(sek, data, hmac, tolerant)
