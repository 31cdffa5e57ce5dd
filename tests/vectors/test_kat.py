"""Known-answer tests: NIST SP 800-38A AES-256-ECB, RFC 4231 HMAC-SHA256 and spec §11.3,
run against both backends (the ``backend`` fixture). ``rust/gspauth-core/tests/vectors.rs``
reads the same files."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import gspauth.errors

DATA = Path(__file__).parent / "data"
README = Path(__file__).parent / "README.md"


def _load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def _cases(name: str, *, grouped: bool) -> list[Any]:
    doc = _load(name)
    if not grouped:
        return [pytest.param(t, id=f"tc{t['tcId']}") for t in doc["tests"]]
    return [
        pytest.param(g, t, id=f"{g.get('type', g.get('section', ''))}-tc{t['tcId']}")
        for g in doc["testGroups"]
        for t in g["tests"]
    ]


@pytest.mark.parametrize(("group", "case"), _cases("nist_sp800_38a_ecb_aes256.json", grouped=True))
def test_nist_aes256_ecb(backend: ModuleType, group: dict[str, Any], case: dict[str, Any]) -> None:
    key = bytes.fromhex(group["key"])
    pt, ct = bytes.fromhex(case["plaintext"]), bytes.fromhex(case["ciphertext"])
    pad_block = backend.aes_encrypt(key, b"")  # E(key, 16 x 0x10)
    if group["direction"] == "encrypt":
        assert backend.aes_encrypt(key, pt) == ct + pad_block
    else:
        assert backend.aes_decrypt(key, ct + pad_block) == pt


def test_nist_all_blocks_in_one_call(backend: ModuleType) -> None:
    group = _load("nist_sp800_38a_ecb_aes256.json")["testGroups"][0]
    key = bytes.fromhex(group["key"])
    pt = b"".join(bytes.fromhex(t["plaintext"]) for t in group["tests"])
    ct = b"".join(bytes.fromhex(t["ciphertext"]) for t in group["tests"])
    assert backend.aes_encrypt(key, pt)[: len(ct)] == ct
    assert backend.aes_decrypt(key, backend.aes_encrypt(key, pt)) == pt


@pytest.mark.parametrize("case", _cases("rfc4231_hmac_sha256.json", grouped=False))
def test_rfc4231_hmac_sha256(backend: ModuleType, case: dict[str, Any]) -> None:
    mac = backend.hmac_sha256(bytes.fromhex(case["key"]), bytes.fromhex(case["data"]))
    assert len(mac) == 32
    assert mac.hex()[: case["truncateBits"] // 4] == case["mac"]


@pytest.mark.parametrize(("group", "case"), _cases("gspauth_kat.json", grouped=True))
def test_gspauth_kat(backend: ModuleType, group: dict[str, Any], case: dict[str, Any]) -> None:
    kind = group["type"]
    if kind == "KeyEncoding":
        # the B64 of a raw key is what E/D use on the wire; check via the decrypt path
        key = bytes.fromhex(case["key"])
        assert backend.decrypt_key(key, backend.encrypt_field(key, key), "k", False) == key
        import base64

        assert base64.b64encode(key).decode() == case["b64"]
    elif kind == "Field":
        key, pt = bytes.fromhex(case["key"]), bytes.fromhex(case["plaintext"])
        assert backend.encrypt_field(key, pt) == case["wire"]
        assert backend.decrypt_field(key, case["wire"], case["field"], False) == pt
        if case["isKey"]:
            assert backend.decrypt_key(key, case["wire"], case["field"], False) == pt
    elif kind == "Request":
        key, js = bytes.fromhex(case["key"]), case["json"].encode()
        assert backend.encrypt_request(key, js) == (case["data"], case["hmac"])
        assert backend.encrypt_request_many(key, [js, js], 0) == [(case["data"], case["hmac"])] * 2
        assert backend.decrypt_request(key, case["data"], case["hmac"], False) == js
    elif kind == "Evc":
        key, js = bytes.fromhex(case["key"]), case["json"].encode()
        assert backend.encrypt_request_evc(key, case["sid"].encode(), js) == (case["data"], case["sign"])
    elif kind == "Response":
        key, rek, js = bytes.fromhex(case["key"]), bytes.fromhex(case["rekKey"]), case["json"].encode()
        assert backend.encrypt_response(key, rek, js) == (case["data"], case["rek"], case["hmac"])
        assert backend.decrypt_response(key, case["data"], case["rek"], case["hmac"], False) == js
        items = [(case["data"], case["rek"], case["hmac"])] * 3
        assert backend.decrypt_response_many(key, items, False, 0) == [js] * 3
        assert backend.decrypt_key(key, case["rek"], "rek", False) == rek
    elif kind == "Decrypt":
        a = case["args"]
        key = bytes.fromhex(a["key"])
        fn = getattr(backend, case["function"])
        if case["function"] in ("decrypt_field", "decrypt_key"):
            args: tuple[Any, ...] = (key, a["text"], a["field"], a["tolerant"])
        elif case["function"] == "decrypt_response":
            args = (key, a["data"], a["rek"], a["hmac"], a["tolerant"])
        else:
            args = (key, a["data"], a["hmac"], a["tolerant"])
        if case["result"] == "valid":
            assert fn(*args) == bytes.fromhex(case["plaintext"])
        else:
            cls = getattr(gspauth.errors, case["error"])
            with pytest.raises(cls) as info:
                fn(*args)
            assert type(info.value) is cls
            assert str(info.value) == case["message"]
            assert info.value.field == case["field"]
            assert info.value.index is None
    else:  # pragma: no cover - a new group type needs a branch here
        pytest.fail(f"unknown test group type {kind}")


def test_kat_covers_every_spec_value() -> None:
    """Each §11.3 output appears in the vector file (the generator checks it equals the spec)."""
    doc = _load("gspauth_kat.json")
    text = json.dumps(doc)
    for value in (
        "lBQwV4dMNxt5BBTu2msZ+w==",
        "YaaTbk6PEBwcwfmTtUKg1OJ0Dor61OTRXQ1mGzguyomfO3UEkm+L024xGOkDpM1K",
        "oA8e3mfG+ANSby48TqkpvHBcgg43Hz4FE0cNZtxITum+X0DaQDw+WhKW3ulf0pqN",
        "N4x+ZhaLyd7Qvr4sfXjFcMpg5Acwd4WPP3NsCv5+RNolUcvwF8EAGdqvUMasWl1qXlivpyDfvg4S6p8v1xVlOg==",
        "UydtkVD49cbME6U9Sr5GQVigQsZmSrgg39FjwioFGHc=",
        "nsnczqn1sSa6HnZ404MpQ0SrOthS9VcpkIu083f2Ofu+X0DaQDw+WhKW3ulf0pqN",
        "bMQ4ZPdlCoFaPVLJvMhu70OsS6zNSwYXnKuge/MAOOyzKkDU9rO6pMxrqnsN8aTeyct7OFnhpVC8vxG2JAIsVg==",
        "k5EM7DzMiwgflrns9Y7EyWOnITc3Yvd7+1gbDh4YKhw=",
        "6G55FewfCNrVapXZc+6q6Vwa5wYsloasIbMXxvsM8Us=",
    ):
        assert value in text
    assert doc["numberOfTests"] == sum(len(g["tests"]) for g in doc["testGroups"])
    assert len({t["tcId"] for g in doc["testGroups"] for t in g["tests"]}) == doc["numberOfTests"]


def test_readme_records_each_file_and_its_sha256() -> None:
    readme = README.read_text(encoding="utf-8")
    files = sorted(p.name for p in DATA.glob("*.json"))
    assert files, "no vector files"
    for name in files:
        digest = hashlib.sha256((DATA / name).read_bytes()).hexdigest()
        row = re.search(rf"^\|\s*`{re.escape(name)}`.*$", readme, re.M)
        assert row, f"{name} is not described in tests/vectors/README.md"
        assert digest in row.group(0), f"{name}: sha256 in README is stale (now {digest})"
