"""Type stub of the compiled Rust backend ``gspauth._native`` (rust/gspauth-py).

Same functions, positional-only signatures, results and exceptions as the
reference ``gspauth.crypto._python``; see its docstrings for the contract.
"""

from collections.abc import Iterable

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

__version__: str
MAX_PAYLOAD_BYTES: int
MAX_WIRE_CHARS: int

def aes_encrypt(key: bytes, plaintext: bytes, /) -> bytes: ...
def aes_decrypt(key: bytes, ciphertext: bytes, /) -> bytes: ...
def hmac_sha256(key: bytes, message: bytes, /) -> bytes: ...
def encrypt_field(key: bytes, plaintext: bytes, /) -> str: ...
def decrypt_field(key: bytes, text: str, field: str, tolerant: bool, /) -> bytes: ...
def decrypt_key(key: bytes, text: str, field: str, tolerant: bool, /) -> bytes: ...
def encrypt_request(key: bytes, payload: bytes, /) -> tuple[str, str]: ...
def encrypt_request_many(key: bytes, payloads: Iterable[bytes], threads: int, /) -> list[tuple[str, str]]: ...
def encrypt_request_evc(key: bytes, sid: bytes, payload: bytes, /) -> tuple[str, str]: ...
def decrypt_response(key: bytes, data: str, rek: str, hmac: str | None, tolerant: bool, /) -> bytes: ...
def decrypt_response_many(
    key: bytes, items: Iterable[tuple[str, str, str | None]], tolerant: bool, threads: int, /
) -> list[bytes]: ...
def decrypt_request(key: bytes, data: str, hmac: str | None, tolerant: bool, /) -> bytes: ...
def encrypt_response(key: bytes, rek: bytes, payload: bytes, /) -> tuple[str, str, str]: ...
