"""Request-body size limit (issue 9 item 8): refused before parsing, in-process and on the wire.

Before the limit a 67 MB body was read and parsed whole and then answered TEC4002 ("could not
be decrypted with the session key"), which sent the client looking for a key problem.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from gspauth import codes, errors
from gspauth.emulator import Emulator
from tests.emulator.conftest import SEED
from tests.emulator.rawclient import GSTR1, PREFIX, Raw, error_code, new_txn


def _save_body(size: int) -> bytes:
    """A RETSAVE envelope of about ``size`` bytes whose ``data`` is garbage (it never gets that far)."""
    return json.dumps({"action": "RETSAVE", "data": "A" * size, "hmac": "x"}).encode()


def test_oversized_body_is_refused_before_parsing(emu: Emulator, make: Callable[..., Raw]) -> None:
    r = make()
    r.login(emu)
    limit = emu.config.max_request_body_bytes
    assert limit == 10 * 1024 * 1024  # GSTN's 5 MB of JSON after the double Base64 envelope, with headroom
    h = r.headers("RETSAVE", new_txn(), data=True, period="072017")
    resp = r.client.put(PREFIX["gstn"] + GSTR1, content=_save_body(limit + 1), headers=h)
    assert resp.status_code == 413
    body = resp.json()
    assert body["status_cd"] == "0" and body["error"]["error_cd"] == "GEN5413"
    assert f"{limit:,}" in body["error"]["message"]
    assert emu.stats["error_codes"] == {"GEN5413": 1} and emu.saves_count() == 0
    # exactly at the limit is parsed as usual (and fails for its garbage data, as before)
    resp = r.client.put(PREFIX["gstn"] + GSTR1, content=_save_body(limit - 64)[: limit], headers=h)
    assert resp.status_code == 200 and error_code(resp) == "TEC4002"


def test_body_limit_is_configurable_and_covers_every_layer(emu: Emulator, make: Callable[..., Raw]) -> None:
    emu.update_config(max_request_body_bytes=4096)
    for layer in ("gstn", "cleartax", "vayana"):
        r = make(layer)
        resp = r.client.post(PREFIX[layer] + "/taxpayerapi/v1.0/authenticate", content=b"{" + b" " * 5000 + b"}",
                             headers=r.headers("OTPREQUEST", new_txn()))
        assert resp.status_code == 413 and error_code(resp) == "GEN5413", layer
    with pytest.raises(ValueError):
        emu.update_config(max_request_body_bytes=0)


def test_body_limit_code_is_a_typed_gspauth_error() -> None:
    entry = codes.CODES["GEN5413"]
    assert entry.exception is errors.RequestRejected and entry.http_status == 413
    assert "split" in entry.hint and "5,000,000" in entry.hint
    exc = codes.error_for("GEN5413", status_code=413)
    assert isinstance(exc, errors.RequestRejected) and exc.hint == entry.hint


def test_oversized_body_on_the_wire_is_refused_without_reading_it() -> None:
    from gspauth.emulator import ThreadedEmulator

    limit = 1024 * 1024
    with ThreadedEmulator(seed=SEED, max_request_body_bytes=limit) as server, \
            httpx.Client(base_url=server.url, timeout=20) as c:  # fmt: skip
        # declared too large (Content-Length): answered at once, the body is never read
        resp = c.post("/gstn/taxpayerapi/v1.0/authenticate", content=b"x" * (3 * limit))
        assert resp.status_code == 413 and error_code(resp) == "GEN5413", resp.text
        assert f"is {3 * limit:,} bytes" in resp.json()["error"]["message"]
        assert resp.headers["connection"] == "close"

        # chunked (no Content-Length): the server stops reading once past the limit
        sent = 0

        def body() -> object:
            nonlocal sent
            for _ in range(64 * 4):  # 64 MiB offered in 256 KiB chunks
                sent += 256 * 1024
                yield b"y" * (256 * 1024)

        resp = c.post("/gstn/taxpayerapi/v1.0/authenticate", content=body())  # type: ignore[arg-type]
        assert resp.status_code == 413 and error_code(resp) == "GEN5413"
        assert "exceeds 1,048,576 bytes" in resp.json()["error"]["message"]
        # what left the client is the limit plus what the socket buffers held, far from 64 MiB
        assert sent < 32 * 1024 * 1024, sent
        # the server is fine afterwards, and a body under the limit is served as usual
        assert c.get("/_emulator/health").status_code == 200
        assert error_code(c.post("/gstn/taxpayerapi/v1.0/authenticate", content=b"{}")) == "AUT4031"
        # the case: 67 MB against the default limit, answered at once
        server.emulator.update_config(max_request_body_bytes=10 * 1024 * 1024)
        resp = c.put("/gstn/taxpayerapi/v4.1/returns/gstr1", content=b"z" * 67_000_000)
        assert resp.status_code == 413 and "is 67,000,000 bytes" in resp.json()["error"]["message"]
        assert server.emulator.stats["error_codes"]["GEN5413"] == 3
