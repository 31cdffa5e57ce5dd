"""Rust == Python, for every exported function, on arbitrary and on corrupted input.

Each test calls the native backend and the reference with the same arguments and
compares the full outcome: the returned value, or the exception's class, message,
``field`` and ``index`` (TypeError: class only).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gspauth.errors import DecryptionError, IntegrityError, InvalidBase64, InvalidInput, InvalidKey

from .support import any_keys, flip_bit, json_like, keys, outcome, payloads, wire_texts

pytestmark = pytest.mark.native


# --- every function, arbitrary input --------------------------------------------------------


@given(key=any_keys(), pt=payloads())
def test_aes_and_field_encrypt_match(native: ModuleType, reference: ModuleType, key: bytes, pt: bytes) -> None:
    for name in ("aes_encrypt", "encrypt_field"):
        assert outcome(getattr(native, name), key, pt) == outcome(getattr(reference, name), key, pt)


@given(key=any_keys(), ct=st.one_of(payloads(), st.binary(max_size=70)))
def test_aes_decrypt_matches(native: ModuleType, reference: ModuleType, key: bytes, ct: bytes) -> None:
    assert outcome(native.aes_decrypt, key, ct) == outcome(reference.aes_decrypt, key, ct)


@given(key=st.binary(max_size=200), msg=st.binary(max_size=300))
def test_hmac_matches(native: ModuleType, reference: ModuleType, key: bytes, msg: bytes) -> None:
    assert native.hmac_sha256(key, msg) == reference.hmac_sha256(key, msg)


@given(key=any_keys(), pt=payloads(), tolerant=st.booleans(), field=st.sampled_from(["sek", "rek", "otp", "x y"]))
def test_field_round_trip(
    native: ModuleType, reference: ModuleType, key: bytes, pt: bytes, tolerant: bool, field: str
) -> None:
    wire = outcome(reference.encrypt_field, key, pt)
    assert outcome(native.encrypt_field, key, pt) == wire
    if wire[0] != "ok":
        return
    for name in ("decrypt_field", "decrypt_key"):
        got = outcome(getattr(native, name), key, wire[1], field, tolerant)
        assert got == outcome(getattr(reference, name), key, wire[1], field, tolerant)
    assert native.decrypt_field(key, wire[1], field, tolerant) == pt


@given(key=keys(), text=wire_texts(), tolerant=st.booleans())
def test_field_decrypt_garbage_fails_alike(
    native: ModuleType, reference: ModuleType, key: bytes, text: str, tolerant: bool
) -> None:
    for name in ("decrypt_field", "decrypt_key"):
        got = outcome(getattr(native, name), key, text, "sek", tolerant)
        assert got == outcome(getattr(reference, name), key, text, "sek", tolerant)


@given(key=any_keys(), payload=payloads())
def test_request_matches_and_round_trips(
    native: ModuleType, reference: ModuleType, key: bytes, payload: bytes
) -> None:
    want = outcome(reference.encrypt_request, key, payload)
    assert outcome(native.encrypt_request, key, payload) == want
    if want[0] == "ok":
        data, mac = want[1]
        for be in (native, reference):
            assert be.decrypt_request(key, data, mac, False) == payload
            assert be.decrypt_request(key, data, None, False) == payload


@given(key=any_keys(), sid=st.binary(max_size=40), payload=payloads())
def test_evc_matches(native: ModuleType, reference: ModuleType, key: bytes, sid: bytes, payload: bytes) -> None:
    assert outcome(native.encrypt_request_evc, key, sid, payload) == outcome(
        reference.encrypt_request_evc, key, sid, payload
    )


@given(key=any_keys(), rek=any_keys(), payload=payloads())
def test_response_matches_and_round_trips(
    native: ModuleType, reference: ModuleType, key: bytes, rek: bytes, payload: bytes
) -> None:
    want = outcome(reference.encrypt_response, key, rek, payload)
    assert outcome(native.encrypt_response, key, rek, payload) == want
    if want[0] == "ok":
        data, rek_wire, mac = want[1]
        for be in (native, reference):
            assert be.decrypt_response(key, data, rek_wire, mac, False) == payload
            assert be.decrypt_response(key, data, rek_wire, None, True) == payload
            assert be.decrypt_response_many(key, [(data, rek_wire, mac)], False, 0) == [payload]


@given(key=keys(), data=wire_texts(), rek=wire_texts(), mac=st.none() | wire_texts(), tolerant=st.booleans())
def test_decrypt_garbage_fails_alike(
    native: ModuleType, reference: ModuleType, key: bytes, data: str, rek: str, mac: str | None, tolerant: bool
) -> None:
    assert outcome(native.decrypt_response, key, data, rek, mac, tolerant) == outcome(
        reference.decrypt_response, key, data, rek, mac, tolerant
    )
    assert outcome(native.decrypt_request, key, data, mac, tolerant) == outcome(
        reference.decrypt_request, key, data, mac, tolerant
    )


# --- corrupted envelopes ------------------------------------------------------------------------

CORRUPTIONS = st.sampled_from(
    ["flip-data", "flip-rek", "flip-hmac", "truncate-data", "truncate-rek", "truncate-hmac", "bad-char",
     "url-safe", "whitespace", "wrong-key", "short-key", "drop-padding"]
)


def _corrupt(kind: str, key: bytes, env: tuple[str, str, str], n: int) -> tuple[bytes, str, str, str]:
    data, rek, mac = env

    def cut(text: str) -> str:
        return text[: -(1 + n % len(text))] if text else text

    if kind == "flip-data":
        data = flip_bit(data, n)
    elif kind == "flip-rek":
        rek = flip_bit(rek, n)
    elif kind == "flip-hmac":
        mac = flip_bit(mac, n)
    elif kind == "truncate-data":
        data = cut(data)
    elif kind == "truncate-rek":
        rek = cut(rek)
    elif kind == "truncate-hmac":
        mac = cut(mac)
    elif kind == "bad-char":
        i = n % max(len(data), 1)
        data = data[:i] + "*" + data[i + 1 :]
    elif kind == "url-safe":
        data = data.replace("+", "-").replace("/", "_")
    elif kind == "whitespace":
        i = n % max(len(data), 1)
        data = data[:i] + "\r\n" + data[i:]
    elif kind == "wrong-key":
        key = bytes(b ^ 0x5A for b in key)
    elif kind == "short-key":
        key = key[: n % 32]
    elif kind == "drop-padding":
        data = data.rstrip("=")
    return key, data, rek, mac


@given(key=keys(), rek=keys(), payload=json_like(), kind=CORRUPTIONS, n=st.integers(0, 10_000),
       tolerant=st.booleans())
def test_corrupted_response_fails_alike(
    native: ModuleType, reference: ModuleType, key: bytes, rek: bytes, payload: bytes, kind: str, n: int,
    tolerant: bool,
) -> None:
    env = reference.encrypt_response(key, rek, payload)
    k, data, rek_wire, mac = _corrupt(kind, key, env, n)
    want = outcome(reference.decrypt_response, k, data, rek_wire, mac, tolerant)
    assert outcome(native.decrypt_response, k, data, rek_wire, mac, tolerant) == want
    assert outcome(native.decrypt_response_many, k, [(data, rek_wire, mac)], tolerant, 1) == outcome(
        reference.decrypt_response_many, k, [(data, rek_wire, mac)], tolerant, 1
    )
    if kind in {"flip-hmac"}:
        assert want[1] is IntegrityError
    if kind in {"bad-char", "url-safe"} and want[0] != "ok":
        assert want[1] is InvalidBase64
    if kind == "short-key":
        assert want[1] is InvalidKey


@given(key=keys(), payload=json_like(), kind=CORRUPTIONS, n=st.integers(0, 10_000), tolerant=st.booleans())
def test_corrupted_request_fails_alike(
    native: ModuleType, reference: ModuleType, key: bytes, payload: bytes, kind: str, n: int, tolerant: bool
) -> None:
    data, mac = reference.encrypt_request(key, payload)
    k, data, _, mac = _corrupt(kind, key, (data, "AAAA", mac), n)
    want = outcome(reference.decrypt_request, k, data, mac, tolerant)
    assert outcome(native.decrypt_request, k, data, mac, tolerant) == want
    if kind == "flip-data":
        # a flipped ciphertext bit garbles a whole block: padding, inner Base64 or HMAC fails
        assert want[1] in (DecryptionError, IntegrityError, InvalidBase64)


# --- batches --------------------------------------------------------------------------------------


@given(key=keys(), items=st.lists(json_like(), max_size=24), threads=st.sampled_from([0, 1, 2]))
def test_request_batch_equals_singles(
    native: ModuleType, reference: ModuleType, key: bytes, items: list[bytes], threads: int
) -> None:
    want = [reference.encrypt_request(key, p) for p in items]
    assert native.encrypt_request_many(key, items, threads) == want
    assert reference.encrypt_request_many(key, items, threads) == want


@given(
    key=any_keys(),
    items=st.lists(st.one_of(json_like(), json_like(), st.just(b""), st.just("text"), st.none()), max_size=12),
    threads=st.sampled_from([0, 1, 2]),
)
def test_request_batch_errors_agree(
    native: ModuleType, reference: ModuleType, key: bytes, items: list[object], threads: int
) -> None:
    assert outcome(native.encrypt_request_many, key, items, threads) == outcome(
        reference.encrypt_request_many, key, items, threads
    )


@given(
    key=keys(),
    rek=keys(),
    payloads_=st.lists(json_like(), min_size=1, max_size=16),
    bad=st.lists(st.tuples(st.integers(0, 15), CORRUPTIONS, st.integers(0, 10_000)), max_size=3),
    threads=st.sampled_from([0, 1, 2]),
    tolerant=st.booleans(),
)
def test_response_batch_agrees_with_error_index(
    native: ModuleType, reference: ModuleType, key: bytes, rek: bytes, payloads_: list[bytes],
    bad: list[tuple[int, str, int]], threads: int, tolerant: bool,
) -> None:
    items = [reference.encrypt_response(key, rek, p) for p in payloads_]
    for i, kind, n in bad:
        if kind in ("wrong-key", "short-key"):
            continue  # key corruptions are per call, not per record
        i %= len(items)
        _, d, r, m = _corrupt(kind, key, items[i], n)
        items[i] = (d, r, m)
    want = outcome(reference.decrypt_response_many, key, items, tolerant, threads)
    assert outcome(native.decrypt_response_many, key, items, tolerant, threads) == want
    if want[0] == "ok":
        assert want[1] == payloads_
    elif want[0] == "err":
        index = want[4]
        assert str(want[2]).startswith(f"record {index}: ")
        # every record before the failing one is fine on its own
        for item in items[:index]:
            assert outcome(reference.decrypt_response, key, *item, tolerant)[0] == "ok"


@given(
    key=keys(),
    item=st.one_of(
        st.tuples(wire_texts(), wire_texts(), st.none() | wire_texts()),
        st.tuples(st.integers() | st.binary(), wire_texts(), st.none()),
        st.tuples(wire_texts(), st.binary(), st.none()),
        st.tuples(wire_texts(), wire_texts(), st.integers()),
        st.tuples(wire_texts(), wire_texts()),
        st.lists(wire_texts(), min_size=3, max_size=3),
        st.text(min_size=3, max_size=3),
        st.integers(),
        st.none(),
    ),
)
def test_response_batch_odd_items_agree(
    native: ModuleType, reference: ModuleType, key: bytes, item: object
) -> None:
    good = reference.encrypt_response(key, key, b'{"a":1}')
    items = [good, item, good]
    assert outcome(native.decrypt_response_many, key, items, False, 0) == outcome(
        reference.decrypt_response_many, key, items, False, 0
    )


# --- type errors, raised in the reference's order -----------------------------------------------


ODD = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.binary(max_size=40), st.just(bytearray(32)))


@given(a=ODD, b=ODD, c=ODD)
def test_odd_argument_types_fail_alike(native: ModuleType, reference: ModuleType, a: object, b: object, c: object) -> None:
    key = bytes(32)
    calls = [
        ("aes_encrypt", (a, b)),
        ("aes_decrypt", (a, b)),
        ("hmac_sha256", (a, b)),
        ("encrypt_field", (a, b)),
        ("decrypt_field", (key, a, "sek", b)),
        ("decrypt_key", (a, "AAAA", "sek", False)),
        ("encrypt_request", (a, b)),
        ("encrypt_request_evc", (key, a, b)),
        ("encrypt_response", (a, b, c)),
        ("encrypt_response", (key, b, c)),
        ("decrypt_request", (key, a, b, False)),
        ("decrypt_response", (key, a, b, c, False)),
        ("decrypt_response", (a, "AAAA", "AAAA", None, False)),
    ]
    for name, args in calls:
        assert outcome(getattr(native, name), *args) == outcome(getattr(reference, name), *args), name


def test_tolerant_and_field_take_any_object_like_the_reference(native: ModuleType, reference: ModuleType) -> None:
    key = bytes(32)
    for tolerant in (0, 1, "", "yes", None, [1]):
        for text in (" AAAA", "AA AA==", "*"):
            assert outcome(native.decrypt_field, key, text, "sek", tolerant) == outcome(
                reference.decrypt_field, key, text, "sek", tolerant
            )
    for field in (5, None, ("a", 1), "caf\u00e9", "\ud800"):
        for text in ("*", "AAAA", "", "x" * 4):
            got = outcome(native.decrypt_field, key, text, field, False)
            want = outcome(reference.decrypt_field, key, text, field, False)
            assert got == want
            if want[0] == "err":
                assert got[3] is field or got[3] == field


def test_surrogates_and_non_ascii_text_fail_alike(native: ModuleType, reference: ModuleType) -> None:
    key = bytes(32)
    for text in ("\ud800AAA", "AAA\udfff", "\u00e9AAA", "AAAA\u0660", "\U0001f600==", "AA\ud800=="):
        for tolerant in (False, True):
            got = outcome(native.decrypt_field, key, text, "data", tolerant)
            assert got == outcome(reference.decrypt_field, key, text, "data", tolerant)
            assert got[1] is InvalidBase64
            assert outcome(native.decrypt_response, key, "AAAA", text, None, tolerant) == outcome(
                reference.decrypt_response, key, "AAAA", text, None, tolerant
            )


def test_batch_threads_give_identical_output(native: ModuleType, reference: ModuleType) -> None:
    key, rek = bytes(range(32)), bytes(range(32, 64))
    payloads_ = [(b'{"n":%d,"pad":"%s"}' % (i, b"x" * (i % 300))) for i in range(2600)]
    want = reference.encrypt_request_many(key, payloads_, 0)
    for threads in (0, 1, 2, 3, 64):
        assert native.encrypt_request_many(key, payloads_, threads) == want
        assert native.encrypt_request_many(key, iter(payloads_), threads) == want
    items = [reference.encrypt_response(key, rek, p) for p in payloads_]
    for threads in (0, 1, 2, 64):
        assert native.decrypt_response_many(key, items, False, threads) == payloads_
        assert native.decrypt_response_many(key, (list(i) for i in items), True, threads) == payloads_


@pytest.mark.parametrize("threads", [0, 1, 2])
@pytest.mark.parametrize("where", [[5], [1500, 2400], [2599], [511, 512], [512], [1023, 1024], [1024]])
def test_batch_error_index_across_chunks(
    native: ModuleType, reference: ModuleType, threads: int, where: list[int]
) -> None:
    """Batches are processed in chunks natively; the lowest failing index must survive that."""
    key, rek = bytes(range(32)), bytes(range(32, 64))
    payloads_ = [b'{"n":%d}' % i for i in range(2600)]
    bad_payloads: list[object] = list(payloads_)
    items: list[tuple[str, str, str | None]] = [reference.encrypt_response(key, rek, p) for p in payloads_]
    for i in where:
        bad_payloads[i] = b""
        d, r, m = items[i]
        items[i] = (d, r, flip_bit(m or "", i))
    want = outcome(reference.encrypt_request_many, key, bad_payloads, threads)
    assert want[0] == "err" and want[1] is InvalidInput and want[4] == min(where)
    assert outcome(native.encrypt_request_many, key, bad_payloads, threads) == want
    want = outcome(reference.decrypt_response_many, key, items, False, threads)
    assert want[1] is IntegrityError and want[4] == min(where)
    assert outcome(native.decrypt_response_many, key, items, False, threads) == want
    # a TypeError after the first failing record does not win over it; one before it does
    items2: list[object] = list(items)
    items2[min(where) + 1 :] = [None]
    assert outcome(native.decrypt_response_many, key, items2, False, threads) == want
    items2[min(where)] = ("AAAA", 7, None)
    assert outcome(native.decrypt_response_many, key, items2, False, threads) == ("type", TypeError)
    assert outcome(reference.decrypt_response_many, key, items2, False, threads) == ("type", TypeError)


def test_iteration_errors_propagate_unchanged(native: ModuleType, reference: ModuleType) -> None:
    key = bytes(32)

    def gen(fail_at: int, good: object) -> object:
        for i in range(5):
            if i == fail_at:
                raise LookupError("boom")
            yield good

    for be in (native, reference):
        with pytest.raises(LookupError, match="boom"):
            be.encrypt_request_many(key, gen(3, b"{}"), 0)
        with pytest.raises(InvalidInput, match="record 1: payload is empty"):
            be.encrypt_request_many(key, iter([b"{}", b"", "not bytes"]), 0)
        good = reference.encrypt_response(key, key, b"{}")
        with pytest.raises(LookupError, match="boom"):
            be.decrypt_response_many(key, gen(2, good), False, 0)
        with pytest.raises(TypeError):
            be.encrypt_request_many(key, 42, 0)
        with pytest.raises(TypeError):
            be.decrypt_response_many(key, 42, False, 0)


def test_threads_argument_is_checked_alike(native: ModuleType, reference: ModuleType) -> None:
    # `threads` must be an int >= 0 on both backends (a huge count means "all cores").
    key = bytes(32)
    good = reference.encrypt_response(key, key, b"{}")

    def both(threads: object) -> tuple[object, object]:
        out = []
        for fn, args in ((lambda be: be.encrypt_request_many, [b"{}"]), (lambda be: be.decrypt_response_many, [good])):
            for be in (native, reference):
                extra = (False,) if args is not None and args[0] == good else ()
                try:
                    got: object = ("ok", fn(be)(key, args, *extra, threads))
                except (TypeError, ValueError, OverflowError) as exc:
                    got = (type(exc), str(exc), getattr(exc, "field", None))
                out.append(got)
        assert out[0] == out[1] and out[2] == out[3], (threads, out)
        return out[0], out[2]

    for bad in (-1, -(2**70)):
        assert both(bad)[0] == (InvalidInput, "threads must be >= 0 (0 = automatic)", "threads")
    for bad in (None, "2", 1.5):
        assert both(bad)[0][0] is TypeError
    for fine in (0, 1, True, 2**40, 2**70):
        assert both(fine)[0][0] == "ok"


# --- large inputs ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_multi_megabyte_payloads_match(native: ModuleType, reference: ModuleType) -> None:
    key, rek = bytes(range(32)), bytes(range(100, 132))
    for size in (3 * 1024 * 1024 + 7, 5 * 1024 * 1024):
        payload = (b'{"k":"' + bytes(range(256)) * (size // 256))[:size]
        for name, args in (
            ("aes_encrypt", (key, payload)),
            ("encrypt_field", (key, payload)),
            ("encrypt_request", (key, payload)),
            ("encrypt_request_evc", (key, b"ABCDE1234F|123456", payload)),
            ("encrypt_response", (key, rek, payload)),
        ):
            assert getattr(native, name)(*args) == getattr(reference, name)(*args), name
        data, rek_wire, mac = reference.encrypt_response(key, rek, payload)
        assert native.decrypt_response(key, data, rek_wire, mac, False) == payload
        assert native.decrypt_response_many(key, [(data, rek_wire, mac)] * 2, False, 2) == [payload] * 2
        req_data, req_mac = reference.encrypt_request(key, payload)
        assert native.decrypt_request(key, req_data, req_mac, False) == payload
        assert native.decrypt_field(key, req_data, "data", False) == reference.decrypt_field(
            key, req_data, "data", False
        )
        ct = reference.aes_encrypt(key, payload)
        assert native.aes_decrypt(key, ct) == payload
        assert native.hmac_sha256(key, payload) == reference.hmac_sha256(key, payload)
        # corrupt the last block of a big ciphertext: same error in both
        bad = flip_bit(data, len(base64.b64decode(data)) * 8 - 3)
        assert outcome(native.decrypt_response, key, bad, rek_wire, mac, False) == outcome(
            reference.decrypt_response, key, bad, rek_wire, mac, False
        )


@pytest.mark.slow
def test_size_limits_fail_alike(native: ModuleType, reference: ModuleType) -> None:
    key = bytes(32)
    big = b"x" * (reference.MAX_PAYLOAD_BYTES + 1)
    for name, args in (
        ("aes_encrypt", (key, big)),
        ("encrypt_field", (key, big)),
        ("encrypt_request", (key, big)),
        ("encrypt_request_evc", (key, b"sid", big)),
        ("encrypt_response", (key, key, big)),
        ("encrypt_request_many", (key, [b"{}", big], 2)),
    ):
        got = outcome(getattr(native, name), *args)
        assert got == outcome(getattr(reference, name), *args), name
        assert got[1] is InvalidInput and "larger than 33554432 bytes" in got[2]
    del big
    at_limit = b"x" * reference.MAX_PAYLOAD_BYTES
    assert native.encrypt_field(key, at_limit) == reference.encrypt_field(key, at_limit)
    del at_limit
    long_text = "A" * (reference.MAX_WIRE_CHARS + 4)
    for name, args in (
        ("decrypt_field", (key, long_text, "sek", False)),
        ("decrypt_response", (key, "AAAA", long_text, None, True)),
        ("decrypt_response", (key, long_text, "AAAA", None, False)),
        ("decrypt_request", (key, long_text, None, False)),
        ("decrypt_response_many", (key, [("AAAA", long_text, None)], False, 1)),
        ("aes_decrypt", (key, long_text.encode())),
    ):
        got = outcome(getattr(native, name), *args)
        assert got == outcome(getattr(reference, name), *args), name
        assert got[1] in (InvalidInput, DecryptionError)
    del long_text
    # more UTF-8 bytes than the limit, but fewer characters: counted as characters
    wide = "\u00e9" * (reference.MAX_WIRE_CHARS // 2 + 1)
    got = outcome(native.decrypt_field, key, wide, "data", False)
    assert got == outcome(reference.decrypt_field, key, wide, "data", False)
    assert got[1] is InvalidBase64


def test_results_have_the_reference_types(native: ModuleType) -> None:
    key = bytes(32)
    data, mac = native.encrypt_request(key, b"{}")
    assert type(data) is str and type(mac) is str
    assert type(native.encrypt_request_many(key, [b"{}"], 0)) is list
    assert type(native.encrypt_request_many(key, [b"{}"], 0)[0]) is tuple
    assert type(native.decrypt_request(key, data, mac, False)) is bytes
    assert type(native.encrypt_response(key, key, b"{}")) is tuple
    assert type(native.aes_encrypt(key, b"")) is bytes
    assert type(native.encrypt_field(key, b"")) is str
    assert native.MAX_PAYLOAD_BYTES == 32 * 1024 * 1024
    assert native.MAX_WIRE_CHARS == 64 * 1024 * 1024


class _BytesSub(bytes):
    pass


class _StrSub(str):
    pass


def test_subclasses_are_accepted_like_the_reference(native: ModuleType, reference: ModuleType) -> None:
    key = _BytesSub(bytes(32))
    payload = _BytesSub(b'{"a":1}')
    assert native.encrypt_request(key, payload) == reference.encrypt_request(key, payload)
    data, mac = reference.encrypt_request(bytes(32), b'{"a":1}')
    assert native.decrypt_request(key, _StrSub(data), _StrSub(mac), False) == b'{"a":1}'


def test_no_secret_in_messages(native: ModuleType, reference: ModuleType) -> None:
    key = bytes.fromhex("00112233445566778899aabbccddeeff" * 2)
    payload = b'{"secret":"S3CR3T-PAYLOAD"}'
    data, mac = reference.encrypt_request(key, payload)
    wrong = bytes(32)
    for be in (native, reference):
        for args in ((wrong, data, mac, False), (key, data, flip_bit(mac, 3), False), (key[:31], data, mac, False)):
            with pytest.raises(Exception) as info:
                be.decrypt_request(*args)
            text = str(info.value) + repr(info.value)
            assert "S3CR3T" not in text and key.hex() not in text and data not in text


@pytest.mark.parametrize("threads", [1, 2])
def test_batches_release_the_gil(native: ModuleType, reference: ModuleType, threads: int) -> None:
    """Python code in another thread keeps running while a native batch works."""
    import threading
    import time

    key = bytes(32)
    payloads_ = [b'{"n":%d,"pad":"%s"}' % (i, b"y" * 1500) for i in range(12_000)]
    items = [reference.encrypt_response(key, key, p) for p in payloads_[:6000]]
    for fn, args in (
        (native.encrypt_request_many, (key, payloads_, threads)),
        (native.decrypt_response_many, (key, items, False, threads)),
    ):
        span: list[float] = []

        def work(fn: Callable[..., object], args: tuple[object, ...], span: list[float]) -> None:
            span.append(time.perf_counter())
            fn(*args)
            span.append(time.perf_counter())

        t = threading.Thread(target=work, args=(fn, args, span))
        ticks: list[float] = []
        t.start()
        while t.is_alive():
            ticks.append(time.perf_counter())
        t.join()
        start, end = span
        middle = [x for x in ticks if start + (end - start) * 0.2 < x < end - (end - start) * 0.2]
        # With the GIL held for the whole call this loop could not run at all in between (not
        # once): any tick there proves the release. How many depends on the machine's load, so
        # the test asks for one, not for a rate.
        assert middle, (len(ticks), end - start)


def test_unpacking_errors_of_batch_items_match_exactly(native: ModuleType, reference: ModuleType) -> None:
    # `data, rek, mac = item` in the reference: an item's own __iter__/__next__ errors keep
    # their class (and a TypeError its bare message); only a non-iterable gets "cannot unpack".
    key = bytes(32)

    class Raises:
        def __init__(self, exc: Exception, at_next: bool) -> None:
            self.exc, self.at_next = exc, at_next

        def __iter__(self) -> Raises:
            if not self.at_next:
                raise self.exc
            return self

        def __next__(self) -> str:
            raise self.exc

    def exact(items: list[object]) -> tuple[object, ...]:
        out = []
        for be in (native, reference):
            try:
                out.append(("ok", be.decrypt_response_many(key, items, False, 0)))
            except Exception as exc:  # noqa: BLE001 - comparing whatever comes out
                out.append((type(exc), str(exc), getattr(exc, "index", None)))
        assert out[0] == out[1], out
        return tuple(out[0])

    assert exact([Raises(LookupError("lk"), False)])[0] is LookupError
    assert exact([Raises(LookupError("lk"), True)])[0] is LookupError
    assert exact([Raises(TypeError("boom"), False)])[:2] == (TypeError, "record 0: boom")
    assert exact([Raises(TypeError("boom"), True)])[:2] == (TypeError, "record 0: boom")
    assert exact([Raises(ValueError("v"), False)])[0] is TypeError
    assert exact([5])[:2] == (TypeError, "record 0: cannot unpack non-iterable int object")
    for be in (native, reference):
        with pytest.raises(TypeError) as info:
            be.decrypt_field(key, None, "f\ud800", False)
        assert str(info.value) == "f\ud800 must be str, not NoneType"
