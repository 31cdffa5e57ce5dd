"""Pure-Python reference backend of the GSTN payload crypto (spec §0, §4).

This module *is* the contract: ``gspauth._native`` (Rust) exposes the same
functions with the same positional-only signatures and must return the same
bytes and raise the same exception types *with the same messages* for every
input. ``tests/property`` checks that with hypothesis.

Conventions
-----------
* Keys and payloads are ``bytes``; Base64 wire fields are ``str``.
  A ``str`` key or a ``bytes`` wire field raises ``TypeError``.
* ``E(k, pt) = B64(AES-256-ECB-PKCS7(k, pt))`` and ``D`` its inverse.
* Strict Base64: standard alphabet, ``=`` padding required, no whitespace;
  non-zero trailing bits are accepted (as Java's decoder does).
  ``tolerant=True`` first removes ASCII whitespace (space, TAB, CR, LF).
* Check order for a wire field: type → size limit → Base64 → empty →
  block length → AES/PKCS#7.  Batch calls raise the error of the lowest
  failing index, with ``index`` set and the message prefixed ``record {i}: ``.
"""

from __future__ import annotations

import binascii
import hmac as _hmac
import operator
import sys
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gspauth.errors import (
    DecryptionError,
    IntegrityError,
    InvalidBase64,
    InvalidInput,
    InvalidKey,
)

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MAX_WIRE_CHARS",
    "aes_decrypt",
    "aes_encrypt",
    "decrypt_field",
    "decrypt_key",
    "decrypt_request",
    "decrypt_response",
    "decrypt_response_many",
    "encrypt_field",
    "encrypt_request",
    "encrypt_request_evc",
    "encrypt_request_many",
    "encrypt_response",
    "hmac_sha256",
]

#: Largest plaintext payload (JSON bytes) accepted for encryption: 32 MiB.
MAX_PAYLOAD_BYTES = 32 * 1024 * 1024
#: Largest Base64 wire field accepted for decryption: 64 Mi characters.
MAX_WIRE_CHARS = 64 * 1024 * 1024

_KEY_LEN = 32
_BLOCK = 16
_WHITESPACE = {ord(" "): None, ord("\t"): None, ord("\r"): None, ord("\n"): None}
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_HAS_STRICT_MODE = sys.version_info >= (3, 11)


# --- helpers -----------------------------------------------------------------


def _check_key(key: bytes, name: str = "key") -> None:
    if not isinstance(key, bytes):
        raise TypeError(f"{name} must be bytes, not {type(key).__name__}")
    if len(key) != _KEY_LEN:
        raise InvalidKey(f"{name} must be 32 bytes, got {len(key)}", name)


def _check_payload(payload: bytes, field: str = "payload") -> None:
    if not isinstance(payload, bytes):
        raise TypeError(f"{field} must be bytes, not {type(payload).__name__}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidInput(f"{field} is larger than {MAX_PAYLOAD_BYTES} bytes", field)


def _check_threads(threads: int) -> None:
    # Not used here, but checked as the native backend does (any int >= 0).
    if operator.index(threads) < 0:
        raise InvalidInput("threads must be >= 0 (0 = automatic)", "threads")


def _a2b_strict(raw: bytes) -> bytes:
    """Strict Base64 decode that is the same on every Python version.

    ``binascii.a2b_base64(strict_mode=True)`` does not exist before 3.11, and from
    3.11 to 3.12.3 it accepts surplus ``=`` after a complete group (``"AAAA=="``),
    which 3.12.4+ rejects. Canonical padding is checked here first (cheap C-level
    scans), so only the alphabet is left to binascii.
    """
    body = raw.rstrip(b"=")
    if len(raw) % 4 or len(raw) - len(body) > 2 or b"=" in body:
        raise binascii.Error("non-canonical Base64 padding")
    if _HAS_STRICT_MODE:
        return binascii.a2b_base64(raw, strict_mode=True)
    if body.translate(None, _ALPHABET):  # pragma: no cover - Python 3.10 only
        raise binascii.Error("Only base64 data is allowed")
    return binascii.a2b_base64(raw)  # pragma: no cover - Python 3.10 only


def _b64e(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


def _b64d(text: str, field: str, tolerant: bool) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"{field} must be str, not {type(text).__name__}")
    if len(text) > MAX_WIRE_CHARS:
        raise InvalidInput(f"{field} is longer than {MAX_WIRE_CHARS} characters", field)
    if tolerant:
        text = text.translate(_WHITESPACE)
    try:
        return _a2b_strict(text.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        hint = "" if tolerant else "; pass tolerant=True to accept embedded whitespace"
        raise InvalidBase64(f"{field} is not valid Base64{hint}", field) from None


def _pad(data: bytes) -> bytes:
    n = _BLOCK - len(data) % _BLOCK
    return data + bytes((n,)) * n


def _unpad(data: bytes, field: str) -> bytes:
    n = data[-1]
    # Both conditions are evaluated before branching so the check does not
    # leak *which* byte was wrong; ECB has no IV, so no oracle helps anyway.
    bad = (n == 0) | (n > _BLOCK) | (data[-n:] != bytes((n,)) * n)
    if bad:
        raise DecryptionError(f"{field} did not decrypt: bad padding (wrong key or corrupted data)", field)
    return data[:-n]


class _Aes:
    """One AES-256-ECB context reused for every record under the same key."""

    __slots__ = ("_dec", "_enc")

    def __init__(self, key: bytes) -> None:
        cipher = Cipher(algorithms.AES(key), modes.ECB())
        self._enc = cipher.encryptor()
        self._dec = cipher.decryptor()

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._enc.update(_pad(plaintext))

    def decrypt(self, ciphertext: bytes, field: str) -> bytes:
        if not ciphertext:
            raise InvalidInput(f"{field} is empty", field)
        if len(ciphertext) % _BLOCK:
            raise DecryptionError(
                f"{field} did not decrypt: length {len(ciphertext)} is not a multiple of 16 (truncated?)",
                field,
            )
        return _unpad(self._dec.update(ciphertext), field)

    def __repr__(self) -> str:  # never show key material
        return "<_Aes [secure]>"


def _hmac_b64(key: bytes, msg: bytes) -> str:
    return _b64e(_hmac.digest(key, msg, "sha256"))


def _verify_hmac(key: bytes, msg: bytes, mac: str, field: str, tolerant: bool) -> None:
    expected = _b64d(mac, field, tolerant)
    if not _hmac.compare_digest(expected, _hmac.digest(key, msg, "sha256")):
        raise IntegrityError(f"{field} does not match the decrypted payload (tampered data or wrong key)", field)


def _inner_json(j64: bytes, field: str) -> bytes:
    # The decrypted plaintext is the Base64 *text* of the JSON (spec §4).
    try:
        return _a2b_strict(j64)
    except binascii.Error:
        raise InvalidBase64(f"{field} decrypted to text that is not valid Base64", field) from None


def _in_batch(exc: Exception, index: int) -> Exception:
    if isinstance(exc, InvalidKey):  # a key error is not about a record
        return exc
    if isinstance(exc, TypeError):
        return TypeError(f"record {index}: {exc}")
    assert isinstance(exc, (InvalidInput, InvalidBase64, DecryptionError, IntegrityError))
    return type(exc)(f"record {index}: {exc}", exc.field, index)


# --- primitives --------------------------------------------------------------


def aes_encrypt(key: bytes, plaintext: bytes, /) -> bytes:
    """AES-256-ECB with PKCS#7 padding. Empty plaintext gives one padding block."""
    _check_key(key)
    _check_payload(plaintext, "plaintext")
    return _Aes(key).encrypt(plaintext)


def aes_decrypt(key: bytes, ciphertext: bytes, /) -> bytes:
    """Inverse of :func:`aes_encrypt`; raises :class:`DecryptionError` on bad padding."""
    _check_key(key)
    if not isinstance(ciphertext, bytes):
        raise TypeError(f"ciphertext must be bytes, not {type(ciphertext).__name__}")
    if len(ciphertext) > MAX_WIRE_CHARS:
        raise InvalidInput(f"ciphertext is larger than {MAX_WIRE_CHARS} bytes", "ciphertext")
    return _Aes(key).decrypt(ciphertext, "ciphertext")


def hmac_sha256(key: bytes, message: bytes, /) -> bytes:
    """HMAC-SHA256 (32 bytes). Any key length is valid, as in RFC 2104."""
    if not isinstance(key, bytes) or not isinstance(message, bytes):
        raise TypeError("key and message must be bytes")
    return _hmac.digest(key, message, "sha256")


def encrypt_field(key: bytes, plaintext: bytes, /) -> str:
    """``E(key, plaintext)``: Base64 of the AES ciphertext (OTP, refresh ``app_key``…)."""
    return _b64e(aes_encrypt(key, plaintext))


def decrypt_field(key: bytes, text: str, field: str, tolerant: bool, /) -> bytes:
    """``D(key, text)``. ``field`` names the wire field in error messages."""
    _check_key(key)
    return _Aes(key).decrypt(_b64d(text, field, tolerant), field)


def decrypt_key(key: bytes, text: str, field: str, tolerant: bool, /) -> bytes:
    """``D(key, text)`` that must yield a 32-byte key (``sek``, ``rek``, refresh ``app_key``)."""
    raw = decrypt_field(key, text, field, tolerant)
    if len(raw) != _KEY_LEN:
        raise DecryptionError(
            f"{field} decrypted to {len(raw)} bytes, expected a 32-byte key (wrong key?)", field
        )
    return raw


# --- request envelope (client → GSTN) ---------------------------------------


def _request(aes: _Aes, mac_key: bytes, payload: bytes) -> tuple[str, str]:
    """``(B64(AES(j64)), B64(HMAC(mac_key, j64)))`` with ``j64 = B64(payload)``."""
    _check_payload(payload)
    if not payload:
        raise InvalidInput("payload is empty", "payload")
    j64 = binascii.b2a_base64(payload, newline=False)
    return _b64e(aes.encrypt(j64)), _hmac_b64(mac_key, j64)


def encrypt_request(key: bytes, payload: bytes, /) -> tuple[str, str]:
    """JSON bytes → ``(data, hmac)`` under the session key EK (spec §4)."""
    _check_key(key)
    return _request(_Aes(key), key, payload)


def encrypt_request_many(key: bytes, payloads: Sequence[bytes], threads: int, /) -> list[tuple[str, str]]:
    """Batch form of :func:`encrypt_request`. ``threads`` (int >= 0) is ignored here (0 = auto)."""
    _check_key(key)
    _check_threads(threads)
    aes = _Aes(key)
    out = []
    for i, payload in enumerate(payloads):
        try:
            out.append(_request(aes, key, payload))
        except (TypeError, InvalidInput) as exc:
            raise _in_batch(exc, i) from None
    return out


def encrypt_request_evc(key: bytes, sid: bytes, payload: bytes, /) -> tuple[str, str]:
    """EVC filing (spec §3.6): ``(data, sign)``, ``sign = B64(HMAC(sid, j64))``.

    ``sid`` is ``utf8("<PAN>|<EVC OTP>")``.
    """
    _check_key(key)
    if not isinstance(sid, bytes):
        raise TypeError(f"sid must be bytes, not {type(sid).__name__}")
    if not sid:
        raise InvalidInput("sid is empty", "sid")
    return _request(_Aes(key), sid, payload)


# --- response envelope (GSTN → client) ---------------------------------------


def _response(aes: _Aes, data: str, rek: str, mac: str | None, tolerant: bool) -> bytes:
    rek_raw = aes.decrypt(_b64d(rek, "rek", tolerant), "rek")
    if len(rek_raw) != _KEY_LEN:
        raise DecryptionError(
            f"rek decrypted to {len(rek_raw)} bytes, expected a 32-byte key (wrong session key?)", "rek"
        )
    j64 = _Aes(rek_raw).decrypt(_b64d(data, "data", tolerant), "data")
    if mac is not None:
        _verify_hmac(rek_raw, j64, mac, "hmac", tolerant)
    return _inner_json(j64, "data")


def decrypt_response(key: bytes, data: str, rek: str, hmac: str | None, tolerant: bool, /) -> bytes:
    """``data`` + ``rek`` (+ ``hmac``) → JSON bytes, verifying the HMAC when present.

    Order: key → ``rek`` → ``data`` → ``hmac`` → inner Base64.
    """
    _check_key(key)
    return _response(_Aes(key), data, rek, hmac, tolerant)


def decrypt_response_many(
    key: bytes, items: Sequence[tuple[str, str, str | None]], tolerant: bool, threads: int, /
) -> list[bytes]:
    """Batch form of :func:`decrypt_response`; each item is ``(data, rek, hmac_or_None)``."""
    _check_key(key)
    _check_threads(threads)
    aes = _Aes(key)
    out = []
    for i, item in enumerate(items):
        try:
            data, rek, mac = item
            out.append(_response(aes, data, rek, mac, tolerant))
        except (TypeError, InvalidInput, InvalidBase64, DecryptionError, IntegrityError) as exc:
            raise _in_batch(exc, i) from None
        except ValueError:  # wrong tuple arity
            raise TypeError(f"record {i}: expected a (data, rek, hmac) tuple") from None
    return out


# --- server side (the emulator's half of the same protocol) -------------------


def decrypt_request(key: bytes, data: str, hmac: str | None, tolerant: bool, /) -> bytes:
    """Server side of :func:`encrypt_request`: ``data`` (+ ``hmac``) → JSON bytes.

    The HMAC is checked over the exact decrypted Base64 text (no canonicalisation).
    """
    _check_key(key)
    j64 = _Aes(key).decrypt(_b64d(data, "data", tolerant), "data")
    if hmac is not None:
        _verify_hmac(key, j64, hmac, "hmac", tolerant)
    return _inner_json(j64, "data")


def encrypt_response(key: bytes, rek: bytes, payload: bytes, /) -> tuple[str, str, str]:
    """Server side of :func:`decrypt_response`: → ``(data, rek, hmac)`` wire fields."""
    _check_key(key)
    _check_key(rek, "rek")
    _check_payload(payload)
    j64 = binascii.b2a_base64(payload, newline=False)
    return _b64e(_Aes(rek).encrypt(j64)), _b64e(_Aes(key).encrypt(rek)), _hmac_b64(rek, j64)
