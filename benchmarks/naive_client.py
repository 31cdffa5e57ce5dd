"""The GSTN envelope written the way typical GST client code writes it: the baseline.

Per record it builds a new ``Cipher`` (and encryptor/decryptor), pads with
``cryptography``'s ``padding`` module, Base64s with :mod:`base64` and computes the
HMAC with ``hmac.new`` — correct, straightforward, and what most integrations
run today. Written for this benchmark from spec §4; it follows no particular
client. It must give byte-identical output to ``gspauth.crypto`` (the benchmark
checks that before it times anything).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def aes_encrypt(key: bytes, plaintext: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def aes_decrypt(key: bytes, ciphertext: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def encrypt_request(ek: bytes, payload: bytes) -> tuple[str, str]:
    """JSON bytes → ``(data, hmac)``: AES over the Base64 *text* of the JSON, HMAC keyed by EK."""
    j64 = base64.b64encode(payload)
    data = base64.b64encode(aes_encrypt(ek, j64)).decode()
    mac = base64.b64encode(hmac.new(ek, j64, hashlib.sha256).digest()).decode()
    return data, mac


def decrypt_response(ek: bytes, data: str, rek: str, mac: str | None) -> bytes:
    """``data`` + ``rek`` (+ ``hmac``) → JSON bytes; REK decrypted under EK, HMAC keyed by REK."""
    rek_raw = aes_decrypt(ek, base64.b64decode(rek))
    j64 = aes_decrypt(rek_raw, base64.b64decode(data))
    if mac is not None:
        expected = base64.b64encode(hmac.new(rek_raw, j64, hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, mac):
            raise ValueError("hmac mismatch")
    return base64.b64decode(j64)


def encrypt_request_many(ek: bytes, payloads: list[bytes]) -> list[tuple[str, str]]:
    """A batch is just a loop over records (there is no batch API in typical client code)."""
    return [encrypt_request(ek, p) for p in payloads]


def decrypt_response_many(ek: bytes, items: list[tuple[str, str, str | None]]) -> list[bytes]:
    return [decrypt_response(ek, data, rek, mac) for data, rek, mac in items]
