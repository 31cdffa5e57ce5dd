"""Shared helpers for the crypto tests: outcome capture and hypothesis strategies."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from gspauth.errors import CryptoError

B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """What a call did, comparable across backends.

    A result, or a crypto error's exact class, message, ``field`` and ``index``,
    or a ``TypeError`` (type only: its message may differ between backends).
    """
    try:
        return ("ok", fn(*args))
    except CryptoError as exc:
        return ("err", type(exc), str(exc), exc.field, exc.index, exc.args)
    except TypeError:
        return ("type", TypeError)


def keys() -> st.SearchStrategy[bytes]:
    return st.binary(min_size=32, max_size=32)


def any_keys() -> st.SearchStrategy[bytes]:
    """Mostly valid keys, sometimes of a wrong length."""
    return st.one_of(keys(), keys(), keys(), st.binary(max_size=64))


def payloads(max_blocks: int = 12) -> st.SearchStrategy[bytes]:
    """Empty, one byte, exact multiples of 16, and arbitrary lengths."""
    return st.one_of(
        st.just(b""),
        st.binary(min_size=1, max_size=1),
        st.integers(1, max_blocks).flatmap(lambda k: st.binary(min_size=16 * k, max_size=16 * k)),
        st.binary(max_size=16 * max_blocks + 15),
    )


def json_like() -> st.SearchStrategy[bytes]:
    """Non-empty payloads, JSON-ish text or raw bytes."""
    return st.one_of(
        st.text(max_size=200).map(lambda s: f'{{"v":"{s}"}}'.encode()),
        st.binary(min_size=1, max_size=300),
    )


def wire_texts() -> st.SearchStrategy[str]:
    """Strings near the Base64 alphabet: valid-looking, padded, whitespace, junk, non-ASCII."""
    return st.one_of(
        st.text(alphabet=B64_ALPHABET + "=", max_size=80),
        st.text(alphabet=B64_ALPHABET + "= \t\r\n-_*\u00e9", max_size=80),
        st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode()),
        st.text(max_size=20),
    )


def flip_bit(text: str, bit: int) -> str:
    """Flip one bit of the bytes a Base64 text encodes, and re-encode."""
    try:
        raw = bytearray(base64.b64decode(text, validate=True))
    except ValueError:  # already broken: change one character instead
        return ("B" if text[:1] == "A" else "A") + text[1:]
    if not raw:
        return text
    bit %= len(raw) * 8
    raw[bit // 8] ^= 1 << (bit % 8)
    return base64.b64encode(bytes(raw)).decode()
