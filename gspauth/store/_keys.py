"""Where the store key comes from (the 32-byte key sealing every session's secrets at rest).

In order: the ``key=`` argument; ``GSPAUTH_STORE_KEY`` (Base64 of 32 bytes);
``GSPAUTH_STORE_KEY_FILE`` (a file holding that Base64); the OS keyring (service ``gspauth``,
entry ``store-key``) when the optional ``keyring`` package is installed (``pip install
gspauth[keyring]``; a key is generated and saved there on first use).
"""

from __future__ import annotations

import base64
import binascii
import importlib
import logging
import os
import secrets
from pathlib import Path

from gspauth.errors import ConfigurationError

__all__ = [
    "KEYRING_ENTRY", "KEYRING_SERVICE", "STORE_KEY_ENV", "STORE_KEY_FILE_ENV", "generate_store_key",
    "resolve_store_key", "store_key_source",
]

log = logging.getLogger("gspauth.store")

#: Environment variable holding the Base64 store key.
STORE_KEY_ENV = "GSPAUTH_STORE_KEY"
#: Environment variable naming a file that holds the Base64 store key.
STORE_KEY_FILE_ENV = "GSPAUTH_STORE_KEY_FILE"
KEYRING_SERVICE = "gspauth"
KEYRING_ENTRY = "store-key"

HOW_TO_SET_KEY = (
    f"set {STORE_KEY_ENV} to the Base64 of 32 random bytes, e.g. "
    f"`export {STORE_KEY_ENV}=$(python -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())')` "
    f"(keep it in your secret manager; the same key must be used by every process sharing the store), "
    f"or point {STORE_KEY_FILE_ENV} at a file holding it, "
    "or `pip install gspauth[keyring]` to keep a generated key in the OS keyring"
)


def generate_store_key() -> str:
    """A new random store key, Base64 text (what ``GSPAUTH_STORE_KEY`` expects)."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _decode_key(text: str, where: str) -> bytes:
    cleaned = "".join(text.split())
    try:
        raw = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        try:
            raw = base64.urlsafe_b64decode(cleaned)
        except (binascii.Error, ValueError):
            raise ConfigurationError(f"{where} is not valid Base64; {HOW_TO_SET_KEY}") from None
    if len(raw) != 32:
        raise ConfigurationError(
            f"{where} must be the Base64 of exactly 32 bytes (it decodes to {len(raw)}); {HOW_TO_SET_KEY}")
    return raw


def _keyring_key(create: bool) -> bytes | None:
    try:
        keyring = importlib.import_module("keyring")  # optional: gspauth[keyring]
    except ImportError:
        return None
    try:
        text = keyring.get_password(KEYRING_SERVICE, KEYRING_ENTRY)
        if text is None and create:
            text = generate_store_key()
            keyring.set_password(KEYRING_SERVICE, KEYRING_ENTRY, text)
            log.info("generated a new gspauth store key and saved it in the OS keyring (%s/%s)",
                     KEYRING_SERVICE, KEYRING_ENTRY)
    except Exception as exc:  # noqa: BLE001 - keyring backends raise many types (no backend, locked, D-Bus…)
        log.debug("OS keyring unavailable: %s", type(exc).__name__)
        return None
    if text is None:
        return None
    return _decode_key(text, f"the OS keyring entry {KEYRING_SERVICE}/{KEYRING_ENTRY}")


def resolve_store_key(explicit: bytes | str | None = None, *, create_in_keyring: bool = True) -> tuple[bytes, str]:
    """Find the store key; return ``(key bytes, source)`` where source names where it came from.

    :raises ConfigurationError: no key anywhere, or a malformed one (the message says how to fix it).
    """
    if explicit is not None:
        if isinstance(explicit, str):
            return _decode_key(explicit, "the store key argument"), "argument"
        if len(explicit) != 32:
            raise ConfigurationError(f"the store key must be 32 bytes, got {len(explicit)}")
        return bytes(explicit), "argument"
    text = os.environ.get(STORE_KEY_ENV)
    if text:
        return _decode_key(text, STORE_KEY_ENV), f"env:{STORE_KEY_ENV}"
    path = os.environ.get(STORE_KEY_FILE_ENV)
    if path:
        try:
            text = Path(path).expanduser().read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read the store key file named by {STORE_KEY_FILE_ENV}: {exc}") from None
        return _decode_key(text, f"the file named by {STORE_KEY_FILE_ENV}"), f"file:{STORE_KEY_FILE_ENV}"
    raw = _keyring_key(create_in_keyring)
    if raw is not None:
        return raw, "keyring"
    raise ConfigurationError(f"no session store key: {HOW_TO_SET_KEY}")


def store_key_source() -> str | None:
    """Where a store key would come from right now (``None`` if nowhere); never creates one."""
    try:
        return resolve_store_key(create_in_keyring=False)[1]
    except ConfigurationError:
        return None
