"""Text that has no UTF-8 form (a lone surrogate) is a typed gspauth error on both backends.

Python strings may hold lone surrogates (``errors="surrogateescape"`` decoding, a broken
upstream); UTF-8 cannot encode them. The EVC ``sid`` and a JSON payload are the two places
user text is encoded before the crypto core sees it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gspauth.crypto
from gspauth import protocol
from gspauth.errors import GSPAuthError, InvalidInput

KEY = bytes(range(32))
# Text with at least one lone surrogate somewhere in it.
surrogated = st.tuples(st.text(max_size=20), st.integers(0xD800, 0xDFFF), st.text(max_size=20)).map(
    lambda t: t[0] + chr(t[1]) + t[2]
)


@contextlib.contextmanager
def dispatching(backend: ModuleType) -> Iterator[None]:
    """``gspauth.crypto`` dispatching to ``backend`` for the duration."""
    saved = gspauth.crypto._impl
    gspauth.crypto._impl = backend
    try:
        yield
    finally:
        gspauth.crypto._impl = saved


@given(sid=surrogated)
def test_a_lone_surrogate_in_the_evc_sid_is_invalid_input(backend: ModuleType, sid: str) -> None:
    with dispatching(backend), pytest.raises(InvalidInput) as info:
        gspauth.crypto.encrypt_request_evc(KEY, sid, b"{}")
    assert info.value.field == "sid"
    assert isinstance(info.value, GSPAuthError) and "surrogate" in str(info.value)


@given(pan_otp=st.text(min_size=1))
def test_any_encodable_sid_gives_the_same_envelope_on_both_backends(native: ModuleType, reference: ModuleType,
                                                                     pan_otp: str) -> None:
    with dispatching(native):
        a = gspauth.crypto.encrypt_request_evc(KEY, pan_otp, b'{"x":1}')
    with dispatching(reference):
        b = gspauth.crypto.encrypt_request_evc(KEY, pan_otp, b'{"x":1}')
    assert a == b


@given(value=surrogated)
def test_a_lone_surrogate_in_a_payload_is_invalid_input(backend: ModuleType, value: str) -> None:
    with dispatching(backend), pytest.raises(InvalidInput) as info:
        protocol.wrap_payload(KEY, "RETSAVE", {"ctin": value})
    assert info.value.field == "payload"
